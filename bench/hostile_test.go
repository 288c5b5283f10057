package bench

import (
	"fmt"
	"math"
	"testing"
	"time"

	"github.com/stretchr/testify/assert"
	"github.com/stretchr/testify/require"

	"github.com/pagedkv/pagedkv/eviction"
	"github.com/pagedkv/pagedkv/fleet"
)

// The bad-input tests of the study API: lengths that overflow, absurd
// configuration values and degenerate sizes get an error wrapping the
// study's sentinel (or, for the functions without an error, a result
// inside the documented bounds), never a panic or figures computed from
// a wrapped-around length.

// TestBadInputTruncate: the documented bounds hold for any input: prompt
// in [1, maxLen], final in [prompt, maxLen], and final - prompt never
// negative. in + out used to overflow for huge lengths and be taken as
// fitting, and maxLen 1 with outputs left an empty prompt.
func TestBadInputTruncate(t *testing.T) {
	for _, tt := range []struct {
		in, out, maxLen int
		prompt, final   int
		cut             bool
	}{
		{math.MaxInt, 1, 2048, 2047, 2048, true},
		{1, math.MaxInt, 2048, 1, 2048, true},
		{math.MaxInt, math.MaxInt, 2048, 2047, 2048, true},
		{math.MaxInt - 10, 20, math.MaxInt, math.MaxInt - 10, math.MaxInt, true},
		{5, -5, 2048, 5, 5, false},
		{-5, -5, 2048, 1, 1, false},
		{5, 3, 1, 1, 1, true},
		{5, 0, 1, 1, 1, true},
	} {
		p, f, cut := Truncate(tt.in, tt.out, tt.maxLen)
		assert.Equal(t, [3]any{tt.prompt, tt.final, tt.cut}, [3]any{p, f, cut}, "Truncate(%d, %d, %d)", tt.in, tt.out, tt.maxLen)
	}
}

// TestBadInputFragLengths: a request whose lengths overflow a sum is
// truncated like any long one, by every memory model and the sharing
// study; it used to panic (paged, sharing) or need a negative number of
// slots.
func TestBadInputFragLengths(t *testing.T) {
	huge := []Request{{InputTokens: math.MaxInt, OutputTokens: 1}, {InputTokens: 3, OutputTokens: math.MaxInt}}
	cfg := FragConfig{MaxLen: 64, KVTokens: 256}
	for _, m := range []MemoryModel{ModelPaged, ModelMax, ModelPow2, ModelOracle} {
		res, err := Frag(huge, m, 16, cfg)
		require.NoError(t, err, "%v", m)
		assert.Equal(t, 2, res.Truncated, "%v", m)
	}
	for _, mode := range []SharingMode{SharingParallel, SharingBeam} {
		_, err := Sharing(huge, mode, 2, 16, cfg)
		assert.NoError(t, err, "%v", mode)
	}
}

// TestBadInputCacheStudyHostFactor: a host factor that is not a finite
// non-negative number, or that makes a host tier past 2^31 blocks, is
// refused with ErrCacheStudy before any replay; NaN used to be taken as 0
// and +Inf to reach the replay as a negative host tier.
func TestBadInputCacheStudyHostFactor(t *testing.T) {
	tr, err := CacheTraceFromTokens(AzureConv()[:5], 16)
	require.NoError(t, err)
	for _, f := range []float64{math.NaN(), math.Inf(1), math.Inf(-1), -0.5, 1e300} {
		replays := 0
		_, err := RunCacheStudy(CacheStudyConfig{Trace: tr, Policies: []CachePolicy{{Name: "lru", Factory: eviction.NewLRU}},
			CapacityTokens: []int64{160}, HostFactor: f, Progress: func() { replays++ }})
		assert.ErrorIs(t, err, ErrCacheStudy, "HostFactor %g", f)
		assert.Zero(t, replays, "HostFactor %g: refused before any replay", f)
	}
	res, err := RunCacheStudy(CacheStudyConfig{Trace: tr, Policies: []CachePolicy{{Name: "lru", Factory: eviction.NewLRU}},
		CapacityTokens: []int64{160}, HostFactor: 2})
	require.NoError(t, err)
	assert.Equal(t, 20, res[0].HostBlocks)
}

// TestBadInputBelady: as eviction.Factory documents, a negative capacity
// is taken as 0 (it used to panic in make).
func TestBadInputBelady(t *testing.T) {
	var p *Belady
	require.NotPanics(t, func() { p = NewBelady(-1) })
	assert.Zero(t, p.Len())
	_, ok := p.Victim()
	assert.False(t, ok)
}

// TestBadInputCacheTraceSizes: a request whose prompt or references could
// not fit memory is refused with ErrCacheStudy before anything is made
// for it; the prompt (2^40 tokens) or the references (2^31) used to be
// built first, and the process ran out of memory. A negative prompt
// length is refused too (it was taken as empty).
func TestBadInputCacheTraceSizes(t *testing.T) {
	for _, n := range []int{-1, MaxTraceTokens + 1, min(1<<40, math.MaxInt), math.MaxInt} {
		_, err := CacheTraceFromTokens([]Request{{InputTokens: 10}, {InputTokens: n}}, 16)
		assert.ErrorIs(t, err, ErrCacheStudy, "InputTokens %d", n)
	}
	_, err := CacheTraceFromTokens([]Request{{InputTokens: 0}, {InputTokens: 40}}, 16)
	require.NoError(t, err)
	// 2^22 hash IDs split into 512 one-token blocks each: 2^31 references.
	_, err = CacheTraceFromHashes([]Request{{HashIDs: []int64{1}}, {HashIDs: make([]int64, 1<<22)}}, 1)
	assert.ErrorIs(t, err, ErrCacheStudy)
}

// TestBadInputSharedPrefix: a prefix or prompt that cannot be represented
// is refused with ErrFleetInvalid and the requests are left as they were.
// A huge n or prompt used to panic sizing the ID lists ("makeslice: cap
// out of range"; kvbench fleet -shared-prefix 9223372036854775807 crashed),
// a negative prompt passed through, and the error had no sentinel.
func TestBadInputSharedPrefix(t *testing.T) {
	for _, c := range []struct {
		name      string
		in        int
		n, blockN int
	}{
		{"negative prompt", -1024, 0, 512},
		{"prompt past MaxTraceTokens", math.MaxInt, 0, 512},
		{"prefix past MaxTraceTokens", 10, MaxTraceTokens/512 + 1, 512},
		{"prefix of MaxInt blocks", 10, math.MaxInt, 512},
		{"prefix and prompt past MaxTraceTokens", MaxTraceTokens - 511, 1, 512},
		{"block past MaxTraceTokens", 10, 1, MaxTraceTokens + 1},
		{"block of MaxInt tokens", 10, 2, math.MaxInt},
	} {
		reqs := []Request{{InputTokens: 600}, {InputTokens: c.in}}
		before := fmt.Sprintf("%+v", reqs)
		var err error
		require.NotPanics(t, func() { _, err = SharedPrefix(reqs, c.n, c.blockN) }, c.name)
		require.ErrorIs(t, err, ErrFleetInvalid, c.name)
		require.Equal(t, before, fmt.Sprintf("%+v", reqs), c.name)
	}
	// The largest prompt that fits is taken.
	out, err := SharedPrefix([]Request{{InputTokens: MaxTraceTokens - 512}}, 1, 512)
	require.NoError(t, err)
	require.Equal(t, MaxTraceTokens, out[0].InputTokens)
}

// TestBadInputRunFleet: a request whose lengths the fleet cannot replay is
// refused with ErrFleetInvalid before any server registers with the index.
// A negative prompt used to panic in slices.Grow ("cannot be negative"), a
// prompt of MaxInt tokens with "growslice: len out of range", and a
// negative output length was taken as 1.
func TestBadInputRunFleet(t *testing.T) {
	good := Request{InputTokens: 600, OutputTokens: 2, HashIDs: []int64{1, 2}}
	for name, q := range map[string]Request{
		"negative prompt":        {InputTokens: -5, OutputTokens: 3},
		"prompt of MaxInt":       {InputTokens: math.MaxInt, OutputTokens: 3, HashIDs: []int64{1}},
		"prompt past MaxTrace":   {InputTokens: MaxTraceTokens + 1, OutputTokens: 3},
		"negative output length": {InputTokens: 600, OutputTokens: -1, HashIDs: []int64{1, 2}},
		// Before the good request: out of arrival order (a reversed
		// trace replayed with a mean wait of 46.8 s against 0 in order).
		"arrives before the previous request": {InputTokens: 600, OutputTokens: 3, HashIDs: []int64{1, 2}, Arrival: -time.Second},
	} {
		idx, err := fleet.New(fleet.Config{})
		require.NoError(t, err)
		require.NotPanics(t, func() {
			_, err = RunFleet([]Request{good, q}, FleetConfig{Servers: 2, Blocks: 64, Index: idx}, FleetRouters(1, 8)[0])
		}, name)
		require.ErrorIs(t, err, ErrFleetInvalid, name)
		servers, err := idx.Servers(nil)
		require.NoError(t, err)
		require.Empty(t, servers, "%s: the refused replay registered servers", name)
	}
}

// TestBadInputFleetHitBound: a block size below 1 or a negative prompt is
// refused with ErrFleetInvalid; a block size of 0 used to divide by zero.
func TestBadInputFleetHitBound(t *testing.T) {
	reqs := []Request{{InputTokens: 1024, HashIDs: []int64{1, 2}}}
	for _, bs := range []int{0, -1, math.MinInt} {
		var err error
		require.NotPanics(t, func() { _, err = FleetHitBound(reqs, bs) }, "block size %d", bs)
		require.ErrorIs(t, err, ErrFleetInvalid, "block size %d", bs)
	}
	var err error
	require.NotPanics(t, func() { _, err = FleetHitBound([]Request{{InputTokens: -1024, HashIDs: []int64{1}}}, 512) })
	require.ErrorIs(t, err, ErrFleetInvalid)
}
