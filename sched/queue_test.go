package sched

import (
	"testing"

	"github.com/stretchr/testify/assert"
	"github.com/stretchr/testify/require"
)

func entries(n int, prio func(i int) int) []*entry {
	es := make([]*entry, n)
	for i := range es {
		es[i] = &entry{req: &Request{id: uint64(i + 1), prio: prio(i)}, heap: -1}
	}
	return es
}

// FCFS: back in order, preempted ones at the front, past the room kept in
// front, and removal from anywhere.
func TestQueueFCFS(t *testing.T) {
	var q queue
	es := entries(200, func(int) int { return 0 })
	for _, e := range es[:100] {
		q.pushBack(e)
	}
	for i := 100; i < 200; i++ { // more than the room in front
		q.pushFront(es[i])
	}
	q.remove(es[150])
	q.remove(es[50])
	require.Equal(t, 198, q.len())
	var got []uint64
	for q.len() > 0 {
		got = append(got, q.pop().req.id)
	}
	var want []uint64
	for i := 199; i >= 100; i-- {
		if i != 150 {
			want = append(want, uint64(i+1))
		}
	}
	for i := range 100 {
		if i != 50 {
			want = append(want, uint64(i+1))
		}
	}
	assert.Equal(t, want, got)
	q.pushBack(es[0])
	assert.Equal(t, es[0], q.peek(), "an emptied queue starts over")
}

// Priority: lowest value first, ties in submission order, whatever the
// order of pushes and removals.
func TestQueuePriority(t *testing.T) {
	q := queue{prio: true}
	es := entries(100, func(i int) int { return (i * 37) % 7 })
	for i := range es {
		if i%2 == 0 {
			q.pushBack(es[i])
		} else {
			q.pushFront(es[i])
		}
	}
	for _, i := range []int{3, 64, 99, 0} {
		q.remove(es[i])
		assert.Equal(t, -1, es[i].heap)
	}
	prev := q.pop()
	for q.len() > 0 {
		e := q.pop()
		assert.True(t, less(prev, e), "%d (prio %d) before %d (prio %d)", prev.req.id, prev.req.prio, e.req.id, e.req.prio)
		prev = e
	}
}
