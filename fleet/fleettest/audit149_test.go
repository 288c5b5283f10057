package fleettest_test

import (
	"errors"
	"fmt"
	"testing"
	"time"

	"github.com/stretchr/testify/require"

	"github.com/pagedkv/pagedkv/fleet"
	"github.com/pagedkv/pagedkv/fleet/fleettest"
	"github.com/pagedkv/pagedkv/paged"
)

// Audit 149 checks more of the checker (the hundred-and-first round of
// mutation testing): CheckChurn, CheckLateEvents and CheckRename fail on
// backends broken in the ways their weaker checks would let pass (in
// child processes, through audit 90's TestAudit90Child), and the
// benchmarks' fleet and metrics are what their comments say.

// faulty149 is a fleet.Memory broken one way (fault149). It keeps the
// events each ID took since its entries were last dropped, so that a
// fault can put a server's entries back where Memory dropped them.
type faulty149 struct {
	*fleet.Memory
	fault  fault149
	max    int
	events map[fleet.ServerID][]paged.Event
	freed  map[fleet.ServerID]bool          // IDs whose last Rename took them from a free record
	kept   map[fleet.ServerID][]paged.Event // freedRenameKeeps: entries to put back after the next clear
	former []string                         // names renamed away (freed or given to another name)
}

// fault149 names one way a faulty149 backend misbehaves.
type fault149 int

const (
	roomForOneMore     fault149 = iota // Attach makes room for one server more than asked
	freeKeepsEntries                   // a Rename to "" (freeing the ID) keeps the server's entries
	hostPastRun                        // Lookup puts the holders of the hash before the first hash nobody holds on the host for it
	fullIsForeign                      // a Register refused for a full table returns an error of its own, not ErrTooManyServers
	renameKeeps                        // a Rename to a name keeps the entries of the ID's former name
	freedRenameKeeps                   // a Rename of a free ID to a name puts back every entry its former name stored (expired ones too)
	alwaysPartial                      // every Update stores its state as Partial
	freedNotPartial                    // Updates of an ID taken from a free record store their state without Partial
	listsRenamed                       // Servers lists a name given to another name's ID again, under an extra ID
	listsFreed                         // Servers lists a freed name again, under an extra ID
	sameLifeAccepted                   // a Rename whose Life does not move on succeeds, changing nothing
	outOfRangeAccepted                 // a Rename of an ID out of range succeeds, changing nothing
	staleAccepted                      // a Rename from a stale state (to a free name) succeeds, changing nothing
	freeDropsExpired                   // a Rename to "" stores its state without Expired (and returns the one asked for)
	partialDropsLast                   // a store in an Update that leaves the server partial loses its last block
)

func newFaulty149(t require.TestingT, f fault149, capacity int) *faulty149 {
	return &faulty149{Memory: memory(t, capacity), fault: f, events: map[fleet.ServerID][]paged.Event{}, freed: map[fleet.ServerID]bool{}, kept: map[fleet.ServerID][]paged.Event{}}
}

func (b *faulty149) Attach(model string, maxServers int) error {
	b.max = maxServers
	if b.fault == roomForOneMore {
		maxServers++
	}
	return b.Memory.Attach(model, maxServers)
}

func (b *faulty149) Register(name string, init fleet.StreamState) (fleet.ServerID, fleet.StreamState, error) {
	id, st, err := b.Memory.Register(name, init)
	if b.fault == fullIsForeign && errors.Is(err, fleet.ErrTooManyServers) && !b.reclaimable() {
		return id, st, errors.New("faulty149: the table is full")
	}
	return id, st, err
}

// reclaimable reports whether some ID is free, expired, or silent for
// longer than fleettest.ChurnTTL before the latest call any server made
// (the backend has no clock; the latest Seen stands for now).
func (b *faulty149) reclaimable() bool {
	recs, _ := b.Memory.Servers(nil)
	var latest int64
	for _, r := range recs {
		latest = max(latest, r.State.Seen)
	}
	for _, r := range recs {
		if r.Name == "" || r.State.Expired || time.Duration(latest-r.State.Seen) > fleettest.ChurnTTL {
			return true
		}
	}
	return false
}

func (b *faulty149) Servers(dst []fleet.ServerRecord) ([]fleet.ServerRecord, error) {
	dst, err := b.Memory.Servers(dst)
	if err == nil {
		for _, name := range b.former {
			dst = append(dst, fleet.ServerRecord{Name: name})
		}
	}
	return dst, err
}

func (b *faulty149) Rename(server fleet.ServerID, old fleet.StreamState, name string, next fleet.StreamState) (fleet.StreamState, error) {
	if b.phantom(server) {
		return old, fmt.Errorf("%w: faulty149: a name listed twice", fleet.ErrTooManyServers)
	}
	recs, _ := b.Memory.Servers(nil)
	prev, wasFree := "", false
	if server >= 0 && int(server) < len(recs) {
		prev, wasFree = recs[server].Name, recs[server].Name == ""
	}
	switch {
	case b.fault == sameLifeAccepted && next.Life <= old.Life,
		b.fault == outOfRangeAccepted && (server < 0 || int(server) >= b.max):
		return old, nil
	}
	asked := next
	if b.fault == freeDropsExpired && name == "" {
		next.Expired = false
	}
	got, err := b.Memory.Rename(server, old, name, next)
	if b.fault == staleAccepted && errors.Is(err, fleet.ErrConflict) && got != old {
		recs, _ := b.Memory.Servers(nil)
		taken := false
		for _, r := range recs {
			taken = taken || (name != "" && r.Name == name)
		}
		if !taken {
			return got, nil
		}
	}
	if err != nil {
		return got, err
	}
	kept := b.events[server]
	b.freed[server] = wasFree
	switch {
	case b.fault == freeKeepsEntries && name == "",
		b.fault == renameKeeps && name != "" && !wasFree,
		b.fault == freedRenameKeeps && name != "" && wasFree:
		if b.fault == freedRenameKeeps {
			b.kept[server] = kept
		}
		if _, err := b.Memory.Update(server, got, got, false, kept); err != nil {
			return got, err
		}
	case b.fault == freedRenameKeeps && name == "":
		// kept for the ID's next name
	default:
		delete(b.events, server)
	}
	if prev != "" && (b.fault == listsRenamed && name != "" || b.fault == listsFreed && name == "") {
		b.former = append(b.former, prev)
	}
	if b.fault == freeDropsExpired && name == "" {
		return asked, nil // what it was asked to store, not what it stored
	}
	return got, nil
}

// phantom reports whether server is one of the extra IDs Servers lists
// (listsRenamed, listsFreed): writes to it are refused as to a full table.
func (b *faulty149) phantom(server fleet.ServerID) bool {
	recs, _ := b.Memory.Servers(nil)
	return len(b.former) > 0 && int(server) >= len(recs)
}

func (b *faulty149) Update(server fleet.ServerID, old, next fleet.StreamState, clear bool, events []paged.Event) (fleet.StreamState, error) {
	if b.phantom(server) {
		if clear && len(events) == 0 {
			return next, nil // the Index's clean-up of the failed write
		}
		return old, fmt.Errorf("%w: faulty149: a name listed twice", fleet.ErrTooManyServers)
	}
	if b.fault == freedRenameKeeps && clear && b.kept[server] != nil {
		// The first clear of the new name drops the entries put back
		// at the Rename: put them back after it.
		events = append(b.kept[server], events...)
		delete(b.kept, server)
	}
	if b.fault == partialDropsLast && next.Partial {
		evs := make([]paged.Event, 0, len(events))
		for _, ev := range events {
			if ev.Kind == paged.BlockStored && len(ev.Hashes) > 0 {
				ev.Hashes = ev.Hashes[:len(ev.Hashes)-1]
			}
			evs = append(evs, ev)
		}
		events = evs
	}
	switch {
	case b.fault == alwaysPartial:
		next.Partial = true
	case b.fault == freedNotPartial && b.freed[server]:
		next.Partial = false
	}
	got, err := b.Memory.Update(server, old, next, clear, events)
	if err == nil {
		if clear && b.fault != freedRenameKeeps {
			delete(b.events, server)
		}
		b.events[server] = append(b.events[server], events...)
	}
	return got, err
}

func (b *faulty149) Lookup(hashes []paged.Hash, words int, dst []uint64, states []fleet.StreamState) ([]uint64, []fleet.StreamState, error) {
	start := len(dst)
	dst, states, err := b.Memory.Lookup(hashes, words, dst, states)
	if b.fault == hostPastRun && err == nil && len(dst) > start {
		// The first hash nobody holds: a zero entry, or the one where
		// Memory stopped.
		i := start + 2*words
		for i+2*words <= len(dst) && !allZero(dst[i:i+2*words]) {
			i += 2 * words
		}
		if i == len(dst) && (i-start)/(2*words) < len(hashes) {
			dst = append(dst, make([]uint64, 2*words)...)
		}
		if i < len(dst) {
			for k := range words {
				dst[i+words+k] = dst[i-2*words+k] | dst[i-words+k]
			}
		}
	}
	return dst, states, err
}

// children149 are the checks of audit 149 that TestAudit90Child runs in a
// child process, each on a faulty149 backend, with the message the
// failure must carry.
var children149 = map[string]childCase{
	"churn-room-for-one-more": {func(t *testing.T) {
		fleettest.CheckChurn(t, newFaulty149(t, roomForOneMore, 64), "churn", 1)
	}, "server ids in use"},
	"churn-free-keeps-entries": {func(t *testing.T) {
		fleettest.CheckChurn(t, newFaulty149(t, freeKeepsEntries, 64), "churn", 1)
	}, "holds blocks"},
	"churn-host-past-run": {func(t *testing.T) {
		fleettest.CheckChurn(t, newFaulty149(t, hostPastRun, 64), "churn", 1)
	}, ") blocks"},
	"churn-full-is-foreign": {func(t *testing.T) {
		fleettest.CheckChurn(t, newFaulty149(t, fullIsForeign, 64), "churn", 1)
	}, "live servers"},
	"late-rename-keeps": {func(t *testing.T) {
		fleettest.CheckLateEvents(t, "late", newFaulty149(t, renameKeeps, 64))
	}, "old's blocks scored for new"},
	"late-freed-rename-keeps": {func(t *testing.T) {
		fleettest.CheckLateEvents(t, "late", newFaulty149(t, freedRenameKeeps, 64))
	}, "new's blocks from before it was unregistered"},
	"late-always-partial": {func(t *testing.T) {
		fleettest.CheckLateEvents(t, "late", newFaulty149(t, alwaysPartial, 64))
	}, "Should be false"},
	"late-freed-not-partial": {func(t *testing.T) {
		fleettest.CheckLateEvents(t, "late", newFaulty149(t, freedNotPartial, 64))
	}, "Should be true"},
	"late-lists-renamed": {func(t *testing.T) {
		fleettest.CheckLateEvents(t, "late", newFaulty149(t, listsRenamed, 64))
	}, `should not contain "old"`},
	"late-lists-freed": {func(t *testing.T) {
		fleettest.CheckLateEvents(t, "late", newFaulty149(t, listsFreed, 64))
	}, "unknown server"},
	"concurrent-partial-drops-last": {func(t *testing.T) {
		fleettest.CheckConcurrentChurn(t, "concurrent", newFaulty149(t, partialDropsLast, 1024))
	}, "scored 0 blocks, holds 1"},
	"rename-same-life": {func(t *testing.T) {
		fleettest.CheckRename(t, newFaulty149(t, sameLifeAccepted, 8), "rename")
	}, "invalid argument"},
	"rename-out-of-range": {func(t *testing.T) {
		fleettest.CheckRename(t, newFaulty149(t, outOfRangeAccepted, 8), "rename")
	}, "invalid argument"},
	"rename-stale": {func(t *testing.T) {
		fleettest.CheckRename(t, newFaulty149(t, staleAccepted, 8), "rename")
	}, "stream state changed concurrently"},
	"rename-free-drops-expired": {func(t *testing.T) {
		fleettest.CheckRename(t, newFaulty149(t, freeDropsExpired, 8), "rename")
	}, "Expired:true"},
}

// TestAudit149SuiteFailsOnFaultyBackends: each check fails on a backend
// broken the way its weaker form would let pass, with the message of the
// check that is there to catch it.
func TestAudit149SuiteFailsOnFaultyBackends(t *testing.T) {
	eachFailsInChild(t, children149)
}

// TestAudit149BenchFleet: BenchFleet's server s holds the first 8(s+1)
// blocks of the request on the device, the request's 64 blocks are
// distinct, and no server is partial (each stream starts at sequence
// number 1).
func TestAudit149BenchFleet(t *testing.T) {
	var sc []fleet.Score
	var req []paged.Hash
	r := bench(t, "1x", func(b *testing.B) {
		var x *fleet.Index
		x, req = fleettest.BenchFleet(b, memory(b, 1<<12))
		var err error
		sc, err = x.Lookup(req, nil)
		require.NoError(b, err)
		for b.Loop() {
		}
	})
	require.Positive(t, r.N)
	require.Len(t, req, 64)
	require.Len(t, sc, 8)
	for s, got := range sc {
		require.Equal(t, fmt.Sprint("s", s), got.Name)
		require.Equal(t, 8*(s+1), got.Blocks, "server %d", s)
		require.Equal(t, 8*(s+1), got.Device, "server %d", s)
		require.False(t, got.Partial, "server %d", s)
	}
}

// TestAudit149BenchMetrics: BenchApply reports 128 blocks per op and
// LoopLookup one lookup per op, over the benchmark's measured time; a
// lookup benchmark's loop reuses its scores, allocating none an op on
// the in-memory backend.
func TestAudit149BenchMetrics(t *testing.T) {
	r := bench(t, "100x", func(b *testing.B) { fleettest.BenchApply(b, memory(b, 1<<12)) })
	require.InEpsilon(t, 128*float64(r.N)/r.T.Seconds(), r.Extra["blocks/s"], 1e-9)
	r = bench(t, "1000x", func(b *testing.B) { fleettest.BenchLookup(b, memory(b, 1<<12)) })
	require.InEpsilon(t, float64(r.N)/r.T.Seconds(), r.Extra["lookups/s"], 1e-9)
	require.Zero(t, r.AllocsPerOp(), "allocations per lookup")
}
