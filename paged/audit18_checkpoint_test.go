package paged_test

import (
	"testing"

	"github.com/stretchr/testify/assert"
	"github.com/stretchr/testify/require"

	"github.com/pagedkv/pagedkv/paged"
)

// TestUncomputeForgetsCheckpointHandedOut: a branch-point checkpoint that
// TakeCheckpoints handed out for a step the caller then drops (Uncompute
// below its position, as a request cancelled before the model runs) was
// never written, yet it stayed in the prefix index: the next request
// sharing the prefix hit it and copied a state no step computed. It
// leaves the index with the step's other blocks. Both admissions: whole
// (the checkpoint within the admitted tokens) and chunked (it waits for
// the chunk that passes it).
func TestUncomputeForgetsCheckpointHandedOut(t *testing.T) {
	const bs, shared = 4, 5 * 4
	prompt := func(tail int32) []int32 { return append(seqOf(1, shared), tail, tail+1, tail+2, tail+3, tail+4) }
	for _, chunked := range []bool{false, true} {
		for _, end := range []string{"preempt", "free"} {
			m, err := paged.New(paged.Config{BlockSize: bs, NumBlocks: 64, Events: 256,
				Groups: []paged.Group{{Kind: paged.FullAttention}, {Kind: paged.State, Pages: 2}}})
			require.NoError(t, err)
			chunkedPrefill(t, m, prompt(100), 64)
			id, err := m.Add(prompt(200), nil)
			require.NoError(t, err)
			var cached int
			if chunked {
				var rest []int32
				hit, rest, err := m.AdmitChunk(id, 2*bs, nil)
				require.NoError(t, err)
				require.Zero(t, hit, "no checkpoint at the branch point yet")
				assert.Empty(t, m.TakeCheckpoints(nil), "the branch point lies past the first chunk")
				// The first chunk's step ran; the next chunk passes the
				// branch point, and its step is dropped.
				cached = 2 * bs
				require.NoError(t, m.Append(id, rest...))
			} else {
				cached, err = m.Admit(id)
				require.NoError(t, err)
			}
			require.Zero(t, cached%bs)
			cks := m.TakeCheckpoints(nil)
			require.Len(t, cks, 1, "chunked %v: the checkpoint at the branch point is handed out", chunked)
			require.Equal(t, shared, cks[0].Tokens)
			require.Less(t, cached, cks[0].Tokens)
			m.TakeCopies(nil)
			var ckpt []paged.Hash
			for _, e := range m.DrainEvents(nil) {
				if e.Group == 1 && e.Kind == paged.BlockStored {
					ckpt = append(ckpt, e.Hashes...)
				}
			}
			require.Len(t, ckpt, 1, "the checkpoint is stored as one block of its group")
			// The step is dropped before the model runs.
			require.NoError(t, m.Uncompute(id, cached))
			require.NoError(t, m.Check())
			if end == "preempt" {
				require.NoError(t, m.Preempt(id))
			} else {
				require.NoError(t, m.Free(id))
			}
			require.NoError(t, m.Check())
			var removed []paged.Hash
			for _, e := range m.DrainEvents(nil) {
				if e.Group == 1 {
					require.Equal(t, paged.BlockRemoved, e.Kind)
					removed = append(removed, e.Hashes...)
				}
			}
			assert.Equal(t, ckpt, removed, "chunked %v, %s: the checkpoint's BlockStored is taken back, under its hash", chunked, end)
			_, hit, err := m.Create(prompt(300), nil)
			require.NoError(t, err)
			assert.Zero(t, hit, "chunked %v, %s: a hit on a checkpoint no step wrote", chunked, end)
			require.NoError(t, m.Check())
		}
	}
}
