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
}{
	{"window 8", []paged.Group{{Kind: paged.FullAttention}, {Kind: paged.SlidingWindow, Window: 8}}},
	{"window 1", []paged.Group{{Kind: paged.FullAttention}, {Kind: paged.SlidingWindow, Window: 1}}},
	{"window 5 + state", []paged.Group{{Kind: paged.FullAttention}, {Kind: paged.SlidingWindow, Window: 5}, {Kind: paged.State, Pages: 2}}},
	{"chunked 8", []paged.Group{{Kind: paged.FullAttention}, {Kind: paged.ChunkedLocal, Chunk: 8}}},
	{"chunked 6", []paged.Group{{Kind: paged.FullAttention}, {Kind: paged.ChunkedLocal, Chunk: 6}}},
	{"window 4 + shared", []paged.Group{{Kind: paged.FullAttention}, {Kind: paged.SlidingWindow, Window: 4}, {Kind: paged.Shared, Target: 1}}},
	{"two windows + chunked", []paged.Group{{Kind: paged.FullAttention}, {Kind: paged.SlidingWindow, Window: 3}, {Kind: paged.SlidingWindow, Window: 9}, {Kind: paged.ChunkedLocal, Chunk: 8}}},
}

// heldBy counts the blocks sequence id holds in every group but Shared
// ones (they hold none: their table is their target's).
func heldBy(t *testing.T, m *paged.Manager, groups []paged.Group, id paged.SeqID) int {
	t.Helper()
	n := 0
	for g := range groups {
		if groups[g].Kind == paged.Shared {
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
								id, err := m.Add(p, nil)
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
						id, err := m.Add(prompt, nil)
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
						floor, err := m.PrefillFloor(n, chunked)
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
					floor, err := m.PrefillFloor(n, chunked)
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

// TestPrefillFloorInvalid: a length outside [1, MaxModelLen] is
// ErrInvalid; without groups the answer is the blocks of the tokens.
func TestPrefillFloorInvalid(t *testing.T) {
	m, err := paged.New(paged.Config{BlockSize: 4, NumBlocks: 16, MaxModelLen: 40})
	noErr(t, err)
	for _, n := range []int{0, -1, 41} {
		if _, err := m.PrefillFloor(n, true); !errors.Is(err, paged.ErrInvalid) {
			t.Errorf("PrefillFloor(%d): %v, want ErrInvalid", n, err)
		}
	}
	if f, err := m.PrefillFloor(9, true); err != nil || f != 3 {
		t.Errorf("PrefillFloor(9) without groups: %d, %v; want 3", f, err)
	}
}
