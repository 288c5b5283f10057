package sched_test

import (
	"fmt"
	"slices"

	"github.com/pagedkv/pagedkv/paged"
	"github.com/pagedkv/pagedkv/sched"
)

// The loop of a server: submit, then Schedule, run the model, Update,
// while anything is left. A pool of 6 blocks of 4 tokens is too small for
// both requests at their longest, so the newer one is preempted and
// readmitted once the older one finishes: its two full blocks are still in
// the prefix cache, so only 3 tokens are recomputed.
func Example() {
	m, _ := paged.New(paged.Config{BlockSize: 4, NumBlocks: 7})
	s, _ := sched.New(m, sched.Config{})
	a, _ := s.Submit([]int32{1, 2, 3, 4, 5, 6, 7}, sched.Options{MaxTokens: 8})
	b, _ := s.Submit([]int32{9, 8, 7, 6, 5}, sched.Options{MaxTokens: 8})
	var tokens []int32
	for s.Busy() {
		st, err := s.Schedule()
		if err != nil {
			fmt.Println(err)
			return
		}
		// The model: token 100 + position, one per output asked for.
		tokens = tokens[:0]
		for _, sc := range st.Scheduled {
			for range sc.Outputs {
				tokens = append(tokens, int32(100+sc.Start+sc.NewTokens))
			}
		}
		if st.Preempted > 0 {
			fmt.Printf("step %d: preempted %d\n", st.Number, st.Preempted)
		}
		if err := s.Update(tokens); err != nil {
			fmt.Println(err)
			return
		}
	}
	st := s.Stats()
	fmt.Println(a.State(), a.Outputs(0), b.State(), b.Outputs(0))
	fmt.Println("steps", st.Steps, "preemptions", st.Preemptions, "recomputed", st.ResumedTokens)
	// Output:
	// step 7: preempted 1
	// finished 8 finished 8
	// steps 10 preemptions 1 recomputed 3
}

// With a token budget and chunked prefill, a long prompt is computed over
// several steps while the running sequence keeps decoding.
func Example_chunkedPrefill() {
	m, _ := paged.New(paged.Config{BlockSize: 4, NumBlocks: 64})
	s, _ := sched.New(m, sched.Config{MaxBatchTokens: 8, ChunkedPrefill: true})
	_, _ = s.Submit([]int32{1, 2, 3}, sched.Options{MaxTokens: 4})
	_, _ = s.Submit(make([]int32, 20), sched.Options{MaxTokens: 1})
	var batch paged.Batch
	for s.Busy() {
		st, _ := s.Schedule()
		if err := s.BuildBatch(&batch); err != nil {
			fmt.Println(err)
			return
		}
		fmt.Printf("step %d:", st.Number)
		for _, sc := range st.Scheduled {
			fmt.Printf(" req %d [%d,%d)", sc.Request.ID(), sc.Start, sc.Start+sc.NewTokens)
		}
		fmt.Printf(" = %d tokens, %d slots\n", st.Tokens, len(batch.Slots))
		_ = s.Update(make([]int32, st.Outputs))
	}
	// Output:
	// step 1: req 1 [0,3) req 2 [0,5) = 8 tokens, 8 slots
	// step 2: req 1 [3,4) req 2 [5,12) = 8 tokens, 8 slots
	// step 3: req 1 [4,5) req 2 [12,19) = 8 tokens, 8 slots
	// step 4: req 1 [5,6) req 2 [19,20) = 2 tokens, 2 slots
}

// Hooks observe each step; here they count the phases and the sequences
// scheduled, as a study that times phases would.
func Example_hooks() {
	m, _ := paged.New(paged.Config{BlockSize: 16, NumBlocks: 32})
	phases := map[sched.Phase]int{}
	admitted, decoded := 0, 0
	s, _ := sched.New(m, sched.Config{Hooks: sched.Hooks{
		Phase: func(p sched.Phase) { phases[p]++ },
		Scheduled: func(sc *sched.Scheduled) {
			if sc.Admitted {
				admitted++
			} else {
				decoded++
			}
		},
	}})
	for i := range 3 {
		_, _ = s.Submit([]int32{int32(i), 1, 2}, sched.Options{MaxTokens: 5})
	}
	for s.Busy() {
		st, _ := s.Schedule()
		_ = s.Update(make([]int32, st.Outputs))
	}
	fmt.Println("admitted", admitted, "decoded", decoded)
	fmt.Println("decode phases", phases[sched.PhaseDecode], "updates", phases[sched.PhaseDone])
	// Output:
	// admitted 3 decoded 12
	// decode phases 5 updates 5
}

// Under the Priority policy a lower value runs first; Cancel frees a
// request wherever it is.
func Example_priority() {
	m, _ := paged.New(paged.Config{BlockSize: 4, NumBlocks: 16})
	s, _ := sched.New(m, sched.Config{Policy: sched.Priority, MaxRunning: 1})
	low, _ := s.Submit([]int32{1, 2}, sched.Options{MaxTokens: 2, Priority: 5})
	high, _ := s.Submit([]int32{3, 4}, sched.Options{MaxTokens: 2, Priority: 1})
	gone, _ := s.Submit([]int32{5, 6}, sched.Options{MaxTokens: 2, Priority: 0})
	_ = s.Cancel(gone)
	for s.Busy() {
		st, _ := s.Schedule()
		fmt.Printf("step %d: request %d\n", st.Number, st.Scheduled[0].Request.ID())
		_ = s.Update(make([]int32, st.Outputs))
	}
	fmt.Println(low.State(), high.State(), gone.State(), m.Stats().Sequences)
	// Output:
	// step 1: request 2
	// step 2: request 2
	// step 3: request 1
	// step 4: request 1
	// finished finished cancelled 0
}

// Beam search: after each step the caller scores the candidates and
// tells UpdateBeams which beam each new beam extends; the scheduler forks
// a parent chosen twice and frees a beam no one chose, so the beams share
// every block of their common history. The caller keeps the beams' text.
func ExampleScheduler_UpdateBeams() {
	m, _ := paged.New(paged.Config{BlockSize: 4, NumBlocks: 32})
	s, _ := sched.New(m, sched.Config{})
	_, _ = s.Submit([]int32{1, 2, 3, 4, 5}, sched.Options{MaxTokens: 3, BeamWidth: 2})
	// The choices a model's scores would make: the prompt's two best
	// tokens, then both beams from beam 1, then each from its own.
	choices := []struct {
		parents []int
		tokens  []int32
	}{
		{[]int{0, 1}, []int32{7, 8}},
		{[]int{1, 1}, []int32{3, 4}},
		{[]int{0, 1}, []int32{5, 6}},
	}
	beams := [][]int32{nil, nil}
	for step := 0; s.Busy(); step++ {
		st, _ := s.Schedule()
		c := choices[step]
		if err := s.UpdateBeams(c.tokens, c.parents); err != nil {
			fmt.Println(err)
			return
		}
		beams = [][]int32{
			append(slices.Clone(beams[c.parents[0]]), c.tokens[0]),
			append(slices.Clone(beams[c.parents[1]]), c.tokens[1]),
		}
		fmt.Println("step", st.Number, "beams", beams, "blocks in use", m.Stats().UsedBlocks)
	}
	// Step 2 wrote 7 and 8 into the prompt's shared last block (a copy
	// for one of them), then dropped the beam of 7: two blocks again, both
	// shared by the two beams of 8. The last step finished them.
	fmt.Println("forks", s.Stats().Forks)
	// Output:
	// step 1 beams [[7] [8]] blocks in use 2
	// step 2 beams [[8 3] [8 4]] blocks in use 2
	// step 3 beams [[8 3 5] [8 4 6]] blocks in use 0
	// forks 2
}

// A request that can never run in the pool is refused by Submit, or, when
// only running tells, aborted while the loop goes on with the others.
// With two KV cache groups (here two full-attention ones) every token
// takes a slot in each: 22 tokens of KV need 22 of the 6 usable blocks,
// refused. A sequence the caller drives itself holds a block of each group
// for good, which Submit does not see: the first request queued fits the
// pool (6 blocks at its longest, 5 tokens of KV), but beside that sequence
// it cannot grow past 4 tokens.
func ExampleRequest_Err() {
	m, _ := paged.New(paged.Config{BlockSize: 2, NumBlocks: 7, MaxModelLen: 64,
		Groups: []paged.Group{{Kind: paged.FullAttention}, {Kind: paged.FullAttention}}})
	own, _ := m.Add([]int32{9, 9}, nil)
	_, _ = m.Admit(own)
	s, _ := sched.New(m, sched.Config{Hooks: sched.Hooks{
		Aborted: func(r *sched.Request, err error) { fmt.Println("aborted:", r.ID()) },
	}})
	_, err := s.Submit([]int32{1, 2, 3}, sched.Options{MaxTokens: 20})
	fmt.Println(err)
	long, _ := s.Submit([]int32{1, 2, 3}, sched.Options{MaxTokens: 3})
	short, _ := s.Submit([]int32{4}, sched.Options{MaxTokens: 2})
	for s.Busy() {
		st, err := s.Schedule() // no error: aborting a request is not one
		if err != nil {
			fmt.Println(err)
			return
		}
		_ = s.Update(make([]int32, st.Outputs))
	}
	fmt.Println(long.State(), long.Err())
	fmt.Println(short.State(), short.Outputs(0), short.Err())
	_ = m.Free(own)
	fmt.Println("aborted", s.Stats().Aborted, "blocks in use", m.Stats().UsedBlocks)
	// Output:
	// sched: request can never run: 22 tokens of KV need more than the pool's 6 blocks of 2 (a sequence admitted at 22 tokens holds at least 22 blocks, an admission may take 6)
	// aborted: 1
	// aborted sched: request can never run: request 1 cannot grow past 4 tokens in this pool
	// finished 2 <nil>
	// aborted 1 blocks in use 0
}

// Speculative decoding: between steps the server proposes drafts for a
// sample, the step verifies them after its pending token, and
// UpdateSpeculative takes how many the model accepted and the token it
// sampled after them. The model here writes at each position its number
// plus one (the prompt 1 2 3 and on); the drafter guesses the same, but
// wrongly for the second draft after a multiple of 3. A step's outputs
// never pass MaxTokens: the drafts that would are dropped (steps 4, 5).
func ExampleScheduler_Propose() {
	m, _ := paged.New(paged.Config{BlockSize: 4, NumBlocks: 16})
	s, _ := sched.New(m, sched.Config{MaxDrafts: 3})
	r, _ := s.Submit([]int32{1, 2, 3}, sched.Options{MaxTokens: 12})
	var last int32 // the newest sampled token
	var tokens []int32
	var accepted []int
	for s.Busy() {
		if r.Outputs(0) > 0 {
			drafts := []int32{last + 1, last + 2, last + 3}
			if last%3 == 0 {
				drafts[1] = 0
			}
			if err := s.Propose(r, 0, drafts); err != nil {
				fmt.Println(err)
				return
			}
		}
		st, _ := s.Schedule()
		tokens, accepted = tokens[:0], accepted[:0]
		for _, sc := range st.Scheduled {
			// The first position the model predicts follows the
			// pending token (or the prompt): the drafts guess it and
			// the ones after.
			next := int32(sc.Start+sc.NewTokens-len(sc.Drafts)) + 1
			a := 0
			for a < len(sc.Drafts) && sc.Drafts[a] == next+int32(a) {
				a++
			}
			last = next + int32(a)
			tokens, accepted = append(tokens, last), append(accepted, a)
			fmt.Printf("step %d: %d tokens, drafts %v, %d accepted, then %d\n", st.Number, sc.NewTokens, sc.Drafts, a, last)
		}
		if err := s.UpdateSpeculative(tokens, accepted, nil); err != nil {
			fmt.Println(err)
			return
		}
	}
	ss := s.Stats()
	fmt.Println(r.State(), r.Outputs(0), "outputs in", ss.Steps, "steps")
	fmt.Println("drafts proposed", ss.DraftsProposed, "accepted", ss.DraftsAccepted, "rejected", ss.DraftsRejected, "dropped", ss.DraftsDropped)
	// Output:
	// step 1: 3 tokens, drafts [], 0 accepted, then 4
	// step 2: 4 tokens, drafts [5 6 7], 3 accepted, then 8
	// step 3: 4 tokens, drafts [9 10 11], 3 accepted, then 12
	// step 4: 3 tokens, drafts [13 0], 1 accepted, then 14
	// step 5: 1 tokens, drafts [], 0 accepted, then 15
	// finished 12 outputs in 5 steps
	// drafts proposed 12 accepted 7 rejected 1 dropped 4
}
