package sched

import (
	"testing"

	"github.com/stretchr/testify/require"
)

// queueHoldsOnlyItsEntries fails unless every slot of q's buffer, to its
// capacity, outside the queue itself is nil: a popped, removed or slid
// entry left behind keeps its request, prompt and buffers from the
// garbage collector as long as the slot is not written again.
func queueHoldsOnlyItsEntries(t *testing.T, q *queue, what string) {
	t.Helper()
	all := q.buf[:cap(q.buf)]
	for i, e := range all {
		if e != nil && (i < q.head || i >= len(q.buf)) {
			t.Fatalf("%s: slot %d outside the queue [%d, %d) still holds request %d", what, i, q.head, len(q.buf), e.req.id)
		}
	}
}

// TestAudit121QueueDropsWhatLeaves: the FCFS deque keeps no pointer to an
// entry that left it, popped, cancelled or moved by the slide back to the
// room in front, and the slide comes as soon as half the full buffer is
// popped slots, not later (it would grow the buffer instead).
func TestAudit121QueueDropsWhatLeaves(t *testing.T) {
	var q queue
	es := entries(200, func(int) int { return 0 })
	for _, e := range es[:64] {
		q.pushBack(e)
	}
	full := cap(q.buf)
	require.Equal(t, full, len(q.buf), "64 entries fill the first buffer")
	for i := range 32 {
		require.Equal(t, es[i], q.pop())
		queueHoldsOnlyItsEntries(t, &q, "pop")
	}
	// Full, half of it popped slots: the next push slides the queue back.
	q.pushBack(es[64])
	require.Equal(t, full, cap(q.buf), "a full buffer half of popped slots grew instead of sliding")
	require.Equal(t, front, q.head)
	queueHoldsOnlyItsEntries(t, &q, "slide")
	q.remove(es[40])
	queueHoldsOnlyItsEntries(t, &q, "remove")
	want := append(append([]*entry{}, es[32:40]...), es[41:65]...)
	for _, e := range want {
		require.Equal(t, e, q.pop())
	}
	require.Zero(t, q.len())
	queueHoldsOnlyItsEntries(t, &q, "emptied")
}

// TestAudit121EmptiedQueueStartsOver: an emptied FCFS queue starts over at
// the room in front, so the first buffer holds 64 entries again. Left
// where it emptied, its next 64 entries fill the buffer with few popped
// slots before them, and it grows.
func TestAudit121EmptiedQueueStartsOver(t *testing.T) {
	var q queue
	es := entries(70, func(int) int { return 0 })
	for _, e := range es[:6] {
		q.pushBack(e)
	}
	full := cap(q.buf)
	for _, e := range es[:6] {
		require.Equal(t, e, q.pop())
	}
	for _, e := range es[6:] {
		q.pushBack(e)
	}
	require.Equal(t, full, cap(q.buf), "64 entries after an emptied queue grew its buffer")
	for _, e := range es[6:] {
		require.Equal(t, e, q.pop())
	}
}
