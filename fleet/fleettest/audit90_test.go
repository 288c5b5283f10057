package fleettest_test

import (
	"errors"
	"flag"
	"os"
	"os/exec"
	"slices"
	"testing"

	"github.com/stretchr/testify/require"
	"pgregory.net/rapid"

	"github.com/pagedkv/pagedkv/fleet"
	"github.com/pagedkv/pagedkv/fleet/fleettest"
	"github.com/pagedkv/pagedkv/paged"
)

// Audit 90 checks the checker: the suite passes on the in-memory backend
// and fails on backends broken one way each (fault), run in a child test
// process (the checks take a *testing.T and stop it).

// fault names one way a broken backend misbehaves.
type fault int

const (
	correct         fault = iota
	tierless              // every block on the device
	removesAll            // a removal drops every copy
	dropsLast             // a store loses its last block
	movesInPlace          // a move takes the copy from its destination tier
	keepsClears           // AllBlocksCleared events ignored
	ignoresGaps           // the clear of an update that leaves the server partial (a gap) ignored
	neverPartial          // states stored without Partial
	stopsAtHole           // LookupAll reports no holder after the first hash no server holds
	setsRefused           // a SetLayout refused for a stale state sets the layout anyway
	losesHeartbeats       // an update without events keeps the server's last time seen
)

// broken is a fleet.Memory with one fault; it records the events of each
// Update it passes on.
type broken struct {
	*fleet.Memory
	fault   fault
	updates [][]paged.Event
}

func newBroken(t require.TestingT, f fault, capacity int) *broken {
	m, err := fleet.NewMemory(fleet.MemoryConfig{Capacity: capacity})
	require.NoError(t, err)
	return &broken{Memory: m, fault: f}
}

func (b *broken) Update(server fleet.ServerID, old, next fleet.StreamState, clear bool, events []paged.Event) (fleet.StreamState, error) {
	evs := make([]paged.Event, 0, len(events))
	for _, ev := range events {
		switch {
		case b.fault == tierless:
			ev.Medium, ev.From = paged.Device, paged.Device
		case b.fault == removesAll && ev.Kind == paged.BlockRemoved:
			var hs []paged.Hash
			for _, h := range ev.Hashes {
				hs = append(hs, h, h, h, h)
			}
			ev.Hashes = hs
		case b.fault == dropsLast && ev.Kind == paged.BlockStored && len(ev.Hashes) > 0:
			ev.Hashes = ev.Hashes[:len(ev.Hashes)-1]
		case b.fault == movesInPlace && ev.Kind == paged.BlockMoved:
			ev.From = ev.Medium
		case b.fault == keepsClears && ev.Kind == paged.AllBlocksCleared:
			continue
		}
		evs = append(evs, ev)
	}
	clear = clear && !(b.fault == ignoresGaps && next.Partial)
	next.Partial = next.Partial && b.fault != neverPartial
	if b.fault == losesHeartbeats && len(events) == 0 && !clear {
		next.Seen = old.Seen
	}
	b.updates = append(b.updates, evs)
	return b.Memory.Update(server, old, next, clear, evs)
}

func (b *broken) LookupAll(hashes []paged.Hash, words int, dst []uint64, states []fleet.StreamState) ([]uint64, []fleet.StreamState, error) {
	dst, states, err := b.Memory.LookupAll(hashes, words, dst, states)
	if b.fault == stopsAtHole && err == nil {
		hole := false
		for i := 0; i+2*words <= len(dst); i += 2 * words {
			w := dst[i : i+2*words]
			if hole {
				clear(w)
			}
			hole = hole || slices.Max(w) == 0
		}
	}
	return dst, states, err
}

func (b *broken) SetLayout(server fleet.ServerID, old fleet.StreamState, layout string, next fleet.StreamState) (fleet.StreamState, error) {
	got, err := b.Memory.SetLayout(server, old, layout, next)
	if b.fault == setsRefused && errors.Is(err, fleet.ErrConflict) {
		if _, err := b.Memory.SetLayout(server, got, layout, got); err != nil {
			return got, err
		}
	}
	return got, err
}

// children are the checks TestAudit90Child runs in a child process, each
// on a broken backend, with the message the failure must carry.
var children = map[string]childCase{
	"model-tierless": {func(t *testing.T) {
		fleettest.CheckAgainstModel(t, newBroken(t, tierless, 64), 1, 2000)
	}, "device blocks"},
	"model-never-partial": {func(t *testing.T) {
		fleettest.CheckAgainstModel(t, newBroken(t, neverPartial, 64), 1, 2000)
	}, "partial"},
	"model-ignores-gaps": {func(t *testing.T) {
		fleettest.CheckAgainstModel(t, newBroken(t, ignoresGaps, 64), 1, 2000)
	}, "blocks"},
	"model-moves-in-place": {func(t *testing.T) {
		fleettest.CheckAgainstModel(t, newBroken(t, movesInPlace, 64), 1, 2000)
	}, "blocks"},
	"model-keeps-clears": {func(t *testing.T) {
		fleettest.CheckAgainstModel(t, newBroken(t, keepsClears, 64), 1, 2000)
	}, "blocks"},
	"copies-tierless": {func(t *testing.T) {
		fleettest.CheckCopies(t, newBroken(t, tierless, 8))
	}, "the last copy moved to the host"},
	"copies-removes-all": {func(t *testing.T) {
		fleettest.CheckCopies(t, newBroken(t, removesAll, 8))
	}, "one copy of block 1 is still there"},
	"churn-tierless": {func(t *testing.T) {
		fleettest.CheckChurn(t, newBroken(t, tierless, 64), "churn", 1)
	}, "device blocks"},
	"churn-never-partial": {func(t *testing.T) {
		fleettest.CheckChurn(t, newBroken(t, neverPartial, 64), "churn", 1)
	}, "partial"},
	"churn-loses-heartbeats": {func(t *testing.T) {
		fleettest.CheckChurn(t, newBroken(t, losesHeartbeats, 64), "churn", 1)
	}, ") partial"},
	"concurrent-drops-last": {func(t *testing.T) {
		fleettest.CheckConcurrentChurn(t, "concurrent", newBroken(t, dropsLast, 1024))
	}, "scored 2 blocks, holds 3"},
	"hybrid-drops-last": {func(t *testing.T) {
		fleettest.CheckHybridScores(t, "hybrid", func(rt *rapid.T) fleet.Backend { return newBroken(rt, dropsLast, 1<<12) })
	}, "scored"},
	"hybrid-ignores-gaps": {func(t *testing.T) {
		fleettest.CheckHybridScores(t, "hybrid", func(rt *rapid.T) fleet.Backend { return newBroken(rt, ignoresGaps, 1<<12) })
	}, ": partial s"},
	"layouts-sets-refused": {func(t *testing.T) {
		fleettest.CheckLayouts(t, newBroken(t, setsRefused, 8), "layouts")
	}, "b2 full"},
	"layouts-stops-at-hole": {func(t *testing.T) {
		fleettest.CheckLayouts(t, newBroken(t, stopsAtHole, 8), "layouts")
	}, "after the hole"},
}

// TestAudit90Child runs one check of children when the audit 90 tests
// start this binary with AUDIT90_CHILD set; skipped otherwise.
func TestAudit90Child(t *testing.T) {
	name := os.Getenv("AUDIT90_CHILD")
	if name == "" {
		t.Skip("a child process of the audit 90 tests")
	}
	c, ok := childCheck(name)
	require.True(t, ok, name)
	c.run(t)
}

// failsInChild runs children[name] in a child test process and requires
// it to fail with the child's message.
func failsInChild(t *testing.T, name string) {
	t.Helper()
	c, ok := childCheck(name)
	require.True(t, ok, name)
	cmd := exec.Command(os.Args[0], "-test.run=^TestAudit90Child$", "-test.count=1",
		"-rapid.checks=1000", "-rapid.seed=3", "-rapid.nofailfile", "-rapid.shrinktime=1ms")
	cmd.Env = append(os.Environ(), "AUDIT90_CHILD="+name)
	out, err := cmd.CombinedOutput()
	var exit *exec.ExitError
	require.ErrorAs(t, err, &exit, "%s passed:\n%s", name, out)
	require.Contains(t, string(out), "--- FAIL: TestAudit90Child", name)
	require.Contains(t, string(out), c.want, "%s failed otherwise:\n%s", name, out)
}

// eachFailsInChild runs each check of children in a child process, in
// parallel subtests, and wants each to fail with its message.
func eachFailsInChild(t *testing.T, children map[string]childCase) {
	for name := range children {
		t.Run(name, func(t *testing.T) {
			t.Parallel()
			failsInChild(t, name)
		})
	}
}

// childCheck finds a child check by name in the audits' tables
// (children, children111, children149, children154, children158).
func childCheck(name string) (childCase, bool) {
	for _, m := range []map[string]childCase{children, children111, children149, children154, children158} {
		if c, ok := m[name]; ok {
			return c, true
		}
	}
	return childCase{}, false
}

// childCase is a check run in a child process (run) and the message its
// failure must print (want).
type childCase struct {
	run  func(t *testing.T)
	want string
}

func memory(t require.TestingT, capacity int) *fleet.Memory {
	m, err := fleet.NewMemory(fleet.MemoryConfig{Capacity: capacity})
	require.NoError(t, err)
	return m
}

// TestAudit90SuitePassesOnMemory: every check passes on the in-memory
// backend (a suite that is wrong fails a correct backend).
func TestAudit90SuitePassesOnMemory(t *testing.T) {
	for seed := range uint64(2) {
		fleettest.CheckAgainstModel(t, memory(t, 64), seed, 2000)
		fleettest.CheckChurn(t, memory(t, 64), "churn", seed)
	}
	fleettest.CheckCopies(t, memory(t, 8))
	fleettest.CheckLateEvents(t, "late", memory(t, 64))
	fleettest.CheckConcurrentChurn(t, "concurrent", memory(t, 1024))
	fleettest.CheckRename(t, memory(t, 8), "rename")
	fleettest.CheckLayouts(t, memory(t, 8), "layouts")
	fleettest.CheckAffinityOfFullGroup(t, "affinity", memory(t, 64))
}

// TestAudit90HybridPassesOnMemory: CheckHybridScores passes on the
// in-memory backend and compares admissions, hits and partial servers.
func TestAudit90HybridPassesOnMemory(t *testing.T) {
	setFlag(t, "rapid.seed", "1")
	setFlag(t, "rapid.checks", "100")
	compared, hits, _, partial := fleettest.CheckHybridScores(t, "hybrid", func(rt *rapid.T) fleet.Backend { return memory(rt, 1<<12) })
	require.Positive(t, compared)
	require.Positive(t, hits)
	require.Positive(t, partial)
}

// TestAudit90SuiteFailsOnBrokenBackends: each check fails on a backend
// broken the way it is there to catch.
func TestAudit90SuiteFailsOnBrokenBackends(t *testing.T) {
	eachFailsInChild(t, children)
}

// setFlag sets a flag of the test binary for the rest of the test.
func setFlag(t *testing.T, name, value string) {
	old := flag.Lookup(name).Value.String()
	require.NoError(t, flag.Set(name, value))
	t.Cleanup(func() { require.NoError(t, flag.Set(name, old)) })
}

// bench runs f as a benchmark of n iterations; a failed benchmark has N 0.
func bench(t *testing.T, n string, f func(b *testing.B)) testing.BenchmarkResult {
	setFlag(t, "test.benchtime", n)
	return testing.Benchmark(f)
}

// TestAudit90Benchmarks: BenchLookup runs on the in-memory backend and
// stops on one whose server 7 scores 63 blocks; BenchApply's ops
// alternately store and remove 128 blocks in 8 events of 16.
func TestAudit90Benchmarks(t *testing.T) {
	r := bench(t, "1x", func(b *testing.B) { fleettest.BenchLookup(b, memory(b, 1<<12)) })
	require.Positive(t, r.N)
	require.Positive(t, r.Extra["lookups/s"])
	r = bench(t, "1x", func(b *testing.B) { fleettest.BenchLookup(b, newBroken(b, dropsLast, 1<<12)) })
	require.Zero(t, r.N, "server 7 scored 63 blocks")

	var last *broken
	r = bench(t, "4x", func(b *testing.B) {
		last = newBroken(b, correct, 1<<12)
		fleettest.BenchApply(b, last)
	})
	require.Positive(t, r.Extra["blocks/s"])
	ops := last.updates[8:] // after BenchFleet's 8 servers
	require.GreaterOrEqual(t, len(ops), 2)
	for i, evs := range ops {
		require.Len(t, evs, 8)
		want := paged.BlockStored
		if i%2 == 1 {
			want = paged.BlockRemoved
		}
		for _, ev := range evs {
			require.Equal(t, want, ev.Kind, "op %d", i)
			require.Len(t, ev.Hashes, 16, "op %d", i)
		}
	}
}
