package bench

import (
	"strings"
	"testing"

	"github.com/stretchr/testify/assert"
	"github.com/stretchr/testify/require"
)

// Every memory model's flag name parses back to the model, in any case.
func TestAudit175EveryModelParses(t *testing.T) {
	for _, m := range []MemoryModel{ModelPaged, ModelMax, ModelPow2, ModelOracle} {
		for _, s := range []string{m.String(), strings.ToUpper(m.String())} {
			got, err := ParseMemoryModel(s)
			require.NoError(t, err, s)
			assert.Equal(t, m, got, s)
		}
	}
}

// PaperFig2 gives the paper's Figure 2 shares, class by class: Pow2 is the
// model whose waste is mostly external fragmentation (41.6%), Max the one
// whose waste is mostly internal (57.3%).
func TestAudit175PaperFigures(t *testing.T) {
	assert.Equal(t, PaperShares{TokenStates: 20.4, Reserved: 13.3, Internal: 57.3, External: 8.9}, PaperFig2(ModelMax))
	assert.Equal(t, PaperShares{TokenStates: 26.8, Reserved: 17.9, Internal: 13.6, External: 41.6}, PaperFig2(ModelPow2))
	assert.Equal(t, PaperShares{TokenStates: 38.2, Reserved: 25.2, Internal: 0, External: 36.6}, PaperFig2(ModelOracle))
	assert.Equal(t, PaperShares{TokenStates: 96.3, Partial: true}, PaperFig2(ModelPaged))
}

// FragStudy reports the error of every failing run, the first one
// included, and still returns the other runs' results.
func TestAudit175StudyReportsEveryRunsError(t *testing.T) {
	ok := FragRun{Model: ModelOracle}
	bad := FragRun{Model: ModelPaged} // block size 0
	reqs := trace([2]int{3, 2}, [2]int{2, 2})
	cfg := FragConfig{MaxLen: 8, KVTokens: 16}
	for _, runs := range [][]FragRun{{bad, ok, ok}, {ok, ok, bad}, {bad}} {
		res, err := FragStudy(reqs, runs, cfg, nil)
		require.ErrorIs(t, err, ErrFragInvalid, "%v", runs)
		for i, r := range runs {
			if r == ok {
				assert.Equal(t, 3, res[i].Steps, "%v: run %d", runs, i)
			}
		}
	}
}
