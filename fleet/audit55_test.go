package fleet

import (
	"testing"
	"time"

	"github.com/stretchr/testify/assert"
	"github.com/stretchr/testify/require"

	"github.com/pagedkv/pagedkv/paged"
)

// TestAudit55BackendHelpers (the tenth mutation round, docs/testing.md):
// CheckEvents refuses the first kind past BlockMoved (M643; the old tests
// used kinds far out of range), and a state with no flag set encodes its
// flags as "-", as StreamState.String documents, so the four fields stay
// four words apart (M649: the mutant wrote two spaces, which its own
// parser read back, but a backend comparing stored text, or a reader
// splitting on runs of spaces, would not).
func TestAudit55BackendHelpers(t *testing.T) {
	err := CheckEvents([]paged.Event{{Kind: paged.BlockMoved + 1, Hashes: []paged.Hash{{1}}}})
	require.ErrorIs(t, err, ErrInvalid)
	require.NoError(t, CheckEvents([]paged.Event{{Kind: paged.BlockMoved, Hashes: []paged.Hash{{1}}, Medium: paged.Host}}))

	assert.Equal(t, "0 0 - 0", StreamState{}.String())
	assert.Equal(t, "3 9 - 12 L2", StreamState{Gen: 3, Last: 9, Seen: 12, Life: 2}.String())
	st, err := ParseStreamState("3 9 - 12 L2")
	require.NoError(t, err)
	assert.Equal(t, StreamState{Gen: 3, Last: 9, Seen: 12, Life: 2}, st)
}

// TestAudit55ExpiredLayoutServerScoresZero (M654, the eleventh mutation
// round): a server with a layout that expires (silent past the TTL) scores
// zero and partial, Affinity included, as a server without one does,
// though the holder sets the backend answered with still hold its blocks:
// scoreLayouts skips the expired servers. The layout puts the window first
// and full attention second (gpt-oss's layer order), so that Affinity is
// the second group's run, which the group-0 run does not bound. The
// server that beat in time keeps its scores.
func TestAudit55ExpiredLayoutServerScoresZero(t *testing.T) {
	clk := &fakeClock{t: time.Unix(1000, 0)}
	x, err := New(Config{TTL: time.Minute, Now: clk.now})
	require.NoError(t, err)
	l, err := ParseLayout("b2 window:2 full")
	require.NoError(t, err)
	events := []paged.Event{
		{Seq: 1, Kind: paged.BlockStored, Hashes: hs(3), Tokens: make([]int32, 2), BlockSize: 2},
		{Seq: 2, Kind: paged.BlockStored, Hashes: hs(1, 2, 3), Tokens: make([]int32, 6), BlockSize: 2, Group: 1},
	}
	for _, name := range []string{"a", "b"} {
		require.NoError(t, x.SetLayout(name, l))
		require.NoError(t, x.Apply(name, events))
	}
	sc := lookup(t, x, 1, 2, 3, 4)
	require.Equal(t, 3, sc[0].Blocks, "a before it expires")
	require.Equal(t, 3, sc[0].Affinity)
	clk.t = clk.t.Add(50 * time.Second)
	require.NoError(t, x.Heartbeat("b"))
	clk.t = clk.t.Add(50 * time.Second) // a silent 100 s, b 50 s
	sc = lookup(t, x, 1, 2, 3, 4)
	assert.Equal(t, Score{Server: sc[0].Server, Name: "a", Partial: true}, sc[0], "a expired")
	assert.Equal(t, 3, sc[1].Blocks, "b beat in time")
	assert.Equal(t, 3, sc[1].Affinity)
	assert.False(t, sc[1].Partial)
}

// TestAudit55LayoutRecordedDuringLookupIsScored (M658): router x1 knows a
// layout reading groups 0 and 1 when router x2, on the same backend,
// records server b's layout, which reads group 2 as well. x1's next lookup
// asked for groups 0 and 1 only, finds b's layout on reading the states,
// sees that its keys do not cover group 2 and asks again: b is scored in
// full, not from a row the lookup never read.
func TestAudit55LayoutRecordedDuringLookupIsScored(t *testing.T) {
	m := mustMemory(t, 64)
	x1, err := New(Config{Backend: m})
	require.NoError(t, err)
	x2, err := New(Config{Backend: m})
	require.NoError(t, err)
	la, err := ParseLayout("b2 full window:2")
	require.NoError(t, err)
	lb, err := ParseLayout("b2 full window:2 window:4")
	require.NoError(t, err)
	block := func(seq uint64, g int, ids ...int) paged.Event {
		return paged.Event{Seq: seq, Kind: paged.BlockStored, Hashes: hs(ids...), Tokens: make([]int32, 2*len(ids)), BlockSize: 2, Group: g}
	}
	require.NoError(t, x1.SetLayout("a", la))
	require.NoError(t, x1.Apply("a", []paged.Event{block(1, 0, 1, 2, 3), block(2, 1, 3)}))
	sc := lookup(t, x1, 1, 2, 3, 4)
	require.Equal(t, 3, sc[0].Blocks)

	require.NoError(t, x2.SetLayout("b", lb))
	require.NoError(t, x2.Apply("b", []paged.Event{block(1, 0, 1, 2, 3), block(2, 1, 3), block(3, 2, 2, 3)}))
	sc = lookup(t, x1, 1, 2, 3, 4)
	require.Len(t, sc, 2)
	assert.Equal(t, 3, sc[0].Blocks, "a")
	assert.Equal(t, "b", sc[1].Name)
	assert.Equal(t, 3, sc[1].Blocks, "b, read with group 2's row")
	assert.Equal(t, 3, sc[1].Device)
	assert.False(t, sc[1].Partial)
}
