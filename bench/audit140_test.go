package bench

import (
	"math"
	"testing"
	"time"

	"github.com/stretchr/testify/assert"
	"github.com/stretchr/testify/require"

	"github.com/pagedkv/pagedkv/fleet"
	"github.com/pagedkv/pagedkv/paged"
)

// TestAudit140StepModelRefusesNaNPair: a NaN pair cost cannot time a
// step, as a NaN KVRead cannot.
func TestAudit140StepModelRefusesNaNPair(t *testing.T) {
	require.ErrorIs(t, StepModel{Token: 1, Pair: math.NaN()}.Validate(), ErrFleetInvalid)
	_, err := RunFleet([]Request{{InputTokens: 9, OutputTokens: 1}}, FleetConfig{Step: StepModel{Token: 1, Pair: math.NaN()}}, FleetRouter{Name: "rr", Router: &RoundRobin{}})
	require.ErrorIs(t, err, ErrFleetInvalid)
}

// TestAudit140NegativeBatchBudgetIsTheFleets: a negative step budget is
// the study's configuration out of range (ErrFleetInvalid), refused before
// a scheduler is made, not the scheduler's own refusal.
func TestAudit140NegativeBatchBudgetIsTheFleets(t *testing.T) {
	_, err := RunFleet([]Request{{InputTokens: 9, OutputTokens: 1}}, FleetConfig{MaxBatchTokens: -2}, FleetRouter{Name: "rr", Router: &RoundRobin{}})
	require.ErrorIs(t, err, ErrFleetInvalid)
}

// TestAudit140RoutersWithoutCandidates: the study's own routers answer -1
// to an empty candidate list, as fleet's routers do.
func TestAudit140RoutersWithoutCandidates(t *testing.T) {
	assert.Equal(t, -1, NewRandom(1).Route(nil))
	assert.Equal(t, -1, (&RoundRobin{}).Route(nil))
}

// TestAudit140RandomFollowsItsSeed: the same seed draws the same
// choices, another seed other ones.
func TestAudit140RandomFollowsItsSeed(t *testing.T) {
	cands := make([]fleet.Candidate, 8)
	draw := func(seed uint64) []int {
		r := NewRandom(seed)
		var out []int
		for range 32 {
			out = append(out, r.Route(cands))
		}
		return out
	}
	assert.Equal(t, draw(1), draw(1))
	assert.NotEqual(t, draw(1), draw(2))
}

// TestAudit140FleetRoutersAsDocumented: the study's routers in order,
// which of them score prefixes and keep a Pending record, and the load
// cap given.
func TestAudit140FleetRoutersAsDocumented(t *testing.T) {
	rs := FleetRouters(1, 3)
	type row struct {
		name            string
		prefix, pending bool
	}
	want := []row{
		{"random", false, false}, {"round-robin", false, false}, {"least-loaded", false, false},
		{"prefix-aware", true, false}, {"prefix-aware, load cap 3", true, false}, {"cost-aware", true, false},
		{"prefix-aware, pending", true, true}, {"cost-aware, pending", true, true},
	}
	var got []row
	for _, r := range rs {
		got = append(got, row{r.Name, r.Prefix, r.Pending})
	}
	assert.Equal(t, want, got)
	assert.Equal(t, 3.0, rs[4].Router.(fleet.PrefixAware).LoadCap)
	assert.Zero(t, rs[3].Router.(fleet.PrefixAware).LoadCap)
}

// TestAudit140IDsApartInTheirHighBits: trace IDs that differ only above
// bit 31 are different blocks: MooncakeHash keeps all 64 bits, and a
// replay's second prompt, of the same IDs plus 1<<32, misses on the one
// server holding the first.
func TestAudit140IDsApartInTheirHighBits(t *testing.T) {
	assert.NotEqual(t, MooncakeHash(5), MooncakeHash(5+1<<32))
	assert.NotEqual(t, MooncakeHash(0), MooncakeHash(-1<<32))
	reqs := []Request{
		{Arrival: 0, InputTokens: 2*MooncakeBlockSize + 10, OutputTokens: 1, HashIDs: []int64{5, 6}},
		{Arrival: time.Second, InputTokens: 2*MooncakeBlockSize + 10, OutputTokens: 1, HashIDs: []int64{5 + 1<<32, 6 + 1<<32}},
		{Arrival: 2 * time.Second, InputTokens: 2*MooncakeBlockSize + 10, OutputTokens: 1, HashIDs: []int64{5, 6}},
	}
	res := a89Run(t, reqs, FleetConfig{Servers: 1, Blocks: 16}, FleetRouter{Name: "rr", Router: &RoundRobin{}})
	assert.Equal(t, []int{0, 0, 2 * MooncakeBlockSize}, res.Hits)
}

// TestAudit140PromptWithoutIDsIsZeros: the replay writes every prompt
// into one buffer; a prompt without hash IDs after one with them, of the
// same length, is zeros (it hits nothing), not the previous prompt.
func TestAudit140PromptWithoutIDsIsZeros(t *testing.T) {
	buf := promptOf(nil, Request{InputTokens: 9, HashIDs: []int64{1, 2}}, 4)
	buf = promptOf(buf, Request{InputTokens: 9}, 4)
	assert.Equal(t, make([]int32, 9), buf)
	reqs := []Request{
		{Arrival: 0, InputTokens: 2*MooncakeBlockSize + 10, OutputTokens: 1, HashIDs: []int64{1, 2}},
		{Arrival: time.Second, InputTokens: 2*MooncakeBlockSize + 10, OutputTokens: 1},
	}
	res := a89Run(t, reqs, FleetConfig{Servers: 1, Blocks: 16}, FleetRouter{Name: "rr", Router: &RoundRobin{}})
	assert.Equal(t, []int{0, 0}, res.Hits)
}

// TestAudit140BusyTimePerServer: one request of 3 outputs on an idle
// fleet of two keeps server 0 busy for its 3 steps of 50 ms and server 1
// not at all: the busy imbalance is 2.
func TestAudit140BusyTimePerServer(t *testing.T) {
	reqs := []Request{{Arrival: time.Second, InputTokens: 100, OutputTokens: 3}}
	res := a89Run(t, reqs, FleetConfig{Servers: 2, Blocks: 16, Step: a89Model}, FleetRouter{Name: "rr", Router: &RoundRobin{}})
	require.Len(t, res.PerServerBusy, 2)
	assert.InDelta(t, 0.15, res.PerServerBusy[0], 1e-9)
	assert.Zero(t, res.PerServerBusy[1])
	assert.InDelta(t, 2.0, res.BusyImbalance, 1e-9)
}

// TestAudit140WaitEndsAtTheFirstAdmission: two requests on one server
// whose pool cannot hold both as they grow. The first starts at once, the
// second at the end of the first's prefill step (50 ms); one of them is
// then preempted and admitted again later, but a wait ends at a request's
// first admission: 0 and 50 ms.
func TestAudit140WaitEndsAtTheFirstAdmission(t *testing.T) {
	reqs := []Request{
		{Arrival: 0, InputTokens: 9, OutputTokens: 12},
		{Arrival: 0, InputTokens: 9, OutputTokens: 12},
	}
	res := a89Run(t, reqs, FleetConfig{Servers: 1, Blocks: 8, BlockSize: 4, Step: a89Model}, FleetRouter{Name: "rr", Router: &RoundRobin{}})
	require.Positive(t, res.Preemptions)
	assert.Equal(t, 2, res.Requests)
	assert.InDelta(t, 0.025, res.MeanWait, 1e-9)
	assert.InDelta(t, 0.05, res.P90Wait, 1e-9)
}

// TestAudit140OneGroupLayoutIsTheManagers: a layout of one group that is
// not full attention goes to the managers as it is, which refuse it
// (group 0 must be full attention), rather than being replayed as the
// plain study.
func TestAudit140OneGroupLayoutIsTheManagers(t *testing.T) {
	l, err := fleet.ParseLayout("b4 window:8")
	require.NoError(t, err)
	_, err = RunFleet([]Request{{InputTokens: 40, OutputTokens: 1}}, FleetConfig{Servers: 1, Blocks: 16, BlockSize: 4, Layout: l}, FleetRouter{Name: "rr", Router: &RoundRobin{}})
	require.ErrorIs(t, err, paged.ErrInvalid)
}

// TestAudit140IndexRefusalEndsTheReplay: the index was told server s0
// has one full-attention group, so it refuses the events of a hybrid
// server's window group (the replay's index blind to the layout); the
// replay fails with that refusal, a Pending record beside the index or
// not.
func TestAudit140IndexRefusalEndsTheReplay(t *testing.T) {
	hybrid, err := fleet.ParseLayout("b512 full window:128")
	require.NoError(t, err)
	full, err := fleet.ParseLayout("b512 full")
	require.NoError(t, err)
	reqs := []Request{{InputTokens: 2*MooncakeBlockSize + 10, OutputTokens: 1, HashIDs: []int64{1, 2}}}
	for _, pending := range []bool{false, true} {
		x, err := fleet.New(fleet.Config{MaxServers: 1})
		require.NoError(t, err)
		require.NoError(t, x.SetLayout("s0", full))
		r := FleetRouter{Name: "prefix-aware", Router: fleet.PrefixAware{}, Prefix: true, Pending: pending}
		_, err = RunFleet(reqs, FleetConfig{Servers: 1, Blocks: 16, Layout: hybrid, BlindIndex: true, Index: x}, r)
		require.ErrorIs(t, err, fleet.ErrInvalid, "pending %v", pending)
	}
}
