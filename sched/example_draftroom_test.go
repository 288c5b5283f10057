package sched_test

import (
	"fmt"

	"github.com/pagedkv/pagedkv/paged"
	"github.com/pagedkv/pagedkv/sched"
)

// A drafter asks DraftRoom how many drafts the sample's next step could
// verify and drafts no more: none while the prompt is computed, then
// MaxDrafts, then what the sample's last outputs leave.
func ExampleScheduler_DraftRoom() {
	m, _ := paged.New(paged.Config{BlockSize: 4, NumBlocks: 16})
	s, _ := sched.New(m, sched.Config{MaxDrafts: 3})
	r, _ := s.Submit([]int32{1, 2, 3}, sched.Options{MaxTokens: 6})
	for s.Busy() {
		room, err := s.DraftRoom(r, 0)
		if err != nil {
			fmt.Println("no drafts yet:", err)
		} else {
			drafts := make([]int32, room)
			for i := range drafts {
				drafts[i] = 7
			}
			_ = s.Propose(r, 0, drafts)
		}
		st, _ := s.Schedule()
		sc := st.Scheduled[0]
		fmt.Printf("step %d: room %d, verifies %d drafts\n", st.Number, room, len(sc.Drafts))
		tokens := []int32{7}
		_ = s.UpdateSpeculative(tokens, []int{len(sc.Drafts)}, nil) // all accepted
	}
	fmt.Println(r.State(), r.Outputs(0), "outputs")
	// Output:
	// no drafts yet: sched: invalid argument: DraftRoom for request 1 sample 0: no sampled token to follow (its prompt is not computed, or a recompute took the token back)
	// step 1: room 0, verifies 0 drafts
	// step 2: room 3, verifies 3 drafts
	// step 3: room 0, verifies 0 drafts
	// finished 6 outputs
}
