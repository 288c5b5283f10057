package paged_test

import (
	"fmt"
	"testing"

	"github.com/stretchr/testify/assert"
	"github.com/stretchr/testify/require"

	"github.com/pagedkv/pagedkv/paged"
)

// lookupCounters are the statistics an admission's lookup counts.
func lookupCounters(st paged.Stats) [6]uint64 {
	return [6]uint64{st.PrefixQueries, st.PrefixQueryTokens, st.PrefixHitTokens,
		st.PrefixQueryBlocks, st.PrefixHitBlocks, st.Tiers.HostHitBlocks}
}

// TestUnadmitCountsAsNotMade: Unadmit takes an admission of the step
// being built back as if it had not been made: the lookup counters are
// those before it, no preemption is counted (Unadmits is), the blocks it
// stored and alone held leave the prefix cache, its hits stay, and the
// readmission finds the same prefix. With Uncompute and Preempt (what
// package sched did) the lookup and a preemption stayed counted: the
// readmission counted the request twice.
func TestUnadmitCountsAsNotMade(t *testing.T) {
	configs := map[string]paged.Config{
		"plain":  {BlockSize: 4, NumBlocks: 33},
		"host":   {BlockSize: 4, NumBlocks: 9, HostBlocks: 16},
		"hybrid": {BlockSize: 4, NumBlocks: 64, Groups: []paged.Group{{Kind: paged.FullAttention}, {Kind: paged.SlidingWindow, Window: 8}, {Kind: paged.State, Pages: 2}}},
	}
	for name, cfg := range configs {
		for _, chunk := range []bool{false, true} {
			t.Run(fmt.Sprint(name, "/chunk=", chunk), func(t *testing.T) {
				m, err := paged.New(cfg)
				require.NoError(t, err)
				// A cached prefix of two blocks.
				warm, _, err := m.Create(seqOf(1, 9), nil)
				require.NoError(t, err)
				require.NoError(t, m.Free(warm))
				if cfg.HostBlocks > 0 {
					// Other traffic offloads it to the host tier.
					other, _, err := m.Create(seqOf(500, 32), nil)
					require.NoError(t, err)
					require.NoError(t, m.Free(other))
				}
				stepDone(m)
				prompt := append(seqOf(1, 8), seqOf(100, 10)...)
				id, err := m.Add(prompt, nil)
				require.NoError(t, err)
				before := m.Stats()
				admit := func() (int, []int32) {
					if chunk {
						cached, rest, err := m.AdmitChunk(id, 4, nil)
						require.NoError(t, err)
						return cached, rest
					}
					cached, err := m.Admit(id)
					require.NoError(t, err)
					return cached, nil
				}
				first, rest := admit()
				if len(cfg.Groups) == 0 {
					require.Equal(t, 8, first) // a state group has no checkpoint to hit
				}
				if chunk {
					require.Len(t, rest, len(prompt)-first-4)
				}
				admitted := m.Stats()
				require.NotEqual(t, lookupCounters(before), lookupCounters(admitted))
				if cfg.HostBlocks > 0 {
					require.Equal(t, before.Tiers.HostHitBlocks+2, admitted.Tiers.HostHitBlocks, "the hits were on the host")
				}
				require.NoError(t, m.Unadmit(id))
				require.NoError(t, m.Check())
				after := m.Stats()
				assert.Equal(t, lookupCounters(before), lookupCounters(after), "the lookup is taken back")
				assert.Equal(t, before.Preemptions, after.Preemptions, "no preemption counted")
				assert.Equal(t, before.Unadmits+1, after.Unadmits)
				assert.Equal(t, before.Running, after.Running)
				running, _ := m.Running(id)
				assert.False(t, running)
				n, _ := m.Len(id)
				assert.Equal(t, len(prompt)-len(rest), n, "the tokens AdmitChunk cut off are the caller's")
				if len(rest) > 0 {
					require.NoError(t, m.Append(id, rest...))
				}

				// The prompt's own blocks, stored by the admission, left the
				// cache; the two hit blocks are cached still.
				probe, err := m.Add(prompt, nil)
				require.NoError(t, err)
				again, err := m.Admit(probe)
				require.NoError(t, err)
				assert.Equal(t, first, again, "only the prefix that was cached before")
				require.NoError(t, m.Unadmit(probe))
				require.NoError(t, m.Free(probe))

				// Readmitted, it finds what the first admission found.
				cached, _ := admit()
				assert.Equal(t, first, cached)
				require.NoError(t, m.Check())
				st := m.Stats()
				assert.Equal(t, before.PrefixQueries+1, st.PrefixQueries, "one lookup stands")
				assert.Equal(t, before.Preemptions, st.Preemptions)

				// Once the step ran, the admission stands: Preempt it.
				m.EndStep()
				require.ErrorIs(t, m.Unadmit(id), paged.ErrSequenceState)
				assert.Equal(t, st, m.Stats())
			})
		}
	}
}

// TestUnadmitRefusesSwapInAndFork: only an admission is taken back; a
// sequence swapped in, or forked, in the step is not one.
func TestUnadmitRefusesSwapInAndFork(t *testing.T) {
	m, err := paged.New(paged.Config{BlockSize: 4, NumBlocks: 33, HostBlocks: 32})
	require.NoError(t, err)
	a, _, err := m.Create(seqOf(1, 10), nil)
	require.NoError(t, err)
	child, err := m.Fork(a)
	require.NoError(t, err)
	before := m.Stats()
	require.ErrorIs(t, m.Unadmit(child), paged.ErrSequenceState)
	assert.Equal(t, before, m.Stats())
	require.NoError(t, m.Free(child))
	m.EndStep()
	require.NoError(t, m.SwapOut(a))
	m.EndStep()
	require.NoError(t, m.SwapIn(a))
	before = m.Stats()
	require.ErrorIs(t, m.Unadmit(a), paged.ErrSequenceState)
	assert.Equal(t, before, m.Stats())
	require.NoError(t, m.Check())
}

// TestUnadmitAllocatesNothing: taking an admission back and making it
// again, step after step, allocates nothing once the buffers have grown.
func TestUnadmitAllocatesNothing(t *testing.T) {
	m, err := paged.New(paged.Config{BlockSize: 4, NumBlocks: 33})
	require.NoError(t, err)
	id, err := m.Add(seqOf(1, 18), nil)
	require.NoError(t, err)
	cycle := func() {
		if _, err := m.Admit(id); err != nil {
			panic(err)
		}
		if err := m.Unadmit(id); err != nil {
			panic(err)
		}
		m.EndStep()
	}
	cycle()
	assert.Zero(t, testing.AllocsPerRun(100, cycle))
}

func ExampleManager_Unadmit() {
	m, _ := paged.New(paged.Config{BlockSize: 4, NumBlocks: 9})
	id, _ := m.Add([]int32{1, 2, 3, 4, 5, 6}, nil)
	_, _ = m.Admit(id)
	// The scheduler finds it cannot run the sequence in this step after
	// all: it takes the admission back, which counts as never made.
	_ = m.Unadmit(id)
	st := m.Stats()
	fmt.Println("queries:", st.PrefixQueries, "preemptions:", st.Preemptions, "unadmits:", st.Unadmits)
	_, _ = m.Admit(id)
	m.EndStep() // the step ran: the admission stands
	fmt.Println(m.Unadmit(id) != nil, m.Stats().PrefixQueries)
	// Output:
	// queries: 0 preemptions: 0 unadmits: 1
	// true 1
}
