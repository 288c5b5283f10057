package paged_test

import (
	"testing"

	"github.com/stretchr/testify/assert"
	"github.com/stretchr/testify/require"

	"github.com/pagedkv/pagedkv/paged"
)

// chunkedPrefill runs the prefill of prompt through AdmitChunk and Append
// in chunks of at most step tokens, calling TakeCheckpoints once per step
// as a server does, and returns the tokens the admission found cached and
// the checkpoints handed out, each with the tokens the sequence held
// before its step (the step computes (before, Tokens]).
func chunkedPrefill(t *testing.T, m *paged.Manager, prompt []int32, step int) (paged.SeqID, int, []paged.Checkpoint, []int) {
	t.Helper()
	id, err := m.Add(prompt, nil)
	require.NoError(t, err)
	cached, rest, err := m.AdmitChunk(id, step, nil)
	require.NoError(t, err)
	var cks []paged.Checkpoint
	var before []int
	done := cached
	take := func(have int) {
		for _, ck := range m.TakeCheckpoints(nil) {
			cks = append(cks, ck)
			before = append(before, done)
		}
		m.TakeCopies(nil)
		done = have
	}
	take(len(prompt) - len(rest))
	for len(rest) > 0 {
		n := min(step, len(rest))
		require.NoError(t, m.Append(id, rest[:n]...))
		rest = rest[n:]
		take(len(prompt) - len(rest))
	}
	require.NoError(t, m.Check())
	return id, cached, cks, before
}

// TestCheckpointAcrossChunks is the reported case: four requests share a
// 20-block prefix (block size 512) and are prefilled in 8192-token steps,
// so the second one's branch point (block 20) lies past its first chunk
// (16 blocks). Its checkpoint is asked at admission and handed out with
// the step whose chunk passes position 20*512; the later requests hit it,
// as they do with whole prompts.
func TestCheckpointAcrossChunks(t *testing.T) {
	const bs, shared, step = 512, 20 * 512, 8192
	prompt := func(tail int32) []int32 {
		p := seqOf(1, shared)
		for i := range 700 {
			p = append(p, tail+int32(i))
		}
		return p
	}
	for _, chunked := range []bool{false, true} {
		m, err := paged.New(paged.Config{BlockSize: bs, NumBlocks: 256,
			Groups: []paged.Group{{Kind: paged.FullAttention}, {Kind: paged.State, Pages: 1}}})
		require.NoError(t, err)
		var all []paged.Checkpoint
		hits := 0
		for i := range 4 {
			s := step
			if !chunked {
				s = shared + 700
			}
			_, cached, cks, before := chunkedPrefill(t, m, prompt(int32(100000*(i+1))), s)
			hits += cached
			for j, ck := range cks {
				assert.Greater(t, ck.Tokens, before[j], "the checkpoint lies in the tokens its step computes")
			}
			all = append(all, cks...)
			if i >= 2 {
				assert.Equal(t, shared, cached, "chunked %v: request %d hits the checkpoint at the branch point", chunked, i)
			}
		}
		require.Len(t, all, 1, "chunked %v", chunked)
		assert.Equal(t, paged.Checkpoint{Seq: all[0].Seq, Group: 1, Tokens: shared, Pages: all[0].Pages}, all[0])
		assert.Equal(t, 2*shared, hits, "chunked %v", chunked)
		assert.Equal(t, uint64(2*shared), m.Stats().PrefixHitTokens, "chunked %v", chunked)
		require.NoError(t, m.Check())
	}
}

// TestCheckpointAcrossChunksDropped: a checkpoint asked past the first
// chunk is dropped, its page freed, when the sequence is preempted or
// freed before a chunk reaches it.
func TestCheckpointAcrossChunksDropped(t *testing.T) {
	const bs = 4
	for _, end := range []string{"preempt", "free"} {
		m, err := paged.New(paged.Config{BlockSize: bs, NumBlocks: 64,
			Groups: []paged.Group{{Kind: paged.FullAttention}, {Kind: paged.State, Pages: 1}}})
		require.NoError(t, err)
		prompt := func(tail int32) []int32 { return append(seqOf(1, 5*bs), tail, tail+1, tail+2, tail+3, tail+4) }
		chunkedPrefill(t, m, prompt(100), 2*bs)
		used := m.Stats().UsedBlocks
		id, err := m.Add(prompt(200), nil)
		require.NoError(t, err)
		_, rest, err := m.AdmitChunk(id, 2*bs, nil)
		require.NoError(t, err)
		require.Len(t, rest, 3*bs+5)
		assert.Empty(t, m.TakeCheckpoints(nil), "the branch point lies past the chunk")
		assert.Equal(t, used+2+1+1, m.Stats().UsedBlocks, "the chunk's 2 blocks, its state page and the checkpoint's")
		if end == "preempt" {
			require.NoError(t, m.Preempt(id))
		} else {
			require.NoError(t, m.Free(id))
		}
		assert.Empty(t, m.TakeCheckpoints(nil))
		assert.Equal(t, used, m.Stats().UsedBlocks, "the checkpoint's page is released with the rest")
		require.NoError(t, m.Check())
		_, cached, err := m.Create(prompt(300), nil)
		require.NoError(t, err)
		assert.Zero(t, cached, "no checkpoint was written")
	}
}
