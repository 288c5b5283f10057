package paged_test

import (
	"errors"
	"strconv"
	"strings"
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

// TestAudit27ReserveBytesBounded: a reserve within MaxReserveSequences
// and MaxReserveTokens whose records and buffers would still take more
// than New's bound (blocks of one token: 2^30 hashes and table entries,
// 36 GB; many groups: a table each; many groups' records) is refused with
// ErrInvalid before anything is made. New tried to make and fault in
// them all, and the process died of an out-of-memory error (or, where
// int is 32 bits, of a makeslice panic).
func TestAudit27ReserveBytesBounded(t *testing.T) {
	many := make([]paged.Group, 200)
	for i := range many {
		many[i] = paged.Group{Kind: paged.FullAttention}
	}
	for _, c := range []struct {
		name string
		cfg  paged.Config
	}{
		{"blocks of one token", paged.Config{BlockSize: 1, NumBlocks: 8, Reserve: paged.Reserve{Tokens: paged.MaxReserveTokens}}},
		{"200 groups", paged.Config{BlockSize: 16, NumBlocks: 8, Groups: many, Reserve: paged.Reserve{Tokens: paged.MaxReserveTokens / 4}}},
		{"200 groups' records", paged.Config{BlockSize: 16, NumBlocks: 8, Groups: many, Reserve: paged.Reserve{Sequences: paged.MaxReserveSequences}}},
	} {
		t.Run(c.name, func(t *testing.T) {
			m, err := paged.New(c.cfg)
			if !errors.Is(err, paged.ErrInvalid) || m != nil {
				t.Fatalf("New returns %v, %v; want ErrInvalid", m, err)
			}
		})
	}
	// Within the bound at block size 16: made.
	if _, err := paged.New(paged.Config{BlockSize: 16, NumBlocks: 8, Reserve: paged.Reserve{Sequences: 1000, Tokens: 1 << 20}}); err != nil {
		t.Fatal(err)
	}
}

// TestReserveBoundCountsScratch: New's 4 GiB bound on a reserve counts
// the prefix lookup's scratch, which any reserve makes and faults in at
// New: a table of the longest hit per group. With 255 groups over 2^18
// blocks that is 255 x 2^18 x 4 bytes, 255 MiB; the reserve's records and
// slabs, 59M tokens at 69.75 bytes a token at block size 16 (4 for the
// copy, 2 for the hashes, 63.75 for 255 tables), 3.83 GiB: within the
// bound alone, past it with the scratch. New made both, 4.08 GiB, though
// it promises to refuse a reserve past 4 GiB. (Refused, it makes only
// the pool's per-block arrays.)
func TestReserveBoundCountsScratch(t *testing.T) {
	if strconv.IntSize < 64 {
		t.Skip("the reserve's slabs alone pass the 1 GiB bound of 32-bit platforms")
	}
	groups := make([]paged.Group, 255)
	for i := range groups {
		groups[i] = paged.Group{Kind: paged.FullAttention}
	}
	cfg := paged.Config{BlockSize: 16, NumBlocks: 1<<18 + 1, MaxModelLen: 1 << 22, Groups: groups,
		Reserve: paged.Reserve{Sequences: 1, Tokens: 59_000_000}}
	m, err := paged.New(cfg)
	if !errors.Is(err, paged.ErrInvalid) || m != nil {
		t.Fatalf("New returns %v, %v; want ErrInvalid", m, err)
	}
	if !strings.Contains(err.Error(), "scratch") {
		t.Errorf("the refusal does not name the lookup's scratch: %v", err)
	}
}
