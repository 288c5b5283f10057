package sched_test

import (
	"runtime"
	"testing"

	"github.com/pagedkv/pagedkv/paged"
	"github.com/pagedkv/pagedkv/sched"
)

// TestSustainedLoadStaysBounded: a server that is never idle, with
// requests always waiting, preemptions and aborts, runs 10^5 requests; the
// heap must not grow with the number of requests served.
func TestSustainedLoadStaysBounded(t *testing.T) {
	m, err := paged.New(paged.Config{BlockSize: 4, NumBlocks: 64})
	if err != nil {
		t.Fatal(err)
	}
	s, err := sched.New(m, sched.Config{MaxBatchTokens: 64, ChunkedPrefill: true})
	if err != nil {
		t.Fatal(err)
	}
	prompt := make([]int32, 0, 32)
	var tokens []int32
	n := 0
	submit := func() {
		n++
		prompt = prompt[:0]
		for i := range 1 + n%23 {
			prompt = append(prompt, int32(n%7*100+i))
		}
		if _, err := s.Submit(prompt, sched.Options{MaxTokens: 1 + n%13}); err != nil {
			t.Fatal(err)
		}
	}
	run := func(requests int) {
		for range requests {
			submit()
			for s.Waiting() > 32 {
				st, err := s.Schedule()
				if err != nil {
					t.Fatal(err)
				}
				tokens = tokens[:0]
				for range st.Outputs {
					tokens = append(tokens, 5)
				}
				if err := s.Update(tokens); err != nil {
					t.Fatal(err)
				}
			}
		}
	}
	run(20_000)
	var a, b runtime.MemStats
	runtime.GC()
	runtime.ReadMemStats(&a)
	run(80_000)
	runtime.GC()
	runtime.ReadMemStats(&b)
	grown := int64(b.HeapInuse) - int64(a.HeapInuse)
	st := s.Stats()
	t.Logf("heap grew %d KiB over 80,000 requests; %d finished, %d preemptions, %d steps", grown>>10, st.Finished, st.Preemptions, st.Steps)
	if grown > 256<<10 {
		t.Errorf("heap grew %d KiB over 80,000 requests", grown>>10)
	}
}
