package paged_test

import (
	"errors"
	"testing"

	"github.com/pagedkv/pagedkv/paged"
)

// TestAudit27ReserveWithoutHints: Reserve.Tokens counts a sequence
// without a MaxTokens hint at its prompt's length, and Add and AddOwned
// take its hash buffer and table from the reserve: with a reserve of the
// prompts' lengths, adding and admitting such sequences allocates
// nothing, on every layout of the reserve tests. The table came from the
// heap at Admit (one allocation a sequence), the hashes from the reserve.
func TestAudit27ReserveWithoutHints(t *testing.T) {
	const n = 30
	for _, l := range reserveLayouts {
		t.Run(l.name, func(t *testing.T) {
			lens := make([]int, n)
			total := 0
			for i := range lens {
				lens[i] = 1 + (i*37)%150
				total += lens[i]
			}
			m, err := paged.New(paged.Config{BlockSize: 16, NumBlocks: 1024, Groups: l.groups, UnifiedFreeQueue: l.groups != nil,
				Reserve: paged.Reserve{Sequences: n, Tokens: total}})
			if err != nil {
				t.Fatal(err)
			}
			prompts := make([][]int32, n)
			for i := range prompts {
				prompts[i] = make([]int32, lens[i])
				for j := range prompts[i] {
					prompts[i][j] = int32(i*1000 + j)
				}
			}
			ids := make([]paged.SeqID, n)
			var fail error
			a := mallocs(func() {
				for i := range ids {
					var err error
					ids[i], err = m.AddOwned(prompts[i], nil)
					fail = errors.Join(fail, err)
				}
				for _, id := range ids {
					_, err := m.Admit(id)
					fail = errors.Join(fail, err)
				}
			})
			if fail != nil {
				t.Fatal(fail)
			}
			if a != 0 {
				t.Errorf("%d sequences without hints, a reserve of their prompts' %d tokens: %d allocations", n, total, a)
			}
			if err := m.Check(); err != nil {
				t.Fatal(err)
			}
		})
	}
}
