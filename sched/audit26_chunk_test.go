package sched_test

import (
	"testing"

	"github.com/stretchr/testify/require"

	"github.com/pagedkv/pagedkv/paged"
	"github.com/pagedkv/pagedkv/sched"
)

// TestAudit26ChunkGrowsBackAfterPins: the layout of
// TestChunkedPrefillShrinksChunkToFit (a 64-token prompt fits in chunks
// of 8, never in chunks of 32) with a prefix pin that expires holding
// part of the pool. While the pin holds its blocks, the prompt, alone,
// finds no room for its chunk and the scheduler halves it (or waits for
// the pin); once the pin ends, its chunks grow back to what the pool
// alone allows: no prefill chunk but the prompt's last is below 8
// tokens. The halving was kept for good: after the pin ended the prompt
// went on one token a step.
func TestAudit26ChunkGrowsBackAfterPins(t *testing.T) {
	groups := []paged.Group{{Kind: paged.FullAttention}}
	for range 5 {
		groups = append(groups, paged.Group{Kind: paged.SlidingWindow, Window: 8})
	}
	m := newManager(t, paged.Config{BlockSize: 4, NumBlocks: 41, Groups: groups})
	// Cached content, pinned until time 6.
	pinned := make([]int32, 24)
	for k := range pinned {
		pinned[k] = int32(500 + k)
	}
	id, _, err := m.Create(pinned, nil)
	require.NoError(t, err)
	m.EndStep() // the step computing it ran: a pin may hold it
	require.NoError(t, m.Free(id))
	require.NoError(t, m.SetPinBudget(40))
	_, held, err := m.Pin(pinned, nil, 6)
	require.NoError(t, err)
	require.Positive(t, held)
	s, err := sched.New(m, sched.Config{MaxBatchTokens: 32, ChunkedPrefill: true})
	require.NoError(t, err)
	long := make([]int32, 64)
	for k := range long {
		long[k] = int32(k + 1)
	}
	r, err := s.Submit(long, sched.Options{MaxTokens: 5})
	require.NoError(t, err)
	var chunks []int // the prefill chunks after the pin ended
	for step := int64(1); s.Busy(); step++ {
		require.Less(t, step, int64(200))
		m.Advance(step)
		pins := m.PinStats().PinnedBlocks
		st, err := s.Schedule()
		require.NoError(t, err)
		for _, sc := range st.Scheduled {
			if sc.Prefill && pins == 0 {
				chunks = append(chunks, sc.NewTokens)
			}
		}
		out := make([]int32, st.Outputs)
		for i := range out {
			out[i] = 7
		}
		require.NoError(t, s.Update(out))
		require.NoError(t, m.Check())
	}
	require.Equal(t, sched.Finished, r.State(), "%v", r.Err())
	t.Logf("prefill chunks after the pin ended: %v", chunks)
	for i, n := range chunks {
		if i < len(chunks)-1 {
			require.GreaterOrEqual(t, n, 8, "chunk %d of %v", i, chunks)
		}
	}
}

// TestAudit26SwappedChunkComputedFirst: a prompt computed in chunks on a
// layout with a window (blocks of 2, a window of 4) is swapped out in a
// step that had appended its chunk (Priority: it is the victim of a later
// request's decode), so the chunk's tokens were never computed. The step
// that swaps it in computes them first: it appended the next chunk on top,
// which slid the window from the end of the uncomputed chunk, releasing
// blocks the chunk's own queries read (BuildBatch refused the step; a
// server building its own batch would have read released blocks).
func TestAudit26SwappedChunkComputedFirst(t *testing.T) {
	m := newManager(t, paged.Config{BlockSize: 2, NumBlocks: 10, HostBlocks: 30, DisableOffload: true,
		Groups: []paged.Group{{Kind: paged.FullAttention}, {Kind: paged.SlidingWindow, Window: 4}}})
	s, err := sched.New(m, sched.Config{ChunkedPrefill: true, MaxBatchTokens: 6, Preemption: sched.Swap, Policy: sched.Priority})
	require.NoError(t, err)
	first, err := s.Submit([]int32{50, 51}, sched.Options{MaxTokens: 2})
	require.NoError(t, err)
	long := make([]int32, 12)
	for k := range long {
		long[k] = int32(100 + k)
	}
	r, err := s.Submit(long, sched.Options{MaxTokens: 1, Priority: 1})
	require.NoError(t, err)
	var later *sched.Request
	for steps := 0; s.Busy(); steps++ {
		require.Less(t, steps, 50)
		st, err := s.Schedule()
		require.NoError(t, err)
		var b paged.Batch
		require.NoError(t, s.BuildBatch(&b), "step %d", st.Number)
		if later == nil {
			later, err = s.Submit([]int32{70, 71}, sched.Options{MaxTokens: 2})
			require.NoError(t, err)
		}
		out := make([]int32, st.Outputs)
		for i := range out {
			out[i] = 1
		}
		require.NoError(t, s.Update(out))
		require.NoError(t, m.Check())
	}
	require.Positive(t, s.Stats().SwappedOut)
	for _, q := range []*sched.Request{first, r, later} {
		require.Equal(t, sched.Finished, q.State(), "request %d: %v", q.ID(), q.Err())
	}
}

// TestAudit26SwapInHalvesChunk: a prompt computed in chunks (blocks of
// 3, three windows of 8, 19 usable blocks, 11-token steps) is swapped out
// beside a shorter request and swapped in alone: its next chunk, the
// step's whole budget, does not fit even alone, and a smaller one does.
// The swap-in halves the chunk as decodeAll does; it aborted the request
// as one that can never grow.
func TestAudit26SwapInHalvesChunk(t *testing.T) {
	groups := []paged.Group{{Kind: paged.FullAttention}}
	for range 3 {
		groups = append(groups, paged.Group{Kind: paged.SlidingWindow, Window: 8})
	}
	m := newManager(t, paged.Config{BlockSize: 3, NumBlocks: 20, HostBlocks: 40, Groups: groups, DisableOffload: true})
	s, err := sched.New(m, sched.Config{ChunkedPrefill: true, MaxBatchTokens: 11, Preemption: sched.Swap})
	require.NoError(t, err)
	short, err := s.Submit([]int32{50, 51, 52, 53, 54, 55, 56, 57}, sched.Options{MaxTokens: 2})
	require.NoError(t, err)
	long := make([]int32, 20)
	for k := range long {
		long[k] = int32(100 + k)
	}
	r, err := s.Submit(long, sched.Options{MaxTokens: 1})
	require.NoError(t, err)
	runToEnd(t, s, m, 50)
	require.Positive(t, s.Stats().SwappedOut)
	require.Equal(t, sched.Finished, short.State())
	require.Equal(t, sched.Finished, r.State(), "%v", r.Err())
}
