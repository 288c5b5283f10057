package paged

import (
	"slices"
	"testing"
)

// The hundred-and-fourth round of mutation testing (docs/testing.md):
// the hash memo's giving up after a resynchronisation.

// TestAudit152MemoStopsAfterAnUnansweredResync: recall's documented
// giving up. Chain A (a0 a1 a2) is in the memo; B (a0 x) is cached under
// hashes a caller gave (not recorded); C (a0 x y w) committed y and w
// after B's block, so the memo knows them as x's followers. A prompt
// a0 x y w z resynchronises at a0 (index), whose followers do not
// answer x: the rest is hashed, though the index knows x and the memo y
// and w after it.
func TestAudit152MemoStopsAfterAnUnansweredResync(t *testing.T) {
	const bs = 4
	m := newMemoManager(t, bs, 40)
	a0, x, y, w, z := memoSeq(1, bs), memoSeq(100, bs), memoSeq(200, bs), memoSeq(300, bs), memoSeq(400, bs)
	cat := func(parts ...[]int32) []int32 { return slices.Concat(parts...) }
	a, _, err := m.Create(cat(a0, memoSeq(10, bs), memoSeq(20, bs)), nil)
	must(t, err)
	must(t, m.Free(a))
	bp := cat(a0, x, []int32{7})
	b, err := m.AddHashed(bp, refChain(m.chain.root, bp, bs), nil)
	must(t, err)
	_, err = m.Admit(b)
	must(t, err)
	must(t, m.Free(b))
	c, _, err := m.Create(cat(a0, x, y, w, []int32{7}), nil)
	must(t, err)
	must(t, m.Free(c))
	before := m.Stats()
	prompt := cat(a0, x, y, w, z)
	id, err := m.Add(prompt, nil)
	must(t, err)
	if got, want := memoHashes(t, m, id), refChain(m.chain.root, prompt, bs); !slices.Equal(got, want) {
		t.Fatal("the memo's hashes differ from SHA-256's")
	}
	st := m.Stats()
	if r := st.HashesRecalled - before.HashesRecalled; r != 0 {
		t.Errorf("%d hashes recalled, want 0 (the rest is hashed after an unanswered resync)", r)
	}
	if h := st.BlocksHashed - before.BlocksHashed; h != 5 {
		t.Errorf("%d blocks hashed, want 5", h)
	}
}
