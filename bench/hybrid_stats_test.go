package bench

import (
	"testing"

	"github.com/stretchr/testify/require"

	"github.com/pagedkv/pagedkv/paged"
	"github.com/pagedkv/pagedkv/sched"
)

// managerAdmittedHits replays c's W1 loop (docs/workloads.md section 4) with
// its own driver and adds up, from the manager's own Stats, the prefix
// hits of the admissions that succeeded: the growth of PrefixHitTokens
// from the start of an admission phase, or from the previous successful
// admission, to a successful admission (an admission phase stops at its
// first refusal, whose lookup is left out). It also returns the replay's
// steps and preemptions, to show it is the same replay.
func managerAdmittedHits(t *testing.T, c W1Config) (hits, steps, preemptions int64) {
	t.Helper()
	c = c.withDefaults()
	mcfg := paged.Config{BlockSize: c.BlockSize, NumBlocks: c.Blocks, MaxModelLen: c.MaxModelLen, UnifiedFreeQueue: c.Compat == "vllm", Hasher: paged.FastHasher{}, Groups: c.Groups}
	if gs := c.groups(); len(gs) > 1 && c.Groups == nil {
		mcfg.Groups = gs
	}
	m, err := paged.New(mcfg)
	require.NoError(t, err)
	var mark uint64
	s, err := sched.New(m, sched.Config{
		MaxRunning:           c.MaxNumSeqs,
		AdmitAfterPreemption: true,
		Hooks: sched.Hooks{
			Phase: func(p sched.Phase) {
				if p == sched.PhaseAdmit {
					mark = m.Stats().PrefixHitTokens
				}
			},
			Scheduled: func(sc *sched.Scheduled) {
				if sc.Admitted {
					now := m.Stats().PrefixHitTokens
					hits += int64(now - mark)
					mark = now
				}
			},
		},
	})
	require.NoError(t, err)
	trace := c.Trace
	if trace == nil {
		trace = AzureConv()
	}
	var prompt []int32
	for i := range c.Requests {
		var gen int
		prompt, gen = w1Prompt(prompt[:0], trace, i, c.MaxModelLen)
		_, err := s.Submit(prompt, sched.Options{MaxTokens: gen})
		require.NoError(t, err)
	}
	var tokens []int32
	for s.Busy() {
		st, err := s.Schedule()
		require.NoError(t, err)
		m.TakeCopies(nil)
		m.TakeCheckpoints(nil)
		tokens = tokens[:0]
		for _, sc := range st.Scheduled {
			tokens = append(tokens, int32((int(sc.Request.ID()-1)*31+sc.Generated)%32000+1))
		}
		require.NoError(t, s.Update(tokens))
	}
	ss := s.Stats()
	return hits, ss.Steps, ss.Preemptions
}

// TestHybridHitsMatchManagerStats checks the hybrid study's admitted hit
// tokens (README, "Hybrid models": W1's 756,976, W=128, W=1,024 and
// Qwen3-Next's state layout, at 2,000 requests and 8,192 blocks), read
// from its allocation digest, against the manager's own hit counter on the
// same replays, in both modes; with -short, at 300 requests and 1,024
// blocks.
func TestHybridHitsMatchManagerStats(t *testing.T) {
	_, qwen, err := stateLayout("Qwen3-Next-80B-A3B", 16)
	require.NoError(t, err)
	requests, blocks := 2000, 8192
	if testing.Short() {
		requests, blocks = 300, 1024
	}
	for _, c := range []W1Config{
		{},
		{Window: 128},
		{Window: 1024},
		{Groups: qwen},
	} {
		for _, compat := range []string{"vllm", ""} {
			c.Requests, c.Blocks, c.Compat, c.Hasher = requests, blocks, compat, paged.FastHasher{}
			h, err := hybridHits(c.withDefaults())
			require.NoError(t, err)
			hits, steps, preemptions := managerAdmittedHits(t, c)
			require.Equal(t, int64(h.Steps), steps, "window %d, %d groups, compat %q: not the same replay", c.Window, len(c.Groups), compat)
			require.Equal(t, int64(h.Preemptions), preemptions)
			require.Equal(t, hits, h.AdmittedHitTokens, "window %d, %d groups, compat %q", c.Window, len(c.Groups), compat)
			require.Equal(t, h.AdmittedHitTokens, h.FirstHitTokens+h.ResumeHitTokens)
		}
	}
}
