package fleet_test

import (
	"math"
	"testing"

	"github.com/stretchr/testify/assert"
	"github.com/stretchr/testify/require"
	"pgregory.net/rapid"

	"github.com/pagedkv/pagedkv/fleet"
	"github.com/pagedkv/pagedkv/fleet/fleettest"
	"github.com/pagedkv/pagedkv/paged"
)

// affinityRouters are the routers that read Score.Affinity, by name.
var affinityRouters = map[string]fleet.Router{
	"prefix-aware": fleet.PrefixAware{},
	"cost-aware":   fleet.CostAware{BlockSize: 16},
}

// cand is a candidate of a 160-token prompt (10 blocks of 16).
func cand(blocks, affinity int, load, work float64) fleet.Candidate {
	return fleet.Candidate{Score: fleet.Score{Blocks: blocks, Device: blocks, Value: float64(blocks), Affinity: affinity}, Load: load, Work: work, Prompt: 160}
}

// Where no server can hit a request, the one holding its family's
// group-0 blocks gets it, though busier: routed there, the request
// rebuilds the checkpoint or window its family's next request hits.
// Routed by the exact hit alone (IgnoreAffinity) it goes to the idle
// server, which holds nothing of the family.
func TestRoutersFollowAffinityWhereNoServerHits(t *testing.T) {
	cands := []fleet.Candidate{cand(0, 8, 1, 0), cand(0, 0, 0, 0)}
	for name, r := range affinityRouters {
		assert.Equal(t, 0, r.Route(cands), name)
	}
	assert.Equal(t, 1, fleet.PrefixAware{IgnoreAffinity: true}.Route(cands))
	assert.Equal(t, 1, fleet.CostAware{BlockSize: 16, IgnoreAffinity: true}.Route(cands))
}

// Affinity counts only beyond what the fleet can hit: a server holding 8
// blocks of the family it cannot hit is worth nothing more than one that
// hits 8 of them now, which wins; one holding 10 it cannot hit against a
// hit of 6 elsewhere gains 4 blocks, less than the hit of 6.
func TestRoutersWeighAffinityAgainstTheFleetsHits(t *testing.T) {
	for name, r := range affinityRouters {
		assert.Equal(t, 1, r.Route([]fleet.Candidate{cand(0, 8, 0, 0), cand(8, 8, 0, 0)}), name)
		assert.Equal(t, 1, r.Route([]fleet.Candidate{cand(0, 10, 0, 0), cand(6, 6, 0, 0)}), name)
		// The same server both hits and holds more: it is the best now,
		// and the others are no alternative for the next request.
		assert.Equal(t, 0, r.Route([]fleet.Candidate{cand(2, 9, 0, 0), cand(0, 1, 0, 0)}), name)
	}
}

// A fleet whose servers' Affinity equals their Blocks (one group, or no
// layout), or is left 0 (Scores made by hand, before Affinity), is
// routed exactly as by the exact hit alone, with every other field of
// the candidates random.
func TestRoutersWithoutAffinityGainRouteAsBefore(t *testing.T) {
	rapid.Check(t, func(t *rapid.T) {
		n := rapid.IntRange(1, 6).Draw(t, "servers")
		zero := rapid.Bool().Draw(t, "zero affinity")
		cands := make([]fleet.Candidate, n)
		for i := range cands {
			b := rapid.IntRange(0, 12).Draw(t, "blocks")
			d := rapid.IntRange(0, b).Draw(t, "device")
			c := fleet.Candidate{
				Score:  fleet.Score{Blocks: b, Device: d, Value: float64(d) + 0.5*float64(b-d), Pending: rapid.IntRange(0, d).Draw(t, "pending")},
				Load:   float64(rapid.IntRange(0, 5).Draw(t, "load")),
				Work:   float64(rapid.IntRange(0, 400).Draw(t, "work")),
				Routed: float64(rapid.IntRange(0, 3).Draw(t, "routed")),
				Prompt: rapid.SampledFrom([]int{0, 200}).Draw(t, "prompt"),
			}
			if !zero {
				c.Affinity = b
			}
			cands[i] = c
		}
		draws := rapid.SliceOfN(rapid.Float64Range(0, 0.999), 64, 64).Draw(t, "rand")
		rnd := func() func() float64 {
			k := 0
			return func() float64 { k++; return draws[k%len(draws)] }
		}
		capped := float64(rapid.IntRange(0, 4).Draw(t, "cap"))
		penalty := rapid.SampledFrom([]float64{0, 0.5}).Draw(t, "penalty")
		temp := rapid.SampledFrom([]float64{0, 0.3}).Draw(t, "temperature")
		pa := fleet.PrefixAware{LoadCap: capped, LoadPenalty: penalty}
		paExact := pa
		paExact.IgnoreAffinity = true
		if got, want := pa.Route(cands), paExact.Route(cands); got != want {
			t.Fatalf("prefix-aware routed to %d, by the exact hit alone to %d", got, want)
		}
		ca := fleet.CostAware{BlockSize: 16, Temperature: temp, Rand: rnd()}
		caExact := ca
		caExact.IgnoreAffinity, caExact.Rand = true, rnd()
		if got, want := ca.Route(cands), caExact.Route(cands); got != want {
			t.Fatalf("cost-aware routed to %d, by the exact hit alone to %d", got, want)
		}
	})
}

// Routing with the affinity gain allocates nothing, and hostile scores
// (negative runs, an Affinity at the int's limit) route to a candidate
// without overflowing or panicking.
func TestRoutersWithAffinityAllocateNothingAndTakeHostileScores(t *testing.T) {
	cands := []fleet.Candidate{cand(0, 8, 1, 0), cand(3, 5, 0, 0), cand(2, 2, 2, 10)}
	for name, r := range affinityRouters {
		allocs := testing.AllocsPerRun(100, func() { _ = r.Route(cands) })
		assert.Zero(t, allocs, name)
	}
	hostile := []fleet.Candidate{cand(-5, math.MaxInt, 0, 0), cand(math.MaxInt, -1, 0, 0), cand(0, math.MinInt, 0, 0)}
	for name, r := range affinityRouters {
		got := r.Route(hostile)
		assert.True(t, got >= 0 && got < len(hostile), "%s routed to %d", name, got)
		assert.Equal(t, -1, r.Route(nil), name)
	}
}

// Claim refuses a bad layout or server with ErrInvalid and records
// nothing; scores past the request's hashes claim nothing.
func TestPendingClaimBadInput(t *testing.T) {
	p, err := fleet.NewPending(fleet.PendingConfig{MaxServers: 2})
	require.NoError(t, err)
	hs := fleettest.Hs(1, 2, 3)
	state, err := fleet.ParseLayout("b16 full state")
	require.NoError(t, err)
	require.ErrorIs(t, p.Claim(0, hs, fleet.Score{Affinity: 2}, fleet.Layout{BlockSize: 16, Groups: []paged.Group{{Kind: paged.GroupKind(99)}}}), fleet.ErrInvalid)
	require.ErrorIs(t, p.Claim(2, hs, fleet.Score{}, state), fleet.ErrInvalid)
	require.ErrorIs(t, p.Claim(-1, hs, fleet.Score{}, fleet.Layout{}), fleet.ErrInvalid)
	assert.Zero(t, p.Len())
	require.NoError(t, p.Claim(0, hs, fleet.Score{Blocks: 9, Pending: 0, Affinity: 12}, state))
	require.NoError(t, p.Claim(0, hs, fleet.Score{Blocks: -4, Affinity: -1}, state))
	require.NoError(t, p.Claim(1, nil, fleet.Score{}, state))
	sc := []fleet.Score{{Server: 0}, {Server: 1}}
	p.Extend(hs, sc)
	assert.Zero(t, sc[0].Blocks, "a claim on a state server without a branch point is no hit")
	assert.Equal(t, 3, sc[0].Affinity, "its blocks are held")
	assert.Zero(t, sc[1].Blocks)
}
