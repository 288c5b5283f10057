package bench

import (
	"encoding/binary"
	"errors"
	"fmt"
	"math"
	"slices"

	"github.com/pagedkv/pagedkv/paged"
)

// ErrCacheStudy is wrapped by every error of the prefix-cache study about
// its input (a bad block size, capacity or policy name).
var ErrCacheStudy = errors.New("bench: cache study")

// CacheTrace is a request trace prepared for the prefix-cache study: each
// request's block references in order, each named by its content, with the
// infinite-cache maximum precomputed (next uses are per capacity). One
// CacheTrace is read-only once built, so concurrent replays may share it.
// It keeps its own copy of the requests, so the caller may reuse its slice.
//
// A block reference is one block of one request's prompt, the last partial
// block included, as in the Mooncake paper's analysis; the hit rate of a
// replay is hit references over all references.
type CacheTrace struct {
	// BlockSize is the number of tokens per block.
	BlockSize int
	// Source tells how blocks are named: "hashes" when the trace's hash IDs
	// name them (Mooncake), "tokens" when prompts come from the synthetic
	// token model of TokenModelPrompt and the manager hashes them (Azure).
	Source string

	reqs  []Request
	start []int32 // references of request r are [start[r], start[r+1])
	// key is the dense content ID of each reference, or -1 for a
	// reference that can never hit (a partial last block of a token prompt).
	key      []int32
	hashes   []paged.Hash // per reference, Source "hashes" only
	distinct int
	maxHits  int64
}

// noNext marks content that is never referenced again.
const noNext = math.MaxInt32

// CacheTraceFromHashes prepares a trace whose requests carry hash IDs
// (Mooncake format, one ID per MooncakeBlockSize tokens). blockSize must
// divide MooncakeBlockSize; a smaller block splits each ID's block into
// MooncakeBlockSize/blockSize blocks. Trace ID x maps to the paged.Hash
// whose first 8 bytes are x little-endian and whose next 4 bytes are the
// sub-block index, so hashes are deterministic and collision-free.
// Requests without hash IDs have no references and are skipped.
func CacheTraceFromHashes(reqs []Request, blockSize int) (*CacheTrace, error) {
	if blockSize <= 0 || MooncakeBlockSize%blockSize != 0 {
		return nil, fmt.Errorf("%w: block size %d must divide the trace's %d-token hash blocks", ErrCacheStudy, blockSize, MooncakeBlockSize)
	}
	split := MooncakeBlockSize / blockSize
	t := &CacheTrace{BlockSize: blockSize, Source: "hashes", reqs: slices.Clone(reqs)}
	t.start = make([]int32, 1, len(reqs)+1)
	type subKey struct {
		id  int64
		sub int32
	}
	dense := make(map[subKey]int32)
	for i, r := range reqs {
		// Checked before appending: one request's references alone may
		// not fit memory.
		if int64(len(t.key))+int64(len(r.HashIDs))*int64(split) > math.MaxInt32 {
			return nil, fmt.Errorf("%w: more than 2^31 block references by request %d", ErrCacheStudy, i)
		}
		for _, x := range r.HashIDs {
			for s := range split {
				k := subKey{x, int32(s)}
				d, ok := dense[k]
				if !ok {
					d = int32(len(dense))
					dense[k] = d
				}
				var h paged.Hash
				binary.LittleEndian.PutUint64(h[0:8], uint64(x))
				binary.LittleEndian.PutUint32(h[8:12], uint32(s))
				t.key = append(t.key, d)
				t.hashes = append(t.hashes, h)
			}
		}
		t.start = append(t.start, int32(len(t.key)))
	}
	t.distinct = len(dense)
	t.finish()
	return t, nil
}

// MaxTraceTokens bounds a request's prompt in CacheTraceFromTokens: the
// prompt is made up in full (TokenModelPrompt), 4 bytes a token.
const MaxTraceTokens = 1 << 24

// TokenModelPrompt appends to dst the prompt of request i with n tokens
// under the synthetic token model of workload W1 (docs/workloads.md, section 3):
// the first min(n, 256) tokens are one of 8 system prompts, chosen by i mod
// 8; the rest are pseudo-random, so only the system prompts are shared.
func TokenModelPrompt(dst []int32, i, n int) []int32 {
	for j := range n {
		if j < 256 {
			dst = append(dst, int32((i%8)*1000+j+1))
		} else {
			dst = append(dst, int32((i*7919+j*104729)%32000+1))
		}
	}
	return dst
}

// CacheTraceFromTokens prepares a trace without hash IDs (Azure format):
// request i's prompt is TokenModelPrompt(i, InputTokens), hashed by the
// manager during replays. Here the full blocks are named by a chained
// 128-bit hash of their tokens, only to find the infinite-cache maximum and
// next uses; the partial last block counts as a reference that never hits,
// since the manager caches full blocks only. A request with a negative
// InputTokens or more than MaxTraceTokens is refused (ErrCacheStudy).
func CacheTraceFromTokens(reqs []Request, blockSize int) (*CacheTrace, error) {
	if blockSize <= 0 || blockSize > 1<<20 {
		return nil, fmt.Errorf("%w: block size %d must be in [1, 2^20]", ErrCacheStudy, blockSize)
	}
	t := &CacheTrace{BlockSize: blockSize, Source: "tokens", reqs: slices.Clone(reqs)}
	t.start = make([]int32, 1, len(reqs)+1)
	dense := make(map[paged.Hash]int32)
	var prompt []int32
	var hasher paged.FastHasher
	for i, r := range reqs {
		if r.InputTokens < 0 || r.InputTokens > MaxTraceTokens {
			return nil, fmt.Errorf("%w: request %d has %d prompt tokens, want [0, MaxTraceTokens=%d]", ErrCacheStudy, i, r.InputTokens, MaxTraceTokens)
		}
		// Checked before the prompt is made: the references of one
		// request alone may not fit.
		if int64(len(t.key))+int64((r.InputTokens+blockSize-1)/blockSize) > math.MaxInt32 {
			return nil, fmt.Errorf("%w: more than 2^31 block references by request %d", ErrCacheStudy, i)
		}
		prompt = TokenModelPrompt(prompt[:0], i, r.InputTokens)
		var parent paged.Hash
		full := len(prompt) / blockSize
		for k := range full {
			h := hasher.Sum(&parent, prompt[k*blockSize:(k+1)*blockSize], nil)
			d, ok := dense[h]
			if !ok {
				d = int32(len(dense))
				dense[h] = d
			}
			t.key = append(t.key, d)
			parent = h
		}
		if len(prompt)%blockSize != 0 {
			t.key = append(t.key, -1)
		}
		t.start = append(t.start, int32(len(t.key)))
	}
	t.distinct = len(dense)
	t.finish()
	return t, nil
}

// finish computes the infinite-cache hits (walking the requests forwards,
// hits stopping at the first miss of each request).
func (t *CacheTrace) finish() {
	n := len(t.start) - 1
	seen := make([]bool, t.distinct)
	for r := range n {
		refs := t.key[t.start[r]:t.start[r+1]]
		for _, k := range refs {
			if k < 0 || !seen[k] {
				break
			}
			t.maxHits++
		}
		for _, k := range refs {
			if k >= 0 {
				seen[k] = true
			}
		}
	}
}

// Requests returns the number of requests in the trace.
func (t *CacheTrace) Requests() int { return len(t.start) - 1 }

// References returns the number of block references.
func (t *CacheTrace) References() int64 { return int64(len(t.key)) }

// Distinct returns the number of distinct cacheable blocks.
func (t *CacheTrace) Distinct() int { return t.distinct }

// MaxHitRate returns the hit rate of an infinite cache: every block stays
// once computed, and a request's hits still stop at its first miss.
func (t *CacheTrace) MaxHitRate() float64 {
	if len(t.key) == 0 {
		return 0
	}
	return float64(t.maxHits) / float64(len(t.key))
}

// nextUses returns, per reference, the index of the next request of at
// most capacity blocks that references the same content, or noNext: the
// Belady oracle's knowledge. A longer request never runs (ErrNever), so
// its references are no uses.
func (t *CacheTrace) nextUses(capacity int) []int32 {
	next := make([]int32, len(t.key))
	later := make([]int32, t.distinct)
	for i := range later {
		later[i] = noNext
	}
	for r := t.Requests() - 1; r >= 0; r-- {
		lo, hi := t.refs(r)
		for j := lo; j < hi; j++ {
			next[j] = noNext
			if k := t.key[j]; k >= 0 {
				next[j] = later[k]
			}
		}
		if hi-lo > capacity {
			continue
		}
		for _, k := range t.key[lo:hi] {
			if k >= 0 {
				later[k] = int32(r)
			}
		}
	}
	return next
}

// refs returns the reference range of request r.
func (t *CacheTrace) refs(r int) (lo, hi int) { return int(t.start[r]), int(t.start[r+1]) }
