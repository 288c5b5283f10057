package fleet

import (
	"encoding/binary"
	"math/rand/v2"
	"testing"

	"github.com/pagedkv/pagedkv/paged"
)

// TestAudit53TableAgainstModel (M620, the eighth mutation round,
// docs/testing.md): the index's open-addressing table, driven through
// random inserts and removals in tables of 2 to 16 entries (where probe
// runs wrap past the end often), finds every hash it holds at its slot
// and none it removed. Removal shifts the entries after the hole back; an
// entry whose run wrapped around the end must move too.
func TestAudit53TableAgainstModel(t *testing.T) {
	r := rand.New(rand.NewPCG(53, 620))
	wraps := 0
	for round := range 400 {
		capacity := 1 + r.IntN(8)
		tb := newTable(capacity)
		hashes := make([]paged.Hash, capacity)
		used := make([]bool, capacity)
		for op := range 100 {
			s := int32(r.IntN(capacity))
			if used[s] {
				tb.remove(&hashes[s], s)
				used[s] = false
			} else {
				for w := 0; w < 32; w += 8 {
					binary.LittleEndian.PutUint64(hashes[s][w:], r.Uint64())
				}
				tb.insert(&hashes[s], s)
				used[s] = true
			}
			for i := range tb.e {
				if e := tb.e[i]; e.slot != 0 && int(e.h)&tb.mask > i {
					wraps++ // an entry whose probe wrapped past the table's end
				}
			}
			for i := range int32(capacity) {
				got, ok := tb.find(&hashes[i], hashes)
				switch {
				case used[i] && (!ok || got != i):
					t.Fatalf("round %d, op %d: slot %d's hash found %v at %d", round, op, i, ok, got)
				case !used[i] && ok:
					t.Fatalf("round %d, op %d: removed slot %d's hash still found at %d", round, op, i, got)
				}
			}
		}
	}
	if wraps < 200 {
		t.Fatalf("only %d wrapped entries seen: the test does not reach the wrap", wraps)
	}
}
