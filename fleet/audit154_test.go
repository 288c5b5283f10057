package fleet_test

import (
	"fmt"
	"testing"

	"github.com/stretchr/testify/assert"
	"github.com/stretchr/testify/require"

	"github.com/pagedkv/pagedkv/fleet"
	"github.com/pagedkv/pagedkv/fleet/fleettest"
	"github.com/pagedkv/pagedkv/paged"
)

// Audit 154 (the hundred-and-sixth round of mutation testing): the
// index's hybrid-model lookups, fleet/hybrid.go.

// TestAudit154SettingTheSameLayoutAgainIsANoOp: SetLayout with the
// layout the server has succeeds and changes nothing, the recorded
// layout is what Layout answers, and another layout is still refused
// (M4371 refused the same layout again: no test set a layout twice).
func TestAudit154SettingTheSameLayoutAgainIsANoOp(t *testing.T) {
	m, err := fleet.NewMemory(fleet.MemoryConfig{})
	require.NoError(t, err)
	x, err := fleet.New(fleet.Config{Backend: m})
	require.NoError(t, err)
	require.NoError(t, x.SetLayout("a", hybridLayout))
	recs, err := m.Servers(nil)
	require.NoError(t, err)
	before := recs[0]
	require.NoError(t, x.SetLayout("a", hybridLayout), "the layout the server has")
	recs, err = m.Servers(nil)
	require.NoError(t, err)
	assert.Equal(t, before, recs[0], "a no-op")
	l, ok := x.Layout("a")
	require.True(t, ok)
	assert.Equal(t, hybridLayout.String(), l.String())
	require.ErrorIs(t, x.SetLayout("a", fleet.Layout{BlockSize: 2, Groups: []paged.Group{{Kind: paged.FullAttention}}}), fleet.ErrInvalid, "another layout")
}

// keyCounter is a fleet.Memory that records how many hashes each
// LookupAll asks for.
type keyCounter struct {
	*fleet.Memory
	asked []int
}

func (b *keyCounter) LookupAll(hashes []paged.Hash, words int, dst []uint64, states []fleet.StreamState) ([]uint64, []fleet.StreamState, error) {
	b.asked = append(b.asked, len(hashes))
	return b.Memory.LookupAll(hashes, words, dst, states)
}

// TestAudit154LookupAsksEachGroupOnce: a lookup asks the backend for the
// request's hashes once for group 0 and once for each further group some
// layout reads, however many servers' layouts read it (M4375 asked a
// group once for each layout reading it: the same scores, at twice the
// backend's work).
func TestAudit154LookupAsksEachGroupOnce(t *testing.T) {
	m, err := fleet.NewMemory(fleet.MemoryConfig{})
	require.NoError(t, err)
	b := &keyCounter{Memory: m}
	x, err := fleet.New(fleet.Config{Backend: b})
	require.NoError(t, err)
	window := fleet.Layout{BlockSize: 2, Groups: []paged.Group{{Kind: paged.FullAttention}, {Kind: paged.SlidingWindow, Window: 3}}}
	for _, name := range []string{"a", "b", "c"} {
		require.NoError(t, x.SetLayout(name, window))
	}
	require.NoError(t, x.Apply("a", []paged.Event{stored(1, 0, 1, 2, 3), stored(2, 1, 2, 3)}))
	b.asked = nil
	sc, err := x.Lookup(fleettest.Hs(1, 2, 3), nil)
	require.NoError(t, err)
	assert.Equal(t, []int{2 * 3}, b.asked, "group 0's hashes and group 1's keys, once")
	assert.Equal(t, 3, sc[0].Blocks)
}

// TestAudit154ServersPastTheFirstWordScoreTheirOwnHolders: with more
// than 64 servers the holder sets take two words a tier; a server with a
// layout past the 64th is scored from its own bits in the second word,
// not the first word's (M4376 read server 0's window blocks for server
// 64, which holds group 0's blocks and no window).
func TestAudit154ServersPastTheFirstWordScoreTheirOwnHolders(t *testing.T) {
	m, err := fleet.NewMemory(fleet.MemoryConfig{})
	require.NoError(t, err)
	x, err := fleet.New(fleet.Config{Backend: m, MaxServers: 128})
	require.NoError(t, err)
	window := fleet.Layout{BlockSize: 2, Groups: []paged.Group{{Kind: paged.FullAttention}, {Kind: paged.SlidingWindow, Window: 3}}}
	for i := range 66 {
		require.NoError(t, x.SetLayout(fmt.Sprintf("s%d", i), window))
	}
	require.NoError(t, x.Apply("s0", []paged.Event{stored(1, 0, 1, 2, 3), stored(2, 1, 2, 3)}))
	require.NoError(t, x.Apply("s64", []paged.Event{stored(1, 0, 1, 2, 3)}))
	require.NoError(t, x.Apply("s65", []paged.Event{stored(1, 0, 1, 2, 3), stored(2, 1, 2, 3)}))
	sc, err := x.Lookup(fleettest.Hs(1, 2, 3), nil)
	require.NoError(t, err)
	got := map[string]int{}
	for _, s := range sc {
		got[s.Name] = s.Blocks
	}
	assert.Equal(t, 3, got["s0"])
	assert.Equal(t, 0, got["s64"], "no window blocks")
	assert.Equal(t, 3, got["s65"])
}

// halfAll is a fleet.Memory whose LookupAll answers for the first half
// of the hashes asked only (group 0's, when one further group is asked).
type halfAll struct{ *fleet.Memory }

func (b halfAll) LookupAll(hashes []paged.Hash, words int, dst []uint64, states []fleet.StreamState) ([]uint64, []fleet.StreamState, error) {
	start := len(dst)
	dst, states, err := b.Memory.LookupAll(hashes, words, dst, states)
	if err == nil {
		dst = dst[:start+len(hashes)/2*2*words]
	}
	return dst, states, err
}

// TestAudit154ShortHolderSetsLeaveTheLayoutUnscored: a backend whose
// LookupAll answers short, without the rows of a group a layout reads,
// leaves the server scored nothing and partial, the lookup otherwise
// answered (M4377 took holder sets one group row short as covering the
// layout: its rule read past the answer; M4379 left the unscored server
// exact).
func TestAudit154ShortHolderSetsLeaveTheLayoutUnscored(t *testing.T) {
	m, err := fleet.NewMemory(fleet.MemoryConfig{})
	require.NoError(t, err)
	x, err := fleet.New(fleet.Config{Backend: halfAll{m}})
	require.NoError(t, err)
	window := fleet.Layout{BlockSize: 2, Groups: []paged.Group{{Kind: paged.FullAttention}, {Kind: paged.SlidingWindow, Window: 3}}}
	require.NoError(t, x.SetLayout("a", window))
	require.NoError(t, x.Apply("a", []paged.Event{stored(1, 0, 1, 2, 3), stored(2, 1, 2, 3)}))
	require.NoError(t, x.Apply("b", []paged.Event{stored(1, 0, 1, 2)}))
	sc, err := x.Lookup(fleettest.Hs(1, 2, 3), nil)
	require.NoError(t, err)
	require.Len(t, sc, 2)
	assert.Equal(t, fleet.Score{Server: 0, Name: "a", Affinity: 3, Partial: true}, sc[0], "unscored, partial")
	assert.Equal(t, 2, sc[1].Blocks, "the server without a layout by group 0's run")
}

// TestAudit154AffinityCountsTheFullGroupsHostBlocks: a layout whose
// first full-attention group is not group 0 has Score.Affinity that
// group's run of leading blocks on either tier, host blocks included, as
// group 0's run counts them (M4386 counted the device's only).
func TestAudit154AffinityCountsTheFullGroupsHostBlocks(t *testing.T) {
	x, err := fleet.New(fleet.Config{})
	require.NoError(t, err)
	require.NoError(t, x.SetLayout("a", fleet.Layout{BlockSize: 2, Groups: []paged.Group{{Kind: paged.SlidingWindow, Window: 3}, {Kind: paged.FullAttention}}}))
	host := stored(2, 1, 2, 3)
	host.Medium = paged.Host
	require.NoError(t, x.Apply("a", []paged.Event{stored(1, 1, 1), host}))
	sc, err := x.Lookup(fleettest.Hs(1, 2, 3), nil)
	require.NoError(t, err)
	require.Len(t, sc, 1)
	assert.Equal(t, 3, sc[0].Affinity, "group 1's run, two of its blocks on the host")
}
