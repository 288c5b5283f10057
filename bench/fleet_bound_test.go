package bench

import (
	"testing"
	"time"

	"github.com/stretchr/testify/require"
	"pgregory.net/rapid"
)

// fleetTreeTrace draws a small Mooncake-style trace whose hash IDs name
// paths in a tree (as Mooncake's name prefixes), with a partly filled last
// block, gap seconds between arrivals.
func fleetTreeTrace(t *rapid.T, gap float64) []Request {
	n := rapid.IntRange(1, 12).Draw(t, "requests")
	reqs := make([]Request, n)
	for i := range reqs {
		l := rapid.IntRange(1, 4).Draw(t, "blocks")
		id := int64(0)
		ids := make([]int64, l)
		for k := range ids {
			id = id*3 + int64(rapid.IntRange(1, 3).Draw(t, "child"))
			ids[k] = id
		}
		reqs[i] = Request{
			Arrival:      time.Duration(float64(i) * gap * float64(time.Second)),
			InputTokens:  l*MooncakeBlockSize - rapid.IntRange(0, MooncakeBlockSize-1).Draw(t, "short"),
			OutputTokens: rapid.IntRange(1, 3).Draw(t, "out"),
			HashIDs:      ids,
		}
	}
	return reqs
}

// TestFleetHitBoundHolds checks FleetHitBound against replays: no router
// on any fleet beats it, and one server with room for everything, serving
// requests one after the other, reaches it exactly but for the prompt's
// last token, which the manager always recomputes.
func TestFleetHitBoundHolds(t *testing.T) {
	rapid.Check(t, func(t *rapid.T) {
		reqs := fleetTreeTrace(t, rapid.SampledFrom([]float64{0, 0.01, 1000}).Draw(t, "gap"))
		seen := map[int64]bool{}
		var bound, exact int64
		for _, q := range reqs {
			n := min(len(q.HashIDs), q.InputTokens/MooncakeBlockSize)
			k := 0
			for k < n && seen[q.HashIDs[k]] {
				k++
			}
			for _, id := range q.HashIDs[:n] {
				seen[id] = true
			}
			bound += int64(k * MooncakeBlockSize)
			exact += int64(min(k, (q.InputTokens-1)/MooncakeBlockSize) * MooncakeBlockSize)
		}
		servers := rapid.IntRange(1, 3).Draw(t, "servers")
		blocks := rapid.IntRange(6, 40).Draw(t, "blocks")
		router := rapid.SampledFrom(FleetRouters(1, 8)).Draw(t, "router")
		res, err := RunFleet(reqs, FleetConfig{Servers: servers, Blocks: blocks, Check: true}, router)
		require.NoError(t, err)
		require.Zero(t, res.Rejected)
		require.LessOrEqual(t, res.HitTokens, bound)
		require.InDelta(t, float64(bound)/float64(res.InputTokens), FleetHitBound(reqs, MooncakeBlockSize), 1e-12)

		one, err := RunFleet(reqs, FleetConfig{Servers: 1, Blocks: 64}, FleetRouters(1, 8)[1])
		require.NoError(t, err)
		if reqs[len(reqs)-1].Arrival >= time.Duration(len(reqs)-1)*1000*time.Second && len(reqs) > 1 {
			require.Equal(t, exact, one.HitTokens, "one server, one request at a time")
		}
		require.LessOrEqual(t, one.HitTokens, bound)
	})
}
