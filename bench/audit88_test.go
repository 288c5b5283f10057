package bench

import (
	"bytes"
	"math"
	"slices"
	"strings"
	"sync"
	"testing"
	"time"

	"github.com/pagedkv/pagedkv/paged"

	"github.com/stretchr/testify/assert"
	"github.com/stretchr/testify/require"
)

// a88Hasher is paged.FastHasher that records every hash it returns.
type a88Hasher struct {
	mu  sync.Mutex
	got []paged.Hash
}

func (h *a88Hasher) Sum(parent *paged.Hash, tokens []int32, extra []byte) paged.Hash {
	s := paged.FastHasher{}.Sum(parent, tokens, extra)
	h.mu.Lock()
	h.got = append(h.got, s)
	h.mu.Unlock()
	return s
}

// TestAudit88ReplayGivesTheSameTokens: the manager-alone replay of W1
// hashes exactly the blocks the replay through the scheduler hashed. The
// replay's answers and final statistics match even when its decode
// appends give other tokens (no request hits another's outputs, and a
// resumed request hits its own blocks whatever their tokens), so only the
// blocks themselves tell that the timed calls are W1's.
func TestAudit88ReplayGivesTheSameTokens(t *testing.T) {
	h := &a88Hasher{}
	r, err := RunW1(W1Config{Requests: 300, Blocks: 1024, Compat: "vllm", Hasher: h})
	require.NoError(t, err)
	require.Positive(t, r.Preemptions)
	require.Len(t, h.got, 2*int(r.BlocksHashed), "each manager hashes BlocksHashed blocks")
	cmp := func(a, b paged.Hash) int { return bytes.Compare(a[:], b[:]) }
	first, replay := slices.Clone(h.got[:r.BlocksHashed]), slices.Clone(h.got[r.BlocksHashed:])
	slices.SortFunc(first, cmp)
	slices.SortFunc(replay, cmp)
	assert.True(t, slices.Equal(first, replay), "the replay hashed other blocks than the scheduler's manager")
}

// TestAudit88PhaseTimes: every phase the replays time is measured, and
// the sums and counts are the ones W1Result documents.
func TestAudit88PhaseTimes(t *testing.T) {
	r, err := RunW1(W1Config{Requests: 300, Blocks: 1024, Compat: "vllm"})
	require.NoError(t, err)
	for name, v := range map[string]int64{
		"NsAdmit": r.NsAdmit, "NsAllocDecode": r.NsAllocDecode, "NsFree": r.NsFree, "NsInit": r.NsInit,
		"SchedNsAdmit": r.SchedNsAdmit, "SchedNsAllocDecode": r.SchedNsAllocDecode, "SchedNsFree": r.SchedNsFree, "SchedNsInit": r.SchedNsInit,
	} {
		assert.Positive(t, v, name)
	}
	assert.Equal(t, r.NsAdmit+r.NsAllocDecode+r.NsFree, r.ManagerNsExclPromptHash)
	assert.Equal(t, r.ManagerNsExclPromptHash+r.NsInit, r.ManagerNs)
	assert.Equal(t, r.SchedNsAdmit+r.SchedNsAllocDecode+r.SchedNsFree+r.SchedNsInit, r.SchedulerNs)
	assert.Equal(t, r.CallsInit+3*int64(r.Steps), r.TimedCalls, "one interval per Add and three per step")
	assert.EqualValues(t, r.Preemptions+r.Finished, r.CallsFree, "Free and Preempt calls")
}

// TestAudit88PerTokenFigures: the per-token figures of a result, and of
// one that processed nothing (0, not NaN).
func TestAudit88PerTokenFigures(t *testing.T) {
	r := W1Result{TokensProcessed: 100, ManagerNs: 5000, TimerOverheadNsPerCall: 20, TimedCalls: 10, BlocksHashed: 7, SHA256Ns: 100}
	assert.InDelta(t, 48.0, r.ManagerNsPerTokenExclTimer(), 1e-9)
	assert.InDelta(t, 7.0, r.SHAFloorNsPerToken(), 1e-9)
	var zero W1Result
	zero.BlocksHashed, zero.SHA256Ns, zero.ManagerNs = 3, 100, 10
	for _, v := range []float64{zero.SHAFloorNsPerToken(), zero.ManagerNsPerTokenExclTimer()} {
		assert.False(t, math.IsNaN(v) || math.IsInf(v, 0), "got %v", v)
		assert.Zero(t, v)
	}
	assert.Zero(t, HybridHits{AdmittedHitTokens: 5}.Share(HybridHits{}), "a base of no hits")
	assert.InDelta(t, 0.5, HybridHits{AdmittedHitTokens: 5}.Share(HybridHits{AdmittedHitTokens: 10}), 1e-12)
}

// TestAudit88TraceBounds: a trace exactly as long as the requests asked
// is replayed; the request bound itself is taken (and then found longer
// than the trace), one past it is refused as past the bound.
func TestAudit88TraceBounds(t *testing.T) {
	trace := AzureConv()[:40]
	r, err := RunW1(W1Config{Trace: trace, Requests: 40, Blocks: 512})
	require.NoError(t, err)
	assert.Equal(t, 40, r.Finished)
	_, err = RunW1(W1Config{Trace: trace, Requests: 41, Blocks: 512})
	assert.ErrorIs(t, err, ErrW1Invalid)
	assert.ErrorContains(t, err, "the trace has 40")
	_, err = RunW1(W1Config{Trace: trace, Requests: w1MaxRequests})
	assert.ErrorContains(t, err, "the trace has 40")
	_, err = RunW1(W1Config{Trace: trace, Requests: w1MaxRequests + 1})
	assert.ErrorContains(t, err, "want 0 (2000) to")
}

// TestAudit88Lengths: W1's lengths (docs/workloads.md section 3): a
// request of no output tokens still decodes one, and a prompt is cut so
// that it and its outputs fit in MaxModelLen.
func TestAudit88Lengths(t *testing.T) {
	trace := []Request{{InputTokens: 40, OutputTokens: 0}, {InputTokens: 500, OutputTokens: 30}}
	for i, want := range [][2]int{{40, 1}, {226, 30}} {
		ctx, gen := w1Lens(trace, i, 256)
		assert.Equal(t, want, [2]int{ctx, gen}, "request %d", i)
	}
	r, err := RunW1(W1Config{Trace: trace, Requests: 2, Blocks: 64, MaxModelLen: 256})
	require.NoError(t, err)
	assert.EqualValues(t, 29, r.Decode, "each request's first output comes with its prefill")
	assert.EqualValues(t, 40+226, r.PrefillTokens)
}

// TestAudit88HybridSplit: the hybrid study splits admitted hits between
// first admissions and readmissions: with preemptions in vLLM's mode (a
// readmitted request hits its own blocks) both are positive.
func TestAudit88HybridSplit(t *testing.T) {
	r, err := RunHybridStudy(HybridConfig{Windows: []int{64}, StateModels: []string{}, Layouts: []HybridLayout{}, Requests: 300, Blocks: 1024})
	require.NoError(t, err)
	require.Positive(t, r.SingleVLLM.Preemptions)
	assert.Positive(t, r.SingleVLLM.FirstHitTokens)
	assert.Positive(t, r.SingleVLLM.ResumeHitTokens)
	assert.Equal(t, r.SingleVLLM.AdmittedHitTokens, r.SingleVLLM.FirstHitTokens+r.SingleVLLM.ResumeHitTokens)
}

// TestAudit88HybridConfig: the study's defaults and refusals. No windows
// and no layouts with the state models left nil replays the default
// state model; negative workers are refused, not a hang; a layout row
// keeps its own copy of the caller's groups; a chunked group is named by
// its chunk.
func TestAudit88HybridConfig(t *testing.T) {
	full := paged.Group{Kind: paged.FullAttention}
	layouts := []HybridLayout{{Groups: []paged.Group{full, {Kind: paged.SlidingWindow, Window: 32}}}}
	r, err := RunHybridStudy(HybridConfig{Windows: []int{}, Layouts: layouts, Requests: 60, Blocks: 1024})
	require.NoError(t, err)
	require.Len(t, r.States, 1)
	assert.Equal(t, DefaultHybridStateModels[0], r.States[0].Model)
	layouts[0].Groups[1].Window = 64
	assert.Equal(t, 32, r.Layouts[0].Groups[1].Window, "the row shares the caller's groups")

	done := make(chan error, 1)
	go func() {
		_, err := RunHybridStudy(HybridConfig{Windows: []int{8}, Requests: 20, Blocks: 256, Workers: -1})
		done <- err
	}()
	select {
	case err := <-done:
		assert.ErrorIs(t, err, ErrHybridStudy)
	case <-time.After(30 * time.Second):
		t.Fatal("RunHybridStudy with Workers -1 did not return")
	}

	name := LayoutName([]paged.Group{full, {Kind: paged.ChunkedLocal, Chunk: 8192, Window: 5}, {Kind: paged.SlidingWindow, Window: 128}})
	assert.Equal(t, "full + chunked 8192 + window 128", name)
	assert.True(t, strings.HasPrefix(name, full.Kind.String()))
}

// TestAudit88RunningLimit: a step whose admissions the running limit
// stops (W1's 2,000 requests never reach 256 running) makes no refused
// Admit: the replay gives the manager the calls the scheduler made, and
// an Admit recorded as refused there would succeed.
func TestAudit88RunningLimit(t *testing.T) {
	r, err := RunW1(W1Config{Requests: 100, Blocks: 2048, MaxNumSeqs: 4, Compat: "vllm"})
	require.NoError(t, err)
	assert.Equal(t, 4, r.PeakRunning, "the limit is reached")
	assert.Equal(t, 100, r.Finished)
}

// TestAudit88TamperedReplays: the replay refuses a recording that
// differs from the scheduler's calls where no earlier test looked: an
// Admit recorded as refused that succeeds, and a left-out call with no
// answer to check (the last Free), which only the final statistics tell.
func TestAudit88TamperedReplays(t *testing.T) {
	defer func() { w1Tamper = nil }()
	first := func(from, to w1OpKind, last bool) func([]w1Op) {
		return func(ops []w1Op) {
			for i := range ops {
				k := i
				if last {
					k = len(ops) - 1 - i
				}
				if ops[k].kind() == from {
					ops[k].setKind(to)
					return
				}
			}
		}
	}
	for _, c := range []struct {
		name, want string
		tamper     func([]w1Op)
	}{
		{"a refused Admit succeeds", "answered otherwise", first(opAdmit, opAdmitFull, false)},
		{"the last Free left out", "the manager ends with", first(opFree, opOutput, true)},
	} {
		w1Tamper = c.tamper
		_, err := RunW1(W1Config{Requests: 50, Blocks: 512, Compat: "vllm"})
		assert.ErrorContains(t, err, c.want, c.name)
	}
}

// TestAudit88OpRecord: a recorded call's kind and request share one word;
// changing the kind keeps the request.
func TestAudit88OpRecord(t *testing.T) {
	op := w1Op{arg: 7, kr: uint32(opAdmit)<<24 | 1234}
	op.setKind(opFree)
	assert.Equal(t, opFree, op.kind())
	assert.EqualValues(t, 1234, op.req())
	assert.EqualValues(t, 7, op.arg)
}

// TestAudit88StateGroupLines: the allocation lines of a model with a state
// group (docs/workloads.md section 8: one id list per group, hits before
// the '|'): a state's pages are never hits (a state hit is copied into new
// pages) and a decode allocates none, short sequences (fewer blocks than
// the state's pages) included.
func TestAudit88StateGroupLines(t *testing.T) {
	trace := make([]Request, 40)
	for i := range trace {
		trace[i] = Request{InputTokens: 60 + 7*i, OutputTokens: 40}
	}
	var admits, decodes int
	_, err := RunW1(W1Config{Trace: trace, Requests: len(trace), Blocks: 2048, StatePages: 34, OnEvent: func(l string) {
		body, ok := strings.CutSuffix(l[strings.IndexByte(l, ':')+1:], "\n")
		switch {
		case !ok || (l[0] != 'A' && l[0] != 'D'):
			return
		case l[0] == 'A':
			admits++
			hits, fresh, _ := strings.Cut(body, "|")
			hg, fg := strings.Split(hits, ";"), strings.Split(fresh, ";")
			require.Len(t, hg, 2, l)
			require.Len(t, fg, 2, l)
			assert.Empty(t, hg[1], "a state page listed as a hit: %q", l)
			assert.Len(t, strings.Split(fg[1], ","), 34, "the state's pages: %q", l)
		default:
			decodes++
			g := strings.Split(body, ";")
			require.Len(t, g, 2, l)
			assert.Empty(t, g[1], "a decode allocated state pages: %q", l)
		}
	}})
	require.NoError(t, err)
	assert.Positive(t, admits)
	assert.Positive(t, decodes)
}

// TestAudit88StateReplay: the timed replay of a layout with a State group
// in the default mode gives the manager the calls the scheduler made.
// Before, it left out Update's EndStep: the pages of a step's checkpoints
// stayed held into the next step's admissions, whose answers then
// differed ("answered otherwise"), so `kvbench overhead -state N` failed
// in the default mode.
func TestAudit88StateReplay(t *testing.T) {
	for _, cfg := range []W1Config{
		{Requests: 300, Blocks: 1024, StatePages: 34},
		{Requests: 300, Blocks: 1024, Window: 128, Chunk: 512, StatePages: 34},
	} {
		timed, err := RunW1(cfg)
		require.NoError(t, err, "%+v", cfg)
		cfg.CountersOnly = true
		quick, err := RunW1(cfg)
		require.NoError(t, err)
		assert.Equal(t, quick.AdmittedHitTokens, timed.AdmittedHitTokens)
		assert.Equal(t, quick.Steps, timed.Steps)
		assert.Positive(t, timed.ManagerNs)
	}
}
