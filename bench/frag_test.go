package bench

import (
	"math"
	"testing"
	"time"

	"github.com/stretchr/testify/assert"
	"github.com/stretchr/testify/require"
)

// trace builds requests from (prompt, output) pairs, all arriving at 0.
func trace(pairs ...[2]int) []Request {
	out := make([]Request, len(pairs))
	for i, p := range pairs {
		out[i] = Request{InputTokens: p[0], OutputTokens: p[1]}
	}
	return out
}

// recordSteps runs Frag and returns every step's classification.
func recordSteps(t *testing.T, reqs []Request, m MemoryModel, bs int, cfg FragConfig) (FragResult, []FragSlots) {
	t.Helper()
	var steps []FragSlots
	cfg.OnStep = func(s FragSlots) { steps = append(steps, s) }
	res, err := Frag(reqs, m, bs, cfg)
	require.NoError(t, err)
	return res, steps
}

// slots is a compact row of FragSlots for hand-checked tables:
// running, tokens, reserved, internal, external, free.
type slots [6]int

func rows(steps []FragSlots) []slots {
	out := make([]slots, len(steps))
	for i, s := range steps {
		out[i] = slots{s.Running, s.Tokens, s.Reserved, s.Internal, s.External, s.Free}
	}
	return out
}

func TestTruncate(t *testing.T) {
	tests := []struct {
		in, out, maxLen int
		prompt, final   int
		cut             bool
	}{
		{100, 100, 2048, 100, 200, false},
		{1848, 200, 2048, 1848, 2048, false},
		{100, 3000, 2048, 100, 2048, true},
		{3000, 100, 2048, 2047, 2048, true},
		{3000, 0, 2048, 2048, 2048, true},
		{0, 5, 2048, 1, 6, false},
	}
	for _, tt := range tests {
		p, f, cut := Truncate(tt.in, tt.out, tt.maxLen)
		assert.Equal(t, [3]any{tt.prompt, tt.final, tt.cut}, [3]any{p, f, cut}, "Truncate(%d, %d, %d)", tt.in, tt.out, tt.maxLen)
	}
}

func TestReservation(t *testing.T) {
	tests := []struct {
		m                  MemoryModel
		final, maxLen, res int
	}{
		{ModelMax, 3, 2048, 2048},
		{ModelPow2, 1, 2048, 1},
		{ModelPow2, 1024, 2048, 1024},
		{ModelPow2, 1025, 2048, 2048},
		{ModelPow2, 1100, 1500, 1500},
		{ModelPow2, math.MaxInt, math.MaxInt, math.MaxInt},             // 2^63 overflowed to a negative reservation
		{ModelPow2, math.MaxInt/2 + 1, math.MaxInt, math.MaxInt/2 + 1}, // 2^62 (2^30 where int is 32 bits)
		{ModelPow2, math.MaxInt/2 + 2, math.MaxInt, math.MaxInt},
		{ModelPow2, 0, 2048, 0},
		{ModelOracle, 1100, 2048, 1100},
		{ModelPaged, 1100, 2048, 0},
	}
	for _, tt := range tests {
		assert.Equal(t, tt.res, Reservation(tt.m, tt.final, tt.maxLen), "%v final %d", tt.m, tt.final)
	}
}

// Three requests in a budget of two maximum-length reservations; worked
// out by hand.
func TestFragMaxByHand(t *testing.T) {
	reqs := trace([2]int{2, 2}, [2]int{3, 1}, [2]int{5, 3})
	res, steps := recordSteps(t, reqs, ModelMax, 0, FragConfig{MaxLen: 8, KVTokens: 16})
	require.Equal(t, []slots{
		{2, 5, 3, 8, 0, 0}, // r0 and r1 reserve 8 each; r2 waits, nothing free
		{2, 7, 1, 8, 0, 0}, // r1 ends at 4 tokens
		{2, 9, 3, 4, 0, 0}, // r2 takes r1's range; r0 ends
		{1, 6, 2, 0, 0, 8}, // nobody waits: the rest is free
		{1, 7, 1, 0, 0, 8},
		{1, 8, 0, 0, 0, 8},
	}, rows(steps))
	assert.Equal(t, 6, res.Steps)
	assert.InDelta(t, 42.0/96, res.TokenStates, 1e-12)
	assert.InDelta(t, 10.0/96, res.Reserved, 1e-12)
	assert.InDelta(t, 20.0/96, res.Internal, 1e-12)
	assert.InDelta(t, 0, res.External, 1e-12)
	assert.InDelta(t, 24.0/96, res.Free, 1e-12)
	assert.InDelta(t, 1.5, res.AvgRunning, 1e-12)
	assert.InDelta(t, 1, res.TokensPerStep, 1e-12)
	assert.Zero(t, res.Preemptions)
}

// Oracle allocates exact lengths, but the buddy allocator needs an aligned
// power-of-two hole: 8 slots are free in pieces of 1, 4 and 3 and cannot
// take a request of 6.
func TestFragOracleByHand(t *testing.T) {
	reqs := trace([2]int{2, 1}, [2]int{4, 1}, [2]int{5, 1})
	_, steps := recordSteps(t, reqs, ModelOracle, 0, FragConfig{MaxLen: 8, KVTokens: 16})
	require.Equal(t, []slots{
		{2, 6, 2, 0, 8, 0}, // r0 at [0,3), r1 at [8,13): free 8 >= 6, no hole
		{2, 8, 0, 0, 8, 0},
		{1, 5, 1, 0, 0, 10}, // r2 placed at 0 once everything merged back
		{1, 6, 0, 0, 0, 10},
	}, rows(steps))
}

// Pow2 rounds 3 to 4 and 5 to 8: the 4 free slots are too few for the
// next request's 8, which is a shortage, not fragmentation.
func TestFragPow2ByHand(t *testing.T) {
	reqs := trace([2]int{2, 1}, [2]int{4, 1}, [2]int{5, 1})
	_, steps := recordSteps(t, reqs, ModelPow2, 0, FragConfig{MaxLen: 8, KVTokens: 16})
	require.Equal(t, []slots{
		{2, 6, 2, 4, 0, 4},
		{2, 8, 0, 4, 0, 4},
		{1, 5, 1, 2, 0, 8},
		{1, 6, 0, 2, 0, 8},
	}, rows(steps))
}

// Paged, two-token blocks, four blocks: requests grow into preemption.
func TestFragPagedByHand(t *testing.T) {
	reqs := trace([2]int{3, 3}, [2]int{2, 2}, [2]int{1, 1})
	res, steps := recordSteps(t, reqs, ModelPaged, 2, FragConfig{MaxLen: 8, KVTokens: 8})
	require.Equal(t, []slots{
		{3, 6, 2, 0, 0, 0}, // all admitted: 2+1+1 blocks
		{2, 7, 1, 0, 0, 0}, // r1 needs a block: r2 (latest) is preempted
		{1, 5, 1, 0, 0, 2}, // r0 needs a block: r1 is preempted, needs 2, 1 free
		{1, 6, 0, 0, 0, 2}, // r0 ends
		{2, 4, 2, 0, 0, 2}, // r1 and r2 readmitted, r1 before r2
		{2, 6, 0, 0, 0, 2},
	}, rows(steps))
	assert.Equal(t, 2, res.Preemptions)
	assert.Equal(t, 2, res.BlockSize)
}

// The last block of a request that ends inside it is internal waste.
func TestFragPagedInternal(t *testing.T) {
	reqs := trace([2]int{3, 1})
	_, steps := recordSteps(t, reqs, ModelPaged, 8, FragConfig{MaxLen: 8, KVTokens: 16})
	require.Equal(t, []slots{{1, 3, 1, 4, 0, 8}, {1, 4, 0, 4, 0, 8}}, rows(steps))
}

// Every step's classification adds up to the budget for every model, on a
// slice of the real trace, with and without arrivals, with a budget that
// is not a multiple of the block size (the remainder is external).
func TestFragSlotsAddUp(t *testing.T) {
	reqs := AzureConv()[:400]
	for _, arrivals := range []bool{false, true} {
		runs := []FragRun{{Model: ModelPaged, BlockSize: 1}, {Model: ModelPaged, BlockSize: 16}, {Model: ModelPaged, BlockSize: 256}}
		for _, m := range []MemoryModel{ModelMax, ModelPow2, ModelOracle} {
			for _, a := range []Allocator{AllocBuddy, AllocFirstFit, AllocCompact} {
				runs = append(runs, FragRun{Model: m, Allocator: a})
			}
		}
		for _, run := range runs {
			cfg := FragConfig{KVTokens: 15000, Arrivals: arrivals, StepTime: 5 * time.Millisecond, Allocator: run.Allocator}
			rem := 0
			if run.Model == ModelPaged {
				rem = 15000 % run.BlockSize
			}
			n := 0
			cfg.OnStep = func(s FragSlots) {
				n++
				if s.Tokens+s.Reserved+s.Internal+s.External+s.Free != 15000 || min(s.Tokens, s.Reserved, s.Internal, s.Free) < 0 || s.External < rem {
					t.Fatalf("%s step %d: %+v", run.Name(), s.Step, s)
				}
			}
			res, err := Frag(reqs, run.Model, run.BlockSize, cfg)
			require.NoError(t, err)
			require.Equal(t, res.Steps, n)
			sum := res.TokenStates + res.Reserved + res.Internal + res.External + res.Free
			require.InDelta(t, 1, sum, 1e-9, run.Name())
			require.Positive(t, res.AvgRunning)
			if run.Model != ModelPaged {
				require.Zero(t, res.Preemptions, "contiguous reservations cover the final length")
			}
		}
	}
}

func TestFragArrivalsSkipIdle(t *testing.T) {
	reqs := []Request{
		{Arrival: 0, InputTokens: 4, OutputTokens: 2},
		{Arrival: time.Hour, InputTokens: 4, OutputTokens: 2},
	}
	// Both engines, the contiguous one and the paged one through the
	// scheduler, skip the idle hour the same way.
	for _, run := range []FragRun{{Model: ModelOracle}, {Model: ModelPaged, BlockSize: 4}} {
		res, steps := recordSteps(t, reqs, run.Model, run.BlockSize, FragConfig{MaxLen: 8, KVTokens: 16, Arrivals: true})
		require.Equal(t, 6, res.Steps, "%s: idle hour skipped", run.Name())
		require.Equal(t, int(time.Hour/DefaultFragStepTime), steps[3].Step, run.Name())
	}
}

func TestFragInvalid(t *testing.T) {
	reqs := trace([2]int{3, 3})
	for _, c := range []struct {
		m   MemoryModel
		bs  int
		cfg FragConfig
	}{
		{ModelMax, 0, FragConfig{MaxLen: 100, KVTokens: 50}},
		{ModelMax, 0, FragConfig{MaxLen: -1}},
		{ModelPaged, 0, FragConfig{}},
		{ModelPaged, 20000, FragConfig{}},
		{MemoryModel(9), 0, FragConfig{}},
	} {
		_, err := Frag(reqs, c.m, c.bs, c.cfg)
		require.ErrorIs(t, err, ErrFragInvalid, "%+v", c)
	}
	_, err := Frag([]Request{{InputTokens: 3, OutputTokens: -1}}, ModelMax, 0, FragConfig{})
	require.ErrorIs(t, err, ErrFragInvalid)
	// A 13-slot reservation needs an aligned 16-slot block: never in 13.
	_, err = Frag(reqs, ModelMax, 0, FragConfig{MaxLen: 13, KVTokens: 13})
	require.ErrorIs(t, err, ErrNeverFits)
	// 8 blocks of 256 hold 2,048 tokens: a 2,049-token request never ends.
	_, err = Frag(trace([2]int{2000, 49}), ModelPaged, 256, FragConfig{MaxLen: 2049, KVTokens: 2049})
	require.ErrorIs(t, err, ErrNeverFits)
	_, err = ParseMemoryModel("lru")
	require.ErrorIs(t, err, ErrFragInvalid)
	m, err := ParseMemoryModel("Pow2")
	require.NoError(t, err)
	require.Equal(t, "pow2", m.String())
}

// TestFragAcceptance checks the acceptance criteria on the full
// default setting (the whole embedded Azure trace): it runs in well under
// a second per model.
func TestFragAcceptance(t *testing.T) {
	if testing.Short() {
		t.Skip("full trace")
	}
	runs := []FragRun{{Model: ModelMax}, {Model: ModelPow2}, {Model: ModelOracle}, {Model: ModelPaged, BlockSize: 16},
		{Model: ModelOracle, Allocator: AllocFirstFit}, {Model: ModelOracle, Allocator: AllocCompact}, {Model: ModelPow2, Allocator: AllocCompact}}
	res, err := FragStudy(AzureConv(), runs, FragConfig{}, nil)
	require.NoError(t, err)
	maxR, pow2, oracle, paged := res[0], res[1], res[2], res[3]
	// The paper's claim against the strongest contiguous reservation:
	// exact sizes with ideal compaction still lose to paged memory.
	for _, r := range res[4:] {
		assert.Less(t, r.TokenStates, paged.TokenStates, r.Name())
		if r.Model == ModelOracle {
			assert.Greater(t, r.TokenStates, oracle.TokenStates, "%s vs oracle/buddy", r.Name())
		}
	}
	assert.GreaterOrEqual(t, paged.TokenStates, 0.94, "paged/16 token states")
	assert.Less(t, maxR.TokenStates, pow2.TokenStates)
	assert.Less(t, pow2.TokenStates, oracle.TokenStates)
	assert.Less(t, oracle.TokenStates, paged.TokenStates)
	assert.GreaterOrEqual(t, paged.AvgRunning, 1.6*maxR.AvgRunning, "paged batch vs Max")
	assert.Zero(t, oracle.Internal, "oracle never over-reserves")
	for _, r := range res {
		assert.Equal(t, len(AzureConv()), r.Requests)
	}
}

func BenchmarkFragPaged(b *testing.B) {
	reqs := AzureConv()[:2000]
	var res FragResult
	b.ReportAllocs()
	for b.Loop() {
		var err error
		res, err = Frag(reqs, ModelPaged, 16, FragConfig{})
		if err != nil {
			b.Fatal(err)
		}
	}
	b.ReportMetric(100*res.TokenStates, "token-states-%")
	b.ReportMetric(res.AvgRunning, "running")
	b.ReportMetric(float64(res.Steps), "steps")
}

func BenchmarkFragContiguous(b *testing.B) {
	reqs := AzureConv()[:2000]
	for _, m := range []MemoryModel{ModelMax, ModelPow2, ModelOracle} {
		for _, alloc := range []Allocator{AllocBuddy, AllocFirstFit, AllocCompact} {
			run := FragRun{Model: m, Allocator: alloc}
			b.Run(run.Name(), func(b *testing.B) {
				var res FragResult
				b.ReportAllocs()
				for b.Loop() {
					var err error
					res, err = Frag(reqs, m, 0, FragConfig{Allocator: alloc})
					if err != nil {
						b.Fatal(err)
					}
				}
				b.ReportMetric(100*res.TokenStates, "token-states-%")
				b.ReportMetric(res.AvgRunning, "running")
			})
		}
	}
}

// The engine's step allocates nothing: a run allocates the same whether its
// requests last 10 or 1,000 steps.
func TestFragStepAllocatesNothing(t *testing.T) {
	if raceEnabled {
		t.Skip("allocation counts differ under the race detector")
	}
	short := trace([2]int{100, 10}, [2]int{300, 10}, [2]int{50, 10}, [2]int{700, 10})
	long := trace([2]int{100, 1000}, [2]int{300, 1000}, [2]int{50, 1000}, [2]int{700, 1000})
	for _, alloc := range []Allocator{AllocBuddy, AllocFirstFit, AllocCompact} {
		cfg := FragConfig{KVTokens: 4096, Allocator: alloc}
		for _, m := range []MemoryModel{ModelMax, ModelOracle} {
			a := testing.AllocsPerRun(5, func() { _, _ = Frag(short, m, 0, cfg) })
			b := testing.AllocsPerRun(5, func() { _, _ = Frag(long, m, 0, cfg) })
			assert.Equal(t, a, b, "%v on %v: allocations grow with steps", m, alloc)
		}
	}
	// Paged, through the scheduler: 10 or 200 steps of decoding, with no
	// preemption (whose one-time growth of a buffer would differ).
	medium := trace([2]int{100, 200}, [2]int{300, 200}, [2]int{50, 200}, [2]int{700, 200})
	cfg := FragConfig{KVTokens: 4096}
	a := testing.AllocsPerRun(5, func() { _, _ = Frag(short, ModelPaged, 16, cfg) })
	b := testing.AllocsPerRun(5, func() { _, _ = Frag(medium, ModelPaged, 16, cfg) })
	assert.Equal(t, a, b, "paged: allocations grow with steps")
	r, err := Frag(medium, ModelPaged, 16, cfg)
	require.NoError(t, err)
	assert.Zero(t, r.Preemptions)
	assert.Equal(t, 201, r.Steps)
}

// Progress counts every request of a run once, preempted ones included.
func TestFragProgressCountsEveryRequest(t *testing.T) {
	reqs := AzureConv()[:500]
	for _, run := range []FragRun{{Model: ModelPaged, BlockSize: 16}, {Model: ModelOracle, Allocator: AllocFirstFit}} {
		n := 0
		cfg := FragConfig{Allocator: run.Allocator, KVTokens: 4096, Progress: func(k int) { n += k }}
		res, err := Frag(reqs, run.Model, run.BlockSize, cfg)
		require.NoError(t, err)
		require.Equal(t, len(reqs), n, run.Name())
		if run.Model == ModelPaged {
			require.Positive(t, res.Preemptions)
		}
	}
	n := 0
	_, err := Sharing(reqs[:50], SharingBeam, 2, 16, FragConfig{Progress: func(k int) { n += k }})
	require.NoError(t, err)
	require.Equal(t, 50, n)
}
