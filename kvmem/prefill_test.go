package kvmem_test

import (
	"testing"

	"github.com/stretchr/testify/require"

	"github.com/pagedkv/pagedkv/kvmem"
	"github.com/pagedkv/pagedkv/paged"
)

// pagedGroups returns the paged.Config.Groups of s at block size bs: one
// group per slice of LayersPerBlock layers, full attention first (a
// Manager's group 0 is), a Shared group reading the first slice of the
// group its layers read.
func pagedGroups(t interface {
	require.TestingT
	Helper()
}, s kvmem.Spec, bs int) []paged.Group {
	t.Helper()
	p, err := s.LayersPerBlock()
	require.NoError(t, err)
	var out []paged.Group
	first := make([]int, len(s.Groups)) // each spec group's first slice
	for _, full := range []bool{true, false} {
		for i, g := range s.Groups {
			if (g.Kind == kvmem.Full) != full || g.Kind == kvmem.Shared {
				continue
			}
			pg := paged.Group{Kind: paged.FullAttention}
			switch g.Kind {
			case kvmem.Window:
				pg = paged.Group{Kind: paged.SlidingWindow, Window: g.Window}
			case kvmem.Chunked:
				pg = paged.Group{Kind: paged.ChunkedLocal, Chunk: g.Chunk}
			case kvmem.State:
				n, err := s.StateBlocks(g, bs)
				require.NoError(t, err)
				pg = paged.Group{Kind: paged.State, Pages: int(n)}
			}
			first[i] = len(out)
			for range g.Layers / p {
				out = append(out, pg)
			}
		}
	}
	for _, g := range s.Groups {
		if g.Kind == kvmem.Shared {
			for range g.Layers / p {
				out = append(out, paged.Group{Kind: paged.Shared, Target: first[g.Of]})
			}
		}
	}
	return out
}

// TestPlannedSequencesFitAdmitted admits MaxSequences sequences of T
// tokens, one after another, into a paged.Manager of the planned pool with
// the spec's groups, each prompt admitted in chunks of the deployment's
// PrefillChunk tokens (the whole prompt when it is T): every one must fit.
// The planner used to count a window group at its token-by-token peak
// only, while admitting a prompt holds every block of its chunk in every
// window group until the chunk is computed: Gemma 3's planned sequences
// did not fit when their prompts were admitted whole. With prefix caching
// on, a released block stays cached but is evictable, so the same count
// fits.
func TestPlannedSequencesFitAdmitted(t *testing.T) {
	const bs = 16
	gemmaLike := kvmem.Spec{KVHeads: 1, HeadDim: 8, Key: kvmem.FP16, Groups: []kvmem.Group{
		{Kind: kvmem.Full, Layers: 1}, {Kind: kvmem.Window, Layers: 5, Window: 128}}}
	scoutLike := kvmem.Spec{KVHeads: 1, HeadDim: 8, Key: kvmem.FP16, Groups: []kvmem.Group{
		{Kind: kvmem.Full, Layers: 1}, {Kind: kvmem.Chunked, Layers: 3, Chunk: 200}}}
	stateLike := kvmem.Spec{KVHeads: 1, HeadDim: 8, Key: kvmem.FP16, Groups: []kvmem.Group{
		{Kind: kvmem.Full, Layers: 1}, {Kind: kvmem.State, Layers: 3, StateBytes: 5000}}}
	for _, caching := range []bool{false, true} {
		for _, s := range []kvmem.Spec{gemmaLike, scoutLike, stateLike} {
			block, err := s.BlockBytes(bs)
			require.NoError(t, err)
			for _, T := range []int{1000, 1601} {
				for _, chunk := range []int{0, 1, 17, 256, T} {
					// The prompts are distinct: no branch point, nothing
					// pinned for hybrid hits (TestAudit24PlannerMatchesManagerRapid
					// shares prefixes and charges the pins).
					d := kvmem.Deployment{GPUs: 1, GPUMemory: 6000 * block, BlockSize: bs, PrefillChunk: chunk, NoHybridPins: true}
					c, err := kvmem.Plan(s, 0, d)
					require.NoError(t, err)
					n := c.MaxSequences(T)
					require.Positive(t, n)
					m, err := paged.New(paged.Config{BlockSize: bs, NumBlocks: int(c.NumBlocks), Groups: pagedGroups(t, s, bs), DisablePrefixCaching: !caching})
					require.NoError(t, err)
					step := chunk
					if step <= 0 {
						step = 1
					}
					for i := range n {
						p := make([]int32, T)
						for k := range p {
							p[k] = int32(int(i)*T + k)
						}
						id, err := m.Add(p[:min(step, T)], nil)
						require.NoError(t, err)
						_, err = m.Admit(id)
						require.NoError(t, err, "chunk %d, T %d: sequence %d of the %d planned", chunk, T, i+1, n)
						peak := m.Stats().UsedBlocks
						for k := step; k < T; k += step {
							require.NoError(t, m.Append(id, p[k:min(k+step, T)]...), "chunk %d, T %d: sequence %d of the %d planned, at %d tokens", chunk, T, i+1, n, k)
							peak = max(peak, m.Stats().UsedBlocks)
						}
						if i == 0 {
							// The first sequence alone: its peak is the
							// planned figure, exactly for windows grown a
							// token at a time or admitted whole; an upper
							// bound for chunks, and for steps that here
							// start at block-aligned offsets only.
							want := c.SequenceBytes(T) / block
							if s.Groups[1].Kind == kvmem.Window && (step == 1 || step == T) {
								require.Equal(t, want, int64(peak), "chunk %d, T %d", chunk, T)
							} else {
								require.LessOrEqual(t, int64(peak), want, "chunk %d, T %d", chunk, T)
							}
						}
					}
					require.NoError(t, m.Check())
				}
			}
		}
	}
}
