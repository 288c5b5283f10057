package eviction

import (
	"fmt"
	"math"
	"testing"

	"pgregory.net/rapid"

	"github.com/pagedkv/pagedkv/allocator"
)

// TestAudit10Invariants drives every registered policy (those without a
// simple model of their order too: ARC, S3-FIFO, Chain, Priority) through
// random sequences of every method, including misuse, absurd hints and
// logical time that goes back or jumps to the limits, and checks what
// every policy promises: a misuse call panics and changes nothing, every
// other call does not panic; Victim returns a block that is in the policy
// (so never one removed, nor one given up twice) exactly when the policy
// holds one; Len and Contains agree with the set of blocks inserted and
// not taken out after every step.
func TestAudit10Invariants(t *testing.T) {
	for _, name := range Names() {
		f, _ := ByName(name)
		t.Run(name, func(t *testing.T) {
			rapid.Check(t, func(t *rapid.T) {
				n := rapid.IntRange(0, 12).Draw(t, "capacity")
				p := f(n)
				in := make([]bool, n)
				inRange := func(id allocator.BlockID) bool { return id >= 0 && int(id) < n }
				member := func(id allocator.BlockID) bool { return inRange(id) && in[id] }
				_, readsParent := p.(*LeafLRU)
				if _, ok := p.(*Chain); ok {
					readsParent = true
				}
				var now int64
				steps := rapid.IntRange(1, 150).Draw(t, "steps")
				for i := range steps {
					var what string
					var got any
					ok := true
					switch op := rapid.IntRange(0, 7).Draw(t, "op"); op {
					case 0, 1:
						id := drawID(t, n, func(b allocator.BlockID) bool { return !in[b] })
						what = fmt.Sprintf("Insert(%d)", id)
						got = call(func() { p.Insert(id) })
						if ok = inRange(id) && !in[id]; ok {
							in[id] = true
						}
					case 2:
						id := drawID(t, n, member)
						what = fmt.Sprintf("Remove(%d)", id)
						got = call(func() { p.Remove(id) })
						if ok = member(id); ok {
							in[id] = false
						}
					case 3:
						id, vok := p.Victim()
						what = fmt.Sprintf("Victim = %d, %v", id, vok)
						held := slicesCount(in)
						if vok != (held > 0) || (vok && !member(id)) || (!vok && id != allocator.NoBlock) {
							t.Fatalf("step %d: %s with %d blocks held", i, what, held)
						}
						if vok {
							in[id] = false
						}
					case 4:
						a, is := p.(Accessor)
						if !is {
							continue
						}
						id := drawID(t, n, func(allocator.BlockID) bool { return true })
						what = fmt.Sprintf("Access(%d)", id)
						got = call(func() { a.Access(id) })
						ok = inRange(id)
					case 5:
						hn, is := p.(Hinter)
						if !is {
							continue
						}
						id := drawID(t, n, func(b allocator.BlockID) bool { return !in[b] })
						h := drawHint(t, n, now)
						if rapid.IntRange(0, 5).Draw(t, "absurd") == 0 {
							h.Priority = rapid.SampledFrom([]int{-1, MaxPriority + 1, math.MinInt, math.MaxInt}).Draw(t, "bad priority")
						}
						if rapid.IntRange(0, 5).Draw(t, "absurd expiry") == 0 {
							h.Expires = rapid.SampledFrom([]int64{-1, math.MinInt64, math.MaxInt64, now}).Draw(t, "expiry")
						}
						h.Depth = rapid.SampledFrom([]int32{h.Depth, -1, math.MaxInt32, math.MinInt32}).Draw(t, "depth")
						what = fmt.Sprintf("Hint(%d, %+v)", id, h)
						got = call(func() { hn.Hint(id, h) })
						ok = inRange(id) && !in[id]
						if _, prio := p.(*Priority); prio && (h.Priority < 0 || h.Priority > MaxPriority) {
							ok = false
						}
						if readsParent && h.Parent != allocator.NoBlock && !inRange(h.Parent) {
							ok = false
						}
					case 6:
						fg, is := p.(Forgetter)
						if !is {
							continue
						}
						id := drawID(t, n, func(b allocator.BlockID) bool { return !in[b] })
						what = fmt.Sprintf("Forget(%d)", id)
						got = call(func() { fg.Forget(id) })
						ok = inRange(id) && !in[id]
					case 7:
						tk, is := p.(Ticker)
						if !is {
							continue
						}
						to := now + int64(rapid.IntRange(-3, 8).Draw(t, "advance"))
						if rapid.IntRange(0, 9).Draw(t, "jump") == 0 {
							to = rapid.SampledFrom([]int64{math.MinInt64, -1, 0, math.MaxInt64 - 1, math.MaxInt64}).Draw(t, "to")
						}
						what = fmt.Sprintf("Advance(%d)", to)
						got = call(func() { tk.Advance(to) })
						now = max(now, to) // time never goes back
					}
					if (got == nil) != ok {
						t.Fatalf("step %d: %s panicked with %v; misuse=%v", i, what, got, !ok)
					}
					compare(t, i, what, p, n, member)
					if err := audit10Check(p); err != nil {
						t.Fatalf("step %d, after %s: %v", i, what, err)
					}
					if c, ok := p.(*Chain); ok {
						c.checkSegments(t)
					}
				}
				// Draining gives every block once.
				for {
					id, vok := p.Victim()
					if !vok {
						break
					}
					if !member(id) {
						t.Fatalf("drain: Victim = %d, not in the policy", id)
					}
					in[id] = false
				}
				if held := slicesCount(in); held != 0 {
					t.Fatalf("drain: Victim reports none with %d blocks held", held)
				}
			})
		})
	}
}

func slicesCount(in []bool) int {
	n := 0
	for _, b := range in {
		if b {
			n++
		}
	}
	return n
}
