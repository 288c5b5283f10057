package eviction

import (
	"fmt"
	"testing"

	"pgregory.net/rapid"

	"github.com/pagedkv/pagedkv/allocator"
)

// The thirty-third mutation round (docs/round33.md): the small policies
// and the queues under LeafLRU and Priority. Each test closes a mutation
// that survived it.

// TestAudit79LFUHitsPastOneWordAgainstModel: LFU against the slice model
// of audit 10 with hits that come in bursts of up to 4096, so blocks sit
// in buckets of every occupancy word, the saturated one included. The
// model test of audit 10 hits a block once a step, and a block reached
// bucket 64 (the second word) in no run of it; only audit 10's
// saturation test left the first word, without emptying a bucket there
// while another block stayed in the word. audit10Check runs after every
// step: M1500 cleared an emptied bucket's bit in the first word and left
// a stale bit in the bucket's own.
func TestAudit79LFUHitsPastOneWordAgainstModel(t *testing.T) {
	bursts := []int{1, 2, 63, 64, 65, 127, 128, 200, 4094, 4095, 4100}
	rapid.Check(t, func(t *rapid.T) {
		n := rapid.IntRange(1, 8).Draw(t, "capacity")
		p := NewLFU(n).(*LFU)
		m := &lfuModel{released: newReleased(n), count: make([]int, n)}
		steps := rapid.IntRange(1, 60).Draw(t, "steps")
		for i := range steps {
			var what string
			switch rapid.IntRange(0, 4).Draw(t, "op") {
			case 0:
				id := allocator.BlockID(rapid.IntRange(0, n-1).Draw(t, "id"))
				if m.in(id) {
					continue
				}
				what = fmt.Sprintf("Insert(%d)", id)
				p.Insert(id)
				m.insert(id)
			case 1:
				id := allocator.BlockID(rapid.IntRange(0, n-1).Draw(t, "id"))
				if !m.in(id) {
					continue
				}
				what = fmt.Sprintf("Remove(%d)", id)
				p.Remove(id)
				m.remove(id)
			case 2:
				id, ok := p.Victim()
				wid, wok := m.victim()
				what = fmt.Sprintf("Victim = %d, %v", id, ok)
				if id != wid || ok != wok {
					t.Fatalf("step %d: %s, model %d, %v", i, what, wid, wok)
				}
			case 3:
				id := allocator.BlockID(rapid.IntRange(0, n-1).Draw(t, "id"))
				k := rapid.SampledFrom(bursts).Draw(t, "hits")
				what = fmt.Sprintf("%d x Access(%d)", k, id)
				for range k {
					p.Access(id)
					m.access(id)
				}
			case 4:
				id := allocator.BlockID(rapid.IntRange(0, n-1).Draw(t, "id"))
				if m.in(id) {
					continue
				}
				what = fmt.Sprintf("Forget(%d)", id)
				p.Forget(id)
				m.forget(id)
			}
			compare(t, i, what, p, n, m.in)
			if err := audit10Check(p); err != nil {
				t.Fatalf("step %d, after %s: %v", i, what, err)
			}
		}
		for {
			id, ok := p.Victim()
			wid, wok := m.victim()
			if id != wid || ok != wok {
				t.Fatalf("drain: Victim = %d, %v, model %d, %v", id, ok, wid, wok)
			}
			if !ok {
				break
			}
		}
	})
}
