package fleet_test

import (
	"testing"

	"github.com/stretchr/testify/assert"
	"github.com/stretchr/testify/require"

	"github.com/pagedkv/pagedkv/fleet"
	"github.com/pagedkv/pagedkv/paged"
)

// claimServer is one paged manager behind an index and a Pending record.
type claimServer struct {
	t   *testing.T
	m   *paged.Manager
	x   *fleet.Index
	p   *fleet.Pending
	l   fleet.Layout
	evs []paged.Event
}

func newClaimServer(t *testing.T, groups ...paged.Group) *claimServer {
	cfg := paged.Config{BlockSize: 4, NumBlocks: 64, Events: 1024, Groups: groups}
	m, err := paged.New(cfg)
	require.NoError(t, err)
	x, err := fleet.New(fleet.Config{})
	require.NoError(t, err)
	l := fleet.LayoutOf(cfg)
	require.NoError(t, x.SetLayout("s", l))
	p, err := fleet.NewPending(fleet.PendingConfig{})
	require.NoError(t, err)
	return &claimServer{t: t, m: m, x: x, p: p, l: l}
}

// feed gives the manager's events to the index and the record.
func (c *claimServer) feed() {
	c.evs = c.m.DrainEvents(c.evs[:0])
	require.NoError(c.t, c.x.Apply("s", c.evs))
	require.NoError(c.t, c.p.Observe(0, c.evs))
}

// score looks prompt up and extends its score with the claims.
func (c *claimServer) score(prompt []int32) (fleet.Score, []paged.Hash) {
	hs, err := c.m.BlockHashes(nil, prompt, nil)
	require.NoError(c.t, err)
	hs = hs[:(len(prompt)-1)/4]
	sc, err := c.x.Lookup(hs, nil)
	require.NoError(c.t, err)
	c.p.Extend(hs, sc)
	return sc[0], hs
}

// admit admits prompt, takes the step's directives and feeds the events.
func (c *claimServer) admit(prompt []int32) (paged.SeqID, int) {
	id, err := c.m.Add(prompt, nil)
	require.NoError(c.t, err)
	cached, err := c.m.Admit(id)
	require.NoError(c.t, err)
	c.m.TakeCheckpoints(nil)
	c.m.TakeCopies(nil)
	c.feed()
	return id, cached
}

func tokens(base int32, n int) []int32 {
	out := make([]int32, n)
	for i := range out {
		out[i] = base + int32(i)
	}
	return out
}

// A request sent to a server with a state group leaves a hit there only
// at its branch point, where paged takes a checkpoint: the end of the
// group-0 run it finds (its Affinity), not its own end. Its claims must
// say so: a later request of the family is scored the branch point,
// which is what it then hits, not the first request's whole prompt
// (claimed block by block, as Add does, the score was 8 blocks for a
// hit of 4, until the first request's events came).
func TestPendingClaimOfAStateServerIsItsBranchPoint(t *testing.T) {
	c := newClaimServer(t, paged.Group{Kind: paged.FullAttention}, paged.Group{Kind: paged.State, Pages: 1})
	prefix := tokens(100, 16)
	first := append(append([]int32{}, prefix...), tokens(500, 3)...)
	id, _ := c.admit(first)
	require.NoError(t, c.m.Free(id))
	c.feed()

	second := append(append([]int32{}, prefix...), tokens(600, 17)...)
	sc, hs := c.score(second)
	require.Equal(t, 0, sc.Blocks, "no checkpoint yet")
	require.Equal(t, 4, sc.Affinity, "the prefix's group-0 blocks")
	require.NoError(t, c.p.Claim(0, hs, sc, c.l))

	later, _ := c.score(second)
	assert.Equal(t, 4, later.Blocks, "a request like the second is scored its branch point")
	assert.Equal(t, 4, later.Pending)
	assert.Equal(t, 8, later.Affinity, "the second's group-0 blocks are claimed")
	other := append(append([]int32{}, prefix...), tokens(700, 9)...)
	sc3, _ := c.score(other)
	assert.Equal(t, 4, sc3.Blocks, "another request of the family too")

	_, cached := c.admit(second)
	require.Zero(t, cached)
	after, _ := c.score(second)
	assert.Equal(t, 4, after.Blocks, "once its events came, the index has the checkpoint")
	assert.Zero(t, after.Pending)
	_, cached = c.admit(second)
	assert.Equal(t, 4*4, cached, "what the claims scored")
}

// Without a state group a request leaves every block it computes: its
// claims are every block after the server's hit, as Add records them.
func TestPendingClaimWithoutStateClaimsEveryBlock(t *testing.T) {
	c := newClaimServer(t, paged.Group{Kind: paged.FullAttention}, paged.Group{Kind: paged.SlidingWindow, Window: 4})
	prefix := tokens(100, 16)
	first := append(append([]int32{}, prefix...), tokens(600, 17)...)
	sc, hs := c.score(first)
	require.Zero(t, sc.Blocks)
	require.NoError(t, c.p.Claim(0, hs, sc, c.l))
	later, _ := c.score(first)
	assert.Equal(t, 8, later.Blocks)
	assert.Equal(t, 8, later.Affinity)
	_, _ = c.admit(first)
	_, cached := c.admit(first)
	assert.Equal(t, 8*4, cached)
}
