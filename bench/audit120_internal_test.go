package bench

import (
	"testing"
	"time"

	"github.com/stretchr/testify/assert"
	"github.com/stretchr/testify/require"

	"github.com/pagedkv/pagedkv/eviction"
)

// The seventy-third round of mutation testing (docs/testing.md): the
// cache study's replay, traces and queue model.

// timed is a request of timedTrace: its arrival and hash IDs.
type timed struct {
	at  time.Duration
	ids []int64
}

// timedTrace builds a Mooncake-style trace of requests with arrival times,
// each of whole 512-token blocks.
func timedTrace(t *testing.T, rs ...timed) *CacheTrace {
	t.Helper()
	reqs := make([]Request, len(rs))
	for i, r := range rs {
		reqs[i] = Request{Arrival: r.at, HashIDs: r.ids, InputTokens: len(r.ids) * MooncakeBlockSize}
	}
	tr, err := CacheTraceFromHashes(reqs, MooncakeBlockSize)
	require.NoError(t, err)
	return tr
}

// TestAudit120OversizePinGoes: a queued request too long for the cache
// never runs, and the pin made for its prefix while it waited goes when
// it reaches the head of the queue, giving its share of the budget back;
// a pin may fill the budget, half the pool by default, exactly.
// Four blocks, a budget of two, load 1: R = 5632 tokens / 10.002 s = 563
// tokens/s. r0 [1 2] ends at 1.82 s, r1 and r2 queued behind it: when r1
// starts, r2 (five blocks, oversize) pins [1 2], the whole budget. r2
// never runs and its pin goes. r3 [6] arrives at 10 s and ends at 10.91
// s, after r4 and r5 arrived: when r4 starts, r5 pins [9], so r4's [7]
// evicts another block and r5 hits 9. A pin left behind by r2 would keep
// the budget full: r5's pin refused, 9 evicted (older than 6), no hit.
func TestAudit120OversizePinGoes(t *testing.T) {
	tr := timedTrace(t,
		timed{0, []int64{1, 2}},
		timed{100 * time.Millisecond, []int64{9}},
		timed{200 * time.Millisecond, []int64{1, 2, 3, 4, 5}},
		timed{10 * time.Second, []int64{6}},
		timed{10*time.Second + time.Millisecond, []int64{7}},
		timed{10*time.Second + 2*time.Millisecond, []int64{9}},
	)
	lru := CachePolicy{Name: "lru", Factory: eviction.NewLRU}
	r, err := tr.replay(lru, 4, 0, &QueueModel{Load: 1})
	require.NoError(t, err)
	assert.Equal(t, 1, r.Oversize)
	assert.Equal(t, int64(3), r.Queue.PinnedBlocks, "r2's [1 2], then r5's [9]")
	assert.Zero(t, r.Queue.PinsRejected)
	assert.Equal(t, int64(1), r.Hits, "r5 hits its pinned 9")
}

// TestAudit120NegativePinShare: a negative PinShare is refused, not taken
// for the default (only 0 is).
func TestAudit120NegativePinShare(t *testing.T) {
	tr := queueTrace(t, []int64{9})
	lru := CachePolicy{Name: "lru", Factory: eviction.NewLRU}
	_, err := tr.replay(lru, 4, 0, &QueueModel{Load: 1, PinShare: -0.5})
	require.ErrorIs(t, err, ErrCacheStudy)
	require.ErrorContains(t, err, "pin share -0.5")
}

// TestAudit120StartingRequestPinsNothing: pins are for the requests that
// wait; the one starting holds its prefix itself. r1 [1 2 3] starts at
// its arrival, 10 s, long after r0 [1 2] ended, and hits [1 2] with no
// pin made for it.
func TestAudit120StartingRequestPinsNothing(t *testing.T) {
	tr := timedTrace(t, timed{0, []int64{1, 2}}, timed{10 * time.Second, []int64{1, 2, 3}})
	lru := CachePolicy{Name: "lru", Factory: eviction.NewLRU}
	r, err := tr.replay(lru, 4, 0, &QueueModel{Load: 0.1})
	require.NoError(t, err)
	assert.Equal(t, int64(2), r.Hits)
	assert.Zero(t, r.Queue.MaxQueue)
	assert.Zero(t, r.Queue.PinnedBlocks)
	assert.Zero(t, r.Queue.PeakPinnedBlock)
	assert.Zero(t, r.Queue.PinsRejected)
}
