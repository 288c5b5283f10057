package paged_test

import (
	"errors"
	"fmt"
	"testing"

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
func heldBy(t *testing.T, m *paged.Manager, groups []paged.Group, id paged.SeqID) int {
	t.Helper()
	n := 0
	for g := range max(1, len(groups)) {
		if len(groups) > 0 && groups[g].Kind == paged.Shared {
			continue
		}
		tab, err := m.TableGroup(id, g)
		noErr(t, err)
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
			chunked := c.chunked
			var opts *paged.SeqOptions
			if l.window > 0 {
				opts = &paged.SeqOptions{Window: l.window}
			}
			cfg := paged.Config{BlockSize: bs, NumBlocks: 200, Groups: l.groups, DisablePrefixCaching: c.off}
			t.Run(fmt.Sprintf("%s/chunked=%v/caching=%v", l.name, chunked, !c.off), func(t *testing.T) {
				for n := 1; n <= 37; n++ {
					prompt := make([]int32, n)
					for i := range prompt {
						prompt[i] = int32(1000*n + i)
					}
					var holds []int
					// warm computes first the blocks of the prompt
					// before its last token and a block of other
					// tokens, then the whole prompt and more, whose
					// lookup branches off at those blocks: a state
					// checkpoint is taken there.
					run := func(warm bool, chunk int) {
						m, err := paged.New(cfg)
						noErr(t, err)
						if hit := (n - 1) / bs * bs; warm && hit > 0 {
							other := append(prompt[:hit:hit], 9, 9, 9, 9)
							for _, p := range [][]int32{other, append(prompt, 7, 7, 7, 7)} {
								id, err := m.Add(p, opts)
								noErr(t, err)
								_, err = m.Admit(id)
								noErr(t, err)
								m.TakeCheckpoints(nil)
								m.EndStep()
								noErr(t, m.Append(id, 8))
								m.EndStep()
								noErr(t, m.Free(id))
							}
						}
						id, err := m.Add(prompt, opts)
						noErr(t, err)
						if chunk == 0 {
							_, err = m.Admit(id)
							noErr(t, err)
						} else {
							// The chunk, the rest but the last token,
							// the last token, a step each.
							_, rest, err := m.AdmitChunk(id, chunk, nil)
							noErr(t, err)
							if len(rest) > 1 {
								m.EndStep()
								noErr(t, m.Append(id, rest[:len(rest)-1]...))
								rest = rest[len(rest)-1:]
							}
							if len(rest) > 0 {
								m.EndStep()
								noErr(t, m.Append(id, rest...))
							}
						}
						noErr(t, m.Check())
						holds = append(holds, heldBy(t, m, l.groups, id))
						floor, err := m.PrefillFloor(n, opts, chunked)
						noErr(t, err)
						if h := holds[len(holds)-1]; h < floor {
							t.Fatalf("n %d warm %v chunk %d: holds %d blocks, PrefillFloor says at least %d", n, warm, chunk, h, floor)
						}
					}
					run(false, 0)
					run(true, 0)
					if chunked && n > 1 {
						run(false, n-1)
						// After a hit of the blocks before the last
						// token, the rest but the last token, then it.
						if hit := (n - 1) / bs * bs; hit < n-1 {
							run(true, n-1-hit)
						}
					}
					m, err := paged.New(cfg)
					noErr(t, err)
					floor, err := m.PrefillFloor(n, opts, chunked)
					noErr(t, err)
					if least := minOf(holds); least != floor {
						t.Errorf("n %d: the least hold is %d blocks (%v), PrefillFloor says %d", n, least, holds, floor)
					}
				}
			})
		}
	}
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
