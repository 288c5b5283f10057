package fleet_test

import (
	"errors"
	"testing"

	"pgregory.net/rapid"

	"github.com/pagedkv/pagedkv/fleet/fleettest"
	"github.com/pagedkv/pagedkv/paged"
)

// TestAudit16CheckpointEventsMatchSnapshot drives hybrid paged managers
// with state groups through every operation that moves or drops
// checkpoint pages (admission, TakeCheckpoints, eviction, offload,
// Onboard ahead of admission, SwapOut and SwapIn, preemption, forks,
// frees, pins, ResetCache) and replays the state groups' events into a
// map of checkpoints to their medium: a checkpoint is stored only while
// not held, removed only while held and from the medium it is on, moved
// only from that medium to the other, and after every operation the map
// is the snapshot's checkpoints (what the manager can hit), each on the
// medium the snapshot says (the device while every page is there).
func TestAudit16CheckpointEventsMatchSnapshot(t *testing.T) {
	rapid.Check(t, func(t *rapid.T) {
		cfg := fleettest.DrawHybridConfig(t)
		if rapid.Bool().Draw(t, "forceState") {
			cfg.Groups = append(cfg.Groups, paged.Group{Kind: paged.State, Pages: rapid.IntRange(1, 3).Draw(t, "pages")})
		}
		if rapid.Bool().Draw(t, "forceHost") && cfg.HostBlocks == 0 {
			cfg.HostBlocks = rapid.IntRange(4, 32).Draw(t, "hostBlocks")
		}
		if rapid.Bool().Draw(t, "tight") {
			cfg.NumBlocks = rapid.IntRange(10, 20).Draw(t, "tightBlocks")
		}
		m, err := paged.New(cfg)
		if err != nil {
			t.Fatal(err)
		}
		bs := m.BlockSize()
		if err := m.SetPinBudget(cfg.NumBlocks / 3); err != nil {
			t.Fatal(err)
		}
		state := map[int]bool{}
		for g, gr := range cfg.Groups {
			state[g] = gr.Kind == paged.State
		}
		type key struct {
			h paged.Hash
			g int
		}
		held := map[key]paged.Medium{}
		var evs []paged.Event
		drain := func(step int, what string) {
			evs = m.DrainEvents(evs[:0])
			for _, ev := range evs {
				if ev.Kind == paged.AllBlocksCleared {
					clear(held)
					continue
				}
				if !state[ev.Group] {
					continue
				}
				for _, h := range ev.Hashes {
					k := key{h, ev.Group}
					at, ok := held[k]
					switch ev.Kind {
					case paged.BlockStored:
						if ok {
							t.Fatalf("step %d (%s): checkpoint %x of group %d stored twice", step, what, h[:4], ev.Group)
						}
						held[k] = ev.Medium
					case paged.BlockRemoved:
						if !ok || at != ev.Medium {
							t.Fatalf("step %d (%s): checkpoint %x of group %d removed from %v while held %v on %v", step, what, h[:4], ev.Group, ev.Medium, ok, at)
						}
						delete(held, k)
					case paged.BlockMoved:
						if !ok || at != ev.From || ev.From == ev.Medium {
							t.Fatalf("step %d (%s): checkpoint %x of group %d moved %v to %v while held %v on %v", step, what, h[:4], ev.Group, ev.From, ev.Medium, ok, at)
						}
						held[k] = ev.Medium
					}
				}
			}
			var snap paged.Snapshot
			m.Snapshot(&snap)
			want := map[key]paged.Medium{}
			for _, b := range snap.Blocks {
				if state[b.Group] {
					want[key{b.Hash, b.Group}] = b.Medium
				}
			}
			for k, md := range want {
				if at, ok := held[k]; !ok || at != md {
					t.Fatalf("step %d (%s): whole checkpoint %x of group %d on %v reported %v on %v", step, what, k.h[:4], k.g, md, ok, at)
				}
			}
			for k := range held {
				if _, ok := want[k]; !ok {
					t.Fatalf("step %d (%s): checkpoint %x of group %d reported held, not in the snapshot", step, what, k.h[:4], k.g)
				}
			}
		}
		var seqs []paged.SeqID
		rests := map[paged.SeqID][]int32{}
		var swapped []paged.SeqID
		var pins []paged.PinID
		for step := range rapid.IntRange(1, 200).Draw(t, "steps") {
			op := rapid.IntRange(0, 10).Draw(t, "op")
			what := ""
			switch {
			case op <= 3 || len(seqs) == 0:
				what = "admit"
				prompt := fleettest.HybridPrompt(t, bs)
				id, err := m.Add(prompt, nil)
				if err != nil {
					t.Fatal(err)
				}
				if cfg.HostBlocks > 0 && rapid.Bool().Draw(t, "onboard") {
					if _, err := m.Onboard(id); err != nil && !errors.Is(err, paged.ErrNoSpace) {
						t.Fatal(err)
					}
					m.TakeSwaps(nil)
				}
				admit := func() error { _, err := m.Admit(id); return err }
				if rapid.IntRange(0, 3).Draw(t, "chunked") == 0 {
					// A long prompt's first chunk, the rest appended later.
					admit = func() error {
						_, rest, err := m.AdmitChunk(id, rapid.IntRange(1, 2*bs).Draw(t, "maxNew"), nil)
						if err == nil && len(rest) > 0 {
							rests[id] = rest
						}
						return err
					}
				}
				if err := admit(); err != nil {
					if !errors.Is(err, paged.ErrNoSpace) && !errors.Is(err, paged.ErrNever) {
						t.Fatal(err)
					}
					if err := m.Free(id); err != nil {
						t.Fatal(err)
					}
					break
				}
				seqs = append(seqs, id)
				if rapid.IntRange(0, 3).Draw(t, "later") > 0 {
					// Else the step's directives are taken by a later
					// operation: the sequence may be preempted, freed,
					// appended to or swapped out first.
					m.TakeCheckpoints(nil)
					m.TakeCopies(nil)
					m.TakeSwaps(nil)
				}
			case op == 4:
				what = "free"
				i := rapid.IntRange(0, len(seqs)-1).Draw(t, "free")
				if err := m.Free(seqs[i]); err != nil {
					t.Fatal(err)
				}
				seqs = append(seqs[:i], seqs[i+1:]...)
			case op == 5:
				what = "preempt"
				i := rapid.IntRange(0, len(seqs)-1).Draw(t, "preempt")
				if running, _ := m.Running(seqs[i]); running {
					if err := m.Preempt(seqs[i]); err != nil {
						t.Fatal(err)
					}
				}
			case op == 6 && cfg.HostBlocks > 0:
				what = "swap"
				if len(swapped) > 0 && rapid.Bool().Draw(t, "in") {
					id := swapped[0]
					if err := m.SwapIn(id); err == nil {
						swapped = swapped[1:]
						seqs = append(seqs, id)
					} else if !errors.Is(err, paged.ErrNoSpace) && !errors.Is(err, paged.ErrNever) {
						t.Fatal(err)
					}
				} else {
					i := rapid.IntRange(0, len(seqs)-1).Draw(t, "out")
					if running, _ := m.Running(seqs[i]); running {
						if err := m.SwapOut(seqs[i]); err == nil {
							swapped = append(swapped, seqs[i])
							seqs = append(seqs[:i], seqs[i+1:]...)
						} else if !errors.Is(err, paged.ErrNoSpace) && !errors.Is(err, paged.ErrUncomputed) {
							t.Fatal(err)
						}
					}
				}
				m.TakeSwaps(nil)
				m.TakeCopies(nil)
			case op == 7:
				what = "pin"
				if len(pins) > 0 && rapid.Bool().Draw(t, "unpin") {
					if err := m.Unpin(pins[0]); err != nil {
						t.Fatal(err)
					}
					pins = pins[1:]
				} else if p, _, err := m.Pin(fleettest.HybridPrompt(t, bs), nil, 0); err == nil {
					pins = append(pins, p)
				}
			case op == 8 && rapid.IntRange(0, 3).Draw(t, "rare") == 0:
				what = "reset"
				if err := m.ResetCache(); err != nil && !errors.Is(err, paged.ErrCacheInUse) {
					t.Fatal(err)
				}
			case op == 9:
				what = "fork"
				i := rapid.IntRange(0, len(seqs)-1).Draw(t, "fork")
				if running, _ := m.Running(seqs[i]); running {
					if c, err := m.Fork(seqs[i]); err == nil {
						seqs = append(seqs, c)
					}
				}
			case op == 10 && rapid.Bool().Draw(t, "uncompute"):
				what = "uncompute"
				i := rapid.IntRange(0, len(seqs)-1).Draw(t, "useq")
				if running, _ := m.Running(seqs[i]); running {
					n, _ := m.Len(seqs[i])
					_ = m.Uncompute(seqs[i], rapid.IntRange(0, n).Draw(t, "computed"))
				}
			default:
				what = "append"
				i := rapid.IntRange(0, len(seqs)-1).Draw(t, "append")
				if rest, ok := rests[seqs[i]]; ok {
					if running, _ := m.Running(seqs[i]); running {
						if err := m.Append(seqs[i], rest...); err == nil {
							delete(rests, seqs[i])
						}
					}
					break
				}
				if running, _ := m.Running(seqs[i]); running {
					tail := make([]int32, rapid.IntRange(1, 2*bs).Draw(t, "tail"))
					for k := range tail {
						tail[k] = int32(rapid.IntRange(0, 3).Draw(t, "tok"))
					}
					_ = m.Append(seqs[i], tail...)
				}
			}
			if rapid.IntRange(0, 3).Draw(t, "step") == 0 {
				m.TakeCheckpoints(nil)
				m.TakeCopies(nil)
				m.TakeSwaps(nil)
			}
			if err := m.Check(); err != nil {
				t.Fatal(err)
			}
			drain(step, what)
		}
	})
}
