package fleet

import (
	"testing"

	"pgregory.net/rapid"
)

// The gain affinity computes is the lookahead the file's comment defines,
// computed here as written, candidate by candidate: max(Affinity(s), the
// highest Blocks of the other eligible candidates) minus the highest Blocks
// of all of them, at least 0 (negative Blocks count as 0, and a load at or
// over a positive cap makes a candidate ineligible, as affinityOf says).
func TestAffinityGainIsTheDocumentedLookahead(t *testing.T) {
	rapid.Check(t, func(t *rapid.T) {
		n := rapid.IntRange(1, 8).Draw(t, "servers")
		cands := make([]Candidate, n)
		for i := range cands {
			cands[i].Blocks = rapid.IntRange(-2, 12).Draw(t, "blocks")
			cands[i].Affinity = rapid.IntRange(-2, 16).Draw(t, "affinity")
			cands[i].Load = float64(rapid.IntRange(0, 4).Draw(t, "load"))
		}
		loadCap := float64(rapid.IntRange(0, 5).Draw(t, "cap"))
		eligible := func(j int) bool { return !(loadCap > 0 && loadOf(&cands[j]) >= loadCap) }
		a := affinityOf(cands, loadCap)
		for i := range cands {
			all, others := 0, 0
			for j := range cands {
				if !eligible(j) {
					continue
				}
				b := max(cands[j].Blocks, 0)
				all = max(all, b)
				if j != i {
					others = max(others, b)
				}
			}
			want := max(max(cands[i].Affinity, others)-all, 0)
			if got := a.gain(cands, i); got != want {
				t.Fatalf("candidate %d of %+v (cap %v): gain %d, the lookahead %d", i, cands, loadCap, got, want)
			}
		}
	})
}
