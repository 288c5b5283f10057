package sched_test

import (
	"fmt"
	"testing"
	"time"

	"github.com/stretchr/testify/assert"
	"github.com/stretchr/testify/require"

	"github.com/pagedkv/pagedkv/paged"
	"github.com/pagedkv/pagedkv/sched"
)

// beamStep schedules a step and checks that the beams of every beam
// search in it sit side by side, in beam order.
func beamStep(t *testing.T, s *sched.Scheduler) *sched.Step {
	t.Helper()
	st, err := s.Schedule()
	require.NoError(t, err)
	for i := 1; i < len(st.Scheduled); i++ {
		a, b := st.Scheduled[i-1], st.Scheduled[i]
		if a.Request == b.Request {
			require.Less(t, a.Sample, b.Sample, "beams of request %d out of order", a.Request.ID())
		}
	}
	return st
}

// ownParents fills tokens and parents (reused) for an UpdateBeams in
// which every output extends its own sample, output i of an entry the
// token 100 + its sample index.
func ownParents(st *sched.Step, tokens []int32, parents []int) ([]int32, []int) {
	tokens, parents = tokens[:0], parents[:0]
	for _, sc := range st.Scheduled {
		for j := range sc.Outputs {
			tokens = append(tokens, int32(100+sc.Sample+j))
			parents = append(parents, sc.Sample+j)
		}
	}
	return tokens, parents
}

func tokensOf(t *testing.T, m *paged.Manager, r *sched.Request, i int) []int32 {
	t.Helper()
	toks, err := m.Tokens(r.Seq(i))
	require.NoError(t, err)
	return toks
}

// A width-3 beam search: the prompt's step forks the beams; then beam 0 is
// chosen twice, beam 1 never: beam 1 becomes a fork of beam 0 and its old
// sequence is freed.
func TestBeamReparent(t *testing.T) {
	m := newManager(t, paged.Config{BlockSize: 2, NumBlocks: 32})
	s, err := sched.New(m, sched.Config{})
	require.NoError(t, err)
	r, err := s.Submit([]int32{1, 2, 3, 4}, sched.Options{MaxTokens: 4, BeamWidth: 3})
	require.NoError(t, err)
	assert.Equal(t, 3, r.BeamWidth())
	assert.Zero(t, r.Beams(), "no beams before the prompt's step")

	st := beamStep(t, s)
	require.Len(t, st.Scheduled, 1)
	assert.Equal(t, 3, st.Scheduled[0].Outputs)
	// The prompt's step: every beam is its own parent.
	require.ErrorIs(t, s.UpdateBeams([]int32{10, 11, 12}, []int{0, 0, 0}), sched.ErrInvalid)
	require.NoError(t, s.UpdateBeams([]int32{10, 11, 12}, []int{0, 1, 2}))
	assert.Equal(t, 3, r.Beams())
	assert.Equal(t, int64(2), s.Stats().Forks)

	st = beamStep(t, s)
	require.Len(t, st.Scheduled, 3)
	old1 := r.Seq(1)
	require.NoError(t, s.UpdateBeams([]int32{20, 21, 22}, []int{0, 0, 2}))
	require.NoError(t, m.Check())
	assert.Equal(t, int64(3), s.Stats().Forks)
	_, err = m.Len(old1)
	assert.ErrorIs(t, err, paged.ErrUnknownSequence, "the beam no one chose is freed")
	// The manager holds each beam's tokens up to its pending one.
	assert.Equal(t, []int32{1, 2, 3, 4, 10}, tokensOf(t, m, r, 0))
	assert.Equal(t, []int32{1, 2, 3, 4, 10}, tokensOf(t, m, r, 1))
	assert.Equal(t, []int32{1, 2, 3, 4, 12}, tokensOf(t, m, r, 2))

	beamStep(t, s)
	require.NoError(t, s.UpdateBeams([]int32{30, 31, 32}, []int{2, 1, 2}))
	assert.Equal(t, []int32{1, 2, 3, 4, 12, 22}, tokensOf(t, m, r, 0))
	assert.Equal(t, []int32{1, 2, 3, 4, 10, 21}, tokensOf(t, m, r, 1))
	assert.Equal(t, []int32{1, 2, 3, 4, 12, 22}, tokensOf(t, m, r, 2))
	require.NoError(t, m.Check())
	drain(t, s, 1)
	assert.Equal(t, sched.Finished, r.State())
	assert.Zero(t, m.Stats().Sequences)
	assert.Zero(t, m.Stats().UsedBlocks)
}

func TestBeamSubmitErrors(t *testing.T) {
	m := newManager(t, paged.Config{BlockSize: 4, NumBlocks: 64})
	s, err := sched.New(m, sched.Config{MaxRunning: 8, MaxBatchTokens: 4})
	require.NoError(t, err)
	for name, c := range map[string]struct {
		opts sched.Options
		err  error
	}{
		"negative":       {sched.Options{MaxTokens: 1, BeamWidth: -1}, sched.ErrInvalid},
		"above samples":  {sched.Options{MaxTokens: 1, BeamWidth: sched.MaxSamples + 1}, sched.ErrInvalid},
		"above running":  {sched.Options{MaxTokens: 1, BeamWidth: 9}, sched.ErrInvalid},
		"with N":         {sched.Options{MaxTokens: 1, BeamWidth: 2, N: 2}, sched.ErrInvalid},
		"above budget":   {sched.Options{MaxTokens: 1, BeamWidth: 5}, sched.ErrNever},
		"prompt budget":  {sched.Options{MaxTokens: 1, BeamWidth: 2, Seq: nil}, nil},
		"too long alone": {sched.Options{MaxTokens: 300, BeamWidth: 2}, sched.ErrNever},
	} {
		t.Run(name, func(t *testing.T) {
			seqs := m.Stats().Sequences
			_, err := s.Submit([]int32{1, 2, 3}, c.opts)
			if c.err == nil {
				require.NoError(t, err)
				return
			}
			require.ErrorIs(t, err, c.err)
			assert.Equal(t, seqs, m.Stats().Sequences, "a refused Submit changes nothing")
		})
	}
	_, err = s.Submit([]int32{1, 2, 3, 4, 5}, sched.Options{MaxTokens: 1, BeamWidth: 2})
	assert.ErrorIs(t, err, sched.ErrNever, "a prompt above the budget without chunked prefill")
}

func TestUpdateBeamsErrors(t *testing.T) {
	m := newManager(t, paged.Config{BlockSize: 2, NumBlocks: 64})
	s, err := sched.New(m, sched.Config{})
	require.NoError(t, err)
	a, err := s.Submit([]int32{1, 2}, sched.Options{MaxTokens: 4, BeamWidth: 2})
	require.NoError(t, err)
	b, err := s.Submit([]int32{3, 4}, sched.Options{MaxTokens: 4, BeamWidth: 2})
	require.NoError(t, err)
	_, err = s.Submit([]int32{5}, sched.Options{MaxTokens: 4})
	require.NoError(t, err)
	require.ErrorIs(t, s.UpdateBeams(nil, nil), sched.ErrInvalid, "no step")
	beamStep(t, s)
	require.NoError(t, s.Update([]int32{1, 2, 3, 4, 5}))
	st := beamStep(t, s)
	require.Equal(t, 5, st.Outputs)
	snapshot := m.Stats()
	for name, parents := range map[string][]int{
		"nil":             nil,
		"short":           {0, 1, 0, 1},
		"plain request":   {0, 1, 0, 1, 1},
		"out of range":    {0, 2, 0, 1, 0},
		"negative":        {-1, 1, 0, 1, 0},
		"other request's": {0, 1, 0, 3, 0},
	} {
		require.ErrorIs(t, s.UpdateBeams([]int32{1, 2, 3, 4, 5}, parents), sched.ErrInvalid, name)
		require.Equal(t, snapshot, m.Stats(), "%s: a refused UpdateBeams changes nothing", name)
	}
	require.NoError(t, s.UpdateBeams([]int32{1, 2, 3, 4, 5}, []int{1, 1, 0, 0, 0}))
	assert.Equal(t, tokensOf(t, m, a, 0), tokensOf(t, m, a, 1))
	assert.Equal(t, tokensOf(t, m, b, 0), tokensOf(t, m, b, 1))
	require.NoError(t, m.Check())
}

// Two width-2 beam searches in a pool that holds one at its longest: the
// newer is preempted whole, restarts from its prompt and finishes after
// the older.
func TestBeamRestart(t *testing.T) {
	m := newManager(t, paged.Config{BlockSize: 2, NumBlocks: 9, DisablePrefixCaching: true})
	var restarted []uint64
	prompts := 0
	s, err := sched.New(m, sched.Config{Hooks: sched.Hooks{
		Restarted: func(r *sched.Request) { restarted = append(restarted, r.ID()) },
		// Only for a prompt preempted before its beams were forked.
		Preempted: func(r *sched.Request, _ int, _ bool) {
			assert.Zero(t, r.Beams())
			prompts++
		},
	}})
	require.NoError(t, err)
	a, err := s.Submit([]int32{1, 2, 3, 4}, sched.Options{MaxTokens: 6, BeamWidth: 2})
	require.NoError(t, err)
	b, err := s.Submit([]int32{5, 6, 7, 8}, sched.Options{MaxTokens: 6, BeamWidth: 2})
	require.NoError(t, err)
	drain(t, s, 7)
	assert.Equal(t, sched.Finished, a.State())
	assert.Equal(t, sched.Finished, b.State())
	require.NotEmpty(t, restarted)
	for _, id := range restarted {
		assert.Equal(t, b.ID(), id, "only the newer one restarts")
	}
	st := s.Stats()
	assert.Equal(t, int64(len(restarted)), st.Restarts)
	assert.Equal(t, int64(2*len(restarted)+prompts), st.Preemptions, "each beam counts")
	assert.Equal(t, 6, b.Outputs(0))
	assert.Equal(t, 6, b.Outputs(1))
	assert.Zero(t, m.Stats().UsedBlocks)
}

// By swap, the beams go to the host tier together and come back together,
// without recompute.
func TestBeamSwap(t *testing.T) {
	m := newManager(t, paged.Config{BlockSize: 2, NumBlocks: 9, HostBlocks: 16})
	var swapped []int
	s, err := sched.New(m, sched.Config{Preemption: sched.Swap, Hooks: sched.Hooks{
		Preempted: func(_ *sched.Request, i int, sw bool) {
			assert.True(t, sw)
			swapped = append(swapped, i)
		},
	}})
	require.NoError(t, err)
	_, err = s.Submit([]int32{1, 2, 3, 4}, sched.Options{MaxTokens: 6, BeamWidth: 2})
	require.NoError(t, err)
	b, err := s.Submit([]int32{5, 6, 7, 8}, sched.Options{MaxTokens: 6, BeamWidth: 2})
	require.NoError(t, err)
	var tokens []int32
	var parents []int
	sawSwapped := false
	for s.Busy() {
		st := beamStep(t, s)
		if b.State() == sched.Preempted {
			sawSwapped = true
			assert.Equal(t, 2, s.Waiting(), "both beams wait")
		}
		tokens, parents = ownParents(st, tokens, parents)
		require.NoError(t, s.UpdateBeams(tokens, parents))
		require.NoError(t, m.Check())
	}
	require.True(t, sawSwapped)
	st := s.Stats()
	assert.Equal(t, []int{0, 1}, swapped)
	assert.Equal(t, int64(2), st.SwappedOut)
	assert.Zero(t, st.Restarts)
	assert.Zero(t, st.ResumedTokens, "nothing recomputed")
	assert.Equal(t, sched.Finished, b.State())
	assert.Zero(t, m.Stats().Tiers.HostUsed)
}

// Beams that cannot grow even alone in the pool abort their request; the
// scheduler goes on with the next one.
func TestBeamAbort(t *testing.T) {
	m := newManager(t, paged.Config{BlockSize: 2, NumBlocks: 5, DisablePrefixCaching: true})
	var aborted error
	s, err := sched.New(m, sched.Config{Hooks: sched.Hooks{
		Aborted: func(_ *sched.Request, err error) { aborted = err },
	}})
	require.NoError(t, err)
	// 4 usable blocks: one beam alone reaches 7 tokens (4 blocks), but
	// three diverging beams cannot.
	a, err := s.Submit([]int32{1, 2}, sched.Options{MaxTokens: 6, BeamWidth: 3})
	require.NoError(t, err)
	c, err := s.Submit([]int32{3}, sched.Options{MaxTokens: 2})
	require.NoError(t, err)
	drain(t, s, 9)
	assert.Equal(t, sched.Aborted, a.State())
	require.ErrorIs(t, aborted, sched.ErrNever)
	assert.Equal(t, sched.Finished, c.State())
	assert.Equal(t, int64(1), s.Stats().Aborted)
	require.ErrorIs(t, s.Cancel(a), sched.ErrDone)
	assert.Zero(t, m.Stats().UsedBlocks)
}

// With a token budget the beams decode in the same step or not at all.
func TestBeamBudget(t *testing.T) {
	m := newManager(t, paged.Config{BlockSize: 4, NumBlocks: 64})
	s, err := sched.New(m, sched.Config{MaxBatchTokens: 4, ChunkedPrefill: true})
	require.NoError(t, err)
	_, err = s.Submit([]int32{1, 2}, sched.Options{MaxTokens: 5})
	require.NoError(t, err)
	_, err = s.Submit([]int32{3}, sched.Options{MaxTokens: 5})
	require.NoError(t, err)
	b, err := s.Submit([]int32{4}, sched.Options{MaxTokens: 5, BeamWidth: 3})
	require.NoError(t, err)
	deferred := false
	for s.Busy() {
		st := beamStep(t, s)
		n := 0
		for _, sc := range st.Scheduled {
			if sc.Request == b && !sc.Prefill {
				n++
			}
		}
		assert.Contains(t, []int{0, b.Beams()}, n, "step %d decodes %d of %d beams", st.Number, n, b.Beams())
		deferred = deferred || (n == 0 && b.Beams() > 0)
		assert.LessOrEqual(t, st.Tokens, 4)
		tokens := make([]int32, st.Outputs)
		require.NoError(t, s.Update(tokens))
	}
	assert.True(t, deferred, "the beams waited for a step with room for all three")
	assert.Equal(t, sched.Finished, b.State())
}

// A beam that produces a stop token finishes; the others go on.
func TestBeamStopToken(t *testing.T) {
	m := newManager(t, paged.Config{BlockSize: 2, NumBlocks: 32})
	var finished []int
	s, err := sched.New(m, sched.Config{Hooks: sched.Hooks{
		Finished: func(_ *sched.Request, i int) { finished = append(finished, i) },
	}})
	require.NoError(t, err)
	r, err := s.Submit([]int32{1, 2, 3}, sched.Options{MaxTokens: 4, BeamWidth: 3, StopTokens: []int32{99}})
	require.NoError(t, err)
	beamStep(t, s)
	require.NoError(t, s.Update([]int32{5, 99, 6}))
	assert.Equal(t, []int{1}, finished)
	assert.Equal(t, 2, r.Beams())
	st := beamStep(t, s)
	require.Len(t, st.Scheduled, 2)
	assert.Equal(t, []int{0, 2}, []int{st.Scheduled[0].Sample, st.Scheduled[1].Sample})
	require.ErrorIs(t, s.UpdateBeams([]int32{7, 8}, []int{1, 2}), sched.ErrInvalid, "beam 1 is finished")
	require.NoError(t, s.UpdateBeams([]int32{7, 8}, []int{2, 2}))
	assert.Equal(t, tokensOf(t, m, r, 0), tokensOf(t, m, r, 2))
	drain(t, s, 1)
	assert.Equal(t, sched.Finished, r.State())
}

// Cancel frees a beam search wherever its beams are, swapped out included.
func TestBeamCancel(t *testing.T) {
	m := newManager(t, paged.Config{BlockSize: 2, NumBlocks: 9, HostBlocks: 16})
	s, err := sched.New(m, sched.Config{Preemption: sched.Swap})
	require.NoError(t, err)
	_, err = s.Submit([]int32{1, 2, 3, 4}, sched.Options{MaxTokens: 6, BeamWidth: 2})
	require.NoError(t, err)
	b, err := s.Submit([]int32{5, 6, 7, 8}, sched.Options{MaxTokens: 6, BeamWidth: 2})
	require.NoError(t, err)
	for b.State() != sched.Preempted {
		st := beamStep(t, s)
		require.NoError(t, s.Update(make([]int32, st.Outputs)))
	}
	require.NoError(t, s.Cancel(b))
	assert.Equal(t, sched.Cancelled, b.State())
	require.NoError(t, m.Check())
	assert.Zero(t, m.Stats().Tiers.HostUsed)
	assert.Equal(t, s.Running(), m.Stats().Sequences)
	assert.Zero(t, s.Waiting())
	drain(t, s, 1)
	assert.Zero(t, m.Stats().UsedBlocks)
}

// A decode step that re-parents beams allocates nothing.
func TestBeamStepAllocs(t *testing.T) {
	m := newManager(t, paged.Config{BlockSize: 16, NumBlocks: 4096, DisablePrefixCaching: true})
	s, err := sched.New(m, sched.Config{})
	require.NoError(t, err)
	for range 4 {
		_, err := s.Submit(make([]int32, 100), sched.Options{MaxTokens: 1 << 20 / 2048, BeamWidth: 4})
		require.NoError(t, err)
	}
	tokens := make([]int32, 0, 64)
	parents := make([]int, 0, 64)
	step := func() {
		st, err := s.Schedule()
		if err != nil {
			t.Fatal(err)
		}
		tokens, parents = tokens[:st.Outputs], parents[:0]
		for _, sc := range st.Scheduled {
			for j := range sc.Outputs {
				p := sc.Sample + j
				if sc.Outputs == 1 && sc.Sample > 0 {
					p = sc.Sample - 1 // beam 0 twice, the last beam never
				}
				parents = append(parents, p)
			}
		}
		if err := s.UpdateBeams(tokens, parents); err != nil {
			t.Fatal(err)
		}
	}
	step() // the prompts and the forks
	step()
	allocs := testing.AllocsPerRun(100, step)
	assert.Zero(t, allocs)
	require.NoError(t, m.Check())
}

// BenchmarkBeamStep measures a decode step of beam searches whose beams
// re-parent every step (UpdateBeams: beam 0 is chosen twice, the last beam
// never, so every step forks one beam and frees one per group), per
// decoded token, and as a ratio to a plain decode step of as many
// independent sequences measured in the same run (x-decode).
func BenchmarkBeamStep(b *testing.B) {
	for _, width := range []int{2, 4, 8} {
		b.Run(fmt.Sprintf("groups=16/width=%d", width), func(b *testing.B) {
			const groups = 16
			n := groups * width
			m := benchManager(b, n, false)
			s, err := sched.New(m, sched.Config{MaxRunning: n})
			if err != nil {
				b.Fatal(err)
			}
			prompts := benchPrompts(groups)
			submit := func() {
				for _, p := range prompts {
					if _, err := s.Submit(p, sched.Options{MaxTokens: decodeLen + 1, BeamWidth: width}); err != nil {
						b.Fatal(err)
					}
				}
			}
			tokens := make([]int32, n)
			parents := make([]int, 0, n)
			run := func() {
				st, err := s.Schedule()
				if err != nil {
					b.Fatal(err)
				}
				parents = parents[:0]
				for _, sc := range st.Scheduled {
					for j := range sc.Outputs {
						p := sc.Sample + j
						if sc.Outputs == 1 && sc.Sample > 0 {
							p = sc.Sample - 1
						}
						parents = append(parents, p)
					}
				}
				if err := s.UpdateBeams(tokens[:st.Outputs], parents); err != nil {
					b.Fatal(err)
				}
			}
			benchSteps(b, s, n, submit, run, plainDecode(b, n), "x-decode")
		})
	}
}

// benchSteps runs a scheduler benchmark over n sequences: submit, the
// prompts' step, then steps (run) in b.Loop, submitting again whenever
// everything finished. It reports ns per decoded token, and its ratio to
// probe, a step of the same n tokens done some other way, measured right
// after as a probe of the machine's speed.
func benchSteps(b *testing.B, s *sched.Scheduler, n int, submit, run, probe func(), ratio string) {
	submit()
	run()
	b.ReportAllocs()
	for b.Loop() {
		run()
		if !s.Busy() {
			submit()
			run()
		}
	}
	perToken := float64(b.Elapsed().Nanoseconds()) / float64(b.N) / float64(n)
	b.ReportMetric(perToken, "ns/token")
	probe() // its first step may admit
	const probeSteps = 2048
	t0 := time.Now()
	for range probeSteps {
		probe()
	}
	b.ReportMetric(perToken/(float64(time.Since(t0).Nanoseconds())/probeSteps/float64(n)), ratio)
}

// plainDecode returns one step of n independent sequences through a
// scheduler, renewed every decodeLen steps.
func plainDecode(tb testing.TB, n int) func() {
	m := benchManager(tb, n, false)
	s, err := sched.New(m, sched.Config{MaxRunning: n})
	if err != nil {
		tb.Fatal(err)
	}
	prompts := benchPrompts(n)
	tokens := make([]int32, n)
	run := func() {
		st, err := s.Schedule()
		if err != nil {
			tb.Fatal(err)
		}
		if err := s.Update(tokens[:st.Outputs]); err != nil {
			tb.Fatal(err)
		}
	}
	return func() {
		if !s.Busy() {
			for _, p := range prompts {
				if _, err := s.Submit(p, sched.Options{MaxTokens: decodeLen + 1}); err != nil {
					tb.Fatal(err)
				}
			}
		}
		run()
	}
}

// A swapped-out beam search waits while the pool cannot take all its beams
// back; when the host tier cannot take them at all, it restarts instead.
func TestBeamSwapWaitsAndFallsBack(t *testing.T) {
	for _, host := range []int{16, 1} {
		m := newManager(t, paged.Config{BlockSize: 2, NumBlocks: 10, HostBlocks: host, DisablePrefixCaching: true})
		s, err := sched.New(m, sched.Config{Preemption: sched.Swap})
		require.NoError(t, err)
		a, err := s.Submit([]int32{1, 2}, sched.Options{MaxTokens: 10})
		require.NoError(t, err)
		b, err := s.Submit([]int32{5, 6, 7, 8}, sched.Options{MaxTokens: 6, BeamWidth: 2})
		require.NoError(t, err)
		waited := 0
		for s.Busy() {
			st := beamStep(t, s)
			if b.State() == sched.Preempted && a.State() == sched.Running {
				waited++
			}
			require.NoError(t, s.Update(make([]int32, st.Outputs)))
			require.NoError(t, m.Check())
		}
		assert.Equal(t, sched.Finished, b.State())
		st := s.Stats()
		if host == 1 {
			assert.Positive(t, st.Restarts, "the host tier cannot take the beams")
			assert.Zero(t, st.SwappedOut)
			continue
		}
		assert.Zero(t, st.Restarts)
		assert.Equal(t, int64(2), st.SwappedOut)
		assert.Greater(t, waited, 1, "the beams waited for the pool")
	}
}
