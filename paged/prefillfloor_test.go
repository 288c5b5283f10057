package paged_test

import (
	"errors"
	"fmt"
	"testing"

	"pgregory.net/rapid"

	"github.com/pagedkv/pagedkv/paged"
)

// floorLayouts are hybrid layouts of every group kind PrefillFloor counts.
var floorLayouts = []struct {
	name   string
	groups []paged.Group
	window int // SeqOptions.Window, without groups
}{
	{"one group", nil, 0},
	{"sequence window 6", nil, 6},
	{"sequence window 1", nil, 1},
	{"window 8", []paged.Group{{Kind: paged.FullAttention}, {Kind: paged.SlidingWindow, Window: 8}}, 0},
	{"window 1", []paged.Group{{Kind: paged.FullAttention}, {Kind: paged.SlidingWindow, Window: 1}}, 0},
	{"window 5 + state", []paged.Group{{Kind: paged.FullAttention}, {Kind: paged.SlidingWindow, Window: 5}, {Kind: paged.State, Pages: 2}}, 0},
	{"chunked 8", []paged.Group{{Kind: paged.FullAttention}, {Kind: paged.ChunkedLocal, Chunk: 8}}, 0},
	{"chunked 6", []paged.Group{{Kind: paged.FullAttention}, {Kind: paged.ChunkedLocal, Chunk: 6}}, 0},
	{"window 4 + shared", []paged.Group{{Kind: paged.FullAttention}, {Kind: paged.SlidingWindow, Window: 4}, {Kind: paged.Shared, Target: 1}}, 0},
	{"two windows + chunked", []paged.Group{{Kind: paged.FullAttention}, {Kind: paged.SlidingWindow, Window: 3}, {Kind: paged.SlidingWindow, Window: 9}, {Kind: paged.ChunkedLocal, Chunk: 8}}, 0},
}

// heldBy counts the blocks sequence id holds in every group but Shared
// ones (they hold none: their table is their target's).
func heldBy(t floorT, m *paged.Manager, groups []paged.Group, id paged.SeqID) int {
	t.Helper()
	n := 0
	for g := range max(1, len(groups)) {
		if len(groups) > 0 && groups[g].Kind == paged.Shared {
			continue
		}
		tab, err := m.TableGroup(id, g)
		if err != nil {
			t.Fatalf("TableGroup %d: %v", g, err)
		}
		for _, b := range tab {
			if b != 0 {
				n++
			}
		}
	}
	return n
}

// TestPrefillFloor: for every prompt length and layout, no way of
// computing the prompt holds fewer blocks in the step that computes its
// last token than PrefillFloor says (whole: Admit, cold or after the same
// prompt was computed, so that it hits; in chunks: besides those, a last
// Append of the last token alone, cold or after a hit), and one of them
// holds exactly that many; with prefix caching on and off.
func TestPrefillFloor(t *testing.T) {
	const bs = 4
	for _, l := range floorLayouts {
		for _, c := range []struct{ chunked, off bool }{{false, false}, {true, false}, {false, true}, {true, true}} {
			var opts *paged.SeqOptions
			if l.window > 0 {
				opts = &paged.SeqOptions{Window: l.window}
			}
			cfg := paged.Config{BlockSize: bs, NumBlocks: 200, Groups: l.groups, DisablePrefixCaching: c.off}
			t.Run(fmt.Sprintf("%s/chunked=%v/caching=%v", l.name, c.chunked, !c.off), func(t *testing.T) {
				for n := 1; n <= 37; n++ {
					checkPrefillFloor(t, cfg, opts, n, c.chunked, nil)
				}
			})
		}
	}
}

// TestPrefillFloorRapid is TestPrefillFloor over drawn block sizes,
// layouts (windows, chunks, state pages, shared groups, several of each),
// lengths and modes (vLLM's, UnifiedFreeQueue, where New takes the
// layout), with a drawn chunk schedule besides: its last step holds
// no fewer blocks than PrefillFloor in chunks either. CI may run it longer
// (-rapid.checks).
func TestPrefillFloorRapid(t *testing.T) {
	rapid.Check(t, func(t *rapid.T) {
		bs := rapid.SampledFrom([]int{1, 2, 3, 4, 8}).Draw(t, "bs")
		cfg := paged.Config{BlockSize: bs, NumBlocks: 400, DisablePrefixCaching: rapid.IntRange(0, 3).Draw(t, "off") == 0,
			UnifiedFreeQueue: rapid.IntRange(0, 3).Draw(t, "compat") == 0}
		var opts *paged.SeqOptions
		if rapid.IntRange(0, 4).Draw(t, "single") == 0 {
			if w := rapid.IntRange(0, 5*bs).Draw(t, "seqWindow"); w > 0 {
				opts = &paged.SeqOptions{Window: w}
			}
		} else {
			cfg.Groups = []paged.Group{{Kind: paged.FullAttention}}
			for range rapid.IntRange(1, 3).Draw(t, "groups") {
				switch rapid.IntRange(0, 4).Draw(t, "kind") {
				case 0:
					cfg.Groups = append(cfg.Groups, paged.Group{Kind: paged.SlidingWindow, Window: rapid.IntRange(1, 5*bs).Draw(t, "window")})
				case 1:
					cfg.Groups = append(cfg.Groups, paged.Group{Kind: paged.ChunkedLocal, Chunk: rapid.IntRange(1, 5*bs).Draw(t, "chunk")})
				case 2:
					cfg.Groups = append(cfg.Groups, paged.Group{Kind: paged.State, Pages: rapid.IntRange(1, 3).Draw(t, "pages")})
				case 3:
					cfg.Groups = append(cfg.Groups, paged.Group{Kind: paged.Shared, Target: rapid.IntRange(0, len(cfg.Groups)-1).Draw(t, "target")})
				default:
					cfg.Groups = append(cfg.Groups, paged.Group{Kind: paged.FullAttention})
				}
			}
			if cfg.Groups[len(cfg.Groups)-1].Kind == paged.Shared {
				if k := cfg.Groups[cfg.Groups[len(cfg.Groups)-1].Target].Kind; k == paged.State || k == paged.Shared {
					cfg.Groups[len(cfg.Groups)-1] = paged.Group{Kind: paged.FullAttention}
				}
			}
		}
		if _, err := paged.New(cfg); err != nil {
			t.Skip(err) // a layout New refuses
		}
		n := rapid.IntRange(1, 12*bs).Draw(t, "n")
		var steps []int
		for left := n; left > 0; {
			k := rapid.IntRange(1, left).Draw(t, "step")
			steps = append(steps, k)
			left -= k
		}
		checkPrefillFloor(t, cfg, opts, n, rapid.Bool().Draw(t, "chunked"), steps)
	})
}

// checkPrefillFloor computes an n-token prompt of cfg (sequence options
// opts) the ways TestPrefillFloor says (and, with steps, chunk by chunk
// steps[0], steps[1], ... tokens a step), in a fresh manager each, and
// fails unless no whole admission holds fewer blocks than
// PrefillFloor(n, opts, false) and no way at all fewer than
// PrefillFloor(n, opts, true) in the step computing its last token, and
// one of the ways of the mode chunked says (whole, or any) holds exactly
// its floor.
func checkPrefillFloor(t floorT, cfg paged.Config, opts *paged.SeqOptions, n int, chunked bool, steps []int) {
	t.Helper()
	must := func(err error) {
		t.Helper()
		if err != nil {
			t.Fatalf("n %d: %v", n, err)
		}
	}
	bs := cfg.BlockSize
	prompt := make([]int32, n)
	for i := range prompt {
		prompt[i] = int32(1000*n + i)
	}
	block := func(tok int32) []int32 {
		b := make([]int32, bs)
		for i := range b {
			b[i] = tok
		}
		return b
	}
	var holds []int
	m, err := paged.New(cfg)
	must(err)
	whole, err := m.PrefillFloor(n, opts, false)
	must(err)
	inChunks, err := m.PrefillFloor(n, opts, true)
	must(err)
	if inChunks > whole {
		t.Fatalf("n %d: PrefillFloor is %d in chunks, %d whole", n, inChunks, whole)
	}
	// warm computes first the blocks of the prompt before its last token
	// and a block of other tokens, then the whole prompt and a block
	// more, whose lookup branches off at those blocks: a state
	// checkpoint is taken there. chunks are the steps' tokens after the
	// admission's (none: Admit).
	run := func(warm bool, first int, chunks []int, counts bool) {
		m, err := paged.New(cfg)
		must(err)
		if hit := (n - 1) / bs * bs; warm && hit > 0 {
			other := append(prompt[:hit:hit], block(9)...)
			for _, p := range [][]int32{other, append(prompt[:n:n], block(7)...)} {
				id, err := m.Add(p, opts)
				must(err)
				_, err = m.Admit(id)
				must(err)
				m.TakeCheckpoints(nil)
				m.EndStep()
				must(m.Append(id, 8))
				m.EndStep()
				must(m.Free(id))
			}
		}
		id, err := m.Add(prompt, opts)
		must(err)
		if first == 0 {
			_, err = m.Admit(id)
			must(err)
		} else {
			_, rest, err := m.AdmitChunk(id, first, nil)
			must(err)
			for _, k := range chunks {
				if len(rest) == 0 {
					break
				}
				k = min(k, len(rest))
				m.TakeCheckpoints(nil)
				m.EndStep()
				must(m.Append(id, rest[:k]...))
				rest = rest[k:]
			}
			if len(rest) > 0 {
				m.TakeCheckpoints(nil)
				m.EndStep()
				must(m.Append(id, rest...))
			}
		}
		must(m.Check())
		h := heldBy(t, m, cfg.Groups, id)
		floor := whole
		if first > 0 {
			floor = inChunks
		}
		if h < floor {
			t.Fatalf("n %d warm %v chunks %d %v: holds %d blocks, PrefillFloor says at least %d", n, warm, first, chunks, h, floor)
		}
		if counts {
			holds = append(holds, h)
		}
	}
	run(false, 0, nil, true)
	run(true, 0, nil, true)
	if n > 1 {
		// The rest but the last token, then it.
		run(false, n-1, nil, chunked)
		if hit := (n - 1) / bs * bs; hit < n-1 {
			run(true, n-1-hit, nil, chunked)
		}
	}
	if len(steps) > 0 {
		run(false, steps[0], steps[1:], false)
		run(true, steps[0], steps[1:], false)
	}
	floor := whole
	if chunked {
		floor = inChunks
	}
	if least := minOf(holds); least != floor {
		t.Fatalf("n %d chunked %v: the least hold is %d blocks (%v), PrefillFloor says %d", n, chunked, least, holds, floor)
	}
}

// floorT is what checkPrefillFloor needs of a *testing.T or *rapid.T.
type floorT interface {
	Helper()
	Fatalf(format string, args ...any)
}

func minOf(xs []int) int {
	m := xs[0]
	for _, x := range xs[1:] {
		m = min(m, x)
	}
	return m
}

// TestPrefillFloorInvalid: a length outside [1, MaxModelLen] or options
// Add refuses are ErrInvalid, a windowed sequence longer than the pool
// lets it grow ErrNever; without groups or window the answer is the
// blocks of the tokens.
func TestPrefillFloorInvalid(t *testing.T) {
	m, err := paged.New(paged.Config{BlockSize: 4, NumBlocks: 16, MaxModelLen: 40})
	noErr(t, err)
	for _, n := range []int{0, -1, 41} {
		if _, err := m.PrefillFloor(n, nil, true); !errors.Is(err, paged.ErrInvalid) {
			t.Errorf("PrefillFloor(%d): %v, want ErrInvalid", n, err)
		}
	}
	if f, err := m.PrefillFloor(9, nil, true); err != nil || f != 3 {
		t.Errorf("PrefillFloor(9) without groups: %d, %v; want 3", f, err)
	}
	// Options Add refuses.
	if _, err := m.PrefillFloor(9, &paged.SeqOptions{Window: -1}, true); !errors.Is(err, paged.ErrInvalid) {
		t.Errorf("PrefillFloor with Window -1: %v, want ErrInvalid", err)
	}
	h, err := paged.New(paged.Config{BlockSize: 4, NumBlocks: 16, Groups: floorLayouts[3].groups})
	noErr(t, err)
	if _, err := h.PrefillFloor(9, &paged.SeqOptions{Window: 4}, true); !errors.Is(err, paged.ErrInvalid) {
		t.Errorf("PrefillFloor with a SeqOptions.Window on groups: %v, want ErrInvalid", err)
	}
	// A window of 33 tokens spans 9 blocks of 4, more than the 8 a pool
	// of 9 has (seqLimit): no longer than the pool's 32 tokens.
	w, err := paged.New(paged.Config{BlockSize: 4, NumBlocks: 9, MaxModelLen: 100})
	noErr(t, err)
	win := &paged.SeqOptions{Window: 33}
	if f, err := w.PrefillFloor(32, win, true); err != nil || f != 8 {
		t.Errorf("PrefillFloor(32) of window 33: %d, %v; want 8", f, err)
	}
	if _, err := w.PrefillFloor(33, win, true); !errors.Is(err, paged.ErrNever) {
		t.Errorf("PrefillFloor(33) of window 33 in 8 blocks: %v, want ErrNever", err)
	}
	// A window of 8 holds 3 blocks at most: 100 tokens are fine.
	if f, err := w.PrefillFloor(100, &paged.SeqOptions{Window: 8}, true); err != nil || f != 2 {
		t.Errorf("PrefillFloor(100) of window 8: %d, %v; want 2", f, err)
	}
}
