package sched_test

import (
	"errors"
	"fmt"
	"testing"

	"github.com/stretchr/testify/require"

	"github.com/pagedkv/pagedkv/paged"
	"github.com/pagedkv/pagedkv/sched"
)

// a49Submit is a request a49Run submits before the step numbered at.
type a49Submit struct {
	at     int
	prompt []int32
	opts   sched.Options
}

// a49Run runs the submissions subs to the end and returns how many
// requests were aborted (-1 when Submit refused one as never fitting), and a description of the first step that
// aborted a request and scheduled nothing while the next step scheduled
// something without an abort and with no blocks parked between them (the
// step could have run it: audit 49), or "".
func a49Run(t *testing.T, mcfg paged.Config, cfg sched.Config, subs []a49Submit) (int, string) {
	t.Helper()
	m := newManager(t, mcfg)
	aborts := 0
	cfg.Hooks.Aborted = func(*sched.Request, error) { aborts++ }
	s, err := sched.New(m, cfg)
	require.NoError(t, err)
	tok := int32(100)
	emptied, bad := false, ""
	total := 0
	for step := 1; step <= len(subs) || s.Busy(); step++ {
		require.Less(t, step, 500, "no progress")
		for _, x := range subs {
			if x.at == step {
				if _, err := s.Submit(x.prompt, x.opts); errors.Is(err, sched.ErrNever) {
					return -1, "" // a request that never fits this pool: no run
				} else {
					require.NoError(t, err)
				}
			}
		}
		if !s.Busy() {
			continue
		}
		aborts = 0
		st, err := s.Schedule()
		require.NoError(t, err)
		total += aborts
		if emptied && aborts == 0 && len(st.Scheduled) > 0 && bad == "" {
			bad = fmt.Sprintf("step %d aborted a request and scheduled nothing, step %d scheduled %d sequences with nothing aborted", step-1, step, len(st.Scheduled))
		}
		emptied = len(st.Scheduled) == 0 && aborts > 0 && m.Stats().ParkedBlocks == 0
		a46Update(t, s, st, &tok)
	}
	return total, bad
}

// TestAudit49AbortLeavesIdlePool: a request aborted in a step's decode
// phase (a beam search that cannot grow even alone) counts as preempted in
// that step, and lastAloneRoom did not count a pool as idle in a step that
// preempted: a forking head admitted after the abort, whose admission left
// less than its forks' set-aside (forkRoom), was taken back
// (undoAdmit), so the step ran nothing, and the next step, the pool idle
// with the same room, kept the same admission. The twin property's seed
// 9032983466131154124 (TestAudit46Twins), as a grid: a 2-beam search and
// a forking prompt (N=3) behind it, with a State group.
func TestAudit49AbortLeavesIdlePool(t *testing.T) {
	aborted, runs, failed := 0, 0, 0
	for k := range 4 {
		layout := a46Layouts[4+k%2]
		bs := 3
		chunked := k >= 2
		for nb := 8; nb <= 20; nb++ {
			for plen := 1; plen <= 16; plen++ {
				for _, mt := range []int{4, 8, 12} {
					mcfg := paged.Config{BlockSize: bs, NumBlocks: nb, Groups: layout, MaxModelLen: 64}
					prompt := make([]int32, plen)
					for i := range prompt {
						prompt[i] = int32(10 + i)
					}
					subs := []a49Submit{
						{1, []int32{1, 2, 3}, sched.Options{MaxTokens: mt, BeamWidth: 2}},
						{2, prompt, sched.Options{MaxTokens: 2, N: 3}},
					}
					n, bad := a49Run(t, mcfg, sched.Config{MaxRunning: 4, ChunkedPrefill: chunked}, subs)
					if n < 0 {
						continue
					}
					runs++
					aborted += n
					if bad != "" {
						failed++
						t.Errorf("layout %d, chunked %v, %d blocks, prompt %d, beams' MaxTokens %d: %s", 4+k%2, chunked, nb, plen, mt, bad)
					}
				}
			}
		}
	}
	t.Logf("%d runs, %d aborted, %d failed", runs, aborted, failed)
	require.Positive(t, aborted)
}

// TestAudit49SwapInAbortAdmitsNext: a beam search swapped out beside a
// running request, swapped in alone once that one ended, found no block
// for its beams' next tokens and was aborted in the admission phase
// (preemptGroup; swapIn does the same for one sequence): admitAll then
// stopped, so the step ran nothing, while the request behind it fitted
// the pool the abort emptied, and the next step admitted it.
func TestAudit49SwapInAbortAdmitsNext(t *testing.T) {
	aborted, runs := 0, 0
	for nb := 4; nb <= 9; nb++ {
		for other := 1; other <= 8; other++ {
			for _, mt := range []int{4, 8, 12, 16} {
				mcfg := paged.Config{BlockSize: 2, NumBlocks: nb, HostBlocks: 16, MaxModelLen: 64}
				cfg := sched.Config{MaxRunning: 4, Preemption: sched.Swap}
				opts := sched.Options{MaxTokens: mt, BeamWidth: 2}
				subs := []a49Submit{
					{1, []int32{1}, sched.Options{MaxTokens: other}},
					{1, []int32{5, 6, 7}, opts},
					{2, []int32{9}, sched.Options{MaxTokens: 1}},
				}
				n, bad := a49Run(t, mcfg, cfg, subs)
				if n < 0 {
					continue
				}
				runs++
				aborted += n
				if bad != "" {
					t.Errorf("%d blocks, the first request %d tokens, beams' MaxTokens %d: %s", nb, other, mt, bad)
				}
			}
		}
	}
	t.Logf("%d runs, %d aborted", runs, aborted)
	require.Positive(t, aborted)
}
