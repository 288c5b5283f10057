package fleettest_test

import (
	"testing"

	"github.com/stretchr/testify/require"

	"github.com/pagedkv/pagedkv/fleet"
	"github.com/pagedkv/pagedkv/fleet/fleettest"
	"github.com/pagedkv/pagedkv/paged"
)

// Audit 158 closes the survivors of the hundred-and-tenth round on the
// suite's core checks: a backend whose fault changes a server's leading
// blocks and nothing else, CheckCopies on a backend that ignores clears,
// the model's Forget of a partial server and the stream's replays.

// hostBlindLast is a fleet.Memory whose lookups do not report the
// holders of a request's last hash that hold it on the host only: a
// server's leading blocks come out one short when its run reaches that
// hash, its device blocks and partial mark stay right.
type hostBlindLast struct{ *fleet.Memory }

func (b hostBlindLast) Lookup(hashes []paged.Hash, words int, dst []uint64, states []fleet.StreamState) ([]uint64, []fleet.StreamState, error) {
	start := len(dst)
	dst, states, err := b.Memory.Lookup(hashes, words, dst, states)
	hideHostOnlyLast(len(hashes), words, dst[start:])
	return dst, states, err
}

func (b hostBlindLast) LookupAll(hashes []paged.Hash, words int, dst []uint64, states []fleet.StreamState) ([]uint64, []fleet.StreamState, error) {
	start := len(dst)
	dst, states, err := b.Memory.LookupAll(hashes, words, dst, states)
	hideHostOnlyLast(len(hashes), words, dst[start:])
	return dst, states, err
}

// hideHostOnlyLast clears the host bits of the last of n hashes' masks
// (device words, then host words) where the device bit is clear, if the
// lookup reached that hash.
func hideHostOnlyLast(n, words int, masks []uint64) {
	if n == 0 || len(masks) < 2*words*n {
		return
	}
	w := masks[2*words*(n-1) : 2*words*n]
	for i := range words {
		w[words+i] &= w[i]
	}
}

// children158 are the checks of audit 158 that TestAudit90Child runs in a
// child process.
var children158 = map[string]childCase{
	"model-host-blind-last": {func(t *testing.T) {
		fleettest.CheckAgainstModel(t, hostBlindLast{memory(t, 64)}, 1, 2000)
	}, " blocks\n"},
	"copies-keeps-clears": {func(t *testing.T) {
		fleettest.CheckCopies(t, newBroken(t, keepsClears, 8))
	}, "actual  : 1"},
}

// TestAudit158SuiteFailsOnFaultyBackends: CheckAgainstModel compares the
// leading blocks (a backend one short on them, right on the device
// blocks and the partial mark, fails it) and CheckCopies' last check
// sees copy counts kept over a clear.
func TestAudit158SuiteFailsOnFaultyBackends(t *testing.T) {
	eachFailsInChild(t, children158)
}

// TestAudit158ForgetEndsPartial: the model forgets a partial server's
// mark with the server, as the index does when it unregisters it; the
// name's next events start a new, complete stream in both.
func TestAudit158ForgetEndsPartial(t *testing.T) {
	x, err := fleet.New(fleet.Config{Backend: memory(t, 8), Model: "forget"})
	require.NoError(t, err)
	m := fleettest.NewModel()
	apply := func(evs ...paged.Event) {
		t.Helper()
		require.NoError(t, x.Apply("a", evs))
		m.Apply("a", evs)
	}
	score := func() fleet.Score {
		t.Helper()
		sc, err := x.Lookup(fleettest.Hs(1), nil)
		require.NoError(t, err)
		for _, got := range sc { // a freed ID scores too, unnamed
			if got.Name == "a" {
				return got
			}
		}
		require.FailNow(t, "a not scored", "%v", sc)
		return fleet.Score{}
	}
	apply(fleettest.Stored(2, paged.Device, 1)) // event 1 lost
	require.True(t, m.Partial("a"))
	require.True(t, score().Partial)

	require.NoError(t, x.Unregister("a"))
	m.Forget("a")
	require.False(t, m.Partial("a"))
	blocks, _ := m.Score("a", fleettest.Hs(1))
	require.Zero(t, blocks)

	apply(fleettest.Stored(1, paged.Device, 1))
	require.False(t, m.Partial("a"), "a new stream from event 1 is complete")
	require.False(t, score().Partial)
	blocks, device := m.Score("a", fleettest.Hs(1))
	require.Equal(t, 1, blocks)
	require.Equal(t, 1, device)
	require.Equal(t, 1, score().Blocks)
}

// TestAudit158StreamLosesAndReplays: the random stream loses events and
// replays old numbers (the index's sequence rules are exercised both
// ways), numbers rising within each batch.
func TestAudit158StreamLosesAndReplays(t *testing.T) {
	r := fleettest.NewStream(1, "s0", "s1")
	last := map[string]uint64{}
	lost, replays := 0, 0
	for range 1000 {
		s, evs := r.Batch()
		require.NotEmpty(t, evs)
		for i, ev := range evs {
			if i > 0 {
				require.Greater(t, ev.Seq, evs[i-1].Seq, "numbers rise within a batch")
			}
			switch {
			case ev.Seq <= last[s]:
				replays++
			case ev.Seq > last[s]+1:
				lost++
			}
			last[s] = max(last[s], ev.Seq)
		}
	}
	require.Positive(t, lost, "no event lost")
	require.Positive(t, replays, "no old number replayed")
}
