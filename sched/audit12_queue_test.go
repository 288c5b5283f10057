package sched

import "testing"

// TestQueueFCFSNeverEmptyStaysBounded: under sustained load the FCFS queue
// is never empty: a request is pushed at the back as one is popped at the
// front. Its buffer must stay the size of the queue, not grow with every
// request ever queued (the popped slots in front of head).
func TestQueueFCFSNeverEmptyStaysBounded(t *testing.T) {
	var q queue
	es := entries(16, func(int) int { return 0 })
	for _, e := range es {
		q.pushBack(e)
	}
	for i := range 1_000_000 {
		e := q.pop()
		if e != es[i%len(es)] {
			t.Fatalf("pop %d: out of order", i)
		}
		q.pushBack(e)
		if i%1000 == 0 && i > 0 {
			// A preempted one goes to the front and comes back.
			q.pushFront(q.pop())
		}
	}
	if q.len() != len(es) {
		t.Fatalf("queue holds %d, want %d", q.len(), len(es))
	}
	if c := cap(q.buf); c > 4*(len(es)+front) {
		t.Fatalf("queue of %d entries keeps a buffer of %d after 10^6 requests went through it", q.len(), c)
	}
}
