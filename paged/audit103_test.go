package paged_test

import (
	"testing"

	"github.com/stretchr/testify/require"

	"github.com/pagedkv/pagedkv/paged"
)

// TestAudit103ReusedSlotForgetsUnknownTokens: a sequence created from
// hashes has unknown tokens, which AdmitChunk refuses to cut; once it is
// freed, its slot's next sequence, added from tokens, is cut as any
// (M2431: newSeq kept the slot's unknown mark, and AdmitChunk refused).
func TestAudit103ReusedSlotForgetsUnknownTokens(t *testing.T) {
	m, err := paged.New(paged.Config{BlockSize: 4, NumBlocks: 16})
	require.NoError(t, err)
	h, err := m.AddFromHashes(nil, 12, nil)
	require.NoError(t, err)
	_, _, err = m.AdmitChunk(h, 4, nil)
	require.ErrorIs(t, err, paged.ErrInvalid)
	require.NoError(t, m.Free(h))

	id, err := m.Add(seqTokens(12, 1), nil) // takes the freed slot
	require.NoError(t, err)
	cached, rest, err := m.AdmitChunk(id, 4, nil)
	require.NoError(t, err)
	require.Equal(t, 0, cached)
	require.Equal(t, seqTokens(12, 1)[4:], rest)
}

// TestAudit103OwnedPromptWithAHintPastTheLimit: AddOwned counts a
// MaxTokens hint above MaxModelLen as MaxModelLen: a prompt whose
// capacity holds MaxModelLen tokens is kept, not copied (M2438: reserve
// left the hint uncapped, and AddOwned copied the prompt).
func TestAudit103OwnedPromptWithAHintPastTheLimit(t *testing.T) {
	m, err := paged.New(paged.Config{BlockSize: 4, NumBlocks: 16, MaxModelLen: 32})
	require.NoError(t, err)
	prompt := append(make([]int32, 0, 32), seqTokens(6, 1)...)
	id, err := m.AddOwned(prompt, &paged.SeqOptions{MaxTokens: 1000})
	require.NoError(t, err)
	toks, err := m.Tokens(id)
	require.NoError(t, err)
	require.Equal(t, seqTokens(6, 1), toks)
	require.Same(t, &prompt[0], &toks[0], "the prompt's array is the sequence's buffer")
}

// TestAudit103WindowHitHoldsOnlyItsWindow: a windowed prompt longer than
// the pool is admitted on a hit whose window fits: the blocks before the
// window are null entries, which hold nothing, so the admission is not
// refused for the whole prompt's blocks (M2445: planAdmit counted them
// held, and the admission was ErrNever).
func TestAudit103WindowHitHoldsOnlyItsWindow(t *testing.T) {
	m, err := paged.New(paged.Config{BlockSize: 4, NumBlocks: 9, MaxModelLen: 64})
	require.NoError(t, err)
	usable := m.Stats().UsableBlocks
	p := seqTokens(4*(usable+2), 1) // two blocks more than the pool
	a, _, err := m.Create(p[:8], &paged.SeqOptions{Window: 8})
	require.NoError(t, err)
	for _, tok := range p[8:] {
		require.NoError(t, m.Append(a, tok)) // slides, keeping the content cached
	}
	require.NoError(t, m.Free(a))

	b, cached, err := m.Create(p, &paged.SeqOptions{Window: 8})
	require.NoError(t, err)
	require.Positive(t, cached)
	tab, err := m.Table(b)
	require.NoError(t, err)
	require.Len(t, tab, usable+2)
	require.NoError(t, m.Check())
}

// TestAudit103HashesInAReusedSlotHaveZeroTokens: a sequence created from
// hashes in the slot of a freed sequence reads zero placeholders, not
// the freed sequence's tokens (M2444: growZero did not clear the buffer
// it reused).
func TestAudit103HashesInAReusedSlotHaveZeroTokens(t *testing.T) {
	m, err := paged.New(paged.Config{BlockSize: 4, NumBlocks: 16})
	require.NoError(t, err)
	a, err := m.Add(seqTokens(12, 1), nil)
	require.NoError(t, err)
	require.NoError(t, m.Free(a))
	h, err := m.AddFromHashes(nil, 8, nil) // takes the freed slot and its buffer
	require.NoError(t, err)
	toks, err := m.Tokens(h)
	require.NoError(t, err)
	require.Equal(t, make([]int32, 8), toks)
}

// TestAudit103HashesOfAPartialBlockEndThere: a sequence created from the
// hashes of all its full blocks and a partial last block, whose leading
// tokens are unknown, never commits that block once appended tokens fill
// it: its hash would be of zero placeholders, not of its tokens (M2443:
// addFromHashes set the hash limit only when hashes were missing).
func TestAudit103HashesOfAPartialBlockEndThere(t *testing.T) {
	m, err := paged.New(paged.Config{BlockSize: 4, NumBlocks: 16})
	require.NoError(t, err)
	var h paged.Hash
	h[0], h[1] = 7, 103
	id, _, err := m.CreateFromHashes([]paged.Hash{h}, 6, nil)
	require.NoError(t, err)
	require.EqualValues(t, 1, m.Stats().BlocksStored)
	require.NoError(t, m.Append(id, 1, 2)) // fills block 1, half unknown
	require.NoError(t, m.Append(id, 3, 4, 5, 6))
	require.EqualValues(t, 1, m.Stats().BlocksStored)
	require.NoError(t, m.Check())
}

// TestAudit103CheckpointAfterACutInItsStep: a branch-point checkpoint
// asked at admission (after 8 tokens of a 13-token prompt, blocks of 4)
// and not yet handed out, of a sequence whose step is given back
// (Uncompute) and cut (Truncate) in the same step, is handed out for the
// step computing the tokens kept when they still reach it (cut to 10),
// and waits for the Append that reaches it when they do not (cut to 6):
// the cut lowers the length it was asked at. Kept at 13, the checkpoint
// looked passed by a step that had run without it, and was dropped
// (M2455).
func TestAudit103CheckpointAfterACutInItsStep(t *testing.T) {
	prefix := seqOf(1, 8)
	with := func(tail int32) []int32 { return append(append([]int32(nil), prefix...), seqOf(int(tail), 5)...) }
	for _, cut := range []int{10, 6} {
		m, err := paged.New(paged.Config{BlockSize: 4, NumBlocks: 40,
			Groups: []paged.Group{{Kind: paged.FullAttention}, {Kind: paged.State, Pages: 2}}})
		require.NoError(t, err)
		a, _, err := m.Create(with(100), nil)
		require.NoError(t, err)
		require.NoError(t, m.Free(a))
		m.EndStep()
		b, cached, err := m.Create(with(200), nil)
		require.NoError(t, err)
		require.Zero(t, cached)
		require.NoError(t, m.Uncompute(b, cut))
		require.NoError(t, m.Truncate(b, cut))
		ck := m.TakeCheckpoints(nil)
		if cut < 8 {
			require.Empty(t, ck, "cut to %d: the step does not reach the checkpoint", cut)
			m.EndStep()
			require.NoError(t, m.Append(b, seqOf(200, 3)...))
			ck = m.TakeCheckpoints(nil)
		}
		require.Len(t, ck, 1, "cut to %d", cut)
		require.Equal(t, 8, ck[0].Tokens)
		require.NoError(t, m.Check())
	}
}
