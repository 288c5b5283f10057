package sched_test

import (
	"errors"
	"strings"
	"testing"

	"github.com/pagedkv/pagedkv/paged"
	"github.com/pagedkv/pagedkv/sched"
)

// Tests of mutation testing's sixth round (docs/testing.md, session 25):
// each pins a behaviour Submit's, Cancel's or Propose's documentation
// states, at the boundary a surviving mutant moved.

func audit51Sched(t *testing.T, mcfg paged.Config, cfg sched.Config) *sched.Scheduler {
	t.Helper()
	m, err := paged.New(mcfg)
	if err != nil {
		t.Fatal(err)
	}
	s, err := sched.New(m, cfg)
	if err != nil {
		t.Fatal(err)
	}
	return s
}

// TestAudit51SubmitBeamWidthBoundedByMaxRunning: Submit refuses a beam
// search wider than Config.MaxRunning (ErrInvalid naming BeamWidth, not
// N, which the caller left 0; nothing counted) and accepts one exactly as
// wide.
func TestAudit51SubmitBeamWidthBoundedByMaxRunning(t *testing.T) {
	s := audit51Sched(t, paged.Config{BlockSize: 2, NumBlocks: 64}, sched.Config{MaxRunning: 3, MaxBatchTokens: 64, ChunkedPrefill: true})
	prompt := []int32{1, 2, 3, 4}
	_, err := s.Submit(prompt, sched.Options{MaxTokens: 4, BeamWidth: 4})
	if !errors.Is(err, sched.ErrInvalid) || !strings.Contains(err.Error(), "BeamWidth 4") {
		t.Fatalf("BeamWidth 4 with MaxRunning 3: err %v, want ErrInvalid naming BeamWidth 4 (a clear error names the option at fault)", err)
	}
	if got := s.Stats().Submitted; got != 0 {
		t.Fatalf("a refused Submit counted: Submitted %d", got)
	}
	if _, err := s.Submit(prompt, sched.Options{MaxTokens: 4, BeamWidth: 3}); err != nil {
		t.Fatalf("BeamWidth 3 with MaxRunning 3: %v", err)
	}
}

// TestAudit51SubmitMaxTokensAtLeastOne: Options.MaxTokens must be at
// least 1: 0 is ErrInvalid and counts nothing.
func TestAudit51SubmitMaxTokensAtLeastOne(t *testing.T) {
	s := audit51Sched(t, paged.Config{BlockSize: 2, NumBlocks: 64}, sched.Config{MaxRunning: 3, MaxBatchTokens: 64, ChunkedPrefill: true})
	if _, err := s.Submit([]int32{1, 2, 3}, sched.Options{}); !errors.Is(err, sched.ErrInvalid) {
		t.Fatalf("MaxTokens 0: err %v, want ErrInvalid", err)
	}
	if st := s.Stats(); st.Submitted != 0 || s.Busy() {
		t.Fatalf("a refused Submit changed the scheduler: Submitted %d, Busy %v", st.Submitted, s.Busy())
	}
}

// TestAudit51SubmitLengthBounds: a request fits MaxModelLen when its
// prompt plus MaxTokens is at most MaxModelLen (ErrNever one token over),
// and without chunked prefill a recompute of prompt+MaxTokens-1 tokens
// (the longest KV: the last output gets no slot) may equal
// MaxBatchTokens.
func TestAudit51SubmitLengthBounds(t *testing.T) {
	s := audit51Sched(t, paged.Config{BlockSize: 2, NumBlocks: 64, MaxModelLen: 20}, sched.Config{MaxRunning: 4, MaxBatchTokens: 64, ChunkedPrefill: true})
	prompt := make([]int32, 8)
	if _, err := s.Submit(prompt, sched.Options{MaxTokens: 13}); !errors.Is(err, sched.ErrNever) {
		t.Fatalf("8 prompt + 13 new tokens with MaxModelLen 20: err %v, want ErrNever", err)
	}
	if _, err := s.Submit(prompt, sched.Options{MaxTokens: 12}); err != nil {
		t.Fatalf("8 prompt + 12 new tokens with MaxModelLen 20: %v", err)
	}

	s = audit51Sched(t, paged.Config{BlockSize: 2, NumBlocks: 64}, sched.Config{MaxRunning: 4, MaxBatchTokens: 8})
	if _, err := s.Submit(make([]int32, 4), sched.Options{MaxTokens: 5}); err != nil {
		t.Fatalf("a recompute of 4+5-1 = 8 tokens with MaxBatchTokens 8: %v", err)
	}
	if _, err := s.Submit(make([]int32, 4), sched.Options{MaxTokens: 6}); !errors.Is(err, sched.ErrNever) {
		t.Fatalf("a recompute of 4+6-1 = 9 tokens with MaxBatchTokens 8: err %v, want ErrNever", err)
	}
}

// TestAudit51SubmitBeamsBoundedByBatch: the beams of a search decode in
// one step, so more beams than MaxBatchTokens is ErrNever; as many is
// accepted.
func TestAudit51SubmitBeamsBoundedByBatch(t *testing.T) {
	s := audit51Sched(t, paged.Config{BlockSize: 2, NumBlocks: 64}, sched.Config{MaxRunning: 8, MaxBatchTokens: 3, ChunkedPrefill: true})
	if _, err := s.Submit([]int32{1, 2}, sched.Options{MaxTokens: 2, BeamWidth: 4}); !errors.Is(err, sched.ErrNever) {
		t.Fatalf("4 beams with MaxBatchTokens 3: err %v, want ErrNever", err)
	}
	if _, err := s.Submit([]int32{1, 2}, sched.Options{MaxTokens: 2, BeamWidth: 3}); err != nil {
		t.Fatalf("3 beams with MaxBatchTokens 3: %v", err)
	}
}

// TestAudit51CancelCountsAndWaiting: Cancel counts Stats.Cancelled, ends
// the request (State Done) and Waiting drops its sequence.
func TestAudit51CancelCountsAndWaiting(t *testing.T) {
	s := audit51Sched(t, paged.Config{BlockSize: 2, NumBlocks: 64}, sched.Config{MaxRunning: 8, MaxBatchTokens: 64, ChunkedPrefill: true})
	r, err := s.Submit([]int32{1, 2, 3}, sched.Options{MaxTokens: 4, N: 3})
	if err != nil {
		t.Fatal(err)
	}
	if got := s.Waiting(); got != 1 {
		t.Fatalf("Waiting %d after submitting N=3 (one sequence until its prompt forks), want 1", got)
	}
	if err := s.Cancel(r); err != nil {
		t.Fatal(err)
	}
	if got := s.Stats().Cancelled; got != 1 {
		t.Fatalf("Stats.Cancelled %d after one Cancel, want 1", got)
	}
	if !r.State().Done() || s.Waiting() != 0 || s.Busy() {
		t.Fatalf("after Cancel: state %v (Done %v), Waiting %d, Busy %v", r.State(), r.State().Done(), s.Waiting(), s.Busy())
	}
	if !sched.Finished.Done() {
		t.Fatal("Finished is not Done")
	}
	if got := r.Outputs(r.Samples()); got != 0 {
		t.Fatalf("Outputs(Samples()) = %d, want 0 (out of range)", got)
	}
}

// TestAudit51ProposeBetweenScheduleAndUpdate: Propose and DraftRoom
// return ErrInvalid between Schedule and Update even for a decoding sample
// that has a sampled token to follow, and the refused drafts are neither
// counted nor verified by the next step.
func TestAudit51ProposeBetweenScheduleAndUpdate(t *testing.T) {
	s := audit51Sched(t, paged.Config{BlockSize: 2, NumBlocks: 64}, sched.Config{MaxRunning: 4, MaxBatchTokens: 64, MaxDrafts: 3, ChunkedPrefill: true})
	r, err := s.Submit([]int32{1, 2, 3, 4}, sched.Options{MaxTokens: 8})
	if err != nil {
		t.Fatal(err)
	}
	if _, err := s.Schedule(); err != nil { // the prompt: the first output
		t.Fatal(err)
	}
	if err := s.Update([]int32{100}); err != nil {
		t.Fatal(err)
	}
	if _, err := s.Schedule(); err != nil { // a decode step
		t.Fatal(err)
	}
	if err := s.Propose(r, 0, []int32{7, 8}); !errors.Is(err, sched.ErrInvalid) {
		t.Fatalf("Propose between Schedule and Update: err %v, want ErrInvalid", err)
	}
	if _, err := s.DraftRoom(r, 0); !errors.Is(err, sched.ErrInvalid) {
		t.Fatalf("DraftRoom between Schedule and Update: err %v, want ErrInvalid", err)
	}
	if got := s.Stats().DraftsProposed; got != 0 {
		t.Fatalf("a refused Propose counted: DraftsProposed %d", got)
	}
	if err := s.Update([]int32{101}); err != nil {
		t.Fatal(err)
	}
	st, err := s.Schedule()
	if err != nil {
		t.Fatal(err)
	}
	if len(st.Scheduled) != 1 || len(st.Scheduled[0].Drafts) != 0 {
		t.Fatalf("the next step verifies drafts refused earlier: %+v", st.Scheduled)
	}
}

// TestAudit51ProposeRefusedForSwappedSampleMidStep: a sample swapped out
// by a step keeps its sampled token, yet Propose for it between that
// Schedule and its Update is ErrInvalid (drafts follow the token Update
// samples), and the refused drafts are not counted.
func TestAudit51ProposeRefusedForSwappedSampleMidStep(t *testing.T) {
	s := audit51Sched(t, paged.Config{BlockSize: 2, NumBlocks: 4, HostBlocks: 16}, sched.Config{MaxRunning: 4, MaxBatchTokens: 64, MaxDrafts: 3, ChunkedPrefill: true, Preemption: sched.Swap})
	var rs []*sched.Request
	for range 2 {
		r, err := s.Submit([]int32{1, 2, 3, 4}, sched.Options{MaxTokens: 2})
		if err != nil {
			t.Fatal(err)
		}
		rs = append(rs, r)
	}
	if _, err := s.Schedule(); err != nil { // both prompts fill the pool
		t.Fatal(err)
	}
	if err := s.Update([]int32{100, 200}); err != nil {
		t.Fatal(err)
	}
	st, err := s.Schedule() // a decode needs a third block: one is swapped out
	if err != nil {
		t.Fatal(err)
	}
	if st.Preempted == 0 || s.Stats().SwappedOut == 0 {
		t.Fatalf("the setup did not swap a sample out: Preempted %d, SwappedOut %d", st.Preempted, s.Stats().SwappedOut)
	}
	for _, r := range rs {
		if err := s.Propose(r, 0, []int32{7}); !errors.Is(err, sched.ErrInvalid) {
			t.Fatalf("Propose for request %v (state %v) between Schedule and Update: err %v, want ErrInvalid", r.ID(), r.State(), err)
		}
	}
	if got := s.Stats().DraftsProposed; got != 0 {
		t.Fatalf("a refused Propose counted: DraftsProposed %d", got)
	}
}
