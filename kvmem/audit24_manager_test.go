package kvmem_test

import (
	"errors"
	"slices"
	"testing"

	"pgregory.net/rapid"

	"github.com/pagedkv/pagedkv/kvmem"
	"github.com/pagedkv/pagedkv/paged"
)

// drawManagedSpec draws a hybrid layout a paged.Manager takes: a full
// group first, then up to three more of any kind (several of one kind
// included), with windows and chunks that are and are not multiples of
// the block size, and states smaller and larger than one layer's page
// slot, and shared groups reading any attention group.
func drawManagedSpec(t *rapid.T, bs int) kvmem.Spec {
	s := kvmem.Spec{KVHeads: rapid.IntRange(1, 2).Draw(t, "heads"), HeadDim: 8 * rapid.IntRange(1, 2).Draw(t, "dim8"), Key: kvmem.FP16}
	layers := func(label string) int { return rapid.SampledFrom([]int{1, 2, 3, 4, 6}).Draw(t, label) }
	s.Groups = append(s.Groups, kvmem.Group{Kind: kvmem.Full, Layers: layers("fullLayers")})
	slot := int64(bs) * int64(s.KVHeads) * int64(s.HeadDim) * 2 * 2 // one layer's slot of a block
	for i := range rapid.IntRange(0, 3).Draw(t, "extra") {
		_ = i
		g := kvmem.Group{Kind: kvmem.Kind(rapid.IntRange(0, 4).Draw(t, "kind")), Layers: layers("layers")}
		switch g.Kind {
		case kvmem.Window:
			g.Window = rapid.OneOf(rapid.IntRange(1, 3*bs+1), rapid.SampledFrom([]int{bs, bs + 1, 2*bs - 1, 2*bs + 1, 100})).Draw(t, "window")
		case kvmem.Chunked:
			g.Chunk = rapid.OneOf(rapid.IntRange(1, 3*bs+1), rapid.SampledFrom([]int{bs, bs + 1, 2 * bs, 100})).Draw(t, "chunk")
		case kvmem.State:
			g.StateBytes = rapid.OneOf(rapid.Int64Range(1, slot), rapid.Int64Range(slot, 4*slot+1),
				rapid.SampledFrom([]int64{slot - 1, slot, slot + 1, 2 * slot})).Draw(t, "stateBytes")
			if g.StateBytes < 1 {
				g.StateBytes = 1
			}
		case kvmem.Shared:
			var targets []int
			for j, o := range s.Groups {
				if o.Kind == kvmem.Full || o.Kind == kvmem.Window || o.Kind == kvmem.Chunked {
					targets = append(targets, j)
				}
			}
			g.Of = rapid.SampledFrom(targets).Draw(t, "of")
		}
		s.Groups = append(s.Groups, g)
	}
	return s
}

// TestAudit24PlannerMatchesManagerRapid is the planner's property test
// against the block manager: for a drawn layout, block size, context T
// and prefill step, a paged.Manager whose pool holds exactly the usable
// blocks Plan says n sequences of T tokens need (n x SequenceBlocks + the
// null block, so NumBlocks = what Plan computes for that memory) grows
// the n sequences to T tokens side by side, a step at a time in
// round-robin, with prefix caching on or off: no Append may fail for want
// of space (the planner never claims more sequences than fit, whatever
// the interleaving, and whatever prefix they share), and sequences that
// share no block, grown a token at a time, hold at their peak exactly the
// planned blocks, but for a one-token window (planned as two) and a
// chunked group's
// documented excess (an upper bound when the block size does not divide
// the chunk, or past a chunk, where the groups peak at different times).
func TestAudit24PlannerMatchesManagerRapid(t *testing.T) {
	rapid.Check(t, func(t *rapid.T) {
		bs := rapid.SampledFrom([]int{1, 2, 4, 16}).Draw(t, "bs")
		caching := rapid.Bool().Draw(t, "caching")
		// paged's vLLM-compatible mode keeps no hybrid pins either.
		compat := caching && rapid.Bool().Draw(t, "compat")
		s := drawManagedSpec(t, bs)
		T := rapid.IntRange(1, 12*bs+40).Draw(t, "T")
		step := rapid.OneOf(rapid.Just(1), rapid.IntRange(1, T)).Draw(t, "step")
		n := rapid.IntRange(1, 3).Draw(t, "n")

		block, err := s.BlockBytes(bs)
		if err != nil {
			t.Fatal(err)
		}
		// Plan a pool of some size to learn the per-sequence peak, then
		// one of exactly n peaks plus the null block.
		// Without prefix caching nothing is pinned for hybrid hits: the
		// plan may leave the pins out, and is then exact.
		d := kvmem.Deployment{GPUMemory: 2 * block, BlockSize: bs, PrefillChunk: step, NoHybridPins: !caching || compat}
		probe, err := kvmem.Plan(s, 0, d)
		if err != nil {
			t.Fatal(err)
		}
		per := probe.SequenceBytes(T) / block
		if per <= 0 {
			t.Fatalf("SequenceBytes(%d) = %d", T, probe.SequenceBytes(T))
		}
		d.GPUMemory = (int64(n)*per + 1) * block
		c, err := kvmem.Plan(s, 0, d)
		if err != nil {
			t.Fatal(err)
		}
		if got := c.MaxSequences(T); got != int64(n) {
			t.Fatalf("MaxSequences(%d) = %d in a pool of %d x %d + 1 blocks", T, got, n, per)
		}
		groups := pagedGroups(t, s, bs)
		m, err := paged.New(paged.Config{BlockSize: bs, NumBlocks: int(c.NumBlocks), Groups: groups, DisablePrefixCaching: !caching, UnifiedFreeQueue: compat})
		if compat && errors.Is(err, paged.ErrInvalid) {
			t.Skip("the compatible mode takes one kind beside full attention")
		}
		if err != nil {
			t.Fatalf("paged.New: %v", err)
		}
		// A prompt's first chunk is admitted with Admit of that chunk, or
		// with AdmitChunk of the whole prompt (paged's chunked prefill,
		// whose maxNew is what Deployment.PrefillChunk describes).
		chunked := rapid.Bool().Draw(t, "admitChunk")
		// The prompts share their first shared[i] tokens (system
		// prompts, conversations: prefix hits, and branch points where
		// window blocks and state checkpoints are pinned), the rest
		// distinct.
		shared := make([]int, n)
		for i := range shared {
			shared[i] = rapid.IntRange(0, T).Draw(t, "shared")
		}
		ids := make([]paged.SeqID, n)
		prompts := make([][]int32, n)
		pos := make([]int, n) // tokens each sequence holds
		for i := range ids {
			prompts[i] = make([]int32, T)
			for k := range prompts[i] {
				prompts[i][k] = int32(i*T + k)
				if k < shared[i] {
					prompts[i][k] = int32(k)
				}
			}
			if chunked {
				if ids[i], err = m.Add(prompts[i], nil); err != nil {
					t.Fatal(err)
				}
				var rest []int32
				// A hit adds its tokens to the chunk's: the sequence
				// then holds more than step tokens.
				_, rest, err = m.AdmitChunk(ids[i], step, nil)
				if err == nil {
					pos[i] = T - len(rest)
					continue
				}
				// AdmitChunk refuses, as documented, a sequence whose
				// whole length admitted at once could never fit, though
				// chunk by chunk it does: only then may it fail, and the
				// prompt's first chunk is then admitted alone.
				whole, perr := kvmem.Plan(s, 0, kvmem.Deployment{GPUMemory: 2 * block, BlockSize: bs, PrefillChunk: T, NoHybridPins: true})
				if perr != nil {
					t.Fatal(perr)
				}
				if !errors.Is(err, paged.ErrNever) || whole.SequenceBytes(T)/block <= c.NumBlocks-1 {
					t.Fatalf("admitting a chunk of sequence %d of %d (per %d blocks, whole %d, pool %d): %v", i+1, n, per, whole.SequenceBytes(T)/block, c.NumBlocks, err)
				}
				if err := m.Free(ids[i]); err != nil {
					t.Fatal(err)
				}
			}
			if ids[i], err = m.Add(prompts[i][:min(step, T)], nil); err != nil {
				t.Fatal(err)
			}
			if _, err = m.Admit(ids[i]); err != nil {
				t.Fatalf("admitting sequence %d of %d (per %d blocks, pool %d): %v", i+1, n, per, c.NumBlocks, err)
			}
			pos[i] = min(step, T)
		}
		peak := m.Stats().UsedBlocks
		for more := true; more; {
			more = false
			for i, id := range ids {
				k := pos[i]
				if k == T {
					continue
				}
				more = true
				if err := m.Append(id, prompts[i][k:min(k+step, T)]...); err != nil {
					t.Fatalf("sequence %d of %d at %d tokens (per %d blocks, pool %d): %v", i+1, n, k, per, c.NumBlocks, err)
				}
				pos[i] = min(k+step, T)
				peak = max(peak, m.Stats().UsedBlocks)
			}
		}
		if err := m.Check(); err != nil {
			t.Fatal(err)
		}
		if int64(peak) > int64(n)*per {
			t.Fatalf("%d sequences held %d blocks, planned %d each", n, peak, per)
		}
		exact := step == 1 && slices.Max(shared) < bs // no block shared
		for _, g := range s.Groups {
			// A one-token window is planned as two (a hit claims a
			// block of it), and with prefix caching a window or state
			// is charged the pins of a branch point besides.
			exact = exact && g.Kind != kvmem.Chunked && (g.Kind != kvmem.Window || g.Window > 1) &&
				(!caching || compat || g.Kind != kvmem.State && g.Kind != kvmem.Window)
		}
		if exact && int64(peak) != int64(n)*per {
			t.Fatalf("%d sequences grown a token at a time held at most %d blocks, planned %d each", n, peak, per)
		}
	})
}
