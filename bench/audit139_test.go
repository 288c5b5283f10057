package bench

import (
	"fmt"
	"testing"
	"time"

	"github.com/stretchr/testify/assert"
	"github.com/stretchr/testify/require"
)

// The ninety-second round of mutation testing (docs/testing.md): the
// fragmentation study's loop and its buddy allocator.

// Buddy's Check on states broken by hand, one way each, that the other
// checks let through: the API builds none of them.
func TestAudit139BuddyCheckFindsBrokenStates(t *testing.T) {
	// A free block whose order disagrees with the list it is on.
	b, err := NewBuddy(16)
	require.NoError(t, err)
	b.order[0] = 3
	a86MustBreak(t, "a block on the wrong list", b.Check)

	// The arena of 4 tiled as slots 0 and 3 and a block of 2 at slot 1:
	// no overlap, no gap, no free buddies, but the block of 2 is
	// misaligned.
	b, err = NewBuddy(4)
	require.NoError(t, err)
	b.unlink(0, 2)
	b.link(0, 0)
	b.link(1, 1)
	b.link(3, 0)
	a86MustBreak(t, "a misaligned block", b.Check)

	// A free slot inside the free arena block, the counter raised to
	// agree with the lists.
	b, err = NewBuddy(4)
	require.NoError(t, err)
	b.link(1, 0)
	b.nfree++
	a86MustBreak(t, "overlapping free blocks", b.Check)

	// A free counter one short of the lists.
	b, err = NewBuddy(16)
	require.NoError(t, err)
	b.nfree--
	a86MustBreak(t, "a wrong free counter", b.Check)
}

// The budget's bound is inclusive: 2^30 tokens are taken (ideal
// compaction allocates nothing by the budget, so the run is cheap).
func TestAudit139BudgetAtTheBound(t *testing.T) {
	res, err := Frag(trace([2]int{3, 3}), ModelOracle, 0, FragConfig{MaxLen: 8, KVTokens: 1 << 30, Allocator: AllocCompact})
	require.NoError(t, err)
	assert.Equal(t, 4, res.Steps, "admitted at step 0, three tokens decoded")
}

// A contiguous model has no block size: its result reports 0 and is named
// by its allocator, whatever block size the caller passed.
func TestAudit139ContiguousResultHasNoBlockSize(t *testing.T) {
	for _, m := range []MemoryModel{ModelMax, ModelPow2, ModelOracle} {
		res, err := Frag(trace([2]int{3, 1}), m, 16, FragConfig{MaxLen: 8, KVTokens: 16, Allocator: AllocFirstFit})
		require.NoError(t, err)
		assert.Zero(t, res.BlockSize, "%v", m)
		assert.Equal(t, m.String()+"/first-fit", res.Name())
	}
}

// With arrivals, a request arrives at the step its timestamp falls in,
// rounded down: 30 ms with 20 ms steps is step 1, where the idle engine
// starts.
func TestAudit139ArrivalStepRoundsDown(t *testing.T) {
	reqs := []Request{{InputTokens: 3, OutputTokens: 1, Arrival: 30 * time.Millisecond}}
	_, steps := recordSteps(t, reqs, ModelOracle, 0, FragConfig{MaxLen: 8, KVTokens: 16, Arrivals: true, StepTime: 20 * time.Millisecond})
	require.NotEmpty(t, steps)
	assert.Equal(t, 1, steps[0].Step)
}

// FragStudy's progress counts the runs done so far, 1 to the total.
func TestAudit139StudyProgressCounts(t *testing.T) {
	runs := []FragRun{{Model: ModelOracle}, {Model: ModelMax}, {Model: ModelPaged, BlockSize: 4}}
	var got []int
	_, err := FragStudy(trace([2]int{3, 2}, [2]int{2, 2}), runs, FragConfig{MaxLen: 8, KVTokens: 16}, func(done, total int, _ FragResult) {
		require.Equal(t, len(runs), total)
		got = append(got, done)
	})
	require.NoError(t, err)
	assert.Equal(t, []int{1, 2, 3}, got)
}

// a139Tokens is a memory for simulate that holds exactly a request's
// tokens, one slot each, and can run out when a request grows: the
// contiguous models reserve ahead and never do, so this is the one way to
// drive simulate's preemption branch. It refuses what the loop must never
// ask: admitting a request that holds memory, growing or freeing one that
// holds none.
type a139Tokens struct {
	budget, nfree int
	holds         map[*flight]int
}

func (m *a139Tokens) need(r *flight) int  { return r.tokens }
func (m *a139Tokens) fits(r *flight) bool { return r.tokens <= m.nfree }
func (m *a139Tokens) admit(r *flight) (bool, error) {
	if _, ok := m.holds[r]; ok {
		return false, fmt.Errorf("request %d admitted twice", r.index)
	}
	if !m.fits(r) {
		return false, nil
	}
	m.holds[r] = r.tokens
	m.nfree -= r.tokens
	return true, nil
}
func (m *a139Tokens) grow(r *flight) (bool, error) {
	if _, ok := m.holds[r]; !ok {
		return false, fmt.Errorf("request %d grows holding nothing", r.index)
	}
	if m.nfree == 0 {
		return false, nil
	}
	m.holds[r]++
	m.nfree--
	return true, nil
}
func (m *a139Tokens) preempt(r *flight) error { return m.release(r) }
func (m *a139Tokens) release(r *flight) error {
	n, ok := m.holds[r]
	if !ok {
		return fmt.Errorf("request %d freed holding nothing", r.index)
	}
	delete(m.holds, r)
	m.nfree += n
	return nil
}
func (m *a139Tokens) held(r *flight) int { return m.holds[r] }
func (m *a139Tokens) free() int          { return m.nfree }
func (m *a139Tokens) unusable() int      { return 0 }
func (m *a139Tokens) check() error {
	if len(m.holds) != 0 || m.nfree != m.budget {
		return fmt.Errorf("%d requests hold memory, %d of %d slots free at the end", len(m.holds), m.nfree, m.budget)
	}
	return nil
}

// simulate's preemption branch, under a memory that runs out. In a budget
// of 4, A (1 prompt and 2 output tokens), B (2 and 1) and C (1 and 1) all
// fit at step 0; at step 1 A's token preempts C, and B, finding no slot,
// preempts itself while A goes on; at step 2 B, readmitted from the top of
// the stack, is preempted again by A's last token; at step 3 B and then C,
// the stack's last request, are readmitted; at step 4 C preempts itself
// for B's last token, and runs alone. Every step counts the requests that
// hold memory as running, a request preempted by itself stops growing,
// and the stack's one request is the one readmitted.
func TestAudit139PreemptionUnderTokenMemory(t *testing.T) {
	mem := &a139Tokens{budget: 4, nfree: 4, holds: map[*flight]int{}}
	var steps []FragSlots
	cfg, err := FragConfig{MaxLen: 4, KVTokens: 4, OnStep: func(s FragSlots) {
		steps = append(steps, s)
		assert.Equal(t, len(mem.holds), s.Running, "step %d", s.Step)
	}}.withDefaults()
	require.NoError(t, err)
	res, err := simulate(trace([2]int{1, 2}, [2]int{2, 1}, [2]int{1, 1}), mem, cfg)
	require.NoError(t, err)
	assert.Equal(t, 4, res.Preemptions)
	// running, tokens, reserved, internal, external, free
	assert.Equal(t, []slots{
		{3, 4, 0, 0, 0, 0},
		{1, 2, 0, 0, 0, 2},
		{1, 3, 0, 0, 0, 1},
		{2, 3, 0, 0, 0, 1},
		{1, 3, 0, 0, 0, 1},
		{1, 1, 0, 0, 0, 3},
		{1, 2, 0, 0, 0, 2},
	}, rows(steps))
}
