package bench

import (
	"testing"

	"github.com/stretchr/testify/assert"
	"github.com/stretchr/testify/require"
)

// The hundred-and-nineteenth round of mutation testing (docs/testing.md):
// the fragmentation study's paged model and its sharing study.

// The sharing study's refusals name the request by its index in the
// trace, not the first one's: a parallel-sampling group refused before
// the run and a beam search that cannot grow alone, each second in its
// trace behind a request that fits.
func TestAudit167SharingNamesTheRequest(t *testing.T) {
	_, err := Sharing(trace([2]int{1, 1}, [2]int{1035, 520}), SharingParallel, 6, 16, FragConfig{KVTokens: 4096})
	require.ErrorIs(t, err, ErrNeverFits)
	assert.Contains(t, err.Error(), "parallel sampling of width 6: request 1 (1035 prompt + 520 output tokens) needs 268 blocks")
	_, err = Sharing(trace([2]int{1, 1}, [2]int{16, 40}), SharingBeam, 2, 16, FragConfig{MaxLen: 48, KVTokens: 48})
	require.ErrorIs(t, err, ErrNeverFits)
	assert.Contains(t, err.Error(), "beam search of width 2: request 1 (16 prompt + 32 output tokens) cannot reach its end even alone")
}

// A block one token larger than the budget is refused as invalid by both
// methods, as by the fragmentation study (TestAudit86ConfigBounds): the
// pool would hold no block at all, which the parallel-sampling bound
// would report as a request that never fits and the manager as a
// configuration error of its own.
func TestAudit167SharingBlockAboveTheBudget(t *testing.T) {
	for _, mode := range []SharingMode{SharingParallel, SharingBeam} {
		_, err := Sharing(trace([2]int{3, 3}), mode, 2, 17, FragConfig{MaxLen: 8, KVTokens: 16})
		require.ErrorIs(t, err, ErrFragInvalid, "%v", mode)
		_, err = Sharing(trace([2]int{3, 3}), mode, 1, 16, FragConfig{MaxLen: 8, KVTokens: 16})
		require.NoError(t, err, "%v: one sequence in a block of the whole budget", mode)
	}
}

// The feed submits as many prompts as one step could admit, counting the
// free blocks' token slots: eight 4-token prompts of one output token in
// 16 blocks of 4 are all admitted at step 0 and all end at step 1. A feed
// that counted free blocks as slots would stop after five prompts (20
// queued tokens > 16) and need a third step.
func TestAudit167SharingFeedFillsAStep(t *testing.T) {
	reqs := trace([2]int{4, 1}, [2]int{4, 1}, [2]int{4, 1}, [2]int{4, 1}, [2]int{4, 1}, [2]int{4, 1}, [2]int{4, 1}, [2]int{4, 1})
	for _, mode := range []SharingMode{SharingParallel, SharingBeam} {
		res, err := Sharing(reqs, mode, 1, 4, FragConfig{MaxLen: 8, KVTokens: 64})
		require.NoError(t, err)
		assert.Equal(t, 2, res.Steps, "%v", mode)
		assert.InDelta(t, 8, res.AvgRunning, 1e-12, "%v", mode)
	}
}

// docs/frag.md's beam row of width 2 (the first 1,000 Azure requests,
// 16-token blocks, the default budget): the beams' draws are seeded by
// DefaultSharingSeed and the width, so the published figures repeat.
func TestAudit167SharingBeamRowOfTheDocs(t *testing.T) {
	if testing.Short() {
		t.Skip("1,000 requests")
	}
	res, err := Sharing(AzureConv()[:1000], SharingBeam, 2, 16, FragConfig{})
	require.NoError(t, err)
	assert.InDelta(t, 0.492292, res.Saved, 5e-7)
	assert.InDelta(t, 13.21, res.AvgRunning, 5e-3)
	assert.InDelta(t, 26.42, res.AvgSequences, 5e-3)
	assert.Equal(t, [3]int{18781, 116167, 2763}, [3]int{res.Steps, int(res.Copies), res.Preemptions})
}

// The paged model admits before it decodes, as the contiguous models'
// engine does: a newcomer takes the last free block and is preempted by
// the growth of a request admitted earlier in the same step. Two blocks of
// 2 tokens; A has 2 prompt and 2 output tokens, B, arriving at step 1, 2
// and 1:
//
//	step 0: A admitted, one block
//	step 1: B admitted into the other; A needs a block for position 2:
//	        B is preempted in the step that admitted it
//	step 2: A writes position 3 and ends
//	step 3: B admitted again; step 4: B opens a block and ends
//
// Decoding first, A would take the free block at step 1 and B wait
// without a preemption.
func TestAudit167PagedAdmitsBeforeItDecodes(t *testing.T) {
	reqs := []Request{
		{InputTokens: 2, OutputTokens: 2},
		{Arrival: DefaultFragStepTime, InputTokens: 2, OutputTokens: 1},
	}
	res, steps := recordSteps(t, reqs, ModelPaged, 2, FragConfig{MaxLen: 4, KVTokens: 4, Arrivals: true})
	assert.Equal(t, []slots{
		{1, 2, 0, 0, 0, 2},
		{1, 3, 1, 0, 0, 0}, // B admitted and preempted: nothing free
		{1, 4, 0, 0, 0, 0},
		{1, 2, 0, 0, 0, 2},
		{1, 3, 0, 1, 0, 0},
	}, rows(steps))
	assert.Equal(t, 1, res.Preemptions)
}
