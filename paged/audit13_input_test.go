package paged_test

import (
	"errors"
	"testing"

	"github.com/pagedkv/pagedkv/paged"
)

// TestAudit13NegativeTokenAnywhere puts one negative token at every
// position of prompts and appends of several lengths: each is refused with
// ErrInvalid and changes nothing, wherever the token sits in the groups of
// eight the check ORs together. (Mutation M100 let a negative token in the
// second half of a group through; the existing tests put theirs at
// positions the first half or the tail covers.)
func TestAudit13NegativeTokenAnywhere(t *testing.T) {
	m, err := paged.New(paged.Config{BlockSize: 4, NumBlocks: 64})
	if err != nil {
		t.Fatal(err)
	}
	id, _, err := m.Create([]int32{1, 2, 3}, nil)
	if err != nil {
		t.Fatal(err)
	}
	for _, n := range []int{1, 7, 8, 9, 16, 21} {
		for p := range n {
			tokens := make([]int32, n)
			tokens[p] = -1
			if _, err := m.Add(tokens, nil); !errors.Is(err, paged.ErrInvalid) {
				t.Fatalf("Add of %d tokens, -1 at %d: %v, want ErrInvalid", n, p, err)
			}
			if err := m.Append(id, tokens...); !errors.Is(err, paged.ErrInvalid) {
				t.Fatalf("Append of %d tokens, -1 at %d: %v, want ErrInvalid", n, p, err)
			}
		}
	}
	if st := m.Stats(); st.Sequences != 1 {
		t.Fatalf("%d sequences after refused Adds", st.Sequences)
	}
	if n, _ := m.Len(id); n != 3 {
		t.Fatalf("%d tokens after refused Appends", n)
	}
	if err := m.Check(); err != nil {
		t.Fatal(err)
	}
}

// TestAudit13AdmitChunkCountsOneQuery checks AdmitChunk's prefix
// statistics: the whole sequence counted once, in tokens and in blocks, as
// Admit would count it, though it admits a cut sequence inside. (Mutation
// M99 left the inner admission's block counts on top.)
func TestAudit13AdmitChunkCountsOneQuery(t *testing.T) {
	m, err := paged.New(paged.Config{BlockSize: 4, NumBlocks: 16})
	if err != nil {
		t.Fatal(err)
	}
	prompt := make([]int32, 22) // 6 blocks
	for i := range prompt {
		prompt[i] = int32(i)
	}
	id, err := m.Add(prompt, nil)
	if err != nil {
		t.Fatal(err)
	}
	cached, rest, err := m.AdmitChunk(id, 8, nil)
	if err != nil || cached != 0 || len(rest) != 14 {
		t.Fatalf("AdmitChunk = %d, %d tokens back, %v", cached, len(rest), err)
	}
	st := m.Stats()
	if st.PrefixQueries != 1 || st.PrefixQueryTokens != 22 || st.PrefixQueryBlocks != 6 || st.PrefixHitTokens != 0 || st.PrefixHitBlocks != 0 {
		t.Fatalf("prefix stats %d queries, %d tokens, %d blocks, %d/%d hit; want 1, 22, 6, 0/0",
			st.PrefixQueries, st.PrefixQueryTokens, st.PrefixQueryBlocks, st.PrefixHitTokens, st.PrefixHitBlocks)
	}
}
