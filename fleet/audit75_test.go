package fleet

import (
	"math"
	"testing"
	"time"
	"unsafe"

	"github.com/stretchr/testify/assert"
	"github.com/stretchr/testify/require"

	"github.com/pagedkv/pagedkv/paged"
)

// Tests written for the twenty-ninth round of mutation testing (session
// 31, docs/testing.md): fleet's pending routes, cost model and hybrid
// groups. Each kills a mutation the rest of the package let survive.

// TestAudit75PendingEstimateCoversItsArrays: NewPending holds its
// estimate against MaxMemoryBytes, so the estimate must count what it
// allocates: the hash table as newTable makes it (a power of two of at
// least twice the capacity, so up to four entries a hash, which the old
// estimate counted as two), and the claim masks and hit points, two sets
// of words for each hash (M1324 counted one). With the table counted as
// two entries a hash, a capacity of 2,108,476 with 7,744 servers was
// estimated at 4,286,531,708 bytes and taken, and allocated 4,353,278,204,
// past MaxMemoryBytes.
func TestAudit75PendingEstimateCoversItsArrays(t *testing.T) {
	for _, c := range []int{1, 3, 1000, 1 << 10, 1<<10 + 1} {
		for _, servers := range []int{1, 64, 65, 300} {
			p, err := NewPending(PendingConfig{Capacity: c, MaxServers: servers})
			require.NoError(t, err)
			got := int64(len(p.index.e))*int64(unsafe.Sizeof(tableEntry{})) +
				int64(len(p.hashes))*int64(unsafe.Sizeof(paged.Hash{})) + int64(len(p.live)) +
				int64(len(p.latest))*8 + int64(len(p.next))*4 + int64(cap(p.free))*4 +
				int64(len(p.ring))*int64(unsafe.Sizeof(pendingRecord{})) +
				int64(len(p.masks)+len(p.points))*8
			assert.GreaterOrEqual(t, pendingBytes(c, p.words), got, "capacity %d, %d servers", c, servers)
		}
	}
	assert.Greater(t, pendingBytes(2108476, WordsFor(7744)), int64(MaxMemoryBytes))
}

// TestAudit75PendingConfigBounds: every negative TTL is refused, one
// nanosecond too (M1321 took it: a claim that expired before it was
// made), while a TTL of one nanosecond is taken; more servers than the
// Index can have are refused even when the arrays are small (M1323 took
// them).
func TestAudit75PendingConfigBounds(t *testing.T) {
	for _, cfg := range []PendingConfig{
		{TTL: -1}, {Capacity: 1, MaxServers: maxServersLimit + 1},
	} {
		_, err := NewPending(cfg)
		assert.ErrorIs(t, err, ErrInvalid, "%+v", cfg)
	}
	for _, cfg := range []PendingConfig{
		{TTL: 1}, {Capacity: 1, MaxServers: maxServersLimit},
	} {
		_, err := NewPending(cfg)
		assert.NoError(t, err, "%+v", cfg)
	}
}

// TestAudit75PendingClaimsLiveTheDefaultTTL: without a TTL, a claim lives
// DefaultPendingTTL, a minute (M1320 made it a second), and Len counts it
// until then and not after, with no other call between to expire it
// (M1339 left Len to count expired claims).
func TestAudit75PendingClaimsLiveTheDefaultTTL(t *testing.T) {
	clk := &fakeClock{t: time.Unix(1000, 0)}
	p, err := NewPending(PendingConfig{MaxServers: 1, Now: clk.now})
	require.NoError(t, err)
	require.NoError(t, p.Add(0, pendingHashes(0, 3)))
	clk.t = clk.t.Add(DefaultPendingTTL - 1)
	assert.Equal(t, 3, p.Len(), "a nanosecond before the TTL")
	clk.t = clk.t.Add(1)
	assert.Zero(t, p.Len(), "at the TTL")
}

// audit75Claim claims hs for server 0 of a new record, with the server's
// score sc and layout l, and returns the score Extend then gives server
// 0 for hs from an indexed run of from blocks, with Affinity equal.
func audit75Claim(t *testing.T, hs []paged.Hash, sc Score, l Layout, from int) Score {
	t.Helper()
	p, err := NewPending(PendingConfig{Capacity: 64, MaxServers: 1})
	require.NoError(t, err)
	require.NoError(t, p.Claim(0, hs, sc, l))
	out := []Score{{Server: 0, Blocks: from, Device: from, Affinity: from, Value: float64(from)}}
	p.Extend(hs, out)
	return out[0]
}

// TestAudit75PendingClaimHitPoints: on a server with a State group, a
// claim's only hit point is the block before the request's branch point,
// the end of its group-0 run (Affinity), when that run goes past what the
// server can hit; Extend then scores the claims up to that block and
// extends Affinity over the whole claimed run. A score no Lookup gives
// is clamped first: a negative Blocks counts as 0, so a run of 0 is no
// longer than the hit and makes no hit point.
func TestAudit75PendingClaimHitPoints(t *testing.T) {
	hs := pendingHashes(0, 8)
	state := Layout{BlockSize: 2, Groups: []paged.Group{{Kind: paged.FullAttention}, {Kind: paged.State}}}
	// Claims from block 2, the branch point after block 5: a hit of 5,
	// and Affinity the claimed run, 8 (M1341 stopped it at the hit).
	sc := audit75Claim(t, hs, Score{Blocks: 2, Device: 2, Affinity: 5}, state, 2)
	assert.Equal(t, []int{5, 3, 8}, []int{sc.Blocks, sc.Pending, sc.Affinity}, "blocks, pending, affinity")
	// Blocks -1, Affinity 0: claims from 0 with no hit point (M1329 took
	// the run's end at the claims' start for a branch point, a point of
	// -1, which made every claimed block one: a hit of 8).
	sc = audit75Claim(t, hs, Score{Blocks: -1, Affinity: 0}, state, 0)
	assert.Equal(t, []int{0, 0, 8}, []int{sc.Blocks, sc.Pending, sc.Affinity}, "blocks, pending, affinity")
}

// TestAudit75PendingExtendSkipsServersOutOfRange: Extend leaves alone a
// score of a server past MaxServers, even one past the words of its
// server sets (M1340 indexed them, and panicked).
func TestAudit75PendingExtendSkipsServersOutOfRange(t *testing.T) {
	p, err := NewPending(PendingConfig{MaxServers: 2})
	require.NoError(t, err)
	req := pendingHashes(0, 3)
	require.NoError(t, p.Add(1, req))
	sc := []Score{{Server: 64}, {Server: 1 << 20}, {Server: 1}}
	require.NotPanics(t, func() { p.Extend(req, sc) })
	assert.Equal(t, []int{0, 0, 3}, []int{sc[0].Blocks, sc[1].Blocks, sc[2].Blocks})
}

// TestAudit75CostValidate: an infinite LoadWeight is refused (M1348 took
// it: every cost with Work became infinite or NaN).
func TestAudit75CostValidate(t *testing.T) {
	for _, w := range []float64{math.Inf(1), math.Inf(-1)} {
		assert.ErrorIs(t, CostAware{BlockSize: 16, LoadWeight: w}.Validate(), ErrInvalid, "LoadWeight %v", w)
	}
}

// TestAudit75CostInvalidRoutesByLoad: any configuration Validate refuses
// routes to the least-loaded server, not only one without a BlockSize
// (M1356): a HostCost past 1 would weigh host hits above computing them,
// and a Temperature without Rand would call a nil Rand.
func TestAudit75CostInvalidRoutesByLoad(t *testing.T) {
	cands := []Candidate{
		{Score: Score{Blocks: 4, Device: 4}, Load: 2, Prompt: 80},
		{Load: 1, Work: 40, Prompt: 80},
	}
	require.Equal(t, 0, CostAware{BlockSize: 16}.Route(cands), "valid: the cached server")
	for _, c := range []CostAware{
		{BlockSize: 16, HostCost: 2},
		{BlockSize: 16, Temperature: 1},
		{BlockSize: 16, LoadWeight: -1},
	} {
		assert.Equal(t, 1, c.Route(cands), "%+v", c)
	}
}

// TestAudit75CostClampsWorkWithoutPrompt: a negative Work counts as none
// without Prompt as with it (M1355 let it lower the cost without one).
func TestAudit75CostClampsWorkWithoutPrompt(t *testing.T) {
	c := CostAware{BlockSize: 16}
	for _, prompt := range []int{0, 80} {
		cand := Candidate{Score: Score{Blocks: 2, Device: 2}, Prompt: prompt}
		want := c.Cost(&cand)
		cand.Work = -50
		assert.Equal(t, want, c.Cost(&cand), "prompt %d", prompt)
	}
}

// audit75Record returns the state and layout text mem records for
// server id.
func audit75Record(t *testing.T, mem *Memory, id ServerID) ServerRecord {
	t.Helper()
	recs, err := mem.Servers(nil)
	require.NoError(t, err)
	return recs[id]
}

// TestAudit75SetLayoutRaisesGen: recording a layout is a change of the
// server's stream state, and StreamState.Gen increases with every change
// (M1363 recorded the layout under the same Gen). The shipped backends
// compare whole states, HasLayout included, so their writes stayed safe;
// Gen is the contract a backend may rely on alone.
func TestAudit75SetLayoutRaisesGen(t *testing.T) {
	mem, err := NewMemory(MemoryConfig{})
	require.NoError(t, err)
	x, err := New(Config{Backend: mem})
	require.NoError(t, err)
	require.NoError(t, x.Apply("gpu", []paged.Event{stored(1, paged.Device, 1)}))
	before := audit75Record(t, mem, 0).State
	require.NoError(t, x.SetLayout("gpu", Layout{BlockSize: 16, Groups: []paged.Group{{Kind: paged.FullAttention}}}))
	after := audit75Record(t, mem, 0).State
	assert.True(t, after.HasLayout)
	assert.Greater(t, after.Gen, before.Gen)
}
