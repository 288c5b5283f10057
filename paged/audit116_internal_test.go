package paged

import (
	"math"
	"testing"

	"github.com/pagedkv/pagedkv/eviction"
)

// The sixty-ninth round of mutation testing (docs/testing.md): the prefix
// index's commits and retention (prefix.go) and the block hashes
// (hash.go).

// TestAudit116SwapInRecordsTheOffloadRetention: a SwapIn that copies a
// block back from the host commits it to a new device block, and the
// host tier's record of that block's retention (what the offload floor,
// Config.OffloadPriority, reads when it is evicted) is the sequence's
// promise, not what the block's previous content left there. Only a host
// tier hears of the commit here (no events, no hinting policy).
func TestAudit116SwapInRecordsTheOffloadRetention(t *testing.T) {
	m, err := New(Config{BlockSize: 2, NumBlocks: 5, HostBlocks: 4, OffloadPriority: 50})
	if err != nil {
		t.Fatal(err)
	}
	a, _, err := m.Create([]int32{1, 2, 3, 4, 5}, retain(90, 0))
	if err != nil {
		t.Fatal(err)
	}
	m.EndStep()
	if err := m.SwapOut(a); err != nil {
		t.Fatal(err)
	}
	m.TakeSwaps(nil)
	// A filler at the default level takes every device block, A's cached
	// ones too.
	run(t, m, []int32{100, 101, 102, 103, 104, 105, 106, 107}, nil)
	if err := m.SwapIn(a); err != nil {
		t.Fatal(err)
	}
	tab, err := m.Table(a)
	if err != nil {
		t.Fatal(err)
	}
	for k, b := range tab[:2] {
		if got := m.tier.priority(b, m.now); got != 90 {
			t.Errorf("block %d (device %d) swapped in at retention 90: the tier records %d", k, b, got)
		}
	}
	if err := m.Check(); err != nil {
		t.Fatal(err)
	}
}

// TestAudit116ReuseAgainstARaisedOffloadRetention: what a reuse's promise
// does to content whose recorded retention is above the default until a
// tick (raiseOffload), read through the offload floor (50) once the tick
// has passed. Content at 90 until tick 5 and reused by a promise at the
// default for good keeps its end: from tick 5 on it is at the default,
// and its eviction offloads nothing (the reuse's own block [3] is at the
// default too). Reused by a promise at 40 for good it keeps the higher
// level, 90, for good (the later end): its two blocks are offloaded, [3]
// at 40 is not. Reused at 90 for good, all three are.
func TestAudit116ReuseAgainstARaisedOffloadRetention(t *testing.T) {
	for _, tc := range []struct {
		reuse *SeqOptions
		want  uint64
	}{
		{retain(eviction.DefaultPriority, 0), 0},
		{retain(40, 0), 2},
		{retain(90, 0), 3},
	} {
		m, err := New(Config{BlockSize: 1, NumBlocks: 4, HostBlocks: 4, OffloadPriority: 50})
		if err != nil {
			t.Fatal(err)
		}
		run(t, m, []int32{1, 2, 0}, retain(90, 5))
		run(t, m, []int32{1, 2, 3}, tc.reuse) // offloads [0]
		before := m.Stats().Tiers.Offloads
		m.Advance(5)
		run(t, m, []int32{7, 8, 9}, nil) // evicts the three cached blocks
		if got := m.Stats().Tiers.Offloads - before; got != tc.want {
			t.Errorf("reuse %+v: %d blocks offloaded after tick 5, want %d", *tc.reuse.Retention, got, tc.want)
		}
	}
}

// TestAudit116LongestRetentionDoesNotWrap: a retention of math.MaxInt64
// ticks, committed after tick 0, lasts (its expiry saturates): content at
// 90 over the offload floor (50) is offloaded when evicted, not taken for
// content whose promise wrapped into the past and lapsed.
func TestAudit116LongestRetentionDoesNotWrap(t *testing.T) {
	m, err := New(Config{BlockSize: 1, NumBlocks: 4, HostBlocks: 4, OffloadPriority: 50})
	if err != nil {
		t.Fatal(err)
	}
	m.Advance(1)
	run(t, m, []int32{1, 2, 0}, retain(90, math.MaxInt64))
	run(t, m, []int32{7, 8, 9}, nil) // evicts the three cached blocks
	if got := m.Stats().Tiers.Offloads; got != 3 {
		t.Errorf("%d blocks offloaded, want 3 at 90", got)
	}
}
