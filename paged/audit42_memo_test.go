package paged_test

import (
	"slices"
	"testing"

	"github.com/pagedkv/pagedkv/paged"
)

// TestAudit42MemoComparesEveryToken: the hash memo answers for a block of
// 16 tokens only when all 16 equal its entry's (with the parent hash).
// For each position of a prompt's second block, a prompt that differs
// from a cached one there alone must not hit past the first block: the
// memo's answer there would be the cached prompt's hash, and the hit KV
// another prompt's (M184 compared the first 8 tokens only).
func TestAudit42MemoComparesEveryToken(t *testing.T) {
	const bs = 16
	m, err := paged.New(paged.Config{BlockSize: bs, NumBlocks: 32, HashMemo: true})
	if err != nil {
		t.Fatal(err)
	}
	prompt := make([]int32, 3*bs+1)
	for i := range prompt {
		prompt[i] = int32(i + 1)
	}
	a, _, err := m.Create(prompt, nil)
	if err != nil {
		t.Fatal(err)
	}
	m.EndStep()
	if err := m.Free(a); err != nil {
		t.Fatal(err)
	}
	// The same prompt again: its hashes come from the memo.
	before := m.Stats().HashesRecalled
	same, cached, err := m.Create(prompt, nil)
	if err != nil {
		t.Fatal(err)
	}
	if cached != 3*bs || m.Stats().HashesRecalled == before {
		t.Fatalf("the prompt again hits %d tokens, %d hashes recalled: the memo is not in use, the test checks nothing", cached, m.Stats().HashesRecalled-before)
	}
	if err := m.Free(same); err != nil {
		t.Fatal(err)
	}
	for j := range bs {
		other := slices.Clone(prompt)
		other[bs+j] = 100000 + int32(j)
		id, cached, err := m.Create(other, nil)
		if err != nil {
			t.Fatal(err)
		}
		if cached != bs {
			t.Errorf("a prompt that differs at position %d of its second block hits %d tokens, want %d (its first block)", j, cached, bs)
		}
		if err := m.Free(id); err != nil {
			t.Fatal(err)
		}
		if err := m.Check(); err != nil {
			t.Fatal(err)
		}
	}
}
