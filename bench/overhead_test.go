package bench

import (
	"fmt"
	"runtime"
	"slices"
	"strings"
	"testing"

	"github.com/pagedkv/pagedkv/internal/probe"

	"github.com/stretchr/testify/assert"
	"github.com/stretchr/testify/require"
)

// TestW1MatchesVLLM replays workload W1 in the vLLM-compatible
// configuration and compares every counter with the reference replay of
// vLLM v1's own KVCacheManager (docs/workloads.md, section 7), decision for
// decision through the allocation digest.
func TestW1MatchesVLLM(t *testing.T) {
	r, err := RunW1(W1Config{Compat: "vllm", Digest: true})
	require.NoError(t, err)
	assert.Equal(t, 4440, r.Steps)
	assert.Equal(t, 351, r.Preemptions)
	assert.Equal(t, 2000, r.Finished)
	assert.Equal(t, 2351, r.Admissions)
	assert.EqualValues(t, 2393192, r.TokensProcessed)
	assert.EqualValues(t, 1865736, r.PrefillTokens)
	assert.EqualValues(t, 137515, r.ResumedPrefill)
	assert.EqualValues(t, 527456, r.Decode)
	assert.EqualValues(t, 2607936, r.PrefixHitTokens)
	assert.EqualValues(t, 10855911, r.PrefixQueryTokens)
	assert.EqualValues(t, 6193, r.PrefixLookups)
	assert.EqualValues(t, 756976, r.AdmittedHitTokens)
	assert.EqualValues(t, 2622712, r.AdmittedQueryTokens)
	assert.Equal(t, 8191, r.PeakBlocksInUse)
	assert.Equal(t, 207, r.PeakRunning)
	assert.Zero(t, r.ReadmittedSameStep)
	assert.EqualValues(t, 527807, r.CallsAllocDecode)
	assert.EqualValues(t, 6193, r.CallsAllocAdmit)
	assert.Equal(t, "38a4b81b4e06ea94875657a5d3c9567875cd1f3e8c8ed2d2c4135beb0586dd97", r.Digest)
}

// TestW1DefaultDiffers runs the library's default configuration on W1: the
// same work, but uncached free blocks are reused before any cached block is
// evicted, so more admissions hit and the digest differs.
func TestW1DefaultDiffers(t *testing.T) {
	r, err := RunW1(W1Config{Digest: true})
	require.NoError(t, err)
	vllm, err := RunW1(W1Config{Compat: "vllm"})
	require.NoError(t, err)
	assert.Equal(t, 2000, r.Finished)
	assert.NotEqual(t, "38a4b81b4e06ea94875657a5d3c9567875cd1f3e8c8ed2d2c4135beb0586dd97", r.Digest)
	assert.GreaterOrEqual(t, r.AdmittedHitTokens, vllm.AdmittedHitTokens, "keeping cached blocks longer cannot hit less on W1")
}

func TestW1TraceLines(t *testing.T) {
	var lines []string
	_, err := RunW1(W1Config{Compat: "vllm", Requests: 3, OnEvent: func(l string) { lines = append(lines, l) }})
	require.NoError(t, err)
	require.NotEmpty(t, lines)
	assert.Equal(t, "S1\n", lines[0])
	assert.True(t, strings.HasPrefix(lines[1], "A0:|1,2,"), "request 0 is admitted first with no hits: %q", lines[1])
}

// TestW1ReplayChecksEveryCall: the manager-alone replay fails when a
// recorded call answers otherwise, and when the recording does not add up
// to the scheduler's calls.
func TestW1ReplayChecksEveryCall(t *testing.T) {
	defer func() { w1Tamper = nil }()
	cfg := W1Config{Requests: 300, Blocks: 1024, Compat: "vllm"}
	r, err := RunW1(cfg)
	require.NoError(t, err)
	require.Positive(t, r.Preemptions, "the test needs preemptions")
	for _, c := range []struct {
		name, want string
		tamper     func(ops []w1Op)
	}{
		{"append refused", "answered otherwise", func(ops []w1Op) {
			for k := range ops {
				if ops[k].kind() == opAppend {
					ops[k].setKind(opAppendFull)
					return
				}
			}
		}},
		{"append fails", "answered otherwise", func(ops []w1Op) {
			// A decode append (appendRun's) to a request freed before it.
			for f := range ops {
				if ops[f].kind() != opFree {
					continue
				}
				for k := f + 1; k < len(ops); k++ {
					if ops[k].kind() == opAppend {
						ops[k].kr = uint32(opAppend)<<24 | uint32(ops[f].req())
						return
					}
				}
			}
		}},
		{"other hits", "answered otherwise", func(ops []w1Op) {
			for k := range ops {
				if ops[k].kind() == opAdmit && ops[k].arg > 0 {
					ops[k].arg--
					return
				}
			}
		}},
		{"admit dropped", "recorded", func(ops []w1Op) {
			for k := range ops {
				if ops[k].kind() == opAdmitFull {
					ops[k].setKind(opTake)
					return
				}
			}
		}},
	} {
		w1Tamper = c.tamper
		_, err := RunW1(cfg)
		assert.ErrorContains(t, err, c.want, c.name)
	}
}

// TestW1CountersOnly: skipping the timed replay changes no counter.
func TestW1CountersOnly(t *testing.T) {
	cfg := W1Config{Requests: 300, Blocks: 1024, Compat: "vllm", Digest: true}
	full, err := RunW1(cfg)
	require.NoError(t, err)
	cfg.CountersOnly = true
	quick, err := RunW1(cfg)
	require.NoError(t, err)
	assert.Positive(t, full.ManagerNs)
	assert.Zero(t, quick.ManagerNs)
	assert.Equal(t, full.Digest, quick.Digest)
	assert.Equal(t, full.TokensProcessed, quick.TokensProcessed)
	assert.Equal(t, full.PrefixHitTokens, quick.PrefixHitTokens)
}

func TestW1BadConfig(t *testing.T) {
	_, err := RunW1(W1Config{Compat: "sglang"})
	assert.ErrorContains(t, err, "compat")
	_, err = RunW1(W1Config{Requests: 1 << 20})
	assert.ErrorContains(t, err, "requests")
}

func BenchmarkW1(b *testing.B) {
	for _, compat := range []string{"vllm", ""} {
		name := compat
		if name == "" {
			name = "default"
		}
		b.Run(name, func(b *testing.B) {
			var r W1Result
			b.ReportAllocs()
			for b.Loop() {
				var err error
				if r, err = RunW1(W1Config{Compat: compat}); err != nil {
					b.Fatal(err)
				}
			}
			b.ReportMetric(r.ManagerNsPerTokenExclTimer(), "manager-ns/token")
			b.ReportMetric(r.ManagerNsPerTokenExclTimer()/r.SHAFloorNsPerToken(), "x-sha-floor")
			b.ReportMetric(float64(r.SchedulerNs)/float64(r.TokensProcessed), "sched-ns/token")
		})
	}
}

func BenchmarkW1H(b *testing.B) {
	for _, window := range []int{1024, 128} {
		b.Run(fmt.Sprintf("window=%d", window), func(b *testing.B) {
			var r W1Result
			b.ReportAllocs()
			for b.Loop() {
				var err error
				if r, err = RunW1(W1Config{Compat: "vllm", Window: window}); err != nil {
					b.Fatal(err)
				}
			}
			b.ReportMetric(r.ManagerNsPerTokenExclTimer(), "manager-ns/token")
			b.ReportMetric(r.ManagerNsPerTokenExclTimer()/r.SHAFloorNsPerToken(), "x-sha-floor")
		})
	}
}

// BenchmarkW1Replay times the manager alone on W1 and W1-H: the calls the
// scheduler made, recorded once, given to a new manager each iteration
// (replayW1), without the replay through the scheduler around them. The
// metrics are the medians over the iterations of each phase's time, the
// manager's per processed token and its ratio to the SHA-256 floor.
func BenchmarkW1Replay(b *testing.B) {
	for _, window := range []int{0, 1024} {
		b.Run(fmt.Sprintf("window=%d", window), func(b *testing.B) {
			defer func() { w1Replays = nil }()
			w1Replays = func(replay func() (W1Result, error)) {
				var runs []W1Result
				var cpu []int64 // each replay's thread CPU time, whole
				runtime.LockOSThread()
				defer runtime.UnlockOSThread()
				b.ReportAllocs()
				b.ResetTimer()
				for b.Loop() {
					c0 := threadCPU()
					r, err := replay()
					c1 := threadCPU()
					if err != nil {
						b.Fatal(err)
					}
					runs = append(runs, r)
					cpu = append(cpu, c1-c0)
				}
				b.StopTimer()
				slices.Sort(cpu)
				sorted := func(f func(r *W1Result) int64) []int64 {
					v := make([]int64, len(runs))
					for i := range runs {
						v[i] = f(&runs[i])
					}
					slices.Sort(v)
					return v
				}
				median := func(f func(r *W1Result) int64) float64 {
					v := sorted(f)
					return float64(v[len(v)/2])
				}
				total := func(r *W1Result) int64 { return r.NsInit + r.NsAdmit + r.NsAllocDecode + r.NsFree }
				ns := median(total)
				r := &runs[0]
				b.ReportMetric(ns/float64(r.TokensProcessed), "manager-ns/token")
				b.ReportMetric(float64(sorted(total)[0])/float64(r.TokensProcessed), "best-ns/token")
				b.ReportMetric(float64(sorted(func(r *W1Result) int64 { return r.NsAdmit + r.NsAllocDecode + r.NsFree })[0])/1e6, "best-steps-ms")
				if cpu[0] > 0 {
					// The whole replay, the loop's own prompt making included.
					b.ReportMetric(float64(cpu[len(cpu)/2])/1e6, "replay-cpu-ms")
					b.ReportMetric(float64(cpu[0])/1e6, "best-replay-cpu-ms")
				}
				b.ReportMetric(ns/(float64(r.BlocksHashed)*probe.SHA256()), "x-sha-floor")
				b.ReportMetric(median(func(r *W1Result) int64 { return r.NsInit })/1e6, "init-ms")
				b.ReportMetric(median(func(r *W1Result) int64 { return r.NsAdmit })/1e6, "admit-ms")
				b.ReportMetric(median(func(r *W1Result) int64 { return r.NsAllocDecode })/1e6, "decode-ms")
				b.ReportMetric(median(func(r *W1Result) int64 { return r.NsFree })/1e6, "free-ms")
			}
			if _, err := RunW1(W1Config{Compat: "vllm", Window: window}); err != nil {
				b.Fatal(err)
			}
		})
	}
}
