package paged_test

import (
	"testing"

	"github.com/stretchr/testify/assert"
	"github.com/stretchr/testify/require"

	"github.com/pagedkv/pagedkv/paged"
)

// TestAudit25UnadmitAndSwapOutWithDrafts: an admission of the step being
// built that took drafts at once (AppendSpeculative after Admit) is still
// uncomputed: SwapOut refuses it (ErrUncomputed, nothing changed, drafts
// pending), and Unadmit takes it back with its drafts' state pages, as
// if neither had been made.
func TestAudit25UnadmitAndSwapOutWithDrafts(t *testing.T) {
	cfg := paged.Config{BlockSize: 4, NumBlocks: 64, HostBlocks: 64, DisableOffload: true, Events: 256,
		Groups: []paged.Group{{Kind: paged.FullAttention}, {Kind: paged.SlidingWindow, Window: 4}, {Kind: paged.State, Pages: 2}}}
	m, err := paged.New(cfg)
	require.NoError(t, err)
	stepDone(m)
	start := m.Stats()
	id, err := m.Add(seqOf(1, 10), nil)
	require.NoError(t, err)
	_, err = m.Admit(id)
	require.NoError(t, err)
	require.NoError(t, m.AppendSpeculative(id, 50, 51, 52))
	assert.Equal(t, 3*2, m.Stats().StateDraftPages)

	before := m.Stats()
	var snap0, snap1 paged.Snapshot
	m.Snapshot(&snap0)
	require.ErrorIs(t, m.SwapOut(id), paged.ErrUncomputed)
	m.Snapshot(&snap1)
	assert.Equal(t, before, m.Stats())
	assert.Equal(t, snap0, snap1)
	require.NoError(t, m.Check())

	require.NoError(t, m.Unadmit(id))
	require.NoError(t, m.Check())
	after := m.Stats()
	assert.Zero(t, after.StateDraftPages)
	assert.Equal(t, start.FreeBlocks+start.CachedBlocks, after.FreeBlocks+after.CachedBlocks, "every block back")
	assert.Equal(t, start.PrefixQueries, after.PrefixQueries)
	assert.Equal(t, uint64(1), after.Unadmits)
	toks, err := m.Tokens(id)
	require.NoError(t, err)
	assert.Equal(t, seqOf(1, 10), toks, "the drafts are gone with the admission")
	// The readmission is a first one.
	_, err = m.Admit(id)
	require.NoError(t, err)
	assert.Zero(t, m.Stats().StateDraftPages)
	require.NoError(t, m.Check())
}
