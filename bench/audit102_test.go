package bench

import (
	"math/rand/v2"
	"slices"
	"testing"

	"github.com/stretchr/testify/assert"
	"github.com/stretchr/testify/require"

	"github.com/pagedkv/pagedkv/paged"
	"github.com/pagedkv/pagedkv/sched"
)

// The fifty-sixth round of mutation testing (docs/testing.md): the
// studies' figures (bench/figure) and the fragmentation study's
// prefix-sharing model.

// The parallel-sampling bound is exact at one block over the pool too: a
// 16-token prompt and one output token per sample, two samples, need the
// shared prompt block and one block each, 3 blocks, and a 32-token budget
// holds 2. The study refuses the group before running, saying what it
// needs; it does not run it until the scheduler gives up on it.
func TestAudit102SharingRefusesOneBlockOver(t *testing.T) {
	res, err := Sharing(trace([2]int{16, 1}), SharingParallel, 2, 16, FragConfig{MaxLen: 32, KVTokens: 32})
	require.ErrorIs(t, err, ErrNeverFits)
	assert.Contains(t, err.Error(), "needs 3 blocks of 16 tokens when its samples end, more than the 2 of a 32-token budget")
	assert.Zero(t, res.Steps, "refused before running")
}

// A prompt preempted in the step that admitted it counts as a preemption.
// Two blocks of 2 tokens, width 1; A has 1 prompt and 2 output tokens, B
// 2 and 1:
//
//	step 0: A and B admitted, one block each, the pool full
//	step 1: A writes position 1 in its block; B needs a block for
//	        position 2: B, running, is preempted (restarted)
//	step 2: B admitted again into the free block; A needs a block for
//	        position 2: B is preempted in the step that admitted it; A ends
//	step 3: B admitted; step 4: B decodes and ends
//
// Two preemptions in five steps, for either method (width 1 is the same
// run).
func TestAudit102SharingPreemptedOnAdmission(t *testing.T) {
	for _, mode := range []SharingMode{SharingParallel, SharingBeam} {
		res, err := Sharing(trace([2]int{1, 2}, [2]int{2, 1}), mode, 1, 2, FragConfig{MaxLen: 4, KVTokens: 4})
		require.NoError(t, err)
		assert.Equal(t, 5, res.Steps, "%v", mode)
		assert.Equal(t, 2, res.Preemptions, "%v", mode)
	}
}

// drawParents draws for the groups that decoded before those admitted in
// the step: with group A decoding two beams and group B's prompt admitted,
// A's parents come from the first two draws of the generator, and B's
// beams are each their own parent after two more draws.
func TestAudit102BeamDrawsDecodedGroupsFirst(t *testing.T) {
	m, err := paged.New(paged.Config{BlockSize: 16, NumBlocks: 16, DisablePrefixCaching: true, MaxModelLen: 64})
	require.NoError(t, err)
	s, err := sched.New(m, sched.Config{})
	require.NoError(t, err)
	a, err := s.Submit(make([]int32, 4), sched.Options{MaxTokens: 10, BeamWidth: 2})
	require.NoError(t, err)
	b, err := s.Submit(make([]int32, 4), sched.Options{MaxTokens: 10, BeamWidth: 2})
	require.NoError(t, err)
	st := &sched.Step{Outputs: 4, Scheduled: []sched.Scheduled{
		{Request: a, Sample: 0, Outputs: 1, Generated: 3},
		{Request: a, Sample: 1, Outputs: 1, Generated: 3},
		{Request: b, Sample: 0, Prefill: true, Outputs: 2},
	}}
	// parentsOf turns two draws into the beams' parents, parent by parent.
	parentsOf := func(r *rand.Rand) []int {
		kids := [2]int{}
		kids[r.IntN(2)]++
		kids[r.IntN(2)]++
		var out []int
		for j, c := range kids {
			for range c {
				out = append(out, j)
			}
		}
		return out
	}
	const seed = 4
	twin := rand.New(rand.NewPCG(seed, 2))
	first, second := parentsOf(twin), parentsOf(twin)
	require.NotEqual(t, first, second, "a seed whose first and second draws differ")
	require.NotEqual(t, []int{0, 1}, first, "a seed that re-parents")

	rng := rand.New(rand.NewPCG(seed, 2))
	got := drawParents(nil, st, rng, make([]int, 2))
	assert.Equal(t, slices.Concat(first, []int{0, 1}), got)
	assert.Equal(t, twin.Uint64(), rng.Uint64(), "four draws in all")
}
