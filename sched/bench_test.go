package sched_test

import (
	"fmt"
	"testing"

	"github.com/pagedkv/pagedkv/paged"
	"github.com/pagedkv/pagedkv/sched"
)

// decodeLen is how many tokens each benchmark sequence decodes before it
// finishes and a new one takes its place (both loops pay that admission).
const decodeLen = 256

func benchManager(tb testing.TB, n int, caching bool) *paged.Manager {
	m, err := paged.New(paged.Config{
		BlockSize:            16,
		NumBlocks:            n*(100+decodeLen)/16 + n + 1,
		DisablePrefixCaching: !caching,
	})
	if err != nil {
		tb.Fatal(err)
	}
	return m
}

// benchPrompt makes n distinct 100-token prompts.
func benchPrompts(n int) [][]int32 {
	ps := make([][]int32, n)
	for i := range ps {
		ps[i] = make([]int32, 100)
		for j := range ps[i] {
			ps[i][j] = int32(i*1000 + j)
		}
	}
	return ps
}

// BenchmarkDecodeStep measures one decode step of n running sequences
// through the scheduler (Schedule and Update) against the same appends on
// the bare manager, so the difference is the scheduler's own cost. Every
// decodeLen steps the sequences finish and new ones are admitted, in both
// loops. ns/token is per decoded token.
func BenchmarkDecodeStep(b *testing.B) {
	for _, n := range []int{16, 256} {
		for _, caching := range []bool{false, true} {
			b.Run(fmt.Sprintf("seqs=%d/caching=%v/bare", n, caching), func(b *testing.B) { benchBare(b, n, caching) })
			b.Run(fmt.Sprintf("seqs=%d/caching=%v/sched", n, caching), func(b *testing.B) { benchSched(b, n, caching) })
		}
	}
}

func benchBare(b *testing.B, n int, caching bool) {
	step := bareLoop(b, n, caching)
	b.ReportAllocs()
	for b.Loop() {
		step()
	}
	b.ReportMetric(float64(b.Elapsed().Nanoseconds())/float64(b.N)/float64(n), "ns/token")
}

// bareLoop returns one step of the bare manager: n sequences append one
// token each, and every decodeLen steps they are freed and new ones
// created.
func bareLoop(tb testing.TB, n int, caching bool) func() {
	m := benchManager(tb, n, caching)
	prompts := benchPrompts(n)
	ids := make([]paged.SeqID, n)
	admit := func() {
		for i := range ids {
			id, _, err := m.Create(prompts[i], &paged.SeqOptions{MaxTokens: 100 + decodeLen})
			if err != nil {
				tb.Fatal(err)
			}
			ids[i] = id
		}
	}
	admit()
	step := 0
	return func() {
		for _, id := range ids {
			if err := m.Append(id, int32(step)); err != nil {
				tb.Fatal(err)
			}
		}
		step++
		if step%decodeLen == 0 {
			for _, id := range ids {
				if err := m.Free(id); err != nil {
					tb.Fatal(err)
				}
			}
			admit()
		}
	}
}

func benchSched(b *testing.B, n int, caching bool) {
	m := benchManager(b, n, caching)
	prompts := benchPrompts(n)
	s, err := sched.New(m, sched.Config{MaxRunning: n})
	if err != nil {
		b.Fatal(err)
	}
	submit := func() {
		for i := range n {
			// The prompt's step samples the first token, so decodeLen+1
			// outputs make decodeLen decode steps.
			if _, err := s.Submit(prompts[i], sched.Options{MaxTokens: decodeLen + 1}); err != nil {
				b.Fatal(err)
			}
		}
	}
	tokens := make([]int32, n)
	run := func() {
		st, err := s.Schedule()
		if err != nil {
			b.Fatal(err)
		}
		if err := s.Update(tokens[:st.Outputs]); err != nil {
			b.Fatal(err)
		}
	}
	// The bare manager's same work is the probe: the ratio is what the
	// scheduler adds, whatever the machine's load.
	benchSteps(b, s, n, submit, run, bareLoop(b, n, caching), "x-bare")
}

// TestDecodeStepAllocs: a step that only decodes allocates nothing.
func TestDecodeStepAllocs(t *testing.T) {
	m := benchManager(t, 64, true)
	s, err := sched.New(m, sched.Config{MaxRunning: 64, MaxBatchTokens: 1 << 20, ChunkedPrefill: true})
	if err != nil {
		t.Fatal(err)
	}
	for _, p := range benchPrompts(64) {
		if _, err := s.Submit(p, sched.Options{MaxTokens: decodeLen}); err != nil {
			t.Fatal(err)
		}
	}
	tokens := make([]int32, 64)
	var batch paged.Batch
	step := func() {
		st, err := s.Schedule()
		if err != nil {
			t.Fatal(err)
		}
		if err := s.BuildBatch(&batch); err != nil {
			t.Fatal(err)
		}
		if err := s.Update(tokens[:st.Outputs]); err != nil {
			t.Fatal(err)
		}
	}
	step() // admissions
	step() // buffers grow
	if a := testing.AllocsPerRun(100, step); a != 0 {
		t.Fatalf("a decode step allocates %v times", a)
	}
	if s.Running() != 64 {
		t.Fatalf("%d running, want all 64", s.Running())
	}
}
