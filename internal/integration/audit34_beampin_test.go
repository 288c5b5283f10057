package integration_test

import (
	"errors"
	"testing"

	"github.com/pagedkv/pagedkv/paged"
	"github.com/pagedkv/pagedkv/sched"
)

// TestBeamsWaitForExpiringPins is TestSchedulerWaitsForExpiringPins for a
// beam search: beams that cannot grow alone in the pool while prefix pins
// that expire hold the room they need must restart (or swap) and wait for
// the pins to end, as a lone sequence does, not be aborted as beams that
// never fit. Beside a pin without expiry they are aborted, as before.
func TestBeamsWaitForExpiringPins(t *testing.T) {
	for _, tc := range []struct {
		name  string
		until int64
		swap  bool
	}{
		{"recompute", 30, false},
		{"swap", 30, true},
		{"recompute, lasting pin", 0, false},
	} {
		t.Run(tc.name, func(t *testing.T) {
			cfg := paged.Config{BlockSize: 4, NumBlocks: 16}
			if tc.swap {
				cfg.HostBlocks = 16
			}
			m := pinnedPool(t, cfg, tc.until)
			scfg := sched.Config{}
			if tc.swap {
				scfg.Preemption = sched.Swap
			}
			s, err := sched.New(m, scfg)
			if err != nil {
				t.Fatal(err)
			}
			prompt := make([]int32, 8)
			for i := range prompt {
				prompt[i] = int32(i + 1)
			}
			// Two beams, each its own parent: they diverge at once and
			// take 2 blocks each past the prompt's 2 by their 8th token,
			// more than the 5 or so the pin leaves.
			r, err := s.Submit(prompt, sched.Options{BeamWidth: 2, MaxTokens: 12})
			if err != nil {
				t.Fatal(err)
			}
			tok := int32(100)
			for now := int64(1); s.Busy(); now++ {
				if now > 200 {
					t.Fatal("no progress after 200 steps")
				}
				m.Advance(now)
				st, err := s.Schedule()
				if err != nil {
					t.Fatal(err)
				}
				toks := make([]int32, st.Outputs)
				parents := make([]int, st.Outputs)
				k := 0
				for _, sc := range st.Scheduled {
					for j := range sc.Outputs {
						toks[k], parents[k] = tok, sc.Sample+j
						tok++
						k++
					}
				}
				if err := s.UpdateBeams(toks, parents); err != nil {
					t.Fatal(err)
				}
				if err := m.Check(); err != nil {
					t.Fatal(err)
				}
			}
			if tc.until == 0 {
				if r.State() != sched.Aborted || !errors.Is(r.Err(), sched.ErrNever) {
					t.Fatalf("beside a pin without expiry the beam search is %v (%v)", r.State(), r.Err())
				}
				return
			}
			if r.State() != sched.Finished {
				t.Fatalf("the beam search is %v (%v), though the pin that held its room expired at %d; stats %+v", r.State(), r.Err(), tc.until, s.Stats())
			}
			// It waited by the path configured: swapped out, or restarted.
			if st := s.Stats(); (tc.swap && st.SwappedOut == 0) || (!tc.swap && st.Restarts == 0) || st.Aborted != 0 {
				t.Fatalf("stats %+v", st)
			}
		})
	}
}
