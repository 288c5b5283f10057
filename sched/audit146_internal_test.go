package sched

import (
	"testing"

	"github.com/pagedkv/pagedkv/paged"
)

// tableHeld returns the blocks seq's table holds in group g: its entries
// past the released prefix (the null block, 0).
func tableHeld(t *testing.T, m *paged.Manager, seq paged.SeqID, g int) int {
	t.Helper()
	tab, err := m.TableGroup(seq, g)
	if err != nil {
		t.Fatal(err)
	}
	held := 0
	for k := len(tab) - 1; k >= 0 && tab[k] != 0; k-- {
		held++
	}
	return held
}

// TestAudit146ChunkBlocksIsTheChunksGrowth: chunkBlocks, the blocks the
// fork set-aside (forkNeed) holds for a forking prompt's chunks to come,
// is what its groups then take. A prompt of 2 samples (full attention, a
// chunked-local group, whose releases localGroup.dead gives exactly, and
// a State group of one page) is computed alone in chunks of the whole
// budget; after every chunk but the last, chunkBlocks is compared with
// the blocks its full attention and chunked-local groups hold in the
// later steps, less what they hold now:
//
//   - computed in chunks of the budget to the end, the growth at the last
//     chunk's step, a local group's release counted as nothing (M4072);
//   - with its last token alone (entry.lastAlone, set as lastAloneRoom
//     sets it), the more of the growth at that token's step and the
//     growth at the chunk before's step less the forks' page (which that
//     step does not take yet, M4068; the chunk before counted, M4069),
//     releases counted, and no less than the forks' page.
//
// The cases vary the block size, the local chunk, prefix caching, the
// budget and the prompt's length, rests that are a multiple of the budget
// and prompts ending inside a block among them.
func TestAudit146ChunkBlocksIsTheChunksGrowth(t *testing.T) {
	checks := 0
	for _, lastAlone := range []bool{false, true} {
		for _, bs := range []int{1, 2, 4} {
			for _, span := range []int{3, 4, 8} {
				for _, noCache := range []bool{false, true} {
					for _, budget := range []int{2, 3, 4, 6} {
						for _, p := range []int{9, 12, 13, 16} {
							checks += audit146ChunkBlocks(t, lastAlone, bs, span, noCache, budget, p)
						}
					}
				}
			}
		}
	}
	t.Logf("%d checks", checks)
}

func audit146ChunkBlocks(t *testing.T, lastAlone bool, bs, span int, noCache bool, budget, p int) (checks int) {
	t.Helper()
	m, err := paged.New(paged.Config{BlockSize: bs, NumBlocks: 200, MaxModelLen: 256, DisableOffload: true, DisablePrefixCaching: noCache,
		Groups: []paged.Group{{Kind: paged.FullAttention}, {Kind: paged.ChunkedLocal, Chunk: span}, {Kind: paged.State, Pages: 1}}})
	if err != nil {
		t.Fatal(err)
	}
	s, err := New(m, Config{ChunkedPrefill: true, MaxBatchTokens: budget})
	if err != nil {
		t.Fatal(err)
	}
	prompt := make([]int32, p)
	for k := range prompt {
		prompt[k] = int32(1 + k)
	}
	r, err := s.Submit(prompt, Options{N: 2, MaxTokens: 1})
	if err != nil {
		t.Fatal(err)
	}
	held := func(e *entry) [2]int {
		return [2]int{tableHeld(t, m, e.seq, 0), tableHeld(t, m, e.seq, 1)}
	}
	type point struct {
		length, count int    // the prompt's tokens then, chunkBlocks
		held          [2]int // the blocks of groups 0 and 1 held then
	}
	var points []point
	var before [2]int // held in the step of the chunk before the last token
	for step := 0; r.state != Finished; step++ {
		if step > 100 {
			t.Fatal("no progress")
		}
		st, err := s.Schedule()
		if err != nil {
			t.Fatal(err)
		}
		if len(s.running) == 1 && !r.forked {
			e := s.running[0]
			if step == 0 {
				if e.lastAlone {
					t.Fatal("the last token alone: the pool is too small")
				}
				e.lastAlone = lastAlone
			}
			if lastAlone && len(e.rest) == 1 {
				before = held(e)
			}
			if len(e.rest) == 0 {
				// The last chunk's step: what every earlier chunkBlocks counted.
				last, pages := held(e), s.forkPages
				for _, pt := range points {
					want := last[0] - pt.held[0] + max(0, last[1]-pt.held[1])
					if lastAlone {
						want = last[0] - pt.held[0] + last[1] - pt.held[1]
						if pt.length < p-1 {
							want = max(want, before[0]-pt.held[0]+before[1]-pt.held[1]-pages)
						}
						want = max(want, -pages)
					}
					if pt.count != want {
						t.Errorf("lastAlone %v, bs %d, chunked-local %d, noCache %v, budget %d, %d tokens: at %d tokens chunkBlocks %d, want %d",
							lastAlone, bs, span, noCache, budget, p, pt.length, pt.count, want)
					}
					checks++
				}
				points = nil
			}
		}
		out := make([]int32, st.Outputs)
		for i := range out {
			out[i] = 7
		}
		if err := s.Update(out); err != nil {
			t.Fatal(err)
		}
		if len(s.running) == 1 && !r.forked && len(s.running[0].rest) > 0 {
			e := s.running[0]
			points = append(points, point{e.length, s.chunkBlocks(e), held(e)})
		}
	}
	if checks == 0 {
		t.Fatalf("bs %d, %d tokens: nothing checked", bs, p)
	}
	return checks
}

// TestAudit146NextFitsAtTheRoomsEdge: nextFits, whether a swap-in's
// blocks and its next step's first token's fit the pool, counts a block
// in every full attention, sliding-window and chunked-local group (not
// only the full attention ones, M4063) where that token starts a block,
// none when the sequence holds tokens to compute already, and lets them
// take the pool's every block (M4064 kept the last one back).
func TestAudit146NextFitsAtTheRoomsEdge(t *testing.T) {
	m, err := paged.New(paged.Config{BlockSize: 2, NumBlocks: 20, DisableOffload: true,
		Groups: []paged.Group{{Kind: paged.FullAttention}, {Kind: paged.SlidingWindow, Window: 4}, {Kind: paged.ChunkedLocal, Chunk: 4}}})
	if err != nil {
		t.Fatal(err)
	}
	s, err := New(m, Config{})
	if err != nil {
		t.Fatal(err)
	}
	room := s.room()
	if room < 3 {
		t.Fatalf("room %d", room)
	}
	for _, tc := range []struct {
		length, computed, extra int
	}{
		{4, 4, 3}, // the next token starts a block in each of the 3 groups
		{5, 5, 0}, // inside a block
		{5, 4, 0}, // a token to compute already
	} {
		e := &entry{length: tc.length, computed: tc.computed}
		if !s.nextFits(e, room-tc.extra) {
			t.Errorf("%d tokens, %d computed: %d blocks and the next token's %d do not fit a room of %d", tc.length, tc.computed, room-tc.extra, tc.extra, room)
		}
		if s.nextFits(e, room-tc.extra+1) {
			t.Errorf("%d tokens, %d computed: %d blocks and the next token's %d fit a room of %d", tc.length, tc.computed, room-tc.extra+1, tc.extra, room)
		}
	}
}

// TestAudit146ReleasesAtLastMatchesTheManager: releasesAtLast, which lets
// lastAloneRoom admit a whole prompt again without its last token, says
// whether a local group of the prompt holds more blocks now than in the
// step computing that token alone: the manager's answer, a second copy
// of the prompt admitted without its last token, which is then appended.
// With a prompt as long as the local span, the token alone still reads
// every block (judged a position late, at the prompt's length, M4078, it
// released the first).
func TestAudit146ReleasesAtLastMatchesTheManager(t *testing.T) {
	checks := 0
	for _, bs := range []int{1, 2} {
		for _, span := range []int{2, 3, 4, 6} {
			for _, kind := range []paged.GroupKind{paged.ChunkedLocal, paged.SlidingWindow} {
				for p := 2; p <= 13; p++ {
					g := paged.Group{Kind: kind, Chunk: span}
					if kind == paged.SlidingWindow {
						g = paged.Group{Kind: kind, Window: span}
					}
					m, err := paged.New(paged.Config{BlockSize: bs, NumBlocks: 100, MaxModelLen: 64, DisableOffload: true, DisablePrefixCaching: true,
						Groups: []paged.Group{{Kind: paged.FullAttention}, g}})
					if err != nil {
						t.Fatal(err)
					}
					s, err := New(m, Config{})
					if err != nil {
						t.Fatal(err)
					}
					prompt := make([]int32, p)
					for k := range prompt {
						prompt[k] = int32(1 + k)
					}
					whole, err := m.Add(prompt, nil)
					if err != nil {
						t.Fatal(err)
					}
					if _, err := m.Admit(whole); err != nil {
						t.Fatal(err)
					}
					alone, err := m.Add(prompt, nil)
					if err != nil {
						t.Fatal(err)
					}
					if _, _, err := m.AdmitChunk(alone, p-1, nil); err != nil {
						t.Fatal(err)
					}
					if err := m.Append(alone, prompt[p-1]); err != nil {
						t.Fatal(err)
					}
					want := tableHeld(t, m, whole, 1) > tableHeld(t, m, alone, 1)
					if got := s.releasesAtLast(&entry{seq: whole, length: p}); got != want {
						t.Errorf("bs %d, %v %d, %d tokens: releasesAtLast %v, the manager %v", bs, kind, span, p, got, want)
					}
					checks++
				}
			}
		}
	}
	t.Logf("%d checks", checks)
}
