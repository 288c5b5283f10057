package main

import (
	"bytes"
	"errors"
	"strings"
	"sync/atomic"
	"testing"

	"github.com/stretchr/testify/assert"
	"github.com/stretchr/testify/require"

	"github.com/pagedkv/pagedkv/bench"
)

// audit169Row returns the fields of the table row whose first field is
// name, or nil.
func audit169Row(s, name string) []string {
	for _, line := range strings.Split(s, "\n") {
		if f := strings.Fields(line); len(f) > 0 && f[0] == name {
			return f
		}
	}
	return nil
}

// TestAudit169FragTableOnTraceFile: the table names the -trace file it
// read; the paper's paged figure, which gives the token states only, sits
// beside paged/16 alone with dashes for the other three; the footer's
// ShareGPT prompt share is 161/(161+338), 32%; a sharing run's JSON row
// gives the study's 16-token blocks (M4970, M4985, M4987-M4989).
func TestAudit169FragTableOnTraceFile(t *testing.T) {
	tr := audit100File(t, "t.csv", audit100Azure)
	var out bytes.Buffer
	args := []string{"-trace", tr, "-models", "paged", "-block-sizes", "16,32", "-sharing-requests", "0"}
	require.NoError(t, runFrag(args, &out, &bytes.Buffer{}))
	s := out.String()
	assert.True(t, strings.HasPrefix(s, "Fragmentation study: "+tr+"\n"), s)
	p16, p32 := audit169Row(s, "paged/16"), audit169Row(s, "paged/32")
	require.Len(t, p16, 17, s)
	assert.Equal(t, []string{"|", "96.3%", "-", "-", "-", "|"}, p16[7:13], s)
	require.Len(t, p32, 13, s)
	assert.Equal(t, []string{"|", "|"}, p32[7:9], s)
	assert.NotContains(t, strings.Join(p32, " "), "96.3%")
	assert.Contains(t, s, "of a request's final length (ShareGPT: 32%)")

	out.Reset()
	args = []string{"-trace", tr, "-models", "paged", "-block-sizes", "16", "-sharing-requests", "1", "-widths", "2", "-json"}
	require.NoError(t, runFrag(args, &out, &bytes.Buffer{}))
	var sharing int
	for _, r := range audit100Lines(t, out.Bytes()) {
		if r["study"] == "sharing" {
			sharing++
			assert.EqualValues(t, 16, r["block_size"], "%v", r)
		}
	}
	assert.Equal(t, 2, sharing)
}

// TestAudit169FragFlagSpellings: model and allocator lists take spaces
// after their commas, as the block sizes do; -format azure is a format;
// a width above sched.MaxSamples is refused as soon as the sharing study
// runs a request (M4975-M4977, M4979).
func TestAudit169FragFlagSpellings(t *testing.T) {
	o, err := parseFrag([]string{"-models", "max, paged", "-allocators", "buddy, compact", "-format", "azure", "-block-sizes", "8, 16"}, &bytes.Buffer{})
	require.NoError(t, err)
	assert.Equal(t, []bench.MemoryModel{bench.ModelMax, bench.ModelPaged}, o.models)
	assert.Equal(t, []bench.Allocator{bench.AllocBuddy, bench.AllocCompact}, o.allocators)
	assert.Equal(t, []int{8, 16}, o.blockSizes)
	_, err = parseFrag([]string{"-widths", "65", "-sharing-requests", "1"}, &bytes.Buffer{})
	assert.True(t, audit100Usage(err), "%v", err)
}

// TestAudit169FragVerdictLines: the verdict gives each run its own
// running count, and each allocator with two models or more one order
// line, in the order the allocators first appear in the results (M4992,
// M4993).
func TestAudit169FragVerdictLines(t *testing.T) {
	got := fragVerdict([]bench.FragResult{
		{Model: bench.ModelMax, Allocator: bench.AllocFirstFit, TokenStates: 0.3},
		{Model: bench.ModelMax, Allocator: bench.AllocBuddy, TokenStates: 0.2},
		{Model: bench.ModelPow2, Allocator: bench.AllocBuddy, TokenStates: 0.3},
		{Model: bench.ModelOracle, Allocator: bench.AllocBuddy, TokenStates: 0.6, AvgRunning: 2.5},
		{Model: bench.ModelOracle, Allocator: bench.AllocFirstFit, TokenStates: 0.4},
		{Model: bench.ModelPaged, BlockSize: 16, TokenStates: 0.8, AvgRunning: 7.25},
	})
	require.Len(t, got, 4, "%q", got)
	assert.Equal(t, "Strongest contiguous reservation: oracle/buddy, 60.0% token states (2.50 running); paged/16: 80.0% (7.25 running).", got[0])
	assert.Equal(t, []string{
		"On first-fit: max 30.0% < oracle 40.0% (the paper's order).",
		"On buddy: max 20.0% < pow2 30.0% < oracle 60.0% (the paper's order).",
	}, got[2:])
}

// audit169Failing is a writer that refuses every write.
type audit169Failing struct{}

var errAudit169 = errors.New("disk full")

func (audit169Failing) Write([]byte) (int, error) { return 0, errAudit169 }

// TestAudit169FragJSONWriteError: -json output that cannot be written is
// an error, for a frag row as for a sharing row (M4995).
func TestAudit169FragJSONWriteError(t *testing.T) {
	res := []bench.FragResult{{Model: bench.ModelPaged, BlockSize: 16, TokenStates: 0.5}}
	assert.ErrorIs(t, writeFragJSON(audit169Failing{}, res, nil), errAudit169)
	assert.ErrorIs(t, writeFragJSON(audit169Failing{}, nil, []bench.SharingResult{{Width: 2}}), errAudit169)
}

// TestAudit169SharingProgress: the sharing study reports each finished
// request weighted by its group's cost, so its progress adds up to what
// runFrag counts for it in the total; and the weights follow the measured
// costs, beam search (a fork and copy every step) above parallel sampling
// at the default widths (M4982, M4984).
func TestAudit169SharingProgress(t *testing.T) {
	reqs := bench.AzureConv()[:3]
	var done atomic.Int64
	cfg := bench.FragConfig{MaxLen: bench.DefaultFragMaxLen, KVTokens: bench.DefaultFragKVTokens, StepTime: bench.DefaultFragStepTime,
		Progress: func(n int) { done.Add(int64(n)) }}
	_, err := runSharing(reqs, []int{2, 4}, cfg)
	require.NoError(t, err)
	var want int64
	for _, w := range []int{2, 4} {
		want += int64(len(reqs)) * (sharingWeight(bench.SharingParallel, w) + sharingWeight(bench.SharingBeam, w))
	}
	assert.Equal(t, want, done.Load())
	for _, w := range []int{2, 4, 6} {
		assert.Greater(t, sharingWeight(bench.SharingBeam, w), sharingWeight(bench.SharingParallel, w), "width %d", w)
	}
}
