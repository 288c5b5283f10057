package paged_test

import (
	"fmt"
	"testing"

	"github.com/stretchr/testify/assert"
	"github.com/stretchr/testify/require"

	"github.com/pagedkv/pagedkv/paged"
)

// TestAudit25UnadmitRefusesSharedUncomputedBlocks: an admission whose
// blocks another sequence of the step holds (a later admission of the
// same step hit them, as vLLM's same-batch hits, or a fork of it) cannot
// be taken back: its kernels are what would write those blocks, and the
// other sequence counts them as cached. Unadmit let it through: the
// blocks stayed cached, held by the other sequence, with KV no step
// would ever write, and a later request hit them. It is refused now
// (ErrSequenceState, nothing changed); the caller takes back the other
// sequence first (Unadmit, or Free of the fork), then this one.
func TestAudit25UnadmitRefusesSharedUncomputedBlocks(t *testing.T) {
	layouts := map[string][]paged.Group{
		"plain":  nil,
		"hybrid": {{Kind: paged.FullAttention}, {Kind: paged.SlidingWindow, Window: 8}, {Kind: paged.State, Pages: 2}},
	}
	for name, groups := range layouts {
		for _, how := range []string{"hit", "fork"} {
			t.Run(fmt.Sprint(name, "/", how), func(t *testing.T) {
				m, err := paged.New(paged.Config{BlockSize: 4, NumBlocks: 64, Groups: groups, Events: 256})
				require.NoError(t, err)
				stepDone(m)
				prompt := seqOf(1, 13)
				a, err := m.Add(prompt, nil)
				require.NoError(t, err)
				cached, err := m.Admit(a)
				require.NoError(t, err)
				require.Zero(t, cached)
				var other paged.SeqID
				if how == "hit" {
					other, err = m.Add(append(seqOf(1, 12), 99), nil)
					require.NoError(t, err)
					cached, err := m.Admit(other)
					require.NoError(t, err)
					if groups == nil {
						require.Equal(t, 12, cached, "a same-step hit on a's blocks")
					}
				} else {
					other, err = m.Fork(a)
					require.NoError(t, err)
				}
				before := m.Stats()
				var snap0, snap1 paged.Snapshot
				m.Snapshot(&snap0)
				err = m.Unadmit(a)
				if groups != nil && how == "hit" && err == nil {
					// (A hybrid layout's hit needs a checkpoint, which
					// the step has not made: b hit nothing of a's.)
					return
				}
				require.ErrorIs(t, err, paged.ErrSequenceState)
				m.Snapshot(&snap1)
				assert.Equal(t, before, m.Stats(), "a refused Unadmit changes nothing")
				assert.Equal(t, snap0, snap1)
				require.NoError(t, m.Check())
				// Taking the other back first lets it through.
				if how == "hit" {
					require.NoError(t, m.Unadmit(other))
				} else {
					require.NoError(t, m.Free(other))
				}
				require.NoError(t, m.Unadmit(a))
				require.NoError(t, m.Check())
				stepDone(m)
				// Nothing of a's prompt is cached.
				c, err := m.Add(prompt, nil)
				require.NoError(t, err)
				cached, err = m.Admit(c)
				require.NoError(t, err)
				assert.Zero(t, cached, "a hit on blocks no step computed")
			})
		}
	}
}
