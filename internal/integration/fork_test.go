package integration_test

import (
	"errors"
	"testing"

	"github.com/pagedkv/pagedkv/paged"
	"github.com/pagedkv/pagedkv/sched"
)

// TestForkWithNoRoomLeavesSchedulerUsable: a parallel-sampling request on a
// model with a State group whose forks find no room for their state pages
// while nothing else of the scheduler runs (here a sequence the server
// drives itself beside the scheduler holds the room). Update used to return
// the fork's ErrNoSpace after it had applied part of the step, and the
// scheduler was broken: the next Schedule handed out an entry of 0 new
// tokens that BuildBatch refused. A request that cannot proceed is aborted
// (ErrNever, Hooks.Aborted), as the package documents for every other such
// case, and the loop goes on with the other requests.
func TestForkWithNoRoomLeavesSchedulerUsable(t *testing.T) {
	m, err := paged.New(paged.Config{BlockSize: 4, NumBlocks: 20,
		Groups: []paged.Group{{Kind: paged.FullAttention}, {Kind: paged.State, Pages: 4}}})
	if err != nil {
		t.Fatal(err)
	}
	// A sequence the server drives itself holds 11 of the 19 blocks.
	long := make([]int32, 28)
	for i := range long {
		long[i] = int32(i + 1)
	}
	own, _, err := m.Create(long, nil)
	if err != nil {
		t.Fatal(err)
	}
	var aborted []*sched.Request
	s, err := sched.New(m, sched.Config{Hooks: sched.Hooks{Aborted: func(r *sched.Request, _ error) { aborted = append(aborted, r) }}})
	if err != nil {
		t.Fatal(err)
	}
	r, err := s.Submit([]int32{901, 902, 903, 904}, sched.Options{MaxTokens: 2, N: 2})
	if err != nil {
		t.Fatal(err)
	}
	other, err := s.Submit([]int32{801, 802, 803}, sched.Options{MaxTokens: 2})
	if err != nil {
		t.Fatal(err)
	}
	var b paged.Batch
	for steps := 0; s.Busy(); steps++ {
		if steps > 20 {
			t.Fatal("no progress after 20 steps")
		}
		st, err := s.Schedule()
		if err != nil {
			t.Fatal(err)
		}
		if err := s.BuildBatch(&b); err != nil {
			t.Fatalf("step %d: %v", st.Number, err)
		}
		if err := s.Update(make([]int32, st.Outputs)); err != nil {
			t.Fatalf("step %d: Update: %v", st.Number, err)
		}
		if err := m.Check(); err != nil {
			t.Fatal(err)
		}
	}
	if r.State() != sched.Aborted || !errors.Is(r.Err(), sched.ErrNever) || len(aborted) != 1 || aborted[0] != r {
		t.Fatalf("the request whose forks cannot fit is %v (%v), hooks saw %d aborts", r.State(), r.Err(), len(aborted))
	}
	if other.State() != sched.Finished {
		t.Fatalf("the other request is %v", other.State())
	}
	if err := m.Free(own); err != nil {
		t.Fatal(err)
	}
	if st := m.Stats(); st.Sequences != 0 || st.UsedBlocks != 0 {
		t.Fatalf("%d sequences and %d blocks left", st.Sequences, st.UsedBlocks)
	}
}
