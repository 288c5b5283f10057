package paged_test

import (
	"testing"

	"github.com/stretchr/testify/assert"
	"github.com/stretchr/testify/require"

	"github.com/pagedkv/pagedkv/paged"
)

// admitCounts are the statistics an admission counts and Unadmit takes
// back.
type admitCounts struct {
	queries, queryTokens, hitTokens, queryBlocks, hitBlocks uint64
	preemptions, fallbacks, dropped                         uint64
}

func admitCountsOf(m *paged.Manager) admitCounts {
	st := m.Stats()
	return admitCounts{st.PrefixQueries, st.PrefixQueryTokens, st.PrefixHitTokens, st.PrefixQueryBlocks, st.PrefixHitBlocks,
		st.Preemptions, st.HitFallbacks, st.CheckpointHitsDropped}
}

// TestUnadmitTakesBackFallbackAndDrop: an admission that fell back from
// its longest hit (Stats.HitFallbacks) or dropped a checkpoint hit for a
// miss (Stats.CheckpointHitsDropped), taken back by Unadmit, leaves the
// statistics as if it had not been made, those two counters included;
// admitted again (falling back or dropping again or not) and taken back
// again, it still counts nothing. Before,
// Unadmit took back the prefix statistics but not those two counters:
// every admission a scheduler took back and made again counted one more
// fallback or drop than admissions made.
func TestUnadmitTakesBackFallbackAndDrop(t *testing.T) {
	// admit admits id and returns the tokens AdmitChunk cut off, which
	// Unadmit leaves to the caller to give back.
	check := func(t *testing.T, m *paged.Manager, admit func() ([]int32, error), id paged.SeqID, counted func(admitCounts) uint64) {
		t.Helper()
		before := admitCountsOf(m)
		for i := range 2 {
			rest, err := admit()
			require.NoError(t, err)
			if i == 0 {
				// The second may find a shorter hit: the evictions
				// the first made stay done.
				require.Equal(t, counted(before)+1, counted(admitCountsOf(m)), "the admission counted")
			}
			require.NoError(t, m.Unadmit(id))
			if len(rest) > 0 {
				require.NoError(t, m.Append(id, rest...))
			}
			require.NoError(t, m.Check())
			assert.Equal(t, before, admitCountsOf(m), "as if not admitted (%d)", i)
		}
	}
	fallbacks := func(c admitCounts) uint64 { return c.fallbacks }
	drops := func(c admitCounts) uint64 { return c.dropped }
	t.Run("fallback", func(t *testing.T) {
		// TestLongestHitFallsBack's pool: the longest hit never fits.
		prompt := seqOf(1, 21)
		for _, chunk := range []int{1, 2, 4} {
			m, err := paged.New(paged.Config{BlockSize: 2, NumBlocks: 13, Groups: fallbackLayout})
			require.NoError(t, err)
			cachePrompt(t, m, prompt[:20])
			id, err := m.Add(prompt, nil)
			require.NoError(t, err)
			check(t, m, func() ([]int32, error) {
				cached, rest, err := m.AdmitChunk(id, chunk, nil)
				if err == nil {
					require.Less(t, cached, 20, "a shorter hit")
				}
				return rest, err
			}, id, fallbacks)
		}
	})
	t.Run("dropped", func(t *testing.T) {
		// TestCheckpointHitFallsBackToMiss's pool: the checkpoint hit
		// never fits, the sequence from scratch does (Admit, whole
		// AdmitChunk, cut AdmitChunk).
		for _, chunk := range []int{0, 64, 12} {
			m, err := paged.New(paged.Config{BlockSize: 4, NumBlocks: 9,
				Groups: []paged.Group{{Kind: paged.FullAttention}, {Kind: paged.State, Pages: 2}}})
			require.NoError(t, err)
			with := branchedAt(t, m, seqOf(1, 8))
			prompt := with(300, 9)
			id, err := m.Add(prompt, nil)
			require.NoError(t, err)
			check(t, m, func() ([]int32, error) {
				if chunk == 0 {
					cached, err := m.Admit(id)
					if err == nil {
						require.Zero(t, cached)
					}
					return nil, err
				}
				cached, rest, err := m.AdmitChunk(id, chunk, nil)
				if err == nil {
					require.Zero(t, cached)
				}
				return rest, err
			}, id, drops)
		}
	})
	t.Run("dropped for the cut", func(t *testing.T) {
		// TestCheckpointHitDroppedForTheCut's pinned pool: the whole
		// prompt keeps the hit, the cut drops it (AdmitChunk's noHit).
		groups := []paged.Group{{Kind: paged.FullAttention}, {Kind: paged.State, Pages: 2}}
		m, err := paged.New(paged.Config{BlockSize: 4, NumBlocks: 14, Groups: groups})
		require.NoError(t, err)
		require.NoError(t, m.SetPinBudget(4))
		other := seqOf(500, 8)
		branchedAt(t, m, other)
		_, _, err = m.Pin(other, nil, 0)
		require.NoError(t, err)
		with := branchedAt(t, m, seqOf(1, 12))
		id := addLater(t, m, with(300, 20))
		check(t, m, func() ([]int32, error) {
			cached, rest, err := m.AdmitChunk(id, 12, nil)
			if err == nil {
				require.Zero(t, cached)
			}
			return rest, err
		}, id, drops)
	})
}
