package bench

import (
	"testing"
	"time"

	"github.com/stretchr/testify/assert"
	"github.com/stretchr/testify/require"

	"github.com/pagedkv/pagedkv/allocator"
	"github.com/pagedkv/pagedkv/eviction"
)

// TestAudit85BeladyRenew: renew moves an evictable block's next use
// either way and the heap follows: a block renewed to a later use goes
// first, one renewed to an earlier use goes after the others.
func TestAudit85BeladyRenew(t *testing.T) {
	victims := func(p *Belady) []allocator.BlockID {
		var out []allocator.BlockID
		for {
			id, ok := p.Victim()
			if !ok {
				return out
			}
			out = append(out, id)
		}
	}
	build := func() *Belady {
		p := NewBelady(4)
		for id, next := range []int32{5, 9, 3, 7} {
			p.SetNext(allocator.BlockID(id), next, 0)
			p.Insert(allocator.BlockID(id))
		}
		return p
	}
	p := build()
	p.renew(2, 20)
	assert.Equal(t, []allocator.BlockID{2, 1, 3, 0}, victims(p), "2 renewed from 3 to 20")
	p = build()
	p.renew(1, 1)
	assert.Equal(t, []allocator.BlockID{3, 0, 2, 1}, victims(p), "1 renewed from 9 to 1")
	// A block not in the policy keeps its new next use for its insert.
	p = build()
	p.Remove(0)
	p.renew(0, 30)
	p.Insert(0)
	assert.Equal(t, []allocator.BlockID{0, 1, 3, 2}, victims(p))
}

// queueTrace is the trace of the pin-budget cases of TestAudit85QueuePins:
// r0 [1 2 3] at 0 s computes three blocks at a rate that ends it after
// r1 and r2 have arrived; r2 [1 2 3 5] then pins its cached prefix, three
// blocks, when r1 starts.
func queueTrace(t *testing.T, r1 []int64) *CacheTrace {
	return timedTrace(t, timed{0, []int64{1, 2, 3}}, timed{100 * time.Millisecond, r1}, timed{200 * time.Millisecond, []int64{1, 2, 3, 5}})
}

// TestAudit85QueuePins: the pin budget is half the pool by default and
// the whole pool at PinShare 1; a pin counts every block it protects; the
// running request that does not fit beside the pins drops them and goes
// on; arrivals at one instant leave no span to set a rate from.
func TestAudit85QueuePins(t *testing.T) {
	lru := CachePolicy{Name: "lru", Factory: eviction.NewLRU}
	tr := queueTrace(t, []int64{9})
	// Four blocks: by default the budget is two, and r2's three-block
	// prefix is refused, as at PinShare 0.5.
	for _, share := range []float64{0, 0.5} {
		r, err := tr.replay(lru, 4, 0, &QueueModel{Load: 6, PinShare: share})
		require.NoError(t, err)
		assert.Equal(t, uint64(1), r.Queue.PinsRejected, "share %g", share)
		assert.Zero(t, r.Queue.PinnedBlocks, "share %g", share)
		assert.Zero(t, r.Queue.PeakPinnedBlock, "share %g", share)
	}
	// The whole pool: r2's three blocks are pinned; r1 takes the fourth.
	r, err := tr.replay(lru, 4, 0, &QueueModel{Load: 6, PinShare: 1})
	require.NoError(t, err)
	assert.Zero(t, r.Queue.PinsRejected)
	assert.Equal(t, int64(3), r.Queue.PinnedBlocks)
	assert.Equal(t, 3, r.Queue.PeakPinnedBlock)
	assert.Equal(t, int64(3), r.Hits, "r2 hits its pinned prefix")

	// r1 [7 8] needs two blocks beside r2's three pinned ones: the pins
	// go, r1 runs, evicting 3 (released first by r0), and r2 hits 1 2.
	tr = queueTrace(t, []int64{7, 8})
	r, err = tr.replay(lru, 4, 0, &QueueModel{Load: 6, PinShare: 1})
	require.NoError(t, err)
	assert.Equal(t, int64(3), r.Queue.PinnedBlocks)
	assert.Equal(t, int64(2), r.Hits)
	assert.Equal(t, 3, r.Requests)

	for i := range tr.reqs {
		tr.reqs[i].Arrival = time.Second
	}
	_, err = tr.replay(lru, 4, 0, &QueueModel{Load: 6})
	require.ErrorIs(t, err, ErrCacheStudy)
	require.ErrorContains(t, err, "spanning some time")
}

// TestAudit85QueueWithHostTier: a queued replay with a host tier counts a
// request's host hits once, though its first call, refused for the
// queue's pins, counted them too (the manager counts host hits on failed
// calls). Four device blocks, eight host blocks, every pin allowed: r1
// [1 2 3 4] evicts 7 to the host; r3 arrives while r1 runs and pins
// [1 2 3] when r2 starts; r2 [7 8] needs two blocks, has one beside the
// pins, so they go and r2 onboards 7, evicting 4 and 3 to the host; r3
// hits 1 2 on the device and 3 on the host.
func TestAudit85QueueWithHostTier(t *testing.T) {
	var rs []timed
	for i, h := range [][]int64{{7}, {1, 2, 3, 4}, {7, 8}, {1, 2, 3, 5}} {
		rs = append(rs, timed{time.Duration(i) * 10 * time.Millisecond, h})
	}
	tr := timedTrace(t, rs...)
	lru := CachePolicy{Name: "lru", Factory: eviction.NewLRU}
	r, err := tr.replay(lru, 4, 8, &QueueModel{Load: 6, PinShare: 1})
	require.NoError(t, err)
	assert.Equal(t, int64(3), r.Queue.PinnedBlocks)
	assert.Equal(t, int64(4), r.Hits)
	assert.Equal(t, int64(2), r.HostHits)
	assert.InDelta(t, 2.0/11, r.DeviceHitRate, 1e-12)
	assert.InDelta(t, 2.0/11, r.HostHitRate, 1e-12)
}
