package bench

import (
	"errors"
	"fmt"
	"time"

	"github.com/pagedkv/pagedkv/allocator"
	"github.com/pagedkv/pagedkv/eviction"
	"github.com/pagedkv/pagedkv/paged"
)

// BeladyName is the policy name under which the study reports the Belady
// oracle.
const BeladyName = "belady"

// CacheResult is the outcome of one replay of a CacheTrace.
type CacheResult struct {
	// Policy names the eviction policy.
	Policy string `json:"policy"`
	// CapacityTokens is the device capacity asked for, in tokens.
	CapacityTokens int64 `json:"capacity_tokens"`
	// CapacityBlocks is the number of usable device blocks,
	// floor(CapacityTokens / BlockSize).
	CapacityBlocks int `json:"capacity_blocks"`
	// BlockSize is the trace's block size in tokens.
	BlockSize int `json:"block_size"`
	// HostTokens sizes the host tier in tokens (0: none). Evicted device
	// blocks are offloaded there and a later hit onboards them.
	HostTokens int64 `json:"host_tokens,omitempty"`
	// HostBlocks is the host tier's size in blocks (0: none).
	HostBlocks int `json:"host_blocks,omitempty"`
	// Requests counts the replayed requests.
	Requests int `json:"requests"`
	// Oversize counts the requests longer than the whole cache, whose
	// references all count as misses and which leave the cache untouched.
	Oversize int `json:"oversize"`
	// References counts the trace's block references.
	References int64 `json:"references"`
	// Hits counts the block references served from the cache, either tier.
	Hits int64 `json:"hits"`
	// HitRate is Hits / References, 0 without references.
	HitRate float64 `json:"hit_rate"`
	// HostHits are the hits served from the host tier (onboarded), part
	// of Hits.
	HostHits int64 `json:"host_hits,omitempty"`
	// DeviceHitRate is the share of references served from the device tier.
	DeviceHitRate float64 `json:"device_hit_rate"`
	// HostHitRate is the share of references served from the host tier;
	// DeviceHitRate + HostHitRate = HitRate.
	HostHitRate float64 `json:"host_hit_rate,omitempty"`
	// MaxHitRate is the infinite cache's hit rate on the same trace.
	MaxHitRate float64 `json:"max_hit_rate"`
	// Evictions counts cached device blocks given up to make room
	// (offloaded ones included).
	Evictions uint64 `json:"evictions"`
	// HostEvictions counts offloaded blocks the host tier gave up.
	HostEvictions uint64 `json:"host_evictions,omitempty"`
	// Queue reports the waiting queue when the replay modelled one.
	Queue *QueueResult `json:"queue,omitempty"`
	// Elapsed is the replay's wall time (not deterministic).
	Elapsed time.Duration `json:"elapsed_ns"`
}

// Replay drives the trace through a real paged.Manager of capacityBlocks
// usable blocks (plus the null block) whose eviction policy f builds; name
// labels the result. Requests are replayed one at a time in file order:
// each is created from its block hashes (or its token-model prompt) with
// SeqOptions.AllowFullHit, so the lookup may hit every block and stops at
// the first miss; the rest is allocated, evicting as needed, committed, and
// then freed tail first, which hands the blocks to the policy.
func (t *CacheTrace) Replay(name string, f eviction.Factory, capacityBlocks int) (CacheResult, error) {
	return t.ReplayPolicy(CachePolicy{Name: name, Factory: f}, capacityBlocks, 0)
}

// ReplayBelady replays the trace like Replay under the Belady oracle (see
// Belady): the same manager, with the next use of each request's blocks
// given to the policy before the request is freed.
func (t *CacheTrace) ReplayBelady(capacityBlocks int) (CacheResult, error) {
	return t.ReplayPolicy(CachePolicy{Name: BeladyName}, capacityBlocks, 0)
}

// ReplayPolicy replays the trace like Replay under policy p (the Belady
// oracle when p.Factory is nil and p.Name is BeladyName), with a host tier
// of hostBlocks blocks when hostBlocks > 0. The host tier orders its
// offloaded blocks by LRU whatever the device policy, so rows differ only
// in the device policy.
func (t *CacheTrace) ReplayPolicy(p CachePolicy, capacityBlocks, hostBlocks int) (CacheResult, error) {
	return t.replay(p, capacityBlocks, hostBlocks, nil)
}

func (t *CacheTrace) replay(p CachePolicy, capacityBlocks, hostBlocks int, qm *QueueModel) (CacheResult, error) {
	name, f := p.Name, p.Factory
	var oracle *oracleFeed
	if f == nil {
		if name != BeladyName {
			return CacheResult{}, fmt.Errorf("%w: policy %q has no factory", ErrCacheStudy, name)
		}
		f = func(n int) eviction.Policy {
			oracle = newOracleFeed(t, n, capacityBlocks)
			return oracle.p
		}
	}
	res := CacheResult{
		Policy:         name,
		CapacityTokens: int64(capacityBlocks) * int64(t.BlockSize),
		CapacityBlocks: capacityBlocks,
		HostTokens:     int64(hostBlocks) * int64(t.BlockSize),
		HostBlocks:     hostBlocks,
		BlockSize:      t.BlockSize,
		References:     t.References(),
		MaxHitRate:     t.MaxHitRate(),
	}
	if capacityBlocks < 1 {
		return res, fmt.Errorf("%w: capacity of %d blocks: need at least one", ErrCacheStudy, capacityBlocks)
	}
	if hostBlocks < 0 {
		return res, fmt.Errorf("%w: host tier of %d blocks is negative", ErrCacheStudy, hostBlocks)
	}
	start := time.Now()
	m, err := paged.New(paged.Config{
		BlockSize:  t.BlockSize,
		NumBlocks:  capacityBlocks + 1,
		Policy:     f,
		HostBlocks: hostBlocks,
	})
	if err != nil {
		return res, fmt.Errorf("%w: %w", ErrCacheStudy, err)
	}
	opts := &paged.SeqOptions{AllowFullHit: true}
	var q *queue
	if qm != nil {
		if q, err = newQueue(t, m, *qm, capacityBlocks); err != nil {
			return res, err
		}
	}
	var prompt []int32
	var swaps []paged.Swap
	var hostHits uint64
	for r := range t.Requests() {
		lo, hi := t.refs(r)
		if lo == hi {
			continue
		}
		if q != nil {
			q.arrive(r)
		}
		var id paged.SeqID
		var cached int
		create := func() {
			if t.Source == "hashes" {
				id, cached, err = m.CreateFromHashes(t.hashes[lo:hi], (hi-lo)*t.BlockSize, opts)
			} else {
				prompt = TokenModelPrompt(prompt[:0], r, t.reqs[r].InputTokens)
				id, cached, err = m.Create(prompt, opts)
			}
		}
		create()
		if q != nil && errors.Is(err, paged.ErrNoSpace) && q.unpinAll() {
			// The queue's pins left too little room: the running request
			// goes first. The failed call counted its host hits: they
			// are not this request's.
			hostHits = m.Stats().Tiers.HostHitBlocks
			create()
		}
		res.Requests++
		if errors.Is(err, paged.ErrNever) {
			if q != nil {
				q.started(r) // it never runs: its pin goes too
			}
			if oracle != nil {
				oracle.passed(lo, hi, nil)
			}
			res.Oversize++
			hostHits = m.Stats().Tiers.HostHitBlocks
			continue
		}
		if err != nil {
			return res, fmt.Errorf("bench: cache replay of request %d under %s: %w", r, name, err)
		}
		res.Hits += int64(cached / t.BlockSize)
		// The step computing the request's prompt runs: its blocks
		// hold KV from now on, which the queue's pins may hold.
		m.EndStep()
		if q != nil {
			q.started(r)
			q.served(r, hi-lo-cached/t.BlockSize)
		}
		if hostBlocks > 0 {
			// Admit counts host hits on failed calls too; this one succeeded.
			ts := m.Stats().Tiers
			res.HostHits += int64(ts.HostHitBlocks - hostHits)
			hostHits = ts.HostHitBlocks
			// The offload and onboard directives would go to a server;
			// drain them so they do not pile up.
			swaps = m.TakeSwaps(swaps[:0])
		}
		if oracle != nil {
			table, err := m.Table(id)
			if err != nil {
				return res, err
			}
			oracle.passed(lo, hi, table)
		}
		if err := m.Free(id); err != nil {
			return res, err
		}
	}
	st := m.Stats()
	res.Evictions, res.HostEvictions = st.Evictions, st.Tiers.HostEvictions
	if q != nil {
		q.report(&res)
	}
	if res.References > 0 {
		res.HitRate = float64(res.Hits) / float64(res.References)
		res.HostHitRate = float64(res.HostHits) / float64(res.References)
		res.DeviceHitRate = float64(res.Hits-res.HostHits) / float64(res.References)
	}
	res.Elapsed = time.Since(start)
	return res, nil
}

// oracleFeed tells the Belady oracle of a replay the next use of every
// cached block. A request's own blocks get theirs before it frees them;
// a cached copy of content the request references but does not hold
// (the request missed before it, or never ran) gets the content's
// following use, else its next use would stay at a request already past
// and the oracle would keep it as if it were needed next.
type oracleFeed struct {
	p     *Belady
	t     *CacheTrace
	next  []int32 // per reference: CacheTrace.nextUses
	keyOf []int32 // per block: the content it holds, -1 none
	// The blocks holding each content form a list: head per content,
	// link per block (-1 ends it). Duplicates are rare: lists are short.
	head, link []int32
}

func newOracleFeed(t *CacheTrace, blocks, capacity int) *oracleFeed {
	blocks = max(blocks, 0)
	o := &oracleFeed{p: NewBelady(blocks), t: t, next: t.nextUses(capacity), keyOf: make([]int32, blocks), head: make([]int32, t.distinct), link: make([]int32, blocks)}
	for _, l := range [][]int32{o.keyOf, o.head, o.link} {
		for i := range l {
			l[i] = -1
		}
	}
	return o
}

// passed records request [lo, hi) of references, which held table
// (nil when it never ran).
func (o *oracleFeed) passed(lo, hi int, table []allocator.BlockID) {
	for j, b := range table {
		k := o.t.key[lo+j]
		if o.keyOf[b] == k {
			continue
		}
		if old := o.keyOf[b]; old >= 0 {
			p := &o.head[old]
			for *p != int32(b) {
				p = &o.link[*p]
			}
			*p = o.link[b]
		}
		o.keyOf[b], o.link[b] = k, -1
		if k >= 0 {
			o.link[b], o.head[k] = o.head[k], int32(b)
		}
	}
	for j := lo; j < hi; j++ {
		k := o.t.key[j]
		if k < 0 {
			continue
		}
		// The request's own copy is renewed too, and then set below.
		for b := o.head[k]; b >= 0; b = o.link[b] {
			o.p.renew(allocator.BlockID(b), o.next[j])
		}
	}
	for j, b := range table {
		o.p.SetNext(b, o.next[lo+j], int32(j))
	}
}
