package paged_test

import (
	"math/rand/v2"
	"testing"

	"github.com/stretchr/testify/assert"
	"github.com/stretchr/testify/require"

	"github.com/pagedkv/pagedkv/paged"
)

// The twenty-first mutation round (docs/testing.md): paged's group
// operations, reserve and split-KV plan. Each test closes a mutation
// that survived it; the internal ones are in audit68_internal_test.go.

// TestAudit68ForkKeepsChunkedRelease: a fork's chunked group releases its
// blocks as its parent's does. With prefix caching a chunked group keeps
// its last committed block until a later one is committed (vLLM's rule,
// TestAudit67ChunkedKeepsLastCachedBlock), so the rule reads the group's
// committed mark, which the child inherits with the shared blocks. Blocks
// of 4 tokens, a chunk of 4, forked at 6 tokens: the next token of parent
// and child alike keeps block 0. M1000 (the child's committed mark
// started at zero) released it in the child only.
func TestAudit68ForkKeepsChunkedRelease(t *testing.T) {
	m, err := paged.New(paged.Config{BlockSize: 4, NumBlocks: 64,
		Groups: []paged.Group{{}, {Kind: paged.ChunkedLocal, Chunk: 4}}})
	require.NoError(t, err)
	p, _, err := m.Create(seqOf(1, 5), nil)
	require.NoError(t, err)
	require.NoError(t, m.Append(p, 100))
	c, err := m.Fork(p)
	require.NoError(t, err)
	for _, id := range []paged.SeqID{p, c} {
		require.NoError(t, m.Append(id, 101))
		tab, err := m.TableGroup(id, 1)
		require.NoError(t, err)
		assert.NotZero(t, tab[0], "sequence %v at 7 tokens: block 0, the last cached one, is kept: %v", id, tab)
	}
	require.NoError(t, m.Check())
	// One block more commits block 1: both release block 0.
	for _, id := range []paged.SeqID{p, c} {
		require.NoError(t, m.Append(id, 102))
		require.NoError(t, m.Append(id, 103))
		tab, err := m.TableGroup(id, 1)
		require.NoError(t, err)
		assert.Zero(t, tab[0], "sequence %v at 9 tokens: block 0 released: %v", id, tab)
	}
	require.NoError(t, m.Check())
}

// TestAudit68SpeculativeNeverBound: AppendSpeculative refuses with
// ErrNever exactly the drafts the pool could not hold with the sequence
// alone in it, its own state counted: full attention beside a State
// group of 2 pages, blocks of 4, a 4-token sequence asking 3 drafts
// needs 2 blocks and 4 states of 2 pages, 10 blocks. A pool of 10 usable
// blocks takes them; one of 9 never can (ErrNever, not ErrNoSpace, which
// preempting others would not cure). M1024 (the sequence's own state not
// counted) returned ErrNoSpace for the pool of 9; M1025 (a need of
// exactly the pool refused) refused the pool of 10.
func TestAudit68SpeculativeNeverBound(t *testing.T) {
	for _, usable := range []int{10, 9} {
		var m *paged.Manager
		for n := usable; ; n++ { // the pool's usable blocks, whatever it sets aside
			var err error
			m, err = paged.New(stateLayout(4, n, 2))
			require.NoError(t, err)
			if m.Stats().UsableBlocks == usable {
				break
			}
			require.Less(t, m.Stats().UsableBlocks, usable)
		}
		id, _, err := m.Create(seqOf(1, 4), nil)
		require.NoError(t, err)
		before := m.Stats()
		err = m.AppendSpeculative(id, 5, 6, 7)
		if usable == 10 {
			require.NoError(t, err, "10 blocks exactly fill the pool")
			assert.Equal(t, 10, m.Stats().UsedBlocks)
		} else {
			require.ErrorIs(t, err, paged.ErrNever, "10 blocks in a pool of 9")
			assert.Equal(t, before, m.Stats(), "a refusal changes nothing")
		}
		require.NoError(t, m.Check())
	}
}

// TestAudit68SplitUnitsEndAtTheirBounds: with a minimum chunk of one
// block every cut lands on its ideal place, so unit u's stretch ends at
// ceil((u+1)*total/units) blocks of the batch laid end to end, as
// SplitPlan's doc states (FlashMLA's rule), for random batches. M1045
// (a remainder of one not rounded up) ended such units a block early,
// which the busiest unit's bound did not see (the next unit took the
// block, and the last unit's share is the largest either way).
func TestAudit68SplitUnitsEndAtTheirBounds(t *testing.T) {
	rng := rand.New(rand.NewPCG(68, 1045))
	var p paged.SplitPlan
	for range 500 {
		blocks := make([]int32, 1+rng.IntN(6))
		total := 0
		for i := range blocks {
			blocks[i] = int32(rng.IntN(40))
			total += int(blocks[i])
		}
		units := 1 + rng.IntN(12)
		require.NoError(t, p.Build(blocks, units, 1))
		require.NoError(t, p.Check(blocks))
		load := make([]int, units)
		for _, it := range p.Items {
			load[it.Unit] += it.Blocks()
		}
		end := 0
		for u := range units {
			end += load[u]
			want := ((u+1)*total + units - 1) / units
			require.Equal(t, want, end, "batch %v on %d units: unit %d ends at block %d, want ceil(%d*%d/%d)", blocks, units, u, end, u+1, total, units)
		}
	}
}

// TestAudit68SplitCheckCatchesCorruption: SplitPlan.Check refuses a
// plan whose figures are right but which breaks one rule: a sequence
// split into two pieces, one below the minimum chunk (M1048 checked the
// minimum only for sequences of three pieces or more), or items out of
// unit order (M1049 let them pass: a persistent kernel runs its unit's
// items as one consecutive run).
func TestAudit68SplitCheckCatchesCorruption(t *testing.T) {
	for _, tc := range []struct {
		name, want string
		blocks     []int32
		units, min int
		corrupt    func(p *paged.SplitPlan)
	}{
		// Pieces of 5 made 2 and 8: the cover, the units and the figures
		// hold; the piece of 2 is below the minimum of 3.
		{"a short piece of two", "below the minimum chunk", []int32{10}, 2, 3, func(p *paged.SplitPlan) {
			p.Items[0].End, p.Items[1].First = 2, 2
			p.MaxItemBlocks, p.MaxUnitBlocks = 8, 8
		}},
		// Two whole sequences of 5 on units 0 and 1 swapped: every unit's
		// load is unchanged.
		{"units out of order", "out of unit order", []int32{5, 5}, 2, 1, func(p *paged.SplitPlan) {
			p.Items[0].Unit, p.Items[1].Unit = 1, 0
		}},
	} {
		var p paged.SplitPlan
		require.NoError(t, p.Build(tc.blocks, tc.units, tc.min))
		require.Len(t, p.Items, 2, "%s: %+v", tc.name, p.Items)
		require.NoError(t, p.Check(tc.blocks))
		tc.corrupt(&p)
		err := p.Check(tc.blocks)
		require.Error(t, err, tc.name)
		assert.Contains(t, err.Error(), tc.want, tc.name)
	}
}

// TestAudit68ReserveTakenToTheLast: a reserve made for exactly one
// sequence's hint serves that sequence whole: its token copy, hashes and
// table come from the reserve to the last entry, and adding, admitting,
// decoding to the hint and freeing it allocates nothing. M1036 (a hash
// buffer that takes the reserve's last hashes comes from the heap) made
// the one sequence a reserve is sized for allocate.
func TestAudit68ReserveTakenToTheLast(t *testing.T) {
	const bs, hint = 16, 64
	m, err := paged.New(paged.Config{BlockSize: bs, NumBlocks: 64, Reserve: paged.Reserve{Sequences: 1, Tokens: hint}})
	require.NoError(t, err)
	prompt := seqOf(1, 40)
	var fail error
	a := mallocs(func() {
		id, err := m.Add(prompt, &paged.SeqOptions{MaxTokens: hint})
		if err != nil {
			fail = err
			return
		}
		if _, err := m.Admit(id); err != nil {
			fail = err
			return
		}
		for k := len(prompt); k < hint; k++ {
			if err := m.Append(id, int32(k)); err != nil {
				fail = err
				return
			}
		}
		fail = m.Free(id)
	})
	require.NoError(t, fail)
	assert.Zero(t, a, "allocations of the one sequence the reserve is made for")
	require.NoError(t, m.Check())
}
