package sched

import (
	"slices"
	"testing"

	"pgregory.net/rapid"
)

// TestAudit15QueueModel drives the FCFS deque with every operation a
// scheduler makes (new requests at the back, preempted ones at the front,
// pops, cancellations anywhere) against a slice, and checks its order
// after every step and that its buffer stays within a constant factor of
// the most entries it has held, however many went through it.
func TestAudit15QueueModel(t *testing.T) {
	rapid.Check(t, func(t *rapid.T) {
		var q queue
		var model []*entry
		peak := 0
		ops := rapid.IntRange(1, 3000).Draw(t, "ops")
		// A drawn bias keeps some runs near empty and others long.
		bias := rapid.IntRange(0, 4).Draw(t, "bias")
		for i := range ops {
			switch op := rapid.IntRange(0, 9).Draw(t, "op"); {
			case op < 3+bias/2:
				e := &entry{outputs: i}
				q.pushBack(e)
				model = append(model, e)
			case op < 5:
				e := &entry{outputs: i}
				q.pushFront(e)
				model = append([]*entry{e}, model...)
			case op < 9:
				if len(model) == 0 {
					continue
				}
				if got := q.pop(); got != model[0] {
					t.Fatalf("op %d: popped %d, want %d", i, got.outputs, model[0].outputs)
				}
				model = model[1:]
			default:
				if len(model) == 0 {
					continue
				}
				j := rapid.IntRange(0, len(model)-1).Draw(t, "cancel")
				q.remove(model[j])
				model = slices.Delete(model, j, j+1)
			}
			peak = max(peak, len(model))
			if q.len() != len(model) {
				t.Fatalf("op %d: queue holds %d, model %d", i, q.len(), len(model))
			}
			for k, e := range model {
				if q.buf[q.head+k] != e {
					t.Fatalf("op %d: entry %d out of order", i, k)
				}
			}
			if c := cap(q.buf); c > 4*(peak+2*front) {
				t.Fatalf("op %d: a queue that never held more than %d entries keeps a buffer of %d", i, peak, c)
			}
		}
	})
}
