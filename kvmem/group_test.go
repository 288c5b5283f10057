package kvmem_test

import (
	"fmt"
	"math"
	"testing"

	"github.com/stretchr/testify/assert"
	"github.com/stretchr/testify/require"

	"github.com/pagedkv/pagedkv/kvmem"
	"github.com/pagedkv/pagedkv/paged"
)

// oneGroup is a spec of one layer of group g: its SequenceBlocks are the
// group's blocks per layer.
func oneGroup(g kvmem.Group) kvmem.Spec {
	g.Layers = 1
	return kvmem.Spec{KVHeads: 1, HeadDim: 8, Key: kvmem.FP16, Groups: []kvmem.Group{g}}
}

// simulatedPeak grows a sequence one token at a time to tokens tokens and
// returns the most blocks it holds at once, when the query at position p
// reads positions [first(p), p] and every block wholly before first(p) has
// been given back.
func simulatedPeak(tokens, bs int, first func(p int) int) int64 {
	peak := 0
	for p := range tokens {
		peak = max(peak, p/bs-first(p)/bs+1)
	}
	return int64(peak)
}

// TestWindowBlocksSimulated checks the window rule against a brute-force
// simulation: the planned blocks are exactly the most a sequence holds on
// its way to T tokens, for windows that are and are not multiples of the
// block size.
func TestWindowBlocksSimulated(t *testing.T) {
	for _, bs := range []int{1, 4, 16, 32} {
		for _, w := range []int{1, 2, 15, 16, 17, 100, 128, 1024} {
			s := oneGroup(kvmem.Group{Kind: kvmem.Window, Window: w})
			for _, tokens := range []int{1, bs - 1, bs, w - 1, w, w + 1, w + bs - 2, w + bs - 1, w + bs, 3*w + 7} {
				if tokens < 1 {
					continue
				}
				got, err := s.SequenceBlocks(tokens, bs)
				require.NoError(t, err)
				// A one-token window is planned as a two-token one: a
				// prefix hit claims one cached block of it.
				want := simulatedPeak(tokens, bs, func(p int) int { return max(0, p-max(w, 2)+1) })
				require.Equal(t, want, got, "bs %d, window %d, %d tokens", bs, w, tokens)
			}
		}
	}
}

// TestChunkedBlocksSimulated checks the chunk rule the same way: exact
// when the block size divides the chunk, an upper bound otherwise that a
// long enough sequence reaches. The simulated manager keeps, as vLLM's
// and paged's do with prefix caching, the last full (committed) block
// even when the chunk starts after it.
func TestChunkedBlocksSimulated(t *testing.T) {
	for _, bs := range []int{1, 4, 16} {
		for _, c := range []int{1, 2, 6, 16, 24, 100, 8192} {
			s := oneGroup(kvmem.Group{Kind: kvmem.Chunked, Chunk: c})
			chunkStart := func(p int) int {
				if full := p / bs; full > 0 {
					return min(p/c*c, (full-1)*bs)
				}
				return p / c * c
			}
			for _, tokens := range []int{1, c - 1, c, c + 1, 2*c + 5} {
				if tokens < 1 {
					continue
				}
				got, err := s.SequenceBlocks(tokens, bs)
				require.NoError(t, err)
				sim := simulatedPeak(tokens, bs, chunkStart)
				if c%bs == 0 {
					require.Equal(t, sim, got, "bs %d, chunk %d, %d tokens", bs, c, tokens)
				} else {
					require.GreaterOrEqual(t, got, sim, "bs %d, chunk %d, %d tokens", bs, c, tokens)
				}
			}
			// Chunk starts cycle through every multiple of gcd(c, bs)
			// within bs/gcd chunks, so the worst offset occurs by then.
			long := (bs + 1) * c
			got, err := s.SequenceBlocks(long, bs)
			require.NoError(t, err)
			require.Equal(t, simulatedPeak(long, bs, chunkStart), got, "bs %d, chunk %d, long", bs, c)
		}
	}
}

// TestWindowMatchesManager grows one windowed sequence in a paged.Manager
// token by token: the most blocks it ever holds is the planner's figure.
func TestWindowMatchesManager(t *testing.T) {
	for _, tt := range []struct{ w, bs, tokens int }{{128, 16, 600}, {100, 16, 600}, {1024, 16, 3000}, {17, 4, 200}} {
		m, err := paged.New(paged.Config{BlockSize: tt.bs, NumBlocks: 1 << 12, DisablePrefixCaching: true})
		require.NoError(t, err)
		id, _, err := m.Create([]int32{0}, &paged.SeqOptions{Window: tt.w})
		require.NoError(t, err)
		peak := m.Stats().UsedBlocks
		for i := 1; i < tt.tokens; i++ {
			require.NoError(t, m.Append(id, int32(i)))
			peak = max(peak, m.Stats().UsedBlocks)
		}
		require.NoError(t, m.Check())
		want, err := oneGroup(kvmem.Group{Kind: kvmem.Window, Window: tt.w}).SequenceBlocks(tt.tokens, tt.bs)
		require.NoError(t, err)
		assert.Equal(t, want, int64(peak), "window %d, block %d", tt.w, tt.bs)
	}
}

// TestHybridSequenceBytes checks SequenceBytes against the issue's
// formula written out: full layers x T + window layers x min(T, W) +
// chunked layers x min(T, C) + state bytes, each rounded up to the blocks
// allocated. Here the block size divides W and C, so a window holds W + bs
// tokens' worth of blocks at its peak and a chunk exactly C.
func TestHybridSequenceBytes(t *testing.T) {
	const bs = 16
	const lb = 4 * 128 * 2 * 2 // bytes of one token in one layer: 4 heads x 128 x (K + V) x 2 bytes
	const state = 1_000_000    // per layer, not a whole number of 16 x lb = 32,768-byte slots
	spec := kvmem.Spec{KVHeads: 4, HeadDim: 128, Key: kvmem.BF16, Groups: []kvmem.Group{
		{Kind: kvmem.Full, Layers: 4},
		{Kind: kvmem.Window, Layers: 8, Window: 256},
		{Kind: kvmem.Chunked, Layers: 12, Chunk: 1024},
		{Kind: kvmem.State, Layers: 8, StateBytes: state},
		{Kind: kvmem.Shared, Layers: 6, Of: 0},
	}}
	lpb, err := spec.LayersPerBlock()
	require.NoError(t, err)
	assert.Equal(t, 4, lpb, "gcd(4, 8, 12, 8); shared layers own no blocks")
	block, err := spec.BlockBytes(bs)
	require.NoError(t, err)
	assert.Equal(t, int64(bs*4*lb), block)
	tok, err := spec.TokenBytes()
	require.NoError(t, err)
	assert.Equal(t, int64((4+8+12)*lb), tok, "state and shared layers store no per-token KV")

	roundUp := func(n int) int64 { return int64((n + bs - 1) / bs * bs) }
	slots := int64((state + bs*lb - 1) / (bs * lb)) // 31 slots: 1,015,808 bytes
	for _, tokens := range []int{0, 1, 15, 16, 17, 255, 256, 257, 271, 272, 1000, 1024, 1025, 5000, 131072} {
		want := int64(0)
		if tokens > 0 {
			want = 4*roundUp(tokens)*lb +
				8*min(roundUp(tokens), 256+bs)*lb +
				12*min(roundUp(tokens), 1024)*lb +
				8*slots*bs*lb
		}
		got, err := spec.SequenceBytes(tokens, bs)
		require.NoError(t, err)
		assert.Equal(t, want, got, "%d tokens", tokens)
		blocks, err := spec.SequenceBlocks(tokens, bs)
		require.NoError(t, err)
		assert.Equal(t, want, blocks*block, "%d tokens", tokens)
	}

	// The same spec with Layers given and a single full group written as
	// a group plan exactly like the plain spec.
	plain := kvmem.Spec{Layers: 30, KVHeads: 4, HeadDim: 128, Key: kvmem.BF16}
	grouped := plain
	grouped.Groups = []kvmem.Group{{Layers: 30}}
	for _, tokens := range []int{1, 17, 4096} {
		a, err := plain.SequenceBytes(tokens, bs)
		require.NoError(t, err)
		b, err := grouped.SequenceBytes(tokens, bs)
		require.NoError(t, err)
		assert.Equal(t, a, b)
	}
	assert.False(t, grouped.Hybrid())
	assert.True(t, spec.Hybrid())
	assert.Equal(t, 38, spec.NumLayers())
}

// planAt128K plans model m with bf16 KV on one 141 GB GPU, 5% reserved,
// with the given weight type, as kvbench plan does, for a manager that
// pins nothing for hybrid hits (vLLM's, as the figures assume;
// see planAt128KPins for paged's default mode).
func planAt128K(t *testing.T, m kvmem.Model, weights kvmem.Type) kvmem.Capacity {
	t.Helper()
	return planAt128KPins(t, m, weights, false)
}

// planAt128KPins is planAt128K, charging each sequence the hybrid pins of
// paged's default mode when pins is set.
func planAt128KPins(t *testing.T, m kvmem.Model, weights kvmem.Type, pins bool) kvmem.Capacity {
	t.Helper()
	w, err := m.WeightBytes(weights)
	require.NoError(t, err)
	c, err := kvmem.Plan(m.Spec(kvmem.BF16, kvmem.Type{}), w, kvmem.Deployment{GPUMemory: 141e9, Reserve: 0.05, NoHybridPins: !pins})
	require.NoError(t, err)
	return c
}

// allFull returns m as the planner saw it before hybrid layouts: every
// layer full attention.
func allFull(m kvmem.Model) kvmem.Model {
	m.KV.Layers, m.KV.Groups = m.KV.NumLayers(), nil
	return m
}

// TestPlanGemma3At128K is the first target: Gemma-3-27B, bf16
// weights and KV, one 141 GB GPU, 128K context. Counting every layer as
// full attention gives 66.6 GB per sequence and 1 sequence; with 52 of the
// 62 layers windowed to 1,024 tokens it is 11.2 GB and 7.
func TestPlanGemma3At128K(t *testing.T) {
	const T, bs = 131072, 16
	m := mustModel(t, "gemma-3-27b")
	c := planAt128K(t, m, kvmem.BF16)

	lb := int64(16 * 128 * 2 * 2) // 16 KV heads x 128 x (K + V) x bf16
	budget := int64(141e9) - 2*m.Params - int64(0.05*141e9)
	require.Equal(t, budget, c.KVBytes)
	// Blocks span gcd(10, 52) = 2 layers.
	block := int64(bs * 2 * lb)
	require.Equal(t, block, c.BlockBytes)
	full := 10 * int64(T) * lb
	window := 52 * int64((1024-1+bs-1)/bs+1) * bs * lb // 65 blocks of the window
	seq := full + window
	assert.Equal(t, seq, c.SequenceBytes(T))
	want := (budget/block - 1) / (seq / block)
	assert.Equal(t, want, c.MaxSequences(T))
	assert.Equal(t, int64(7), want, "the issue's 'about 7'")
	assert.InDelta(t, 11.2e9, float64(seq), 0.05e9)

	// paged's default mode pins, for each running sequence, the 64
	// blocks of every window slice before its branch point: 6 fit.
	pinned := planAt128KPins(t, m, kvmem.BF16, true)
	seqPins := seq + 52*int64((1024-1+bs-1)/bs)*bs*lb
	assert.Equal(t, seqPins, pinned.SequenceBytes(T))
	assert.Equal(t, (budget/block-1)/(seqPins/block), pinned.MaxSequences(T))
	assert.Equal(t, int64(6), pinned.MaxSequences(T))

	old := planAt128K(t, allFull(m), kvmem.BF16)
	oldSeq := 62 * int64(T) * lb
	assert.Equal(t, oldSeq, old.SequenceBytes(T))
	assert.InDelta(t, 66.6e9, float64(oldSeq), 0.05e9)
	assert.Equal(t, (budget/(bs*62*lb)-1)/(T/bs), old.MaxSequences(T))
	assert.Equal(t, int64(1), old.MaxSequences(T))
}

// TestPlanGPTOSSAt128K is the second: gpt-oss-120b at 128K holds about
// twice the sequences once its 18 window layers of 128 tokens are counted
// as such, here with its native MXFP4 weights on one 141 GB GPU.
func TestPlanGPTOSSAt128K(t *testing.T) {
	const T, bs = 131072, 16
	m := mustModel(t, "gpt-oss-120b")
	c := planAt128K(t, m, kvmem.MXFP4)
	old := planAt128K(t, allFull(m), kvmem.MXFP4)

	lb := int64(8 * 64 * 2 * 2) // 8 KV heads x 64 x (K + V) x bf16
	weights := (m.Params + 31) / 32 * 17
	budget := int64(141e9) - weights - int64(0.05*141e9)
	require.Equal(t, budget, c.KVBytes)
	seq := 18*int64(T)*lb + 18*int64(128/bs+1)*bs*lb // 9 blocks of a 128-token window
	oldSeq := 36 * int64(T) * lb
	assert.Equal(t, seq, c.SequenceBytes(T))
	assert.Equal(t, oldSeq, old.SequenceBytes(T))
	// Blocks span gcd(18, 18) = 18 layers, 36 before.
	assert.Equal(t, (budget/(bs*18*lb)-1)/(seq/(bs*18*lb)), c.MaxSequences(T))
	assert.Equal(t, (budget/(bs*36*lb)-1)/(oldSeq/(bs*36*lb)), old.MaxSequences(T))
	ratio := float64(c.MaxSequences(T)) / float64(old.MaxSequences(T))
	assert.InDelta(t, 2.0, ratio, 0.2, "%d vs %d sequences", c.MaxSequences(T), old.MaxSequences(T))
	// paged's default mode: 8 more blocks of the window per sequence
	// pinned at its branch point; still 14.
	pinned := planAt128KPins(t, m, kvmem.MXFP4, true)
	assert.Equal(t, seq+18*int64(127/bs+1)*bs*lb, pinned.SequenceBytes(T))
	assert.Equal(t, c.MaxSequences(T), pinned.MaxSequences(T))
}

// TestQwen3NextState plans the DeltaNet state: 36 layers of 1,097,728
// bytes, each in ceil(1,097,728 / (16 x 2,048)) = 34 per-layer slots of
// one attention layer's block, whatever the context; split over 16 key
// heads under TP.
func TestQwen3NextState(t *testing.T) {
	m := mustModel(t, "qwen3-next-80b-a3b")
	s := m.Spec(kvmem.BF16, kvmem.Type{})
	const bs = 16
	lb := int64(2 * 256 * 2 * 2)
	stateBytes := int64(2 * (32*128*128 + 3*(2*16*128+32*128)))
	require.Equal(t, int64(1_097_728), stateBytes)
	slots := (stateBytes + bs*lb - 1) / (bs * lb)
	require.Equal(t, int64(34), slots)
	nb, err := s.StateBlocks(s.Groups[1], bs)
	require.NoError(t, err)
	assert.Equal(t, slots, nb)
	for _, tokens := range []int{1, 4096, 262144} {
		got, err := s.SequenceBytes(tokens, bs)
		require.NoError(t, err)
		want := 12*int64((tokens+bs-1)/bs)*bs*lb + 36*slots*bs*lb
		assert.Equal(t, want, got, "%d tokens", tokens)
	}
	for _, tt := range []struct {
		tp    int
		heads int
	}{{1, 16}, {2, 8}, {4, 4}, {16, 1}, {32, 1}} {
		sh, err := s.Shard(tt.tp)
		require.NoError(t, err, "tp %d", tt.tp)
		assert.Equal(t, tt.heads, sh.Groups[1].StateHeads, "tp %d", tt.tp)
		assert.Equal(t, stateBytes/16*int64(tt.heads), sh.Groups[1].StateBytes, "tp %d", tt.tp)
		assert.Equal(t, max(1, 2/tt.tp), sh.KVHeads, "tp %d", tt.tp)
	}
	assert.Equal(t, stateBytes, s.Groups[1].StateBytes, "Shard leaves the caller's groups alone")
	_, err = s.Shard(3)
	require.ErrorIs(t, err, kvmem.ErrInvalid)
}

// TestHybridMaxContext checks that MaxContext inverts MaxSequences on the
// hybrid presets, and that a model no layer of which grows with the
// context holds any length.
func TestHybridMaxContext(t *testing.T) {
	for _, name := range []string{"gpt-oss-120b", "gpt-oss-20b", "gemma-3-27b", "llama-4-scout", "qwen3-next-80b-a3b"} {
		m := mustModel(t, name)
		w, err := m.WeightBytes(kvmem.FP8E4M3)
		require.NoError(t, err)
		for _, d := range []kvmem.Deployment{
			{GPUs: 8, GPUMemory: 141e9, Reserve: 0.05},
			{GPUs: 8, TP: 2, GPUMemory: 80e9, Reserve: 0.1, BlockSize: 32},
			{GPUs: 4, TP: 2, CP: 2, GPUMemory: 141e9},
		} {
			c, err := kvmem.Plan(m.Spec(kvmem.FP8E4M3, kvmem.Type{}), w, d)
			require.NoError(t, err, name)
			for _, n := range []int{1, 2, 7, 100} {
				l := c.MaxContext(n)
				require.Positive(t, l, name)
				require.Less(t, l, kvmem.Unbounded, name)
				assert.GreaterOrEqual(t, c.MaxSequences(int(l)), int64(n), "%s n %d", name, n)
				assert.Less(t, c.MaxSequences(int(l)+1), int64(n), "%s n %d", name, n)
			}
			assert.Equal(t, c.MaxContext(1)*int64(c.Replicas), c.Tokens(), name)
		}
	}

	windowOnly := kvmem.Spec{KVHeads: 8, HeadDim: 128, Key: kvmem.BF16, Groups: []kvmem.Group{
		{Kind: kvmem.Window, Layers: 32, Window: 4096}, {Kind: kvmem.State, Layers: 8, StateBytes: 1 << 20}}}
	// No checkpoints: a sequence is charged its own blocks only, those
	// SequenceBlocks counts.
	c, err := kvmem.Plan(windowOnly, 0, kvmem.Deployment{GPUMemory: 80e9, NoHybridPins: true})
	require.NoError(t, err)
	assert.Equal(t, kvmem.Unbounded, c.MaxContext(1))
	assert.Equal(t, kvmem.Unbounded, c.Tokens())
	peak, err := windowOnly.SequenceBlocks(min(1<<40, math.MaxInt), 16)
	require.NoError(t, err)
	assert.Equal(t, c.UsableBlocks()/peak, c.MaxSequences(min(1<<40, math.MaxInt)), "a window model holds as many sequences at any length past the window")
	assert.Less(t, c.MaxContext(int(c.UsableBlocks()/peak)+1), int64(4096), "one more sequence fits only while the windows are short")
}

// TestGroupValidate checks that every malformed group is refused with
// ErrInvalid and an error that names the field.
func TestGroupValidate(t *testing.T) {
	base := func(groups ...kvmem.Group) kvmem.Spec {
		return kvmem.Spec{KVHeads: 8, HeadDim: 128, Key: kvmem.BF16, Groups: groups}
	}
	full := kvmem.Group{Kind: kvmem.Full, Layers: 4}
	tests := []struct {
		name  string
		spec  kvmem.Spec
		field string
	}{
		{"zero layers", base(kvmem.Group{Kind: kvmem.Full}), "Groups[0].Layers"},
		{"negative layers", base(full, kvmem.Group{Kind: kvmem.Window, Layers: -1, Window: 8}), "Groups[1].Layers"},
		{"unknown kind", base(kvmem.Group{Kind: 9, Layers: 1}), "Kind"},
		{"window without size", base(full, kvmem.Group{Kind: kvmem.Window, Layers: 4}), "Window"},
		{"negative window", base(full, kvmem.Group{Kind: kvmem.Window, Layers: 4, Window: -5}), "Window"},
		{"huge window", base(full, kvmem.Group{Kind: kvmem.Window, Layers: 4, Window: min(1<<31, math.MaxInt)}), "Window"},
		{"window on full", base(kvmem.Group{Kind: kvmem.Full, Layers: 4, Window: 128}), "Window"},
		{"chunk on window", base(kvmem.Group{Kind: kvmem.Window, Layers: 4, Window: 8, Chunk: 8}), "Chunk"},
		{"chunk missing", base(kvmem.Group{Kind: kvmem.Chunked, Layers: 4}), "Chunk"},
		{"state missing", base(full, kvmem.Group{Kind: kvmem.State, Layers: 4}), "StateBytes"},
		{"state negative", base(full, kvmem.Group{Kind: kvmem.State, Layers: 4, StateBytes: -1}), "StateBytes"},
		{"state huge", base(full, kvmem.Group{Kind: kvmem.State, Layers: 4, StateBytes: 1 << 41}), "StateBytes"},
		{"state on full", base(kvmem.Group{Kind: kvmem.Full, Layers: 4, StateBytes: 8}), "StateBytes"},
		{"state heads uneven", base(full, kvmem.Group{Kind: kvmem.State, Layers: 4, StateBytes: 10, StateHeads: 3}), "StateHeads"},
		{"state heads on full", base(kvmem.Group{Kind: kvmem.Full, Layers: 4, StateHeads: 2}), "StateHeads"},
		{"shared of itself", base(full, kvmem.Group{Kind: kvmem.Shared, Layers: 4, Of: 1}), "Of"},
		{"shared of missing", base(full, kvmem.Group{Kind: kvmem.Shared, Layers: 4, Of: 5}), "Of"},
		{"shared of state", base(full, kvmem.Group{Kind: kvmem.State, Layers: 4, StateBytes: 64}, kvmem.Group{Kind: kvmem.Shared, Layers: 1, Of: 1}), "Of"},
		{"shared of shared", base(full, kvmem.Group{Kind: kvmem.Shared, Layers: 1}, kvmem.Group{Kind: kvmem.Shared, Layers: 1, Of: 1}), "Of"},
		{"of on full", base(full, kvmem.Group{Kind: kvmem.Full, Layers: 1, Of: 0}, kvmem.Group{Kind: kvmem.Window, Layers: 1, Window: 4, Of: 1}), "Of"},
		{"state only", base(kvmem.Group{Kind: kvmem.State, Layers: 4, StateBytes: 64}), "no full, window or chunked"},
		{"too many layers", base(kvmem.Group{Layers: 4000}, kvmem.Group{Kind: kvmem.Window, Layers: 200, Window: 8}), "layers"},
		{"layers disagree", func() kvmem.Spec { s := base(full); s.Layers = 5; return s }(), "Spec.Layers"},
	}
	for _, tt := range tests {
		err := tt.spec.Validate()
		require.ErrorIs(t, err, kvmem.ErrInvalid, tt.name)
		assert.Contains(t, err.Error(), tt.field, tt.name)
		assert.Contains(t, err.Error(), "kvmem:", tt.name)
		_, err = tt.spec.SequenceBytes(100, 16)
		require.ErrorIs(t, err, kvmem.ErrInvalid, tt.name)
		_, err = kvmem.Plan(tt.spec, 0, kvmem.Deployment{GPUMemory: 80e9})
		require.ErrorIs(t, err, kvmem.ErrInvalid, tt.name)
	}
	ok := base(full)
	ok.Layers = 4
	require.NoError(t, ok.Validate(), "Layers equal to the groups' total is fine")
	_, err := ok.SequenceBlocks(-1, 16)
	require.ErrorIs(t, err, kvmem.ErrInvalid)
	_, err = ok.SequenceBlocks(16, 0)
	require.ErrorIs(t, err, kvmem.ErrInvalid)
	_, err = ok.StateBlocks(kvmem.Group{Kind: kvmem.State, StateBytes: 1}, -1)
	require.ErrorIs(t, err, kvmem.ErrInvalid)
	n, err := ok.SequenceBlocks(math.MaxInt, 1)
	if math.MaxInt > math.MaxInt32 {
		require.ErrorIs(t, err, kvmem.ErrInvalid, "overflow is an error, not a wrapped count")
	} else {
		// Where int is 32 bits, MaxInt tokens are 2^31-1 one-token
		// blocks (a block holds the group's 4 layers), a count an int64
		// holds.
		require.NoError(t, err)
		assert.Equal(t, int64(math.MaxInt32), n)
	}
	assert.Equal(t, "chunked", kvmem.Chunked.String())
	assert.Equal(t, "Kind(9)", kvmem.Kind(9).String())
}

// FuzzHybridSpec: any group layout validates or fails with ErrInvalid;
// a valid one gives a block count that never falls as the context grows,
// never exceeds the same layers as full attention plus their state, and
// shards without growing.
func FuzzHybridSpec(f *testing.F) {
	f.Add(10, 52, uint8(1), 1024, int64(0), 16, 1000)
	f.Add(12, 36, uint8(3), 0, int64(1097728), 16, 262144)
	f.Add(12, 36, uint8(2), 8192, int64(0), 32, 9000)
	f.Add(1, 1, uint8(4), 0, int64(0), 1, 1)
	f.Fuzz(func(t *testing.T, fullLayers, otherLayers int, kind uint8, span int, state int64, bs, tokens int) {
		g := kvmem.Group{Kind: kvmem.Kind(kind), Layers: otherLayers, StateBytes: state}
		switch g.Kind {
		case kvmem.Window:
			g.Window = span
		case kvmem.Chunked:
			g.Chunk = span
		}
		s := kvmem.Spec{KVHeads: 2, HeadDim: 64, Key: kvmem.FP8E4M3, Groups: []kvmem.Group{{Layers: fullLayers}, g}}
		n, err := s.SequenceBlocks(tokens, bs)
		if err != nil {
			require.ErrorIs(t, err, kvmem.ErrInvalid)
			return
		}
		require.GreaterOrEqual(t, n, int64(0))
		if tokens < 1<<30 {
			more, err := s.SequenceBlocks(tokens+1, bs)
			require.NoError(t, err)
			require.GreaterOrEqual(t, more, n, "blocks fall as the context grows")
		}
		lpb, err := s.LayersPerBlock()
		require.NoError(t, err)
		asFull := s
		asFull.Groups = []kvmem.Group{{Layers: fullLayers}, g}
		if g.Kind == kvmem.Window || g.Kind == kvmem.Chunked {
			asFull.Groups[1] = kvmem.Group{Layers: otherLayers}
		}
		bound, err := asFull.SequenceBlocks(tokens, bs)
		require.NoError(t, err)
		require.LessOrEqual(t, n, bound, fmt.Sprintf("%d layers per block", lpb))
		sh, err := s.Shard(2)
		require.NoError(t, err)
		ns, err := sh.SequenceBytes(tokens, bs)
		require.NoError(t, err)
		nb, err := s.SequenceBytes(tokens, bs)
		require.NoError(t, err)
		require.LessOrEqual(t, ns, nb)
	})
}
