package sched_test

import (
	"testing"

	"github.com/stretchr/testify/assert"
	"github.com/stretchr/testify/require"

	"github.com/pagedkv/pagedkv/paged"
	"github.com/pagedkv/pagedkv/sched"
)

// TestAudit26DraftRoom: DraftRoom tells a drafter beforehand what Propose
// could only learn from the next step. A sequence in chunked prefill has
// no sampled token to follow (ErrInvalid, as Propose); once decoding, the
// room is MaxDrafts, then what the sample's outputs leave, down to 0 for
// its last output; the next step verifies exactly that many of a longer
// proposal when the budget and the pool are ample, in every layout paged
// takes (none refuses drafts: a State group keeps a state per draft).
func TestAudit26DraftRoom(t *testing.T) {
	layouts := map[string][]paged.Group{
		"single": nil,
		"window": {{Kind: paged.FullAttention}, {Kind: paged.SlidingWindow, Window: 4}},
		"chunk":  {{Kind: paged.FullAttention}, {Kind: paged.ChunkedLocal, Chunk: 4}},
		"state":  {{Kind: paged.FullAttention}, {Kind: paged.State, Pages: 2}},
	}
	for name, groups := range layouts {
		t.Run(name, func(t *testing.T) {
			m := newManager(t, paged.Config{BlockSize: 2, NumBlocks: 128, Groups: groups})
			s, err := sched.New(m, sched.Config{MaxDrafts: 3, MaxBatchTokens: 8, ChunkedPrefill: true})
			require.NoError(t, err)
			prompt := make([]int32, 12)
			for i := range prompt {
				prompt[i] = int32(i + 1)
			}
			r, err := s.Submit(prompt, sched.Options{MaxTokens: 6})
			require.NoError(t, err)
			st := specStep(t, s) // the prompt's first chunk
			require.Zero(t, st.Outputs, "the prompt is chunked")
			_, err = s.DraftRoom(r, 0)
			require.ErrorIs(t, err, sched.ErrInvalid, "in chunked prefill")
			require.ErrorIs(t, s.Propose(r, 0, []int32{7}), sched.ErrInvalid)
			require.NoError(t, s.Update(nil))
			specStep(t, s) // the rest: the first output
			_, err = s.DraftRoom(r, 0)
			require.ErrorIs(t, err, sched.ErrInvalid, "between Schedule and Update")
			require.NoError(t, s.Update([]int32{100}))

			drafts := []int32{101, 102, 103}
			for _, want := range []int{3, 2, 0} { // after 1 output, 3, then 5 of 6
				room, err := s.DraftRoom(r, 0)
				require.NoError(t, err)
				require.Equal(t, want, room, "after %d outputs", r.Outputs(0))
				require.NoError(t, s.Propose(r, 0, drafts))
				st := specStep(t, s)
				require.Len(t, st.Scheduled[0].Drafts, room, "the step verifies what DraftRoom said")
				accepted := []int{min(room, 1)}
				require.NoError(t, s.UpdateSpeculative([]int32{200}, accepted, nil))
			}
			assert.Equal(t, sched.Finished, r.State())
			_, err = s.DraftRoom(r, 0)
			require.ErrorIs(t, err, sched.ErrDone)
			require.NoError(t, m.Check())
		})
	}
	m := newManager(t, paged.Config{BlockSize: 2, NumBlocks: 16})
	off, err := sched.New(m, sched.Config{})
	require.NoError(t, err)
	r, err := off.Submit([]int32{1, 2, 3}, sched.Options{MaxTokens: 2})
	require.NoError(t, err)
	_, err = off.DraftRoom(r, 0)
	require.ErrorIs(t, err, sched.ErrInvalid, "speculative decoding off")
	_, err = off.DraftRoom(nil, 0)
	require.ErrorIs(t, err, sched.ErrInvalid)
}
