package bench

import (
	"math"
	"testing"
	"time"

	"github.com/stretchr/testify/assert"
	"github.com/stretchr/testify/require"
)

// The fortieth round of mutation testing (docs/testing.md): the
// fragmentation study and its baseline allocators.

// A lone free slot is a free block of order 0: Largest must see it.
func TestAudit86BuddyLargestSeesOneSlot(t *testing.T) {
	b, err := NewBuddy(1)
	require.NoError(t, err)
	require.Equal(t, 1, b.Largest(), "an arena of one slot")
	b, err = NewBuddy(3) // blocks of 2 and 1
	require.NoError(t, err)
	require.Equal(t, 2, b.Largest())
	_, err = b.Alloc(2)
	require.NoError(t, err)
	require.Equal(t, 1, b.Largest(), "the slot left over")
	require.True(t, b.Fits(1))
}

// No allocator fits a size below 1, whatever it has free: the arenas all
// answer Fits for Alloc, which refuses such a size.
func TestAudit86SizesBelowOneNeverFit(t *testing.T) {
	b, err := NewBuddy(16)
	require.NoError(t, err)
	f, err := NewFirstFit(16)
	require.NoError(t, err)
	for _, a := range []arena{b, f, newCompacting(16)} {
		for _, n := range []int{0, -1, math.MinInt} {
			require.False(t, a.Fits(n), "%T: Fits(%d)", a, n)
			_, err := a.Alloc(n)
			require.Error(t, err, "%T: Alloc(%d)", a, n)
		}
		require.Equal(t, 16, a.Free())
	}
}

// Ideal compaction reuses a released handle before it makes a new one
// (its doc: steady-state use allocates nothing), and its Check counts a
// live reservation of one slot as live.
func TestAudit86CompactingHandles(t *testing.T) {
	c := newCompacting(10)
	one, err := c.Alloc(1)
	require.NoError(t, err)
	require.NoError(t, c.Check(), "one live slot")
	h, err := c.Alloc(4)
	require.NoError(t, err)
	for range 3 {
		require.NoError(t, c.Release(h))
		h2, err := c.Alloc(4)
		require.NoError(t, err)
		require.Equal(t, h, h2, "the released handle is reused")
		require.NoError(t, c.Check())
	}
	require.Len(t, c.lens, 2, "two handles ever made")
	require.NoError(t, c.Release(one))
	require.NoError(t, c.Check())
}

// a86MustBreak runs check on a state broken by hand and wants it found.
func a86MustBreak(t *testing.T, what string, check func() error) {
	t.Helper()
	require.Error(t, check(), "%s passed Check", what)
}

// The API builds no broken arena, so no test had seen these checks fire:
// each state below is broken by hand in one way.
func TestAudit86CheckFindsBrokenArenas(t *testing.T) {
	// Buddy: a free list's head whose back link points elsewhere.
	b, err := NewBuddy(16)
	require.NoError(t, err)
	require.NoError(t, b.Check())
	b.prev[0] = 8
	a86MustBreak(t, "a broken back link", b.Check)

	// Buddy: the arena of 4 split by hand into two free buddies of 2.
	b, err = NewBuddy(4)
	require.NoError(t, err)
	b.unlink(0, 2)
	b.link(0, 1)
	b.link(2, 1)
	a86MustBreak(t, "two unmerged free buddies", b.Check)

	// First fit: the one hole cut in two adjacent holes.
	f, err := NewFirstFit(10)
	require.NoError(t, err)
	require.NoError(t, f.Check())
	f.holes = []hole{{0, 4}, {4, 6}}
	a86MustBreak(t, "two adjacent holes", f.Check)

	// First fit: a free counter that disagrees with the holes.
	f, err = NewFirstFit(10)
	require.NoError(t, err)
	f.nfree--
	a86MustBreak(t, "a wrong free counter", f.Check)

	// Ideal compaction: a slot lost from the free count.
	c := newCompacting(10)
	c.nfree--
	a86MustBreak(t, "a lost slot", c.Check)
}

// Values past the named ones print as numbers, never index past the names.
func TestAudit86UnknownNames(t *testing.T) {
	assert.Equal(t, "Allocator(3)", Allocator(3).String())
	assert.Equal(t, "MemoryModel(4)", MemoryModel(4).String())
	assert.Equal(t, "compact", AllocCompact.String())
	assert.Equal(t, "oracle", ModelOracle.String())
}

// Pow2 reserves nothing for a length below 1, as its doc's bound implies
// (min(max(final, 0), maxLen)): never a negative reservation.
func TestAudit86ReservationOfNoLength(t *testing.T) {
	for _, final := range []int{0, -1, -1000, math.MinInt} {
		assert.Equal(t, 0, Reservation(ModelPow2, final, 2048), "final %d", final)
	}
}

// A maximum length of 1 holds only the prompt's first token, output or
// not: the prompt never shrinks to nothing.
func TestAudit86TruncateToOneToken(t *testing.T) {
	for _, io := range [][2]int{{5, 3}, {1, 1}, {0, 7}, {math.MaxInt, math.MaxInt}} {
		p, f, cut := Truncate(io[0], io[1], 1)
		assert.Equal(t, [3]any{1, 1, true}, [3]any{p, f, cut}, "Truncate(%d, %d, 1)", io[0], io[1])
	}
}

// Configurations out of range are refused as invalid, not run or refused
// for another reason further down.
func TestAudit86ConfigBounds(t *testing.T) {
	reqs := trace([2]int{3, 3})
	_, err := Frag(reqs, ModelOracle, 0, FragConfig{MaxLen: 8, KVTokens: 16, Arrivals: true, StepTime: -time.Millisecond})
	require.ErrorIs(t, err, ErrFragInvalid, "a negative step time")
	// Ideal compaction allocates nothing by the budget: only the bound
	// refuses it.
	_, err = Frag(reqs, ModelOracle, 0, FragConfig{MaxLen: 8, KVTokens: 1<<30 + 1, Allocator: AllocCompact})
	require.ErrorIs(t, err, ErrFragInvalid, "a budget above 2^30")
	for _, arrivals := range []bool{false, true} {
		_, err = Frag([]Request{{InputTokens: 3, OutputTokens: 3, Arrival: -time.Second}}, ModelOracle, 0, FragConfig{MaxLen: 8, KVTokens: 16, Arrivals: arrivals})
		require.ErrorIs(t, err, ErrFragInvalid, "a negative arrival, arrivals %v", arrivals)
	}
	_, err = Frag(reqs, ModelPaged, 17, FragConfig{MaxLen: 8, KVTokens: 16})
	require.ErrorIs(t, err, ErrFragInvalid, "a block larger than the budget")
	_, err = Sharing([]Request{{InputTokens: 3, OutputTokens: -1}}, SharingParallel, 2, 4, FragConfig{MaxLen: 8, KVTokens: 16})
	require.ErrorIs(t, err, ErrFragInvalid, "a negative output")
}

// A paged result names no allocator (AllocBuddy, the zero value), whatever
// the configuration asked the contiguous models to use.
func TestAudit86PagedResultHasNoAllocator(t *testing.T) {
	res, err := Frag(trace([2]int{3, 1}), ModelPaged, 4, FragConfig{MaxLen: 8, KVTokens: 16, Allocator: AllocFirstFit})
	require.NoError(t, err)
	assert.Equal(t, AllocBuddy, res.Allocator)
	assert.Equal(t, "paged/4", res.Name())
}

// An empty trace runs no step, and its shares are zero, not 0/0.
func TestAudit86EmptyTrace(t *testing.T) {
	for _, run := range []FragRun{{Model: ModelOracle}, {Model: ModelMax, Allocator: AllocFirstFit}, {Model: ModelPaged, BlockSize: 4}} {
		res, err := Frag(nil, run.Model, run.BlockSize, FragConfig{MaxLen: 8, KVTokens: 16, Allocator: run.Allocator})
		require.NoError(t, err, run.Name())
		assert.Zero(t, res.Steps, run.Name())
		for _, v := range []float64{res.TokenStates, res.Reserved, res.Internal, res.External, res.Free, res.AvgRunning, res.TokensPerStep} {
			assert.Zero(t, v, run.Name())
		}
	}
}

// Progress is called at each step where requests finish, with how many,
// and at no other step (FragConfig's doc).
func TestAudit86ProgressOnlyWhenRequestsFinish(t *testing.T) {
	reqs := trace([2]int{2, 3}, [2]int{3, 1}, [2]int{1, 5})
	for _, run := range []FragRun{{Model: ModelOracle}, {Model: ModelMax, Allocator: AllocCompact}, {Model: ModelPaged, BlockSize: 2}} {
		var calls []int
		cfg := FragConfig{MaxLen: 8, KVTokens: 16, Allocator: run.Allocator, Progress: func(n int) { calls = append(calls, n) }}
		res, err := Frag(reqs, run.Model, run.BlockSize, cfg)
		require.NoError(t, err, run.Name())
		sum := 0
		for _, n := range calls {
			require.Positive(t, n, "%s: %v", run.Name(), calls)
			sum += n
		}
		require.Equal(t, len(reqs), sum, run.Name())
		require.Less(t, len(calls), res.Steps, "%s: steps where nothing finished", run.Name())
	}
}

// The paged model decodes the same tokens per step as a contiguous one on
// a trace that fits either way: one token a step after the prompt's.
func TestAudit86PagedTokensPerStep(t *testing.T) {
	reqs := trace([2]int{3, 4}, [2]int{2, 2})
	cfg := FragConfig{MaxLen: 8, KVTokens: 32}
	paged, err := Frag(reqs, ModelPaged, 4, cfg)
	require.NoError(t, err)
	cfg.Allocator = AllocCompact
	oracle, err := Frag(reqs, ModelOracle, 0, cfg)
	require.NoError(t, err)
	require.Equal(t, 5, paged.Steps)
	assert.InDelta(t, 6.0/5, paged.TokensPerStep, 1e-12, "4 + 2 tokens decoded in 5 steps")
	assert.InDelta(t, oracle.TokensPerStep, paged.TokensPerStep, 1e-12)
}
