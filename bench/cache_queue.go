package bench

import (
	"fmt"
	"math"
	"time"

	"github.com/pagedkv/pagedkv/paged"
)

// QueueModel models the waiting queue of a prefill server for the cache
// study, so a server can protect what queued requests will hit.
//
// Requests arrive at the trace's timestamps and are served one at a time
// in arrival order, as a prefill instance of a disaggregated server
// (Mooncake's) processes them: request i starts at max(arrival, the end
// of request i-1) and takes (uncached blocks * block size) / PrefillRate
// seconds; cached blocks cost nothing and decode runs elsewhere. The order
// of requests, and so an unprotected cache's hit rate, is the same as in
// the plain replay; what the queue adds is knowledge: when a request
// arrives, the server pins (paged.Manager.PinHashes) the blocks of its
// prefix that are cached at that moment, and unpins them once it has
// started and holds them itself (as a scheduler hands a queued request's
// prefix over to the request, with no moment in which it is evictable),
// so they cannot be evicted by the requests served before it ("queue-
// informed" eviction, as asked of vLLM). Pins draw on a budget of
// PinShare of the pool; a pin the budget cannot take is skipped, and if
// the running request cannot fit beside the pins they are all dropped
// first.
type QueueModel struct {
	// Load sets the prefill rate: total prompt tokens / (trace duration
	// * rate). A request is charged its blocks whole, so with no block
	// ever cached the utilization is slightly above Load (about 2% at
	// 512-token blocks on the Mooncake traces); hits lower it.
	Load float64
	// PinShare is the share of the pool the queue's pins may hold, in
	// (0, 1]; default 0.5.
	PinShare float64
}

// queue is the state of one queued replay.
type queue struct {
	t         *CacheTrace
	m         *paged.Manager
	rate      float64 // tokens per second
	clock     float64 // seconds: when the server is next free
	arrived   int     // requests [0, arrived) have arrived
	pins      []paged.PinID
	waitSum   float64
	queueSum  float64
	maxQueue  int
	nstarted  int // requests that reached the head of the queue
	protected int64
}

func newQueue(t *CacheTrace, m *paged.Manager, qm QueueModel, capacityBlocks int) (*queue, error) {
	if !(qm.Load > 0 && qm.Load < 1e6) {
		return nil, fmt.Errorf("%w: queue load %g: want > 0", ErrCacheStudy, qm.Load)
	}
	share := qm.PinShare
	if share == 0 {
		share = 0.5
	}
	if !(share > 0 && share <= 1) {
		return nil, fmt.Errorf("%w: pin share %g: want (0, 1]", ErrCacheStudy, share)
	}
	n := t.Requests()
	if n == 0 {
		return nil, fmt.Errorf("%w: queue model on an empty trace", ErrCacheStudy)
	}
	var tokens float64
	for r := range n {
		if r > 0 && t.reqs[r].Arrival < t.reqs[r-1].Arrival {
			return nil, fmt.Errorf("%w: queue model: request %d arrives at %v, before request %d (%v); requests must be in arrival order",
				ErrCacheStudy, r, t.reqs[r].Arrival, r-1, t.reqs[r-1].Arrival)
		}
		tokens += float64(t.reqs[r].InputTokens)
	}
	span := (t.reqs[n-1].Arrival - t.reqs[0].Arrival).Seconds()
	if span <= 0 {
		return nil, fmt.Errorf("%w: queue model needs arrival times spanning some time", ErrCacheStudy)
	}
	if err := m.SetPinBudget(int(share * float64(capacityBlocks))); err != nil {
		return nil, fmt.Errorf("%w: %w", ErrCacheStudy, err)
	}
	return &queue{t: t, m: m, rate: tokens / span / qm.Load, pins: make([]paged.PinID, n)}, nil
}

func (q *queue) arrival(r int) float64 { return q.t.reqs[r].Arrival.Seconds() }

// arrive moves time to the start of request r: every request that has
// arrived by then joins the queue and pins its cached prefix. r's own pin
// stays until r holds its blocks (started).
func (q *queue) arrive(r int) {
	start := max(q.clock, q.arrival(r))
	n := q.t.Requests()
	for q.arrived < n && (q.arrived <= r || q.arrival(q.arrived) <= start) {
		j := q.arrived
		q.arrived++
		if j == r {
			continue
		}
		lo, hi := q.t.refs(j)
		if lo == hi || q.t.Source != "hashes" {
			continue
		}
		id, tokens, err := q.m.PinHashes(q.t.hashes[lo:hi], 0)
		if err == nil {
			q.pins[j] = id
			q.protected += int64(tokens / q.t.BlockSize)
		}
	}
	waiting := q.arrived - r - 1
	q.queueSum += float64(waiting)
	q.maxQueue = max(q.maxQueue, waiting)
	q.waitSum += start - q.arrival(r)
	q.nstarted++
	q.clock = start
}

// started drops r's pin once r holds its cached prefix itself: had the
// pin gone before, the blocks would have been released to the policy and
// claimed again at once, which a policy learning from releases would take
// for a release and a reuse.
func (q *queue) started(r int) {
	if q.pins[r] != 0 {
		_ = q.m.Unpin(q.pins[r])
		q.pins[r] = 0
	}
}

// served advances the clock by the service time of a request that
// computed uncached blocks.
func (q *queue) served(_ int, uncached int) {
	q.clock += float64(uncached*q.t.BlockSize) / q.rate
}

// unpinAll drops every pin; it reports whether there was one.
func (q *queue) unpinAll() bool {
	any := false
	for j, id := range q.pins {
		if id != 0 {
			_ = q.m.Unpin(id)
			q.pins[j] = 0
			any = true
		}
	}
	return any
}

func (q *queue) report(res *CacheResult) {
	// The sums count every request that reached the head of the queue,
	// those too long to run included, and so does the mean.
	n := float64(max(q.nstarted, 1))
	res.Queue = &QueueResult{
		PrefillRate:     math.Round(q.rate),
		MeanWait:        time.Duration(q.waitSum / n * float64(time.Second)),
		MeanQueue:       q.queueSum / n,
		MaxQueue:        q.maxQueue,
		PinnedBlocks:    q.protected,
		PinsRejected:    q.m.PinStats().Rejected,
		PeakPinnedBlock: q.m.PinStats().PeakPinnedBlocks,
	}
}

// QueueResult reports the waiting queue of a queued replay.
type QueueResult struct {
	// PrefillRate is the modelled prefill throughput, tokens per second.
	PrefillRate float64 `json:"prefill_rate"`
	// MeanWait is the mean time a request waited before it started (or,
	// too long for the cache, was refused).
	MeanWait time.Duration `json:"mean_wait_ns"`
	// MeanQueue and MaxQueue are the mean and largest number of requests
	// waiting when a request started.
	MeanQueue float64 `json:"mean_queue"`
	MaxQueue  int     `json:"max_queue"`
	// PinnedBlocks sums the blocks pinned for queued requests on arrival.
	PinnedBlocks int64 `json:"pinned_blocks"`
	// PinsRejected counts queued requests whose prefix did not fit the
	// pin budget; PeakPinnedBlock is the most blocks pinned at once.
	PinsRejected    uint64 `json:"pins_rejected"`
	PeakPinnedBlock int    `json:"peak_pinned_blocks"`
}
