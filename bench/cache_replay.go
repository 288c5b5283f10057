package bench

import (
	"errors"
	"fmt"
	"time"

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
	// CapacityTokens is the capacity asked for; CapacityBlocks =
	// floor(CapacityTokens / BlockSize) usable blocks.
	CapacityTokens int64 `json:"capacity_tokens"`
	CapacityBlocks int   `json:"capacity_blocks"`
	BlockSize      int   `json:"block_size"`
	// Requests counts the replayed requests; Oversize those longer than the
	// whole cache, whose references all count as misses and which leave the
	// cache untouched.
	Requests int `json:"requests"`
	Oversize int `json:"oversize"`
	// References and Hits count block references and those served from
	// the cache; HitRate = Hits / References.
	References int64   `json:"references"`
	Hits       int64   `json:"hits"`
	HitRate    float64 `json:"hit_rate"`
	// MaxHitRate is the infinite cache's hit rate on the same trace.
	MaxHitRate float64 `json:"max_hit_rate"`
	// Evictions counts cached blocks given up to make room.
	Evictions uint64 `json:"evictions"`
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
	if f == nil {
		return CacheResult{}, fmt.Errorf("%w: policy %q has no factory", ErrCacheStudy, name)
	}
	return t.replay(name, f, nil, capacityBlocks)
}

// ReplayBelady replays the trace like Replay under the Belady oracle (see
// Belady): the same manager, with the next use of each request's blocks
// given to the policy before the request is freed.
func (t *CacheTrace) ReplayBelady(capacityBlocks int) (CacheResult, error) {
	var oracle *Belady
	f := func(n int) eviction.Policy {
		oracle = NewBelady(n)
		return oracle
	}
	return t.replay(BeladyName, f, &oracle, capacityBlocks)
}

func (t *CacheTrace) replay(name string, f eviction.Factory, oracle **Belady, capacityBlocks int) (CacheResult, error) {
	res := CacheResult{
		Policy:         name,
		CapacityTokens: int64(capacityBlocks) * int64(t.BlockSize),
		CapacityBlocks: capacityBlocks,
		BlockSize:      t.BlockSize,
		References:     t.References(),
		MaxHitRate:     t.MaxHitRate(),
	}
	if capacityBlocks < 1 {
		return res, fmt.Errorf("%w: capacity of %d blocks: need at least one", ErrCacheStudy, capacityBlocks)
	}
	start := time.Now()
	m, err := paged.New(paged.Config{
		BlockSize: t.BlockSize,
		NumBlocks: capacityBlocks + 1,
		Policy:    f,
	})
	if err != nil {
		return res, fmt.Errorf("%w: %w", ErrCacheStudy, err)
	}
	opts := &paged.SeqOptions{AllowFullHit: true}
	var prompt []int32
	for r := range t.Requests() {
		lo, hi := t.refs(r)
		if lo == hi {
			continue
		}
		var id paged.SeqID
		var cached int
		if t.Source == "hashes" {
			id, cached, err = m.CreateFromHashes(t.hashes[lo:hi], (hi-lo)*t.BlockSize, opts)
		} else {
			prompt = TokenModelPrompt(prompt[:0], r, t.reqs[r].InputTokens)
			id, cached, err = m.Create(prompt, opts)
		}
		res.Requests++
		if errors.Is(err, paged.ErrNever) {
			res.Oversize++
			continue
		}
		if err != nil {
			return res, fmt.Errorf("bench: cache replay of request %d under %s: %w", r, name, err)
		}
		res.Hits += int64(cached / t.BlockSize)
		if oracle != nil {
			table, err := m.Table(id)
			if err != nil {
				return res, err
			}
			for j, b := range table {
				(*oracle).SetNext(b, t.next[lo+j], int32(j))
			}
		}
		if err := m.Free(id); err != nil {
			return res, err
		}
	}
	res.Evictions = m.Stats().Evictions
	if res.References > 0 {
		res.HitRate = float64(res.Hits) / float64(res.References)
	}
	res.Elapsed = time.Since(start)
	return res, nil
}
