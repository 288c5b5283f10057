package fleet_test

import (
	"math"
	"testing"

	"github.com/stretchr/testify/require"

	"github.com/pagedkv/pagedkv/fleet"
	"github.com/pagedkv/pagedkv/fleet/fleettest"
	"github.com/pagedkv/pagedkv/paged"
)

// TestAudit16LayoutBoundsFitInt32: the layout bounds are int constants
// compared with paged.Group's int fields, so they must fit a 32-bit int,
// or package fleet does not compile for GOARCH=386 or arm (it did before
// layouts: `GOARCH=386 go build ./...`). Scoring's token arithmetic must
// not overflow there either: a window's need is at most span+block size.
func TestAudit16LayoutBoundsFitInt32(t *testing.T) {
	require.LessOrEqual(t, int64(fleet.MaxLayoutSpan)+int64(fleet.MaxLayoutBlockSize), int64(math.MaxInt32))
	l := fleet.Layout{BlockSize: fleet.MaxLayoutBlockSize, Groups: []paged.Group{{}, {Kind: paged.SlidingWindow, Window: fleet.MaxLayoutSpan}, {Kind: paged.ChunkedLocal, Chunk: fleet.MaxLayoutSpan}}}
	require.NoError(t, l.Validate())
	back, err := fleet.ParseLayout(l.String())
	require.NoError(t, err)
	require.Equal(t, l, back)
}

// TestAudit16UnreadableLayout: a layout record this version cannot read
// (a newer router's kind, a hand edit in Redis) makes that one server
// unscorable, partial with nothing, not every lookup of the fleet fail;
// the other servers are scored and take events as before.
func TestAudit16UnreadableLayout(t *testing.T) {
	mem, err := fleet.NewMemory(fleet.MemoryConfig{})
	require.NoError(t, err)
	x, err := fleet.New(fleet.Config{Backend: mem})
	require.NoError(t, err)
	require.NoError(t, x.Apply("a", []paged.Event{fleettest.Stored(1, paged.Device, 1, 2)}))
	require.NoError(t, x.Apply("b", []paged.Event{fleettest.Stored(1, paged.Device, 1, 2)}))
	recordBehind(t, mem, 1, "b16 full sink:4")

	sc, err := x.Lookup(fleettest.Hs(1, 2), nil)
	require.NoError(t, err, "one unreadable record fails no lookup")
	require.Equal(t, 2, sc[0].Blocks)
	require.False(t, sc[0].Partial)
	require.Equal(t, fleet.Score{Server: 1, Name: "b", Partial: true}, sc[1], "b cannot be scored")
	require.NoError(t, x.Apply("a", []paged.Event{fleettest.Stored(2, paged.Device, 3)}))
	require.NoError(t, x.Apply("b", []paged.Event{fleettest.Stored(2, paged.Device, 3)}))
	_, ok := x.Layout("b")
	require.False(t, ok, "no layout this version reads")
	require.ErrorIs(t, x.SetLayout("b", fleet.Layout{BlockSize: 16, Groups: []paged.Group{{}}}), fleet.ErrInvalid, "another layout is recorded")
	st, err := x.Servers(nil)
	require.NoError(t, err)
	require.Equal(t, "b16 full sink:4", st[1].Layout)
	require.True(t, st[1].Partial)
	sc, err = x.Lookup(fleettest.Hs(1, 2, 3), nil)
	require.NoError(t, err)
	require.Equal(t, 3, sc[0].Blocks)
	require.Zero(t, sc[1].Blocks)
}

// TestAudit16LayoutLearnedFromAConflict: the Memory form of the Redis
// test TestAudit16LayoutSetWhileAnotherRouterApplies: a layout recorded
// in the backend behind this Index's back (another router's) is learned
// from the conflict it causes, and the events are checked against it.
func TestAudit16LayoutLearnedFromAConflict(t *testing.T) {
	mem, err := fleet.NewMemory(fleet.MemoryConfig{})
	require.NoError(t, err)
	x, err := fleet.New(fleet.Config{Backend: mem})
	require.NoError(t, err)
	require.NoError(t, x.Apply("gpu", []paged.Event{fleettest.Stored(1, paged.Device, 1, 2)}))
	recordBehind(t, mem, 0, "b1 full window:1")
	err = x.Apply("gpu", []paged.Event{{Seq: 2, Kind: paged.BlockStored, Hashes: fleettest.Hs(1), Medium: paged.Device, Group: 3}})
	require.ErrorIs(t, err, fleet.ErrInvalid, "group 3 is not in the recorded layout")
	st, err := x.Servers(nil)
	require.NoError(t, err)
	require.Equal(t, uint64(1), st[0].Seq, "nothing applied")
	require.Equal(t, "b1 full window:1", st[0].Layout)
}

// recordBehind records layout text for server id in mem directly, as
// another router sharing the backend would.
func recordBehind(t *testing.T, mem *fleet.Memory, id fleet.ServerID, text string) {
	recs, err := mem.Servers(nil)
	require.NoError(t, err)
	next := recs[id].State
	next.Gen++
	next.HasLayout = true
	_, err = mem.SetLayout(id, recs[id].State, text, next)
	require.NoError(t, err)
}
