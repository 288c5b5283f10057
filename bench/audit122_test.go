package bench

import (
	"crypto/sha256"
	"encoding/hex"
	"runtime"
	"testing"

	"github.com/pagedkv/pagedkv/allocator"
	"github.com/pagedkv/pagedkv/eviction"
	"github.com/pagedkv/pagedkv/paged"

	"github.com/stretchr/testify/assert"
	"github.com/stretchr/testify/require"
)

// TestAudit122Defaults: the zero W1Config's running limit is 256 and its
// MaxModelLen 16,384 (docs/workloads.md section 4). W1's own requests
// never reach either (207 run at most, no request is that long), so a
// trace of 300 one-block requests and one of a single 20,000-token prompt
// are replayed with the defaults.
func TestAudit122Defaults(t *testing.T) {
	small := make([]Request, 300)
	for i := range small {
		small[i] = Request{InputTokens: 1, OutputTokens: 3}
	}
	r, err := RunW1(W1Config{Trace: small, Requests: len(small), Blocks: 1024, CountersOnly: true})
	require.NoError(t, err)
	assert.Equal(t, 256, r.PeakRunning, "the default running limit")
	assert.Equal(t, 300, r.Finished)

	long := []Request{{InputTokens: 20000, OutputTokens: 10}}
	ctx, gen := w1Lens(long, 0, 16384)
	require.Equal(t, [2]int{16374, 10}, [2]int{ctx, gen})
	r, err = RunW1(W1Config{Trace: long, Requests: 1, Blocks: 2048, CountersOnly: true})
	require.NoError(t, err)
	assert.EqualValues(t, 16374, r.PrefillTokens, "the prompt cut to leave the outputs room in 16,384 tokens")
	assert.EqualValues(t, 9, r.Decode)
}

// TestAudit122EmptyTrace: an empty trace is a trace of no requests, not
// the embedded one (only nil means that).
func TestAudit122EmptyTrace(t *testing.T) {
	_, err := RunW1(W1Config{Trace: []Request{}, Requests: 5, CountersOnly: true})
	assert.ErrorIs(t, err, ErrW1Invalid)
	assert.ErrorContains(t, err, "the trace has 0")
}

// a122Policy is an LRU that counts the victims the manager takes from it.
type a122Policy struct {
	eviction.Policy
	victims *int
}

func (p a122Policy) Victim() (allocator.BlockID, bool) {
	id, ok := p.Policy.Victim()
	if ok {
		*p.victims++
	}
	return id, ok
}

// TestAudit122Policy: W1Config.Policy is the policy the replayed manager
// evicts with (in the default mode, once the free list is empty).
func TestAudit122Policy(t *testing.T) {
	var made, victims int
	f := func(capacity int) eviction.Policy {
		made++
		return a122Policy{eviction.NewLRU(capacity), &victims}
	}
	r, err := RunW1(W1Config{Requests: 300, Blocks: 1024, Policy: f, CountersOnly: true})
	require.NoError(t, err)
	require.Positive(t, r.Preemptions, "the pool runs out")
	assert.Positive(t, made, "the factory was not called")
	assert.Positive(t, victims, "no block was evicted through the policy")
}

// TestAudit122SameStepWithoutEvents: the count of requests readmitted in
// the step that preempted them is the same whether event lines are made
// or not (the two ways RunW1 hooks preemptions).
func TestAudit122SameStepWithoutEvents(t *testing.T) {
	cfg := W1Config{Requests: 300, Blocks: 1024, Window: 16, Compat: "vllm", CountersOnly: true}
	plain, err := RunW1(cfg)
	require.NoError(t, err)
	cfg.Digest = true
	traced, err := RunW1(cfg)
	require.NoError(t, err)
	require.Positive(t, traced.ReadmittedSameStep, "the test needs same-step readmissions")
	assert.Equal(t, traced.ReadmittedSameStep, plain.ReadmittedSameStep)
}

// TestAudit122Counts: the call counts and measured figures W1Result
// documents, as relations that hold on any machine: one Add per request,
// one get_computed per Admit (each a prefix lookup), one output append
// per output token (every request's outputs, each sampled once even when
// the request is preempted), the probes measured, and the wall time
// covering the scheduler's timed phases (disjoint intervals within it).
func TestAudit122Counts(t *testing.T) {
	trace := AzureConv()[:300]
	r, err := RunW1(W1Config{Trace: trace, Requests: 300, Blocks: 1024, Compat: "vllm"})
	require.NoError(t, err)
	require.Positive(t, r.Preemptions)
	assert.EqualValues(t, 300, r.CallsInit)
	assert.Equal(t, r.CallsAllocAdmit, r.CallsGetComputed)
	assert.EqualValues(t, r.PrefixLookups, r.CallsGetComputed)
	assert.Greater(t, r.CallsGetComputed, int64(r.Admissions), "refused admissions are lookups too")
	var outputs int64
	for i := range trace {
		_, gen := w1Lens(trace, i, 16384)
		outputs += int64(gen)
	}
	assert.Equal(t, outputs, r.CallsAppendOutput)
	assert.Positive(t, r.SHA256Ns)
	assert.Positive(t, r.TimerOverheadNsPerCall)
	assert.Positive(t, r.SchedulerNs)
	assert.GreaterOrEqual(t, r.TotalWallNs, r.SchedulerNs)
}

// TestAudit122NeverRuns: a request that can never run in the pool ends
// the replay with the manager's error (paged.ErrNever), named by its
// step, with or without the timed replay. In vLLM's mode a sliding
// window's group holds a block per position until the window has
// passed, so W1-H's request 23 needs 512 blocks: a pool of 512 (511
// usable) admits it, but it cannot grow.
func TestAudit122NeverRuns(t *testing.T) {
	for _, countersOnly := range []bool{true, false} {
		_, err := RunW1(W1Config{Requests: 30, Blocks: 512, Window: 16, Compat: "vllm", CountersOnly: countersOnly})
		assert.ErrorIs(t, err, paged.ErrNever)
		assert.ErrorContains(t, err, "bench: W1 step ")
	}
}

// TestAudit122Lengths: the lengths' floors and caps: a request of no
// input tokens has a prompt of one, and one of more outputs than
// MaxModelLen has MaxModelLen-1 of them after its one-token prompt.
func TestAudit122Lengths(t *testing.T) {
	trace := []Request{{InputTokens: 0, OutputTokens: 5}, {InputTokens: 10, OutputTokens: 300}}
	for i, want := range [][2]int{{1, 5}, {1, 255}} {
		ctx, gen := w1Lens(trace, i, 256)
		assert.Equal(t, want, [2]int{ctx, gen}, "request %d", i)
	}
	r, err := RunW1(W1Config{Trace: trace, Requests: 2, Blocks: 64, MaxModelLen: 256, CountersOnly: true})
	require.NoError(t, err)
	assert.EqualValues(t, 2, r.PrefillTokens)
	assert.EqualValues(t, 4+254, r.Decode)
}

// TestAudit122ChunkOfOne: a chunk of one token is a chunked group.
func TestAudit122ChunkOfOne(t *testing.T) {
	assert.Equal(t, []paged.Group{{Kind: paged.FullAttention}, {Kind: paged.ChunkedLocal, Chunk: 1}}, W1Config{Chunk: 1}.groups())
}

// TestAudit122EventsWithDigest: with both a digest and an event callback
// the callback gets every line, and the lines hash to the digest.
func TestAudit122EventsWithDigest(t *testing.T) {
	h := sha256.New()
	n := 0
	r, err := RunW1(W1Config{Requests: 50, Blocks: 512, Compat: "vllm", Digest: true, CountersOnly: true, OnEvent: func(l string) {
		n++
		h.Write([]byte(l))
	}})
	require.NoError(t, err)
	assert.Greater(t, n, r.Steps)
	assert.Equal(t, r.Digest, hex.EncodeToString(h.Sum(nil)))
}

// TestAudit122SharedPrompt: requests eight apart share exactly their
// first 256 prompt tokens (docs/workloads.md section 3).
func TestAudit122SharedPrompt(t *testing.T) {
	trace := make([]Request, 9)
	for i := range trace {
		trace[i] = Request{InputTokens: 300, OutputTokens: 1}
	}
	a, _ := w1Prompt(nil, trace, 0, 1024)
	b, _ := w1Prompt(nil, trace, 8, 1024)
	c, _ := w1Prompt(nil, trace, 1, 1024)
	n := 0
	for n < len(a) && a[n] == b[n] {
		n++
	}
	assert.Equal(t, 256, n)
	assert.NotEqual(t, a[0], c[0], "requests of other classes share nothing")
}

// TestAudit122Reserve: by default the managers are made with a reserve,
// with NoReserve without: the reserve's buffers for Requests sequences of
// MaxModelLen tokens are allocated up front, so the default replay
// allocates more bytes than the one without (both skip the timed replay),
// by about 2.1 MB against 0.23 MB. No test of the package runs in
// parallel (t.Parallel), so TotalAlloc counts these replays alone.
func TestAudit122Reserve(t *testing.T) {
	alloc := func(noReserve bool) uint64 {
		var m0, m1 runtime.MemStats
		runtime.ReadMemStats(&m0)
		_, err := RunW1(W1Config{Requests: 20, Blocks: 512, Compat: "vllm", CountersOnly: true, NoReserve: noReserve})
		require.NoError(t, err)
		runtime.ReadMemStats(&m1)
		return m1.TotalAlloc - m0.TotalAlloc
	}
	with, without := alloc(false), alloc(true)
	assert.Greater(t, with, without+20*16384)
}
