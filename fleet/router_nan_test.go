package fleet_test

import (
	"math"
	"testing"

	"github.com/stretchr/testify/assert"

	"github.com/pagedkv/pagedkv/fleet"
)

// TestRoutersTakeNaNLoadAsHighest: a server that reports a NaN load is
// the most loaded one to PrefixAware and LeastLoaded, wherever it stands
// in the candidates (a NaN compared as a number makes every comparison
// false, so the first candidate won whatever the others' loads).
func TestRoutersTakeNaNLoadAsHighest(t *testing.T) {
	nan := math.NaN()
	for _, tc := range []struct {
		name   string
		router fleet.Router
		cands  []fleet.Candidate
		want   int
	}{
		{"least loaded, NaN first", fleet.LeastLoaded{}, []fleet.Candidate{{Load: nan}, {Load: 3}, {Load: 1}}, 2},
		{"least loaded, NaN last", fleet.LeastLoaded{}, []fleet.Candidate{{Load: 3}, {Load: 1}, {Load: nan}}, 1},
		{"least loaded, all NaN", fleet.LeastLoaded{}, []fleet.Candidate{{Load: nan}, {Load: nan}}, 0},
		{"prefix tie, NaN first", fleet.PrefixAware{}, []fleet.Candidate{{Score: fleet.Score{Value: 4}, Load: nan}, {Score: fleet.Score{Value: 4}, Load: 7}}, 1},
		{"prefix, NaN over the cap", fleet.PrefixAware{LoadCap: 5}, []fleet.Candidate{{Score: fleet.Score{Value: 9}, Load: nan}, {Score: fleet.Score{Value: 1}, Load: 2}}, 1},
		{"prefix, NaN penalised", fleet.PrefixAware{LoadPenalty: 0.5}, []fleet.Candidate{{Score: fleet.Score{Value: 9}, Load: nan}, {Score: fleet.Score{Value: 1}, Load: 2}}, 1},
		{"prefix, no penalty: the score decides", fleet.PrefixAware{}, []fleet.Candidate{{Score: fleet.Score{Value: 1}, Load: 2}, {Score: fleet.Score{Value: 9}, Load: nan}}, 1},
	} {
		assert.Equal(t, tc.want, tc.router.Route(tc.cands), tc.name)
	}
}
