package fleettest_test

import (
	"errors"
	"strings"
	"testing"

	"github.com/stretchr/testify/require"
	"pgregory.net/rapid"

	"github.com/pagedkv/pagedkv/fleet"
	"github.com/pagedkv/pagedkv/fleet/fleettest"
	"github.com/pagedkv/pagedkv/paged"
)

// Audit 111 checks more of the checker (the sixty-fourth round of
// mutation testing): CheckHybridScores, CheckLayouts, CheckRename,
// CheckChurn, CheckLateEvents and CheckConcurrentChurn fail on backends
// broken in the ways their weaker checks would let pass (in child
// processes, through audit 90's TestAudit90Child), and the hybrid check
// draws host tiers and prompts sharing more than one block.

// faulty111 is a fleet.Memory broken one way (fault111) in its records.
type faulty111 struct {
	*fleet.Memory
	fault fault111
	max   int
}

// fault111 names one way a faulty111 backend misbehaves.
type fault111 int

const (
	phantomHost            fault111 = iota // LookupAll puts server 0 on the host for a hash nobody holds
	returnsOldState                        // a SetLayout that succeeds returns the old state
	renameKeepsLayout                      // a Rename keeps the server's layout
	unregisteredIsConflict                 // a Rename of an ID in range that is not registered refused with ErrConflict
	refusalSetsLayout                      // a Rename refused for a taken name sets the server's layout
	registerReusesFreed                    // Register gives a full table's freed ID to a new name
	keepsRemoved                           // BlockRemoved events ignored
	plainDropsLast                         // a store of a server called "*-plain" loses its last block
	listsTwice                             // Servers lists the first name again in place of a free ID's
	phantomNeighbour                       // Lookup puts the next ID beside every holder of the first hash on the device
)

func newFaulty111(t require.TestingT, f fault111, capacity int) *faulty111 {
	m, err := fleet.NewMemory(fleet.MemoryConfig{Capacity: capacity})
	require.NoError(t, err)
	return &faulty111{Memory: m, fault: f}
}

func (b *faulty111) Attach(model string, maxServers int) error {
	b.max = maxServers
	return b.Memory.Attach(model, maxServers)
}

func (b *faulty111) LookupAll(hashes []paged.Hash, words int, dst []uint64, states []fleet.StreamState) ([]uint64, []fleet.StreamState, error) {
	start := len(dst)
	dst, states, err := b.Memory.LookupAll(hashes, words, dst, states)
	if b.fault == phantomHost && err == nil {
		for i := start; i+2*words <= len(dst); i += 2 * words {
			w := dst[i : i+2*words]
			if allZero(w) {
				w[words] = 1
			}
		}
	}
	return dst, states, err
}

func (b *faulty111) Lookup(hashes []paged.Hash, words int, dst []uint64, states []fleet.StreamState) ([]uint64, []fleet.StreamState, error) {
	start := len(dst)
	dst, states, err := b.Memory.Lookup(hashes, words, dst, states)
	if b.fault == phantomNeighbour && err == nil && len(dst) > start {
		dst[start] |= dst[start] << 1
	}
	return dst, states, err
}

func allZero(w []uint64) bool {
	for _, x := range w {
		if x != 0 {
			return false
		}
	}
	return true
}

func (b *faulty111) SetLayout(server fleet.ServerID, old fleet.StreamState, layout string, next fleet.StreamState) (fleet.StreamState, error) {
	got, err := b.Memory.SetLayout(server, old, layout, next)
	if b.fault == returnsOldState && err == nil {
		return old, nil
	}
	return got, err
}

func (b *faulty111) layout(server fleet.ServerID) string {
	recs, _ := b.Memory.Servers(nil)
	if int(server) < len(recs) {
		return recs[server].Layout
	}
	return ""
}

func (b *faulty111) Servers(dst []fleet.ServerRecord) ([]fleet.ServerRecord, error) {
	base := len(dst)
	dst, err := b.Memory.Servers(dst)
	if b.fault == listsTwice && err == nil && len(dst) > base {
		for i := base + 1; i < len(dst); i++ {
			if dst[i].Name == "" {
				dst[i].Name = dst[base].Name
			}
		}
	}
	return dst, err
}

func (b *faulty111) Rename(server fleet.ServerID, old fleet.StreamState, name string, next fleet.StreamState) (fleet.StreamState, error) {
	layout := b.layout(server)
	recs, _ := b.Memory.Servers(nil)
	got, err := b.Memory.Rename(server, old, name, next)
	switch {
	case b.fault == renameKeepsLayout && err == nil && layout != "":
		return b.Memory.SetLayout(server, got, layout, got)
	case b.fault == unregisteredIsConflict && errors.Is(err, fleet.ErrInvalid) && int(server) >= len(recs) && int(server) < b.max && next.Life > old.Life:
		return got, fleet.ErrConflict
	case b.fault == refusalSetsLayout && errors.Is(err, fleet.ErrConflict) && got == old:
		if _, err := b.Memory.SetLayout(server, got, "set by a refusal", got); err != nil {
			return got, err
		}
	}
	return got, err
}

func (b *faulty111) Update(server fleet.ServerID, old, next fleet.StreamState, clear bool, events []paged.Event) (fleet.StreamState, error) {
	plain := false
	if recs, _ := b.Memory.Servers(nil); int(server) < len(recs) {
		plain = strings.HasSuffix(recs[server].Name, "-plain")
	}
	evs := make([]paged.Event, 0, len(events))
	for _, ev := range events {
		switch {
		case b.fault == keepsRemoved && ev.Kind == paged.BlockRemoved:
			continue
		case b.fault == plainDropsLast && plain && ev.Kind == paged.BlockStored && len(ev.Hashes) > 0:
			ev.Hashes = ev.Hashes[:len(ev.Hashes)-1]
		}
		evs = append(evs, ev)
	}
	return b.Memory.Update(server, old, next, clear, evs)
}

func (b *faulty111) Register(name string, init fleet.StreamState) (fleet.ServerID, fleet.StreamState, error) {
	id, st, err := b.Memory.Register(name, init)
	if b.fault == registerReusesFreed && errors.Is(err, fleet.ErrTooManyServers) {
		recs, _ := b.Memory.Servers(nil)
		for i, r := range recs {
			if r.Name == "" {
				next := init
				next.Life = r.State.Life + 1
				got, err := b.Memory.Rename(fleet.ServerID(i), r.State, name, next)
				return fleet.ServerID(i), got, err
			}
		}
	}
	return id, st, err
}

// children111 are the checks of audit 111 that TestAudit90Child runs in a
// child process, each on a faulty111 backend, with the message the
// failure must carry.
var children111 = map[string]childCase{
	"hybrid-keeps-removed": {func(t *testing.T) {
		fleettest.CheckHybridScores(t, "hybrid", func(rt *rapid.T) fleet.Backend { return newFaulty111(rt, keepsRemoved, 1<<12) })
	}, "with its claims"},
	"hybrid-plain-drops-last": {func(t *testing.T) {
		fleettest.CheckHybridScores(t, "hybrid", func(rt *rapid.T) fleet.Backend { return newFaulty111(rt, plainDropsLast, 1<<12) })
	}, "without a layout scored"},
	"churn-lists-twice": {func(t *testing.T) {
		fleettest.CheckChurn(t, newFaulty111(t, listsTwice, 64), "churn", 1)
	}, "registered twice"},
	"concurrent-phantom-neighbour": {func(t *testing.T) {
		fleettest.CheckConcurrentChurn(t, "concurrent", newFaulty111(t, phantomNeighbour, 1024))
	}, "scored 1 blocks of"},
	"late-never-partial": {func(t *testing.T) {
		fleettest.CheckLateEvents(t, "late", newBroken(t, neverPartial, 64))
	}, "old's first events were lost"},
	"layouts-phantom-host": {func(t *testing.T) {
		fleettest.CheckLayouts(t, newFaulty111(t, phantomHost, 8), "layouts")
	}, "no server holds block 2"},
	"layouts-returns-old-state": {func(t *testing.T) {
		fleettest.CheckLayouts(t, newFaulty111(t, returnsOldState, 8), "layouts")
	}, "Not equal"},
	"layouts-rename-keeps-layout": {func(t *testing.T) {
		fleettest.CheckLayouts(t, newFaulty111(t, renameKeepsLayout, 8), "layouts")
	}, "the layout went with the old name"},
	"rename-unregistered-conflict": {func(t *testing.T) {
		fleettest.CheckRename(t, newFaulty111(t, unregisteredIsConflict, 8), "rename")
	}, "id 1 is not registered"},
	"rename-refusal-sets-layout": {func(t *testing.T) {
		fleettest.CheckRename(t, newFaulty111(t, refusalSetsLayout, 8), "rename")
	}, "refusals change nothing"},
	"rename-register-reuses-freed": {func(t *testing.T) {
		fleettest.CheckRename(t, newFaulty111(t, registerReusesFreed, 8), "rename")
	}, "a freed id is reused only through Rename"},
}

// TestAudit111SuiteFailsOnFaultyBackends: each check fails on a backend
// broken the way its weaker form would let pass, with the message of the
// check that is there to catch it (a different failure later in the
// check does not count).
func TestAudit111SuiteFailsOnFaultyBackends(t *testing.T) {
	eachFailsInChild(t, children111)
}

// TestAudit111HybridDrawsHostTiersAndLongPrefixes: DrawHybridConfig
// sometimes gives the manager a host tier, and HybridPrompt sometimes
// shares more than one block of its family's prefix (the cases a hit on
// the host and a hit of several blocks need).
func TestAudit111HybridDrawsHostTiersAndLongPrefixes(t *testing.T) {
	setFlag(t, "rapid.seed", "1")
	setFlag(t, "rapid.checks", "200")
	host, long := 0, 0
	rapid.Check(t, func(rt *rapid.T) {
		cfg := fleettest.DrawHybridConfig(rt)
		if cfg.HostBlocks > 0 {
			host++
		}
		bs := cfg.BlockSize
		shared := 0
		for _, tok := range fleettest.HybridPrompt(rt, bs) {
			if tok < 1000 {
				break
			}
			shared++
		}
		if shared > bs {
			long++
		}
	})
	require.Positive(t, host, "no config with a host tier")
	require.Positive(t, long, "no prompt sharing more than one block")
}
