package eviction

import (
	"testing"

	"github.com/pagedkv/pagedkv/allocator"
)

// TestAudit10NoAllocsPerMethod: each method of each policy on its own, in
// a warmed-up full pool of content with parents, ghosts and priorities,
// allocates nothing (the mixed workload of TestConformanceZeroAllocs
// could hide a method that allocates only when called in some other
// order).
func TestAudit10NoAllocsPerMethod(t *testing.T) {
	const n = 512
	forEachPolicy(t, func(t *testing.T, f Factory) {
		w := newWorkload(f, n, 3)
		for range 4 * n {
			w.step()
		}
		p := w.p
		acc, hnt, tck := w.acc, w.hnt, w.tck
		fgt, _ := p.(Forgetter)
		i := 0
		next := func() allocator.BlockID { i++; return allocator.BlockID(i * 7 % n) }
		key := uint64(1 << 40)
		ops := map[string]func(){
			"Victim+Hint+Insert": func() {
				id, _ := p.Victim()
				if hnt != nil {
					key++
					hnt.Hint(id, Hint{Key: key % (4 * n), Parent: next(), Priority: int(key % (MaxPriority + 1)), Expires: w.now + 3})
				}
				p.Insert(id)
			},
			"Remove+Insert": func() {
				if id := next(); p.Contains(id) {
					p.Remove(id)
					p.Insert(id)
				}
			},
			"Access+Remove+Insert": func() {
				if id := next(); p.Contains(id) && acc != nil {
					acc.Access(id)
					p.Remove(id)
					p.Insert(id)
				}
			},
			"Remove+Forget+Insert": func() {
				if id := next(); p.Contains(id) && fgt != nil {
					p.Remove(id)
					fgt.Forget(id)
					p.Insert(id)
				}
			},
			"Advance": func() {
				if tck != nil {
					w.now += 2
					tck.Advance(w.now)
					tck.Advance(w.now - 5) // back in time: ignored
				}
			},
			"Len+Contains": func() { _ = p.Len() + boolInt(p.Contains(next())) },
		}
		for name, op := range ops {
			if a := testing.AllocsPerRun(500, op); a != 0 {
				t.Errorf("%s: %v allocations per run", name, a)
			}
		}
		// Victim on an empty policy.
		for p.Len() > 0 {
			p.Victim()
		}
		if a := testing.AllocsPerRun(100, func() { p.Victim() }); a != 0 {
			t.Errorf("Victim on empty: %v allocations per run", a)
		}
	})
}

func boolInt(b bool) int {
	if b {
		return 1
	}
	return 0
}
