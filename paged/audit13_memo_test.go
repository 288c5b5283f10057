package paged_test

import (
	"slices"
	"testing"

	"github.com/pagedkv/pagedkv/paged"
)

// TestAudit13MemoFollowsScatteredChain recalls the hashes of a prompt
// whose blocks are not consecutive in the pool: two sequences decoding in
// turn take every other block. The memo finds each next block through the
// child link its commit recorded, so only the first block is hashed (and
// found through the index); the hashes are those hashing gives. (Mutation
// M88, which stopped recording the links, left every hash exact but
// recalled none: the memo was off in all but name for such a prompt.)
func TestAudit13MemoFollowsScatteredChain(t *testing.T) {
	const bs, nblocks = 16, 8
	m, err := paged.New(paged.Config{BlockSize: bs, NumBlocks: 2*nblocks + 4, HashMemo: true})
	if err != nil {
		t.Fatal(err)
	}
	a, _, err := m.Create([]int32{1}, nil)
	if err != nil {
		t.Fatal(err)
	}
	b, _, err := m.Create([]int32{2}, nil)
	if err != nil {
		t.Fatal(err)
	}
	chunk := make([]int32, bs)
	for k := range nblocks {
		for _, id := range []paged.SeqID{a, b} {
			for i := range chunk {
				chunk[i] = int32(1000*k + 10*int(id&1) + i)
			}
			if err := m.Append(id, chunk...); err != nil {
				t.Fatal(err)
			}
		}
	}
	ta, _ := m.Table(a)
	for k := 1; k < len(ta); k++ {
		if ta[k] == ta[k-1]+1 {
			t.Fatalf("a's table %v has consecutive blocks; the test needs them scattered", ta)
		}
	}
	prompt, _ := m.Tokens(a)
	prompt = slices.Clone(prompt)
	before := m.Stats()
	c, err := m.Add(prompt, nil)
	if err != nil {
		t.Fatal(err)
	}
	after := m.Stats()
	if got, want := after.HashesRecalled-before.HashesRecalled, uint64(nblocks-1); got != want {
		t.Fatalf("%d of %d hashes recalled, want %d (hashed %d)", got, nblocks, want, after.BlocksHashed-before.BlocksHashed)
	}
	plain, err := paged.New(paged.Config{BlockSize: bs, NumBlocks: 4})
	if err != nil {
		t.Fatal(err)
	}
	want, _ := plain.BlockHashes(nil, prompt, nil)
	cached, err := m.Admit(c)
	if err != nil || cached != nblocks*bs {
		t.Fatalf("Admit = %d, %v; want the %d full blocks cached", cached, err, nblocks)
	}
	got, _ := m.BlockHashes(nil, prompt, nil)
	if !slices.Equal(got, want) {
		t.Fatal("the memo's hashes differ from hashing")
	}
}
