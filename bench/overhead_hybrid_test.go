package bench

import (
	"fmt"
	"testing"

	"github.com/stretchr/testify/assert"
	"github.com/stretchr/testify/require"
)

// TestW1HMatchesVLLM replays W1-H (WORKLOADS.md section 8: a full-attention
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
// prompts) and sizes. The reference figures are vLLM v1's own
// KVCacheManager at f20c3b0 replaying the same workload, produced with
// bench/vllmside/w1_vllm.py (the flags are in each case's name).
func TestW1HOtherSizesMatchVLLM(t *testing.T) {
	for _, tc := range []struct {
		window, requests, blocks int
		steps, preemptions       int
		admittedHits, hits       int64
		digest                   string
	}{
		{128, 2000, 8192, 5892, 111, 147744, 197504, "a9fc622f583af3c34a8f0ea7ed1604837417c8876b0e3768a215b17ecd02f146"},
		{256, 500, 2048, 6226, 35, 27584, 149488, "af8cce105fe01d18a0d02b481eb493462916b93b30226c348abd8e008ff6655f"},
		{33, 300, 1024, 6479, 15, 12400, 35248, "9731ebaea5f7c10c8b8213c97ff3768a7039951a8dabadc9d522362a0409e3e6"},
		{4096, 1000, 4096, 7874, 253, 383488, 3243088, "f48010be482ca6227e6a0899d4e740b5c9d1bcf8fdf15f595bc3a49f503f9d01"},
		{1, 200, 1024, 3905, 5, 4928, 15664, "bbd54f5e9dbbcdf52c928c2816de89102e1b63135b2eba64930de5658cbd1ac7"},
	} {
		t.Run(fmt.Sprintf("--sliding-window=%d --requests=%d --blocks=%d", tc.window, tc.requests, tc.blocks), func(t *testing.T) {
			if testing.Short() && tc.requests > 500 {
				t.Skip("long replay")
			}
			r, err := RunW1(W1Config{Compat: "vllm", Window: tc.window, Requests: tc.requests, Blocks: tc.blocks, Digest: true})
			require.NoError(t, err)
			assert.Equal(t, tc.steps, r.Steps)
			assert.Equal(t, tc.preemptions, r.Preemptions)
			assert.Equal(t, tc.admittedHits, r.AdmittedHitTokens)
			assert.EqualValues(t, tc.hits, r.PrefixHitTokens)
			assert.Equal(t, tc.digest, r.Digest)
		})
	}
}
