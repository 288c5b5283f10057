package sched

import (
	"errors"
	"testing"

	"pgregory.net/rapid"

	"github.com/pagedkv/pagedkv/paged"
)

// TestLengthFloorMatchesScan: Submit's bound (lengthFloor), which scans
// only the last period of the lengths a sample may be admitted at, is the
// most PrefillFloor gives over all of them (from its prompt, or from the
// first token with chunked prefill and no prefix caching), the prompt in
// its own mode, on drawn layouts of every group kind (and a sequence
// window without groups), both prefix caching modes, chunked prefill and
// swap.
func TestLengthFloorMatchesScan(t *testing.T) {
	rapid.Check(t, func(t *rapid.T) {
		bs := rapid.SampledFrom([]int{1, 2, 3, 4, 8, 16}).Draw(t, "bs")
		mcfg := paged.Config{BlockSize: bs, NumBlocks: rapid.IntRange(8, 200).Draw(t, "blocks"), MaxModelLen: 1024,
			UnifiedFreeQueue: rapid.Bool().Draw(t, "unified"), DisablePrefixCaching: rapid.Bool().Draw(t, "noCache")}
		var so paged.SeqOptions
		if rapid.Bool().Draw(t, "groups") {
			mcfg.Groups = []paged.Group{{Kind: paged.FullAttention}}
			oneOther := mcfg.UnifiedFreeQueue && !mcfg.DisablePrefixCaching
			var other *paged.Group
			for range rapid.IntRange(1, 3).Draw(t, "extra") {
				var g paged.Group
				switch rapid.IntRange(0, 4).Draw(t, "kind") {
				case 0:
					g = paged.Group{Kind: paged.SlidingWindow, Window: rapid.IntRange(1, 3*bs+8).Draw(t, "window")}
				case 1:
					g = paged.Group{Kind: paged.ChunkedLocal, Chunk: rapid.SampledFrom([]int{1, 2, 3, 5, 7, bs, 2 * bs, 3*bs + 1, 8 * bs}).Draw(t, "chunk")}
				case 2:
					g = paged.Group{Kind: paged.State, Pages: rapid.IntRange(1, 3).Draw(t, "pages")}
				case 3:
					g = paged.Group{Kind: paged.Shared}
				default:
					g = paged.Group{Kind: paged.FullAttention}
				}
				if oneOther && g.Kind != paged.Shared && g.Kind != paged.FullAttention {
					if other != nil {
						g = *other
					}
					other = &g
				}
				mcfg.Groups = append(mcfg.Groups, g)
			}
			mcfg.DisableOffload = true
		} else if rapid.Bool().Draw(t, "seqWindow") {
			so.Window = rapid.IntRange(1, 12).Draw(t, "seqWindow")
		}
		cfg := Config{ChunkedPrefill: rapid.Bool().Draw(t, "chunked")}
		if rapid.Bool().Draw(t, "swap") {
			cfg.Preemption, mcfg.HostBlocks = Swap, 64
		}
		m, err := paged.New(mcfg)
		if err != nil {
			t.Fatal(err)
		}
		s, err := New(m, cfg)
		if err != nil {
			t.Fatal(err)
		}
		p := rapid.IntRange(1, 100).Draw(t, "prompt")
		kv := p + rapid.IntRange(0, 400).Draw(t, "outputs")
		floor, at, err := s.lengthFloor(p, kv, &so)

		later := cfg.ChunkedPrefill || cfg.Preemption == Swap
		lo := p
		if cfg.ChunkedPrefill && mcfg.DisablePrefixCaching {
			lo = 1 // every chunk is computed, from the first token
		}
		want, wantAt, wantErr := 0, 0, error(nil)
		for n := lo; n <= kv && wantErr == nil; n++ {
			chunked := cfg.ChunkedPrefill || n > p && later
			f, err := m.PrefillFloor(n, &so, chunked)
			if err != nil {
				wantErr = err
				break
			}
			if f > want {
				want, wantAt = f, n
			}
		}
		if wantErr != nil {
			if !errors.Is(err, paged.ErrNever) || !errors.Is(wantErr, paged.ErrNever) {
				t.Fatalf("lengthFloor(%d, %d): %v; the scan: %v", p, kv, err, wantErr)
			}
			return
		}
		if err != nil || floor != want {
			t.Fatalf("lengthFloor(%d, %d) = %d at %d (%v); the scan's most is %d at %d", p, kv, floor, at, err, want, wantAt)
		}
		if f, _ := m.PrefillFloor(at, &so, cfg.ChunkedPrefill || at > p && later); f != floor {
			t.Fatalf("lengthFloor(%d, %d) = %d at %d, where PrefillFloor is %d", p, kv, floor, at, f)
		}
	})
}
