package fleet

import (
	"time"

	"testing"

	"github.com/stretchr/testify/assert"
	"github.com/stretchr/testify/require"

	"github.com/pagedkv/pagedkv/paged"
)

// TestAudit135WriteOverAHalfDoneStateIsUntagged: a router whose write
// finds another router's half-done state (dirty, tagged by the backend)
// clears the server and writes its own state whole, untagged (M3660
// carried the tag into its own state: the backend then held a finished
// write marked as an intermediate one).
func TestAudit135WriteOverAHalfDoneStateIsUntagged(t *testing.T) {
	m := mustMemory(t, 64)
	x, err := New(Config{Backend: m})
	require.NoError(t, err)
	require.NoError(t, x.Apply("a", []paged.Event{stored(1, paged.Device, 1)}))
	recs, err := m.Servers(nil)
	require.NoError(t, err)
	cur := recs[0].State
	half := cur
	half.Gen, half.Dirty, half.tag = cur.Gen+1, true, "~2"
	_, err = m.Update(0, cur, half, false, nil)
	require.NoError(t, err)

	require.NoError(t, x.Apply("a", []paged.Event{stored(2, paged.Device, 2)}))
	recs, err = m.Servers(nil)
	require.NoError(t, err)
	st := recs[0].State
	assert.Empty(t, st.tag, "%v", st)
	assert.False(t, st.Dirty)
	assert.Equal(t, uint64(2), st.Last)
	sc := lookup(t, x, 2)
	assert.Equal(t, 1, sc[0].Blocks)
	assert.True(t, sc[0].Partial, "the half-done write was cleared")
}

// TestAudit135LookupClearsAnUnsureServerPartial: a write that failed
// without telling whether it was applied (here it was not) leaves the
// server unsure; the next lookup clears its entries first, and the
// server stays partial after the clear (M3663 wrote the cleared state
// complete: the lookup scored a server that lost its entries as exact).
func TestAudit135LookupClearsAnUnsureServerPartial(t *testing.T) {
	b := &a96Backend{}
	x := a96Index(t, b, &fakeClock{t: time.Unix(1000, 0)})
	require.NoError(t, x.Apply("a", []paged.Event{stored(1, paged.Device, 1)}))
	b.failUpdates, b.unapplied = 1, true
	require.ErrorIs(t, x.Apply("a", []paged.Event{stored(2, paged.Device, 2)}), errA96)
	sc := lookup(t, x, 1)
	assert.Equal(t, Score{Server: 0, Name: "a", Partial: true}, sc[0], "cleared, partial")
	assert.True(t, a96Servers(t, x)["a"].Partial)
	sc = lookup(t, x, 1)
	assert.True(t, sc[0].Partial, "until it resyncs")
}
