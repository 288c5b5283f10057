package fleet

import (
	"testing"
	"time"

	"github.com/pagedkv/pagedkv/paged"
	"github.com/stretchr/testify/assert"
	"github.com/stretchr/testify/require"
)

// Tests written for the sixth round of mutation testing (session 25,
// docs/testing.md): each kills a mutation of index.go, memory.go or
// layout.go the property tests and the rest of the package let survive.

// TestAudit51MaxServersBound: Config.MaxServers must be in [1, 65536]:
// the bound itself is accepted, one over it is ErrInvalid.
func TestAudit51MaxServersBound(t *testing.T) {
	_, err := New(Config{MaxServers: 1<<16 + 1})
	require.ErrorIs(t, err, ErrInvalid)
	m := mustMemory(t, 8)
	_, err = New(Config{MaxServers: 1 << 16, Backend: m})
	require.NoError(t, err)
}

// TestAudit51SilentExactlyTheTTLStays: the TTL expires a server silent
// for longer than the TTL; one silent exactly the TTL keeps its entries.
func TestAudit51SilentExactlyTheTTLStays(t *testing.T) {
	clk := &fakeClock{t: time.Unix(1000, 0)}
	x, err := New(Config{TTL: time.Minute, Now: clk.now})
	require.NoError(t, err)
	require.NoError(t, x.Apply("a", []paged.Event{stored(1, paged.Device, 1)}))
	clk.t = clk.t.Add(time.Minute)
	sc := lookup(t, x, 1)
	assert.Equal(t, 1, sc[0].Blocks, "silent exactly the TTL: not expired")
	assert.Equal(t, uint64(0), x.Stats().Expired)
	clk.t = clk.t.Add(time.Second)
	sc = lookup(t, x, 1)
	assert.Equal(t, 0, sc[0].Blocks, "silent past the TTL: expired")
}

// TestAudit51ReclaimTakesTheLongestSilent: with every ID in use, a new
// name takes the ID of an expired server, the longest silent first, and
// Stats.Reclaimed counts it.
func TestAudit51ReclaimTakesTheLongestSilent(t *testing.T) {
	clk := &fakeClock{t: time.Unix(1000, 0)}
	x, err := New(Config{MaxServers: 3, TTL: time.Minute, Now: clk.now})
	require.NoError(t, err)
	require.NoError(t, x.Apply("a", []paged.Event{stored(1, paged.Device, 1)}))
	clk.t = clk.t.Add(10 * time.Second)
	require.NoError(t, x.Apply("b", []paged.Event{stored(1, paged.Device, 1)}))
	clk.t = clk.t.Add(10 * time.Second)
	require.NoError(t, x.Apply("c", []paged.Event{stored(1, paged.Device, 1)}))
	clk.t = clk.t.Add(5 * time.Minute) // all three silent past the TTL
	id, err := x.Register("d")
	require.NoError(t, err)
	assert.Equal(t, ServerID(0), id, "a, silent the longest, gives its ID")
	assert.Equal(t, uint64(1), x.Stats().Reclaimed)
}

// TestAudit51StaleSnapshotByOneIsRefused: Resync refuses a snapshot
// taken before an event the index applied already, even one event
// before, and changes nothing.
func TestAudit51StaleSnapshotByOneIsRefused(t *testing.T) {
	x, err := New(Config{})
	require.NoError(t, err)
	require.NoError(t, x.Apply("a", []paged.Event{stored(1, paged.Device, 1), stored(2, paged.Device, 2), stored(3, paged.Device, 3)}))
	snap := &paged.Snapshot{BlockSize: 16, Seq: 2}
	require.ErrorIs(t, x.Resync("a", snap), ErrInvalid)
	assert.Equal(t, 3, lookup(t, x, 1, 2, 3)[0].Blocks)
	require.NoError(t, x.Resync("a", &paged.Snapshot{BlockSize: 16, Seq: 3}))
}

// TestAudit51MemoryRefusals: Attach again with another server count is
// ErrInvalid (a backend serves one model and bound), and a lookup with
// fewer words than the backend's is ErrInvalid.
func TestAudit51MemoryRefusals(t *testing.T) {
	m := mustMemory(t, 8)
	require.NoError(t, m.Attach("m", 4))
	require.ErrorIs(t, m.Attach("m", 100), ErrInvalid)
	require.NoError(t, m.Attach("m", 4))
	m = mustMemory(t, 8)
	require.NoError(t, m.Attach("m", 65))
	_, _, err := m.Lookup(hs(1), 1, nil, nil)
	require.ErrorIs(t, err, ErrInvalid)
}

// TestAudit51ResyncChecksTheLayoutBlockSize: Resync of a server with a
// recorded layout refuses a snapshot of another block size (ErrInvalid)
// and keeps the server's entries.
func TestAudit51ResyncChecksTheLayoutBlockSize(t *testing.T) {
	x, err := New(Config{})
	require.NoError(t, err)
	require.NoError(t, x.SetLayout("a", Layout{BlockSize: 16, Groups: []paged.Group{{}}}))
	require.NoError(t, x.Apply("a", []paged.Event{stored(1, paged.Device, 1)}))
	require.ErrorIs(t, x.Resync("a", &paged.Snapshot{BlockSize: 8, Seq: 1}), ErrInvalid)
	assert.Equal(t, 1, lookup(t, x, 1)[0].Blocks)
	require.NoError(t, x.Resync("a", &paged.Snapshot{BlockSize: 16, Seq: 1}))
}

// TestAudit51SharedGroupMustTargetBlocks: a Shared group reuses the KV of
// its target, which must hold blocks: a target that is itself Shared is
// ErrInvalid (as a State target is), a full-attention one is valid.
func TestAudit51SharedGroupMustTargetBlocks(t *testing.T) {
	bad := Layout{BlockSize: 2, Groups: []paged.Group{{}, {Kind: paged.Shared, Target: 0}, {Kind: paged.Shared, Target: 1}}}
	require.ErrorIs(t, bad.Validate(), ErrInvalid)
	_, err := ParseLayout(bad.String())
	require.ErrorIs(t, err, ErrInvalid)
	good := Layout{BlockSize: 2, Groups: []paged.Group{{}, {Kind: paged.Shared, Target: 0}, {Kind: paged.Shared, Target: 0}}}
	require.NoError(t, good.Validate())
}
