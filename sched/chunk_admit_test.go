package sched_test

import (
	"testing"

	"github.com/stretchr/testify/assert"
	"github.com/stretchr/testify/require"

	"github.com/pagedkv/pagedkv/paged"
	"github.com/pagedkv/pagedkv/sched"
)

// storedBlocks counts the blocks announced by BlockStored events.
func storedBlocks(evs []paged.Event) int {
	n := 0
	for _, e := range evs {
		if e.Kind == paged.BlockStored {
			n += len(e.Hashes)
		}
	}
	return n
}

// TestChunkedAdmissionCachesOnlyTheChunk: a chunked admission claims,
// commits and announces only the blocks of the chunk it schedules, evicts
// no cached block it does not need, and a later lookup of the same prompt
// hits only blocks whose KV a step computed. (Admitting the whole prompt
// and truncating it left 32 uncomputed blocks in the prefix cache.)
func TestChunkedAdmissionCachesOnlyTheChunk(t *testing.T) {
	const bs = 4
	m := newManager(t, paged.Config{BlockSize: bs, NumBlocks: 65, Events: 1024})
	s, err := sched.New(m, sched.Config{MaxBatchTokens: 32, ChunkedPrefill: true})
	require.NoError(t, err)
	prompt := func(base int32) []int32 {
		p := make([]int32, 40*bs)
		for i := range p {
			p[i] = base + int32(i)
		}
		return p
	}
	// Fill the prefix cache with 40 computed blocks, in one step.
	s0, err := sched.New(m, sched.Config{MaxBatchTokens: 1024})
	require.NoError(t, err)
	_, err = s0.Submit(prompt(1), sched.Options{MaxTokens: 1})
	require.NoError(t, err)
	drain(t, s0, 7)
	st := m.Stats()
	require.Equal(t, 40, st.CachedBlocks)
	evicted := st.Evictions
	m.DrainEvents(nil)

	// A 40-block prompt admitted in chunks of 8 blocks.
	p2 := prompt(10000)
	_, err = s.Submit(p2, sched.Options{MaxTokens: 1})
	require.NoError(t, err)
	step, err := s.Schedule()
	require.NoError(t, err)
	require.Len(t, step.Scheduled, 1)
	assert.Equal(t, 32, step.Scheduled[0].NewTokens)
	assert.Equal(t, 8, storedBlocks(m.DrainEvents(nil)), "blocks announced by the first chunk")
	assert.Equal(t, evicted, m.Stats().Evictions, "the chunk's 8 blocks fit in the 24 free ones")
	require.NoError(t, s.Update(nil))
	require.NoError(t, m.Check())

	// Another sequence with the same prompt hits the computed chunk only.
	probe, err := m.Add(p2, nil)
	require.NoError(t, err)
	cached, err := m.Admit(probe)
	require.NoError(t, err)
	assert.Equal(t, 32, cached, "hits on the second request's prompt")
	require.NoError(t, m.Free(probe))

	// The rest of the prompt comes chunk by chunk and is cached as it is
	// computed: at the end every full block but the last token's hits.
	drain(t, s, 7)
	probe, err = m.Add(p2, nil)
	require.NoError(t, err)
	cached, err = m.Admit(probe)
	require.NoError(t, err)
	assert.Equal(t, 39*bs, cached)
	require.NoError(t, m.Free(probe))
	require.NoError(t, m.Check())
}

// TestPreemptedNewcomerLeavesNoUncomputedBlock: with AdmitFirst, a
// newcomer admitted in a step and preempted in the same step by an older
// sequence's growth never had its prompt computed: none of its blocks may
// stay in the prefix cache. (They were announced at admission; the
// preemption must withdraw every one the grower did not evict.)
func TestPreemptedNewcomerLeavesNoUncomputedBlock(t *testing.T) {
	for _, resample := range []bool{false, true} {
		m := newManager(t, paged.Config{BlockSize: 2, NumBlocks: 6, Events: 64})
		s, err := sched.New(m, sched.Config{AdmitFirst: true, ResampleAfterRecompute: resample})
		require.NoError(t, err)
		_, err = s.Submit([]int32{1, 2, 3}, sched.Options{MaxTokens: 4})
		require.NoError(t, err)
		step := func(outputs ...int32) {
			st, err := s.Schedule()
			require.NoError(t, err)
			require.Len(t, outputs, st.Outputs)
			require.NoError(t, s.Update(outputs))
		}
		step(4) // A's prompt
		step(5) // A's token 4 completes its second block
		n, err := s.Submit([]int32{10, 11, 12, 13, 14, 15}, sched.Options{MaxTokens: 2})
		require.NoError(t, err)
		m.DrainEvents(nil)
		st, err := s.Schedule()
		require.NoError(t, err)
		// N took the last 3 blocks; A's token 5 needed one, and N, the
		// newest, was preempted for it.
		require.Equal(t, 1, st.Preempted, "resample %v", resample)
		require.False(t, n.State().Done())
		stored := map[paged.Hash]int{}
		for _, e := range m.DrainEvents(nil) {
			for _, h := range e.Hashes {
				switch e.Kind {
				case paged.BlockStored:
					stored[h]++
				case paged.BlockRemoved:
					stored[h]--
				}
			}
		}
		assert.Len(t, stored, 3, "N's prompt blocks were announced")
		for h, k := range stored {
			assert.LessOrEqual(t, k, 0, "resample %v: block %v of a prompt never computed stays cached", resample, h)
		}
		require.NoError(t, m.Check())
		require.NoError(t, s.Update(make([]int32, st.Outputs)))
		drain(t, s, 7)
	}
}
