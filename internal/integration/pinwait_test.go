package integration_test

import (
	"errors"
	"testing"

	"github.com/pagedkv/pagedkv/paged"
	"github.com/pagedkv/pagedkv/sched"
)

// TestSchedulerWaitsForExpiringPins: a server pins a system prompt for a
// while (paged.Manager.Pin, a prompt-caching API's "cached for N minutes")
// and serves requests with package sched. While the pin holds the room a
// request needs, the request must wait, not be aborted as one that can
// never run: the pin expires, and the room comes back. Before, the
// scheduler took blocks held beside it for blocks held for good, and
// aborted the head of the queue ("does not fit an empty pool") or a lone
// sequence that could not grow ("cannot grow past"). A pin without an
// expiry may hold its blocks for good: beside one, the scheduler aborts as
// it did (waiting could be forever, recomputing the prompt every step).
func TestSchedulerWaitsForExpiringPins(t *testing.T) {
	for _, tc := range []struct {
		name      string
		prompt    int
		maxTokens int
		// until is the pin's expiry; 0, a pin until Unpin, is held for
		// good as far as the scheduler can tell: it aborts as before.
		until int64
	}{
		{"head of the queue", 24, 2, 20},
		{"lone growing sequence", 16, 8, 20},
		{"head of the queue, lasting pin", 24, 2, 0},
		{"lone growing sequence, lasting pin", 16, 8, 0},
	} {
		t.Run(tc.name, func(t *testing.T) {
			m := pinnedPool(t, paged.Config{BlockSize: 4, NumBlocks: 16}, tc.until)
			s, err := sched.New(m, sched.Config{})
			if err != nil {
				t.Fatal(err)
			}
			prompt := make([]int32, tc.prompt)
			for i := range prompt {
				prompt[i] = int32(i + 1)
			}
			r, err := s.Submit(prompt, sched.Options{MaxTokens: tc.maxTokens})
			if err != nil {
				t.Fatal(err)
			}
			for now := int64(1); s.Busy(); now++ {
				if now > 100 {
					t.Fatal("no progress after 100 steps")
				}
				m.Advance(now)
				st, err := s.Schedule()
				if err != nil {
					t.Fatal(err)
				}
				if err := s.Update(make([]int32, st.Outputs)); err != nil {
					t.Fatal(err)
				}
				if err := m.Check(); err != nil {
					t.Fatal(err)
				}
			}
			if tc.until == 0 {
				if r.State() != sched.Aborted || !errors.Is(r.Err(), sched.ErrNever) {
					t.Fatalf("beside a pin without expiry the request is %v (%v)", r.State(), r.Err())
				}
				return
			}
			if r.State() != sched.Finished {
				t.Fatalf("the request is %v (%v), though the pin that held its room expired at 20", r.State(), r.Err())
			}
		})
	}
}

// pinnedPool is a manager of cfg whose cache holds a 41-token system
// prompt, 40 tokens of it (10 blocks of 4) pinned until step until (0: a
// pin without expiry).
func pinnedPool(t *testing.T, cfg paged.Config, until int64) *paged.Manager {
	t.Helper()
	m, err := paged.New(cfg)
	if err != nil {
		t.Fatal(err)
	}
	sys := make([]int32, 41)
	for i := range sys {
		sys[i] = int32(1000 + i)
	}
	id, _, err := m.Create(sys, nil)
	if err != nil {
		t.Fatal(err)
	}
	m.EndStep() // the step computing it ran: a pin may hold it
	if err := m.Free(id); err != nil {
		t.Fatal(err)
	}
	if err := m.SetPinBudget(10); err != nil {
		t.Fatal(err)
	}
	if _, held, err := m.Pin(sys, nil, until); err != nil || held != 40 {
		t.Fatalf("pin: %d tokens, %v", held, err)
	}
	return m
}
