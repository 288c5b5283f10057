package paged

import (
	"testing"

	"github.com/pagedkv/pagedkv/eviction"
)

// TestAudit15ReuseRaisesOffloadWhateverItsLength: the host tier keeps one
// retention step per block; a reuse whose promise is higher but shorter
// than the one recorded, or lower but longer, must still be honoured (the
// two merge upwards, as the priority policy merges steps: kept longer than
// promised, never shorter). Before, the tier ignored such a reuse: content
// committed at 60 and reused at 90 for 5 ticks was dropped instead of
// offloaded at a floor of 80 while the reuse's promise held.
func TestAudit15ReuseRaisesOffloadWhateverItsLength(t *testing.T) {
	for _, tc := range []struct {
		name       string
		own, reuse *SeqOptions
		floor      int
		at         int64
		want       uint64
	}{
		{"higher and shorter than a promise for good", retain(60, 0), retain(90, 5), 80, 2, 3},
		{"higher and shorter than a timed promise", retain(60, 100), retain(90, 5), 80, 2, 3},
		// The first prompt's last block, at 90 when the reuse's new
		// block evicts it at tick 0, is offloaded too.
		{"lower and longer than a timed promise", retain(90, 3), retain(60, 100), 50, 5, 4},
	} {
		m, err := New(Config{BlockSize: 1, NumBlocks: 4, HostBlocks: 4, OffloadPriority: tc.floor})
		if err != nil {
			t.Fatal(err)
		}
		run(t, m, []int32{1, 2, 0}, tc.own)
		run(t, m, []int32{1, 2, 3}, tc.reuse)
		m.Advance(tc.at)
		run(t, m, []int32{7, 8, 9}, nil) // evicts the three cached blocks, [1], [2], [3]
		// The two reused blocks and the one the reuse added are all under
		// the reuse's promise at tick tc.at.
		if got := m.Stats().Tiers.Offloads; got != tc.want {
			t.Errorf("%s: %d blocks offloaded at tick %d, want %d", tc.name, got, tc.at, tc.want)
		}
	}
}

// seqRange returns the tokens from, from+1, ..., from+n-1.
func seqRange(from, n int) []int32 {
	p := make([]int32, n)
	for i := range p {
		p[i] = int32(from + i)
	}
	return p
}

// TestAudit15OffloadKeepsPromise: content cached at a retention of 90,
// offloaded to the host tier and onboarded again by a request that asks
// for no retention, keeps its promise on the device: a reuse never lowers
// a level (SeqOptions.Retention), and onboarding is a reuse. Before, the
// onboarded block took the onboarding request's level (35) and was given
// up before default-level content released after it.
func TestAudit15OffloadKeepsPromise(t *testing.T) {
	m := offloadedPromise(t)
	run(t, m, []int32{1, 2, 3}, nil) // onboards [1] and [1 2]
	if !isCached(t, m, []int32{1, 2}) || m.Stats().Tiers.Onboards != 2 {
		t.Fatalf("the prefix was not onboarded: %+v", m.Stats().Tiers)
	}
	run(t, m, seqRange(40, 3), nil) // default content released after it
	run(t, m, seqRange(50, 6), nil) // 6 victims: 7 default-level blocks are evictable
	if !isCached(t, m, []int32{1, 2}) {
		t.Errorf("the prefix promised at 90 was given up before default-level content")
	}
	if err := m.Check(); err != nil {
		t.Fatal(err)
	}
}

// offloadedPromise returns a one-group manager with the priority policy
// and a host tier whose prefix [1 2 9], cached at a retention of 90, has
// been evicted to the host tier.
func offloadedPromise(t *testing.T) *Manager {
	t.Helper()
	m, err := New(Config{BlockSize: 1, NumBlocks: 10, HostBlocks: 16, Policy: eviction.NewPriority})
	if err != nil {
		t.Fatal(err)
	}
	run(t, m, []int32{1, 2, 9}, retain(90, 0)) // 3 blocks at 90
	run(t, m, seqRange(20, 9), nil)            // evicts them to the host
	if isCached(t, m, []int32{1, 2}) {
		t.Fatal("the promised prefix never left the device: the test checks nothing")
	}
	return m
}
