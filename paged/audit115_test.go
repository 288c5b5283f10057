package paged_test

import (
	"errors"
	"testing"

	"github.com/stretchr/testify/require"

	"github.com/pagedkv/pagedkv/paged"
)

// TestAudit115ChunkNeverCountsTheLookup: AdmitChunk refused for good
// (ErrNever) for a cut prompt counts its lookup in the prefix statistics,
// as Admit's ErrNever does (M2871: the cut's ErrNever counted nothing).
// The prompt fits the pool but not the pool less the watermark, so full
// attention never fits it, in chunks or whole.
func TestAudit115ChunkNeverCountsTheLookup(t *testing.T) {
	newM := func() (*paged.Manager, paged.SeqID) {
		m, err := paged.New(paged.Config{BlockSize: 4, NumBlocks: 11, Watermark: 0.3})
		require.NoError(t, err)
		cachePrompt(t, m, seqOf(1, 8))
		id, err := m.Add(seqOf(1, 32), nil) // 8 blocks, 2 of them cached
		require.NoError(t, err)
		return m, id
	}
	m, id := newM()
	before := admitCountsOf(m)
	_, err := m.Admit(id)
	require.ErrorIs(t, err, paged.ErrNever)
	whole := admitCountsOf(m)
	require.Equal(t, before.queries+1, whole.queries)
	require.Equal(t, before.hitBlocks+2, whole.hitBlocks)

	m, id = newM()
	require.Equal(t, before, admitCountsOf(m))
	_, rest, err := m.AdmitChunk(id, 4, nil)
	require.ErrorIs(t, err, paged.ErrNever)
	require.Empty(t, rest)
	require.Equal(t, whole, admitCountsOf(m), "the cut's ErrNever counts the whole lookup, as Admit's")
	require.NoError(t, m.Check())
}

// TestAudit115CheckpointsPastTheCutAtBlockOne: two prompts of different
// first blocks, both cached, branch at block 1 and are admitted in the
// same step in chunks shorter than a block: each asks for the checkpoint
// at its own branch point, past its first chunk, and both are handed out
// (M2872: the whole lookup's chain hash was not taken for a branch point
// at block 1, both asks named the same stale hash, and the second was
// taken for the first's).
func TestAudit115CheckpointsPastTheCutAtBlockOne(t *testing.T) {
	const bs = 4
	prompt := func(first, tail int32) []int32 {
		return append(seqOf(int(first), bs), tail, tail+1, tail+2, tail+3, tail+4)
	}
	m, err := paged.New(paged.Config{BlockSize: bs, NumBlocks: 64,
		Groups: []paged.Group{{Kind: paged.FullAttention}, {Kind: paged.State, Pages: 1}}})
	require.NoError(t, err)
	for _, first := range []int32{1, 50} {
		id, _, cks, _ := chunkedPrefill(t, m, prompt(first, 100), 3)
		require.Empty(t, cks, "no branch point yet")
		require.NoError(t, m.Free(id))
	}
	var ids []paged.SeqID
	var rests [][]int32
	for _, first := range []int32{1, 50} {
		id, err := m.Add(prompt(first, 200), nil)
		require.NoError(t, err)
		cached, rest, err := m.AdmitChunk(id, 3, nil)
		require.NoError(t, err)
		require.Zero(t, cached)
		ids, rests = append(ids, id), append(rests, rest)
	}
	require.Empty(t, m.TakeCheckpoints(nil), "the branch points lie past the chunks")
	m.TakeCopies(nil)
	var cks []paged.Checkpoint
	for i, id := range ids {
		require.NoError(t, m.Append(id, rests[i]...))
	}
	cks = m.TakeCheckpoints(cks)
	require.Len(t, cks, 2, "each prompt's checkpoint at its block 1")
	for i, id := range ids {
		require.Equal(t, paged.Checkpoint{Seq: id, Group: 1, Tokens: bs, Pages: cks[i].Pages}, cks[i])
	}
	require.NoError(t, m.Check())
}

// TestAudit115HashesOnlyPromptInOneChunk: a sequence created from hashes
// whose uncached tokens are exactly maxNew is not cut, so CanAdmitChunk
// and AdmitChunk admit it whole, as Admit (M2878: CanAdmitChunk took that
// chunk for a cut and answered ErrInvalid).
func TestAudit115HashesOnlyPromptInOneChunk(t *testing.T) {
	m, err := paged.New(paged.Config{BlockSize: 4, NumBlocks: 16})
	require.NoError(t, err)
	h, err := m.AddFromHashes(nil, 10, nil)
	require.NoError(t, err)
	for _, k := range []int{10, 11} {
		a, err := m.CanAdmitChunk(h, k)
		require.NoError(t, err, "%d tokens a chunk", k)
		require.Equal(t, paged.AdmitOK, a)
	}
	_, err = m.CanAdmitChunk(h, 9)
	require.ErrorIs(t, err, paged.ErrInvalid, "a cut")
	cached, rest, err := m.AdmitChunk(h, 10, nil)
	require.NoError(t, err)
	require.Zero(t, cached)
	require.Empty(t, rest)
	require.NoError(t, m.Check())
}

// TestAudit115UnadmitRefusesOneSharedBlock: TestAudit25's hit, where the
// later admission of the step hits only the first block the admission
// stored (its entry at the admission's hits): Unadmit is refused all the
// same, for that block alone (M2898: sharedFrom began one entry later,
// and the Unadmit went through, leaving the other's hit on KV never
// computed).
func TestAudit115UnadmitRefusesOneSharedBlock(t *testing.T) {
	for _, hits := range []int{0, 1} {
		m, err := paged.New(paged.Config{BlockSize: 4, NumBlocks: 64})
		require.NoError(t, err)
		if hits > 0 {
			cachePrompt(t, m, seqOf(1, 4*hits))
		}
		stepDone(m)
		a, err := m.Add(seqOf(1, 13), nil)
		require.NoError(t, err)
		cached, err := m.Admit(a)
		require.NoError(t, err)
		require.Equal(t, 4*hits, cached)
		other, err := m.Add(append(seqOf(1, 4*hits+4), 99, 98, 97, 96, 95), nil)
		require.NoError(t, err)
		cached, err = m.Admit(other)
		require.NoError(t, err)
		require.Equal(t, 4*hits+4, cached, "a same-step hit on one block a stored")
		before := m.Stats()
		require.ErrorIs(t, m.Unadmit(a), paged.ErrSequenceState, "%d hits", hits)
		require.Equal(t, before, m.Stats(), "a refused Unadmit changes nothing")
		require.NoError(t, m.Unadmit(other))
		require.NoError(t, m.Unadmit(a))
		require.NoError(t, m.Check())
	}
}

// TestAudit115SharerRecommitsVoidedGroupBlocks: a later admission of
// the step hits the blocks a sequence stored, which is then told they
// were never computed, in hybrid layouts: the sharer, which computes them
// in the step, commits them again in every group with its next Append,
// and a later lookup hits them (M2900: the sharer kept its groups' fast
// path, which commits only the block a token fills, and the second
// group's voided blocks stayed out of the cache).
func TestAudit115SharerRecommitsVoidedGroupBlocks(t *testing.T) {
	layouts := map[string][]paged.Group{
		"two full": {{Kind: paged.FullAttention}, {Kind: paged.FullAttention}},
		"window":   {{Kind: paged.FullAttention}, {Kind: paged.SlidingWindow, Window: 64}},
	}
	for name, groups := range layouts {
		m, err := paged.New(paged.Config{BlockSize: 4, NumBlocks: 64, Groups: groups})
		require.NoError(t, err)
		stepDone(m)
		a, err := m.Add(seqOf(1, 13), nil)
		require.NoError(t, err)
		_, err = m.Admit(a)
		require.NoError(t, err)
		b, err := m.Add(append(seqOf(1, 12), 99), nil)
		require.NoError(t, err)
		cached, err := m.Admit(b)
		require.NoError(t, err)
		require.Equal(t, 12, cached, "%s: a same-step hit on a's blocks", name)
		require.NoError(t, m.Uncompute(a, 4))
		require.NoError(t, m.Append(b, 98))
		require.NoError(t, m.Check())
		stepDone(m)
		c, err := m.Add(append(seqOf(1, 12), 77), nil)
		require.NoError(t, err)
		cached, err = m.Admit(c)
		require.NoError(t, err)
		require.Equal(t, 12, cached, "%s: b committed the voided blocks again", name)
	}
}

// TestAudit115ChunkedLocalNeverIsExact: on layouts of chunked-local
// groups (Llama 4's local layers) beside a full-attention group, for
// every pool size and chunk length where AdmitChunk admits the prompt,
// the prompt is computed chunk by chunk alone: the count of what each
// step holds keeps the last cached block of the chunk a step starts in,
// as the tables do (M2908: the count took the step's end for the blocks
// committed, released that block one step early, and admitted a prompt
// whose Append was then refused alone).
func TestAudit115ChunkedLocalNeverIsExact(t *testing.T) {
	layouts := [][]paged.Group{
		{{Kind: paged.FullAttention}, {Kind: paged.ChunkedLocal, Chunk: 8}, {Kind: paged.ChunkedLocal, Chunk: 8}, {Kind: paged.ChunkedLocal, Chunk: 8}},
		{{Kind: paged.FullAttention}, {Kind: paged.SlidingWindow, Window: 8}, {Kind: paged.ChunkedLocal, Chunk: 16}, {Kind: paged.ChunkedLocal, Chunk: 16}},
	}
	admitted := 0
	for li, groups := range layouts {
		for blocks := 4; blocks <= 40; blocks++ {
			for _, k := range []int{4, 8, 12} {
				m, err := paged.New(paged.Config{BlockSize: 4, NumBlocks: blocks, MaxModelLen: 256, Groups: groups})
				require.NoError(t, err)
				id, err := m.Add(seqOf(1, 40), nil)
				if err != nil {
					continue // longer than the pool holds
				}
				_, err = chunkByChunk(m, id, k)
				if errors.Is(err, paged.ErrNever) {
					continue
				}
				require.NoError(t, err, "layout %d, %d blocks, chunks of %d: admitted, then refused alone", li, blocks, k)
				admitted++
			}
		}
	}
	require.NotZero(t, admitted)
}
