package bench

import (
	"fmt"
	"testing"

	"github.com/stretchr/testify/assert"
	"github.com/stretchr/testify/require"

	"github.com/pagedkv/pagedkv/paged"
)

// TestW1HMatchesVLLM replays W1-H (docs/workloads.md section 8: a full-attention
// group and a 1,024-token sliding-window group) in the vLLM-compatible
// configuration and compares every counter of vLLM v1's hybrid
// coordinator's reference replay, decision for decision through the
// allocation digest.
func TestW1HMatchesVLLM(t *testing.T) {
	r, err := RunW1(W1Config{Compat: "vllm", Window: 1024, Digest: true})
	require.NoError(t, err)
	assert.Equal(t, 8464, r.Steps)
	assert.Equal(t, 308, r.Preemptions)
	assert.Equal(t, 2000, r.Finished)
	assert.Equal(t, 2308, r.Admissions)
	assert.EqualValues(t, 2529955, r.TokensProcessed)
	assert.EqualValues(t, 2002456, r.PrefillTokens)
	assert.EqualValues(t, 121579, r.ResumedPrefill)
	assert.EqualValues(t, 527499, r.Decode)
	assert.EqualValues(t, 1900144, r.PrefixHitTokens)
	assert.EqualValues(t, 19174561, r.PrefixQueryTokens)
	assert.EqualValues(t, 10282, r.PrefixLookups)
	assert.EqualValues(t, 501440, r.AdmittedHitTokens)
	assert.EqualValues(t, 2503896, r.AdmittedQueryTokens)
	assert.Equal(t, 8191, r.PeakBlocksInUse)
	assert.Equal(t, 121, r.PeakRunning)
	assert.Equal(t, 87, r.ReadmittedSameStep)
	assert.EqualValues(t, 527807, r.CallsAllocDecode)
	assert.EqualValues(t, 10282, r.CallsAllocAdmit)
	assert.Equal(t, "e6f08fd0401c0f3b70727540c4800b9f9f77dfc6f4be1f8d54a0ac98f4a8caee", r.Digest)
}

// TestW1HOtherSizesMatchVLLM: W1-H at other windows (one that does not
// divide the block size, one of a single token, one longer than most
// prompts), with a chunked local attention group instead of the window,
// or a Mamba-style state group, and at other sizes. The reference figures
// are vLLM v1's own KVCacheManager at f20c3b0 replaying the same
// workload, produced with bench/vllmside/w1_vllm.py (the flags are in
// each case's name; vLLM runs a Mamba group without the prefix cache,
// which decides as a cache that never hits).
func TestW1HOtherSizesMatchVLLM(t *testing.T) {
	for _, tc := range []struct {
		flag                   string
		size, requests, blocks int
		steps, preemptions     int
		admittedHits, hits     int64
		digest                 string
	}{
		{"sliding-window", 128, 2000, 8192, 5892, 111, 147744, 197504, "a9fc622f583af3c34a8f0ea7ed1604837417c8876b0e3768a215b17ecd02f146"},
		{"sliding-window", 256, 500, 2048, 6226, 35, 27584, 149488, "af8cce105fe01d18a0d02b481eb493462916b93b30226c348abd8e008ff6655f"},
		{"sliding-window", 33, 300, 1024, 6479, 15, 12400, 35248, "9731ebaea5f7c10c8b8213c97ff3768a7039951a8dabadc9d522362a0409e3e6"},
		{"sliding-window", 4096, 1000, 4096, 7874, 253, 383488, 3243088, "f48010be482ca6227e6a0899d4e740b5c9d1bcf8fdf15f595bc3a49f503f9d01"},
		{"sliding-window", 1, 200, 1024, 3905, 5, 4928, 15664, "bbd54f5e9dbbcdf52c928c2816de89102e1b63135b2eba64930de5658cbd1ac7"},
		{"chunked-local", 256, 500, 2048, 5092, 57, 134992, 1367984, "0cbe8adf75d250f9eea269cd8394668cae9b91757edc9ec5b5f270eafa3ae426"},
		{"chunked-local", 1000, 1000, 4096, 5589, 197, 237264, 1117584, "e6b15b5ebeb9db15477fbed467ca09f6fa1968fcb33caf450c25fd81b195f1dd"},
		{"mamba", 1, 500, 2048, 5061, 113, 0, 0, "32e17e2968feeb84cea976c29059a9ef9b74bfef7dc5d24ee4174a2e4d6fdadc"},
	} {
		t.Run(fmt.Sprintf("--%s=%d --requests=%d --blocks=%d", tc.flag, tc.size, tc.requests, tc.blocks), func(t *testing.T) {
			if testing.Short() && tc.requests > 500 {
				t.Skip("long replay")
			}
			cfg := W1Config{Compat: "vllm", Requests: tc.requests, Blocks: tc.blocks, Digest: true}
			switch tc.flag {
			case "sliding-window":
				cfg.Window = tc.size
			case "chunked-local":
				cfg.Chunk = tc.size
			case "mamba":
				cfg.StatePages = tc.size
			}
			r, err := RunW1(cfg)
			require.NoError(t, err)
			assert.Equal(t, tc.steps, r.Steps)
			assert.Equal(t, tc.preemptions, r.Preemptions)
			assert.Equal(t, tc.admittedHits, r.AdmittedHitTokens)
			assert.EqualValues(t, tc.hits, r.PrefixHitTokens)
			assert.Equal(t, tc.digest, r.Digest)
		})
	}
}

// TestW1CombinedKinds: Window, Chunk and StatePages combine into one
// layout of several kinds in the default mode, the same replay as those
// groups given in Groups, and the vLLM-compatible mode refuses the
// combination as vLLM v1 at f20c3b0 does.
func TestW1CombinedKinds(t *testing.T) {
	cfg := W1Config{Requests: 300, Blocks: 1024, Window: 128, Chunk: 512, StatePages: 34, CountersOnly: true, Digest: true}
	assert.Equal(t, []paged.Group{{Kind: paged.FullAttention}, {Kind: paged.SlidingWindow, Window: 128},
		{Kind: paged.ChunkedLocal, Chunk: 512}, {Kind: paged.State, Pages: 34}}, cfg.groups())
	got, err := RunW1(cfg)
	require.NoError(t, err)
	want, err := RunW1(W1Config{Requests: 300, Blocks: 1024, Groups: cfg.groups(), CountersOnly: true, Digest: true})
	require.NoError(t, err)
	assert.Equal(t, want.Digest, got.Digest, "the same decisions")
	assert.Equal(t, [3]int64{int64(want.Steps), int64(want.Preemptions), want.AdmittedHitTokens},
		[3]int64{int64(got.Steps), int64(got.Preemptions), got.AdmittedHitTokens})
	assert.Positive(t, got.AdmittedHitTokens)
	for _, c := range []W1Config{
		{Window: 128, StatePages: 34},
		{Window: 128, Chunk: 512},
		{Chunk: 512, StatePages: 34},
	} {
		c.Requests, c.Blocks, c.Compat = 50, 1024, "vllm"
		_, err := RunW1(c)
		assert.ErrorIs(t, err, paged.ErrInvalid, "%+v", c)
	}
}
