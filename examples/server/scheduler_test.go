package main

import (
	"fmt"
	"math"
	"testing"

	"github.com/pagedkv/pagedkv/bench/traces"
	"github.com/pagedkv/pagedkv/paged"
	"github.com/stretchr/testify/assert"
	"github.com/stretchr/testify/require"
)

// shadowKV stands in for the KV tensors: it executes each batch the way
// the kernels would (copies first, then the new tokens written at their
// slots) and then reads every scheduled sequence's whole context back
// through its block-table row, as attention does. A wrong slot, a missed
// copy or a prefix hit on a reused block shows up as a wrong token.
type shadowKV struct {
	bs     int
	slots  []int32
	copies int
	err    error
}

func newShadowKV(numBlocks, blockSize int) *shadowKV {
	k := &shadowKV{bs: blockSize, slots: make([]int32, numBlocks*blockSize)}
	for i := range k.slots {
		k.slots[i] = -1
	}
	return k
}

func (k *shadowKV) onBatch(m *paged.Manager, b *paged.Batch) {
	if k.err != nil {
		return
	}
	for _, c := range b.Copies {
		copy(k.slots[int(c.Dst)*k.bs:int(c.Dst+1)*k.bs], k.slots[int(c.Src)*k.bs:int(c.Src+1)*k.bs])
	}
	k.copies += len(b.Copies)
	for i, id := range b.Seqs {
		toks, err := m.Tokens(id)
		if err != nil {
			k.err = err
			return
		}
		n, q := int(b.SeqLens[i]), int(b.QueryLens[i])
		if n != len(toks) || int(b.QueryStart[i+1]-b.QueryStart[i]) != q {
			k.err = fmt.Errorf("%v: batch says %d tokens (%d new), the manager %d", id, n, q, len(toks))
			return
		}
		for j := range q {
			k.slots[b.Slots[int(b.QueryStart[i])+j]] = toks[n-q+j]
		}
		row := b.Tables[i*b.Stride : (i+1)*b.Stride]
		for pos := range n {
			if got := k.slots[int(row[pos/k.bs])*k.bs+pos%k.bs]; got != toks[pos] {
				k.err = fmt.Errorf("%v: position %d reads %d, want %d", id, pos, got, toks[pos])
				return
			}
		}
	}
}

// newTestScheduler returns a scheduler whose batches go through a shadow
// KV store.
func newTestScheduler(t *testing.T, cfg SchedulerConfig) (*Scheduler, *shadowKV) {
	t.Helper()
	if cfg.Manager.BlockSize == 0 {
		cfg.Manager.BlockSize = 16
	}
	kv := newShadowKV(cfg.Manager.NumBlocks, cfg.Manager.BlockSize)
	cfg.OnBatch = kv.onBatch
	s, err := NewScheduler(cfg)
	require.NoError(t, err)
	return s, kv
}

// stepChecked runs one step and checks the manager's invariants and the
// shadow KV after it.
func stepChecked(t *testing.T, s *Scheduler, kv *shadowKV) bool {
	t.Helper()
	worked := s.Step()
	require.NoError(t, s.Manager().Check())
	require.NoError(t, kv.err)
	return worked
}

func TestSchedulerReplaysTraceUnderPressure(t *testing.T) {
	const blocks, bs, maxLen = 160, 16, 1024
	s, kv := newTestScheduler(t, SchedulerConfig{
		Manager:    paged.Config{NumBlocks: blocks, BlockSize: bs, MaxModelLen: maxLen, Watermark: 0.01, Events: 64},
		MaxNumSeqs: 32,
	})
	trace := traces.AzureConv()[:60]
	var wantGenerated, wantForks uint64
	next := 0
	for step := 0; next < len(trace) || s.Busy(); step++ {
		require.Less(t, step, 100000, "the run does not finish")
		// Two arrivals per step: a logical clock, no wall time.
		for k := 0; k < 2 && next < len(trace); k++ {
			r := trace[next]
			out := min(max(r.OutputTokens, 1), 64)
			in := min(max(r.InputTokens, 1), maxLen-out)
			prompt := make([]int32, in)
			for j := range prompt {
				if j < 64 {
					prompt[j] = int32(next%3*1000 + j + 1) // three shared system prompts
				} else {
					prompt[j] = int32((next*7919+j*104729)%32000 + 1)
				}
			}
			n := 1
			if next%5 == 0 {
				n = 4
			}
			_, err := s.Submit(Spec{Prompt: prompt, MaxTokens: out, N: n})
			require.NoError(t, err)
			wantGenerated += uint64(n * out)
			wantForks += uint64(n - 1)
			next++
		}
		stepChecked(t, s, kv)
	}
	sn := s.Snapshot()
	assert.Equal(t, uint64(len(trace)), sn.Requests.Finished)
	assert.Equal(t, wantGenerated, sn.Tokens.Generated)
	assert.Equal(t, wantForks, sn.Forks)
	assert.Zero(t, sn.Blocks.Used, "every block released")
	assert.Zero(t, sn.Manager.Sequences)
	assert.Positive(t, sn.Preemptions, "a 159-block pool must preempt")
	assert.Positive(t, sn.Copies)
	assert.Equal(t, sn.Copies, uint64(kv.copies), "every copy reached a batch")
	assert.Positive(t, sn.Prefix.HitTokens)
	assert.Equal(t, sn.Tokens.Cached, sn.Prefix.HitTokens, "every Admit followed a successful dry run")
	assert.LessOrEqual(t, sn.Blocks.PeakUsed, blocks-1)
	assert.LessOrEqual(t, sn.Sequences.PeakRunning, 32)
	assert.Equal(t, sn.Prefix.Stored, sn.Events.StoredBlocks, "one BlockStored block per stored block")
	assert.Equal(t, sn.Evictions, sn.Events.RemovedBlocks)
}

func TestParallelSamplingCopiesOnWrite(t *testing.T) {
	for _, tc := range []struct {
		name                string
		prompt              int
		usedAfterFork       int // blocks held after the prompt's step
		copies, usedAfterCo int // after the first decode
	}{
		// 20 tokens end inside block 2: all four samples write into it,
		// three copy it and the last writes in place.
		{"partial last block", 20, 2, 3, 5},
		// 32 tokens fill two blocks: each sample's first token starts a
		// block of its own, nothing is copied.
		{"full last block", 32, 2, 0, 6},
	} {
		t.Run(tc.name, func(t *testing.T) {
			var copies []int
			s, kv := newTestScheduler(t, SchedulerConfig{Manager: paged.Config{NumBlocks: 64}})
			inner := s.cfg.OnBatch
			s.cfg.OnBatch = func(m *paged.Manager, b *paged.Batch) {
				copies = append(copies, len(b.Copies))
				inner(m, b)
			}
			tk, err := s.Submit(Spec{PromptLen: tc.prompt, MaxTokens: 3, N: 4})
			require.NoError(t, err)

			require.True(t, stepChecked(t, s, kv))
			sn := s.Snapshot()
			assert.Equal(t, uint64(3), sn.Forks)
			assert.Equal(t, 4, sn.Sequences.Running)
			assert.Equal(t, tc.usedAfterFork, sn.Blocks.Used, "the samples share the prompt's blocks")
			assert.Equal(t, uint64(4), sn.Tokens.Generated)

			require.True(t, stepChecked(t, s, kv))
			sn = s.Snapshot()
			assert.Equal(t, uint64(tc.copies), sn.Copies)
			assert.Equal(t, []int{0, tc.copies}, copies, "the directives reach the step that needs them")
			assert.Equal(t, tc.usedAfterCo, sn.Blocks.Used)

			require.True(t, stepChecked(t, s, kv))
			st, err := s.Status(tk.ID)
			require.NoError(t, err)
			assert.Equal(t, "finished", st.State)
			assert.Equal(t, []int{3, 3, 3, 3}, st.Generated)
			assert.Zero(t, s.Snapshot().Blocks.Used)
			assert.False(t, stepChecked(t, s, kv), "nothing left to do")
		})
	}
}

func TestPrefixHitSkipsCachedPrompt(t *testing.T) {
	s, kv := newTestScheduler(t, SchedulerConfig{Manager: paged.Config{NumBlocks: 64}})
	prompt := make([]int32, 64)
	for i := range prompt {
		prompt[i] = int32(i + 1)
	}
	a, err := s.Submit(Spec{Prompt: prompt, MaxTokens: 1})
	require.NoError(t, err)
	stepChecked(t, s, kv)
	b, err := s.Submit(Spec{Prompt: prompt, MaxTokens: 2})
	require.NoError(t, err)
	stepChecked(t, s, kv)

	sa, err := s.Status(a.ID)
	require.NoError(t, err)
	sb, err := s.Status(b.ID)
	require.NoError(t, err)
	assert.Zero(t, sa.CachedTokens)
	// The last prompt token is always recomputed, so 3 of 4 blocks hit.
	assert.Equal(t, 48, sb.CachedTokens)
	sn := s.Snapshot()
	assert.Equal(t, uint64(64+16), sn.Tokens.Prefill)
	assert.InDelta(t, 48.0/128, sn.HitRate, 1e-9)
}

func TestPreemptionByRecomputeFinishesBoth(t *testing.T) {
	// Eight usable blocks; each request needs 3 at admission and 6 at the
	// end, so the newer one is preempted and resumed later.
	s, kv := newTestScheduler(t, SchedulerConfig{Manager: paged.Config{NumBlocks: 9}})
	a, err := s.Submit(Spec{PromptLen: 40, MaxTokens: 50})
	require.NoError(t, err)
	b, err := s.Submit(Spec{PromptLen: 40, MaxTokens: 50})
	require.NoError(t, err)
	for s.Snapshot().Preemptions == 0 {
		require.True(t, stepChecked(t, s, kv), "no preemption")
	}
	// The newer request went back to the queue and stays there while the
	// older one grows.
	for id, want := range map[ReqID]string{a.ID: "running", b.ID: "preempted"} {
		st, err := s.Status(id)
		require.NoError(t, err)
		assert.Equal(t, want, st.State)
	}
	sn := s.Snapshot()
	assert.Equal(t, 1, sn.Requests.Running)
	assert.Equal(t, 1, sn.Requests.Waiting)
	assert.Equal(t, 1, sn.Sequences.Waiting)
	for i := 0; stepChecked(t, s, kv); i++ {
		require.Less(t, i, 1000)
	}
	sn = s.Snapshot()
	assert.Equal(t, uint64(2), sn.Requests.Finished)
	assert.Equal(t, uint64(100), sn.Tokens.Generated)
	assert.Greater(t, sn.Tokens.Prefill, uint64(80), "the preempted request was recomputed")
	for _, id := range []ReqID{a.ID, b.ID} {
		st, err := s.Status(id)
		require.NoError(t, err)
		assert.Equal(t, []int{50}, st.Generated)
	}
}

func TestSubmitRejectsBadRequestsWithoutDisturbingOthers(t *testing.T) {
	const maxLen = 256
	s, kv := newTestScheduler(t, SchedulerConfig{Manager: paged.Config{NumBlocks: 33, MaxModelLen: maxLen}})
	good, err := s.Submit(Spec{PromptLen: 20, MaxTokens: 8, N: 2})
	require.NoError(t, err)
	stepChecked(t, s, kv)
	before := s.Snapshot()
	beforeStatus, err := s.Status(good.ID)
	require.NoError(t, err)

	for _, tc := range []struct {
		name string
		spec Spec
		want error
		msg  string
	}{
		{"empty prompt", Spec{MaxTokens: 4}, ErrInvalid, "empty prompt"},
		{"empty prompt slice", Spec{Prompt: []int32{}, MaxTokens: 4}, ErrInvalid, "empty prompt"},
		{"prompt and length", Spec{Prompt: []int32{1}, PromptLen: 3, MaxTokens: 4}, ErrInvalid, "not both"},
		{"negative length", Spec{PromptLen: -3, MaxTokens: 4}, ErrInvalid, "negative"},
		{"negative token", Spec{Prompt: []int32{5, -1}, MaxTokens: 4}, ErrInvalid, "token -1 at index 1 is negative"},
		{"no max tokens", Spec{PromptLen: 3}, ErrInvalid, "max_tokens 0"},
		{"n too large", Spec{PromptLen: 3, MaxTokens: 1, N: MaxN + 1}, ErrInvalid, "n 17"},
		{"n negative", Spec{PromptLen: 3, MaxTokens: 1, N: -1}, ErrInvalid, "n -1"},
		{"longer than max length", Spec{PromptLen: maxLen, MaxTokens: 1}, ErrTooLong, "maximum length 256"},
		{"prompt longer than max length", Spec{Prompt: make([]int32, maxLen+1), MaxTokens: 1}, ErrTooLong, "maximum length"},
		{"huge length", Spec{PromptLen: min(1<<40, math.MaxInt), MaxTokens: 1}, ErrTooLong, "exceed"},
		{"huge max tokens", Spec{PromptLen: 3, MaxTokens: math.MaxInt}, ErrTooLong, "exceed"},
	} {
		t.Run(tc.name, func(t *testing.T) {
			tk, err := s.Submit(tc.spec)
			require.ErrorIs(t, err, tc.want)
			assert.Contains(t, err.Error(), tc.msg)
			assert.Zero(t, tk)
		})
	}
	after := s.Snapshot()
	assert.Equal(t, before.Requests.Rejected+12, after.Requests.Rejected)
	assert.Equal(t, map[string]uint64{"invalid_request": 8, "too_long": 4, "queue_full": 0, "overloaded": 0,
		"body_too_large": 0, "body_timeout": 0, "unavailable": 0}, after.Requests.RejectedBy)
	after.Requests.Rejected, after.Requests.RejectedBy = before.Requests.Rejected, before.Requests.RejectedBy
	assert.Equal(t, before, after, "rejections change nothing else")
	st, err := s.Status(good.ID)
	require.NoError(t, err)
	assert.Equal(t, beforeStatus, st)
	for stepChecked(t, s, kv) {
	}
	st, err = s.Status(good.ID)
	require.NoError(t, err)
	assert.Equal(t, []int{8, 8}, st.Generated)
}

func TestSubmitRejectsWhatThePoolCanNeverHold(t *testing.T) {
	// 8 usable blocks, 3 kept free by the watermark: 5 blocks, 80 tokens,
	// is the longest a sequence may grow. The last of its max_tokens
	// never gets a slot, so 70 + 11 fit.
	s, _ := newTestScheduler(t, SchedulerConfig{Manager: paged.Config{NumBlocks: 9, MaxModelLen: 1000, Watermark: 0.3}})
	_, err := s.Submit(Spec{PromptLen: 70, MaxTokens: 12})
	require.ErrorIs(t, err, ErrTooLong)
	assert.Contains(t, err.Error(), "81 tokens of KV need more than the pool's 8 blocks of 16")
	_, err = s.Submit(Spec{PromptLen: 70, MaxTokens: 11})
	require.NoError(t, err)
}

func TestCancelFreesBlocks(t *testing.T) {
	s, kv := newTestScheduler(t, SchedulerConfig{Manager: paged.Config{NumBlocks: 64}})
	keep, err := s.Submit(Spec{PromptLen: 40, MaxTokens: 20})
	require.NoError(t, err)
	par, err := s.Submit(Spec{PromptLen: 40, MaxTokens: 20, N: 4})
	require.NoError(t, err)
	stepChecked(t, s, kv)
	stepChecked(t, s, kv)
	withBoth := s.Snapshot().Blocks.Used
	keepStatus, err := s.Status(keep.ID)
	require.NoError(t, err)

	require.ErrorIs(t, s.Cancel(par.ID, keep.CancelToken), ErrBadToken, "another request's token")
	require.ErrorIs(t, s.Cancel(par.ID, ""), ErrBadToken)
	require.NoError(t, s.Cancel(par.ID, par.CancelToken))
	sn := s.Snapshot()
	// keep's 41 tokens hold 3 blocks; the four samples' blocks are gone.
	assert.Equal(t, 3, sn.Blocks.Used)
	assert.Less(t, sn.Blocks.Used, withBoth)
	assert.Equal(t, 1, sn.Sequences.Running)
	assert.Equal(t, uint64(1), sn.Requests.Cancelled)
	require.NoError(t, s.Manager().Check())
	st, err := s.Status(par.ID)
	require.NoError(t, err)
	assert.Equal(t, "cancelled", st.State)

	require.ErrorIs(t, s.Cancel(par.ID, par.CancelToken), ErrFinished)
	require.ErrorIs(t, s.Cancel(par.ID, keep.CancelToken), ErrBadToken, "a finished request's state is no one else's business")
	require.ErrorIs(t, s.Cancel("NOSUCHREQUEST", par.CancelToken), ErrUnknownRequest)
	_, err = s.Status("NOSUCHREQUEST")
	require.ErrorIs(t, err, ErrUnknownRequest)
	st, err = s.Status(keep.ID)
	require.NoError(t, err)
	assert.Equal(t, keepStatus, st, "cancelling others leaves keep alone")

	// A waiting request is cancelled before it ever runs.
	w, err := s.Submit(Spec{PromptLen: 10, MaxTokens: 5})
	require.NoError(t, err)
	require.NoError(t, s.Cancel(w.ID, w.CancelToken))
	for stepChecked(t, s, kv) {
	}
	st, err = s.Status(w.ID)
	require.NoError(t, err)
	assert.Equal(t, []int{0}, st.Generated)
	st, err = s.Status(keep.ID)
	require.NoError(t, err)
	assert.Equal(t, "finished", st.State)
	assert.Equal(t, []int{20}, st.Generated)
	assert.Zero(t, s.Snapshot().Blocks.Used)
}

func TestKeepFinishedForgetsOldest(t *testing.T) {
	s, kv := newTestScheduler(t, SchedulerConfig{Manager: paged.Config{NumBlocks: 64}, KeepFinished: 2})
	var ids []ReqID
	for range 3 {
		tk, err := s.Submit(Spec{PromptLen: 5, MaxTokens: 1})
		require.NoError(t, err)
		ids = append(ids, tk.ID)
	}
	stepChecked(t, s, kv)
	_, err := s.Status(ids[0])
	require.ErrorIs(t, err, ErrUnknownRequest)
	for _, id := range ids[1:] {
		st, err := s.Status(id)
		require.NoError(t, err)
		assert.Equal(t, "finished", st.State)
	}
}

func TestIdleChan(t *testing.T) {
	s, kv := newTestScheduler(t, SchedulerConfig{Manager: paged.Config{NumBlocks: 64}})
	select {
	case <-s.IdleChan():
	default:
		t.Fatal("an empty scheduler is idle")
	}
	_, err := s.Submit(Spec{PromptLen: 5, MaxTokens: 2})
	require.NoError(t, err)
	ch := s.IdleChan()
	stepChecked(t, s, kv)
	select {
	case <-ch:
		t.Fatal("idle with a request running")
	default:
	}
	stepChecked(t, s, kv)
	select {
	case <-ch:
	default:
		t.Fatal("not told of idleness")
	}
}

func TestNewSchedulerRejectsBadConfig(t *testing.T) {
	_, err := NewScheduler(SchedulerConfig{Manager: paged.Config{NumBlocks: 64}, MaxNumSeqs: 4})
	require.ErrorIs(t, err, ErrInvalid)
	_, err = NewScheduler(SchedulerConfig{Manager: paged.Config{NumBlocks: 64}, KeepFinished: -1})
	require.ErrorIs(t, err, ErrInvalid)
	_, err = NewScheduler(SchedulerConfig{Manager: paged.Config{NumBlocks: 1}})
	require.ErrorIs(t, err, paged.ErrInvalid)
}

func TestMaxQueuedBoundsRequestsNeverAdmitted(t *testing.T) {
	// 8 usable blocks: a 100-token request needs 7 at its end, so one
	// runs at a time and the others wait.
	s, kv := newTestScheduler(t, SchedulerConfig{Manager: paged.Config{NumBlocks: 9}, MaxQueued: 2})
	a, err := s.Submit(Spec{PromptLen: 90, MaxTokens: 10})
	require.NoError(t, err)
	b, err := s.Submit(Spec{PromptLen: 90, MaxTokens: 10})
	require.NoError(t, err)
	before := s.Snapshot()
	_, err = s.Submit(Spec{PromptLen: 90, MaxTokens: 10})
	require.ErrorIs(t, err, ErrQueueFull)
	after := s.Snapshot()
	assert.Equal(t, before.Requests.Rejected+1, after.Requests.Rejected)
	assert.Equal(t, uint64(1), after.Requests.RejectedBy["queue_full"])
	assert.Equal(t, 2, after.Requests.Queued)

	stepChecked(t, s, kv) // a is admitted, b waits for memory
	assert.Equal(t, 1, s.Snapshot().Requests.Queued)
	c, err := s.Submit(Spec{PromptLen: 90, MaxTokens: 10})
	require.NoError(t, err)
	_, err = s.Submit(Spec{PromptLen: 5, MaxTokens: 1})
	require.ErrorIs(t, err, ErrQueueFull)
	// Cancelling a queued request frees its place.
	require.NoError(t, s.Cancel(c.ID, c.CancelToken))
	assert.Equal(t, 1, s.Snapshot().Requests.Queued)
	for stepChecked(t, s, kv) {
	}
	sn := s.Snapshot()
	assert.Zero(t, sn.Requests.Queued)
	assert.Equal(t, uint64(2), sn.Requests.Finished)
	for _, id := range []ReqID{a.ID, b.ID} {
		st, err := s.Status(id)
		require.NoError(t, err)
		assert.Equal(t, "finished", st.State)
	}
	_, err = NewScheduler(SchedulerConfig{Manager: paged.Config{NumBlocks: 9}, MaxQueued: -1})
	require.ErrorIs(t, err, ErrInvalid)
}
