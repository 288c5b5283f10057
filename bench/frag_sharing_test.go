package bench

import (
	"testing"

	"github.com/stretchr/testify/assert"
	"github.com/stretchr/testify/require"
)

// Two samples of a 4-token prompt, 2-token blocks, 2 outputs each:
//
//	step 0: prompt in 2 shared blocks            physical 2, logical 4
//	step 1: each sample opens a block of its own physical 4, logical 6
//	step 2: each writes into its own block       physical 4, logical 6
//
// saved = 1 - 10/16.
func TestSharingParallelByHand(t *testing.T) {
	res, err := Sharing(trace([2]int{4, 2}), SharingParallel, 2, 2, FragConfig{MaxLen: 16, KVTokens: 64})
	require.NoError(t, err)
	assert.Equal(t, 3, res.Steps)
	assert.InDelta(t, 1-10.0/16, res.Saved, 1e-12)
	assert.InDelta(t, 2, res.AvgSequences, 1e-12)
	assert.Zero(t, res.Copies, "no write into a shared block")
}

// A 3-token prompt leaves its last block half full: the first append of
// each sample into it copies it first.
func TestSharingCopyOnWrite(t *testing.T) {
	res, err := Sharing(trace([2]int{3, 1}), SharingParallel, 2, 2, FragConfig{MaxLen: 16, KVTokens: 64})
	require.NoError(t, err)
	// Step 0: physical 2, logical 4. Step 1: sample 1 copies the shared
	// last block, sample 2 then owns the original: physical 3, logical 4.
	assert.InDelta(t, 1-5.0/8, res.Saved, 1e-12)
	assert.Equal(t, uint64(1), res.Copies)
}

func TestSharingWidths(t *testing.T) {
	reqs := AzureConv()[:100]
	for _, mode := range []SharingMode{SharingParallel, SharingBeam} {
		prev := -1.0
		for _, w := range []int{1, 2, 4, 6} {
			res, err := Sharing(reqs, mode, w, 16, FragConfig{})
			require.NoError(t, err)
			if w == 1 {
				require.Zero(t, res.Saved, "one sequence shares nothing")
				require.Zero(t, res.Copies)
			}
			require.Greater(t, res.Saved, prev, "%v: more outputs per prompt share more", mode)
			require.Less(t, res.Saved, 1-1.0/float64(w)+1e-9, "%v n=%d: at least one copy of each token", mode, w)
			require.InDelta(t, float64(w), res.AvgSequences/res.AvgRunning, 1e-9)
			prev = res.Saved
		}
	}
	// Beams diverge only in their last few tokens, samples across the whole
	// output: beams share more.
	p, err := Sharing(reqs, SharingParallel, 4, 16, FragConfig{})
	require.NoError(t, err)
	b, err := Sharing(reqs, SharingBeam, 4, 16, FragConfig{})
	require.NoError(t, err)
	require.Greater(t, b.Saved, p.Saved)
	require.Positive(t, b.Copies)
}

func TestSharingInvalid(t *testing.T) {
	reqs := trace([2]int{3, 1})
	for _, c := range []struct {
		mode      SharingMode
		width, bs int
	}{{SharingBeam, 0, 16}, {SharingBeam, 65, 16}, {SharingMode(7), 2, 16}, {SharingParallel, 2, 0}} {
		_, err := Sharing(reqs, c.mode, c.width, c.bs, FragConfig{})
		require.ErrorIs(t, err, ErrFragInvalid, "%+v", c)
	}
	_, err := Sharing([]Request{{InputTokens: -3}}, SharingBeam, 2, 16, FragConfig{})
	require.ErrorIs(t, err, ErrFragInvalid)
	// A full 16-token prompt block and one new block per sample: 3 blocks.
	_, err = Sharing(trace([2]int{16, 1}), SharingParallel, 2, 16, FragConfig{MaxLen: 32, KVTokens: 48})
	require.NoError(t, err)
	_, err = Sharing(trace([2]int{16, 1}), SharingParallel, 2, 16, FragConfig{MaxLen: 32, KVTokens: 32})
	require.ErrorIs(t, err, ErrNeverFits, "the group alone cannot grow")
}

func BenchmarkSharing(b *testing.B) {
	reqs := AzureConv()[:500]
	for _, mode := range []SharingMode{SharingParallel, SharingBeam} {
		b.Run(mode.String(), func(b *testing.B) {
			var res SharingResult
			b.ReportAllocs()
			for b.Loop() {
				var err error
				res, err = Sharing(reqs, mode, 4, 16, FragConfig{})
				if err != nil {
					b.Fatal(err)
				}
			}
			b.ReportMetric(100*res.Saved, "saved-%")
		})
	}
}

// A parallel-sampling group is preempted and restarted whole, so it must
// fit the pool alone at its end: its prompt's full blocks, shared, and
// each sample's own. The study refuses a group that cannot, before
// running, and the bound is exact: a pool of exactly that many blocks
// runs it. (This is why `kvbench frag -kv-tokens 4096 -requests 3000`
// stops: Azure request 143, 1,035 prompt and 520 output tokens, needs 268
// blocks of 16 at width 6, and 4,096 slots hold 256.)
func TestSharingGroupMustFitAlone(t *testing.T) {
	reqs := trace([2]int{1035, 520})
	_, err := Sharing(reqs, SharingParallel, 6, 16, FragConfig{KVTokens: 4096})
	require.ErrorIs(t, err, ErrNeverFits)
	assert.Contains(t, err.Error(), "parallel sampling of width 6: request 0 (1035 prompt + 520 output tokens) needs 268 blocks of 16 tokens")
	assert.Contains(t, err.Error(), "more than the 256 of a 4096-token budget")
	res, err := Sharing(reqs, SharingParallel, 6, 16, FragConfig{KVTokens: 268 * 16})
	require.NoError(t, err)
	assert.Zero(t, res.Preemptions)
	_, err = Sharing(reqs, SharingParallel, 5, 16, FragConfig{KVTokens: 4096})
	require.NoError(t, err, "5 samples need 234 blocks")

	// Beams may merge, so no bound is known before the run: beams that
	// cannot grow even alone end the run with the same error. Two beams
	// of 16 + 32 tokens in 3 blocks of 16: from token 33 on, the shared
	// 2 blocks and a last block each.
	_, err = Sharing(trace([2]int{16, 40}), SharingBeam, 2, 16, FragConfig{MaxLen: 48, KVTokens: 48})
	require.ErrorIs(t, err, ErrNeverFits)
	assert.Contains(t, err.Error(), "beam search of width 2: request 0 (16 prompt + 32 output tokens) cannot reach its end even alone in the 3 blocks of 16 tokens")
}

// A beam search of width 1 is one sequence per prompt that always extends
// itself: the same run as parallel sampling with one sample.
func TestSharingWidthOne(t *testing.T) {
	reqs := AzureConv()[:200]
	cfg := FragConfig{KVTokens: 4096}
	p, err := Sharing(reqs, SharingParallel, 1, 16, cfg)
	require.NoError(t, err)
	b, err := Sharing(reqs, SharingBeam, 1, 16, cfg)
	require.NoError(t, err)
	require.Positive(t, p.Preemptions, "a budget small enough to preempt")
	p.Mode, p.Elapsed, b.Elapsed = SharingBeam, 0, 0
	assert.Equal(t, p, b)
}
