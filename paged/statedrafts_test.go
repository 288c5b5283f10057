package paged_test

import (
	"fmt"
	"slices"
	"testing"

	"github.com/stretchr/testify/assert"
	"github.com/stretchr/testify/require"

	"github.com/pagedkv/pagedkv/allocator"
	"github.com/pagedkv/pagedkv/paged"
)

// stateLayout is full attention beside a State group of pages pages.
func stateLayout(bs, blocks, pages int) paged.Config {
	return paged.Config{BlockSize: bs, NumBlocks: blocks,
		Groups: []paged.Group{{Kind: paged.FullAttention}, {Kind: paged.State, Pages: pages}}}
}

// states splits a State group's table into its states of pages pages:
// the sequence's, then each draft's.
func states(t *testing.T, m *paged.Manager, id paged.SeqID, g, pages int) [][]allocator.BlockID {
	t.Helper()
	tb, err := m.TableGroup(id, g)
	require.NoError(t, err)
	require.Zero(t, len(tb)%pages, "a state group's table is whole states")
	var out [][]allocator.BlockID
	for k := 0; k < len(tb); k += pages {
		out = append(out, slices.Clone(tb[k:k+pages]))
	}
	return out
}

// TestStateDraftsFlow follows a State group's pages through drafts by
// hand: AppendSpeculative takes a state's pages per draft from the pool,
// the batch names them, AcceptSpeculative keeps the last accepted draft's
// and keeps the others as spares, which the next drafts take (giving back
// those they do not need), Truncate makes spares of the states of the
// drafts it cuts, a rejection of every draft keeps the state, and
// Preempt gives every page back.
func TestStateDraftsFlow(t *testing.T) {
	const bs, pages = 4, 2
	cfg := stateLayout(bs, 64, pages)
	cfg.Events = 256
	m, err := paged.New(cfg)
	require.NoError(t, err)
	id, _, err := m.Create(seqOf(1, 6), nil)
	require.NoError(t, err)
	m.TakeCopies(nil)
	st := states(t, m, id, 1, pages)
	require.Len(t, st, 1)
	state := st[0]
	free := m.Stats().FreeBlocks

	// A speculative step: the token sampled last, then three drafts.
	require.NoError(t, m.Append(id, 7))
	require.NoError(t, m.AppendSpeculative(id, 8, 9, 10))
	st = states(t, m, id, 1, pages)
	require.Len(t, st, 4, "the state and one per draft")
	assert.Equal(t, state, st[0], "the state keeps its pages: the sampled token updates it in place")
	assert.Equal(t, 3*pages, m.Stats().StateDraftPages)
	// 6 draft pages and the block positions 8-9 start.
	assert.Equal(t, free-3*pages-1, m.Stats().FreeBlocks)
	require.NoError(t, m.Check())

	var b paged.Batch
	require.NoError(t, m.BuildBatch(&b, []paged.Scheduled{{ID: id, NewTokens: 4}}))
	assert.Equal(t, []int32{0, 3}, b.DraftStart)
	assert.Equal(t, []int32{0}, b.StateRead, "the step starts before the drafts: it reads the state")
	assert.Equal(t, ids32(st[0]), b.GroupTables[0][:pages])
	assert.Equal(t, ids32(slices.Concat(st[1], st[2], st[3])), b.StateDrafts[0], "draft j's state: the pages it writes")

	// Two accepted: the second draft's state is the state now; the old
	// state's pages and the first and third drafts' become spares, kept
	// for the next drafts.
	require.NoError(t, m.AcceptSpeculative(id, 2))
	after := states(t, m, id, 1, pages)
	require.Len(t, after, 1)
	assert.Equal(t, st[2], after[0])
	assert.Zero(t, m.Stats().StateDraftPages)
	assert.Equal(t, 3*pages, m.Stats().StateSparePages)
	assert.Equal(t, free-1-3*pages, m.Stats().FreeBlocks, "no page went back: every state but the kept one is a spare")
	require.NoError(t, m.Check())
	spares := slices.Concat(st[0], st[1], st[3])
	n, _ := m.Len(id)
	require.Equal(t, 9, n)

	// The next step's batch reads the kept pages.
	require.NoError(t, m.Append(id, 11))
	require.NoError(t, m.BuildBatch(&b, []paged.Scheduled{{ID: id, NewTokens: 1}}))
	assert.Equal(t, ids32(st[2]), b.GroupTables[0][:pages])
	assert.Equal(t, []int32{0, 0}, b.DraftStart)
	assert.Empty(t, b.StateDrafts[0])

	// Drafts after drafts: the second call's step starts after the first
	// call's two drafts and reads the second's state. The first call
	// takes two spares and gives back the third, which it does not need;
	// the second takes a page run from the pool.
	freeBefore := m.Stats().FreeBlocks
	require.NoError(t, m.AppendSpeculative(id, 12, 13))
	st = states(t, m, id, 1, pages)
	require.Len(t, st, 3)
	for _, d := range st[1:] {
		for _, b := range d {
			assert.Contains(t, spares, b, "a draft's state reuses a spare page")
		}
	}
	assert.Zero(t, m.Stats().StateSparePages)
	assert.Equal(t, freeBefore+pages, m.Stats().FreeBlocks, "the unneeded spare went back")
	require.NoError(t, m.Check())
	require.NoError(t, m.AppendSpeculative(id, 14))
	st = states(t, m, id, 1, pages)
	require.Len(t, st, 4)
	require.NoError(t, m.BuildBatch(&b, []paged.Scheduled{{ID: id, NewTokens: 1}}))
	assert.Equal(t, []int32{2}, b.StateRead)

	// Truncate cuts the last draft: its state goes, two stay pending.
	require.NoError(t, m.Truncate(id, 12))
	assert.Equal(t, st[:3], states(t, m, id, 1, pages))
	assert.Equal(t, 2*pages, m.Stats().StateDraftPages)
	// Not below the accepted tokens: the state absorbed them.
	stats := m.Stats()
	assert.ErrorIs(t, m.Truncate(id, 9), paged.ErrInvalid)
	assert.Equal(t, stats, m.Stats())
	assert.Equal(t, pages, m.Stats().StateSparePages, "the cut draft's state is a spare")
	// Rejecting every draft keeps the state; the drafts' become spares.
	require.NoError(t, m.AcceptSpeculative(id, 0))
	assert.Equal(t, st[:1], states(t, m, id, 1, pages))
	assert.Equal(t, 3*pages, m.Stats().StateSparePages)
	assert.Equal(t, free-1-3*pages, m.Stats().FreeBlocks)
	require.NoError(t, m.Check())
	// Preempt gives every page back, spares included.
	require.NoError(t, m.Preempt(id))
	assert.Zero(t, m.Stats().StateSparePages)
	require.NoError(t, m.Check())
	// A state page is never committed: the KV events are group 0's
	// blocks the accepted tokens filled, none of the state group.
	stored := 0
	for _, e := range m.DrainEvents(nil) {
		assert.Zero(t, e.Group, "event %+v", e)
		if e.Kind == paged.BlockStored {
			stored += len(e.Hashes)
		}
	}
	assert.Equal(t, 2, stored, "blocks 0 and 1, which the 10 accepted tokens fill")
}

// ids32 converts block IDs to a batch's int32 entries.
func ids32(ids []allocator.BlockID) []int32 {
	out := make([]int32, len(ids))
	for i, b := range ids {
		out[i] = int32(b)
	}
	return out
}

// TestStateDraftsOps: a sequence with drafts pending on a state layout
// forks (the child copies every state, its drafts' included), swaps out
// and in (every state goes to the host and back, the drafts stay
// pending), is preempted (every state page is released, the drafts
// dropped) and freed; drafts the pool cannot hold now are refused with
// ErrNoSpace, those it could never hold with ErrNever, changing nothing.
func TestStateDraftsOps(t *testing.T) {
	const bs, pages = 4, 3
	cfg := stateLayout(bs, 64, pages)
	cfg.HostBlocks = 64
	m, err := paged.New(cfg)
	require.NoError(t, err)
	p, _, err := m.Create(seqOf(1, 5), nil)
	require.NoError(t, err)
	m.TakeCopies(nil)
	require.NoError(t, m.AppendSpeculative(p, 6, 7))
	pst := states(t, m, p, 1, pages)

	// Fork: the child's states are copies of each, in order.
	c, err := m.Fork(p)
	require.NoError(t, err)
	cst := states(t, m, c, 1, pages)
	require.Len(t, cst, 3)
	var want []paged.Copy
	for k := range pst {
		for j := range pages {
			assert.NotContains(t, slices.Concat(pst...), cst[k][j], "a state page is never shared")
			want = append(want, paged.Copy{Src: pst[k][j], Dst: cst[k][j]})
		}
	}
	assert.Equal(t, want, m.TakeCopies(nil))
	assert.Equal(t, 4*pages, m.Stats().StateDraftPages, "two drafts each")
	require.NoError(t, m.Check())

	// Swap out and in: every state moves, the drafts stay pending.
	require.NoError(t, m.SwapOut(c))
	swaps := m.TakeSwaps(nil)
	n := 0
	for _, s := range swaps {
		if s.Group == 1 {
			n++
		}
	}
	assert.Equal(t, 3*pages, n, "the state and both drafts' states go to the host")
	assert.Equal(t, 2*pages, m.Stats().StateDraftPages)
	require.NoError(t, m.Check())
	need := 0
	_, need, err = m.CanSwapIn(c)
	require.NoError(t, err)
	assert.Equal(t, 1+3*pages, need, "the second block of tokens (the parent holds the first) and three states")
	require.NoError(t, m.SwapIn(c))
	m.TakeSwaps(nil)
	assert.Len(t, states(t, m, c, 1, pages), 3)
	require.NoError(t, m.AcceptSpeculative(c, 1))
	assert.Len(t, states(t, m, c, 1, pages), 1)
	require.NoError(t, m.Check())

	// Preempt drops the drafts with their states.
	require.NoError(t, m.Preempt(p))
	assert.Zero(t, m.Stats().StateDraftPages)
	n, _ = m.Len(p)
	assert.Equal(t, 5, n)
	require.NoError(t, m.Check())

	// Free of a sequence with drafts gives every state page back.
	require.NoError(t, m.AppendSpeculative(c, 8, 9, 10))
	require.NoError(t, m.Free(c))
	require.NoError(t, m.Free(p))
	st := m.Stats()
	assert.Zero(t, st.StateDraftPages)
	assert.Zero(t, st.UsedBlocks)
	require.NoError(t, m.Check())

	// No room now: ErrNoSpace; never room: ErrNever. Nothing changes.
	q, _, err := m.Create(seqOf(100, 4), nil)
	require.NoError(t, err)
	filler, _, err := m.Create(seqOf(200, 4), nil)
	require.NoError(t, err)
	for err == nil {
		err = m.Append(filler, seqOf(300, 4)...)
	}
	require.ErrorIs(t, err, paged.ErrNoSpace)
	before, tb := m.Stats(), states(t, m, q, 1, pages)
	assert.ErrorIs(t, m.AppendSpeculative(q, 1), paged.ErrNoSpace)
	assert.ErrorIs(t, m.AppendSpeculative(q, seqOf(1, 20)...), paged.ErrNever, "21 states of 3 pages")
	assert.Equal(t, before, m.Stats())
	assert.Equal(t, tb, states(t, m, q, 1, pages))
	require.NoError(t, m.Check())
}

// TestStateDraftsNoCheckpointInDrafts: a state checkpoint waiting for the
// chunk that reaches its position (AdmitChunk cut the prompt before it)
// is not taken when that position lies inside the sequence's drafts: the
// state there is a draft's. It is dropped, its pages freed.
func TestStateDraftsNoCheckpointInDrafts(t *testing.T) {
	const bs, pages = 4, 2
	m, err := paged.New(stateLayout(bs, 64, pages))
	require.NoError(t, err)
	// A finished request caches three blocks; the next shares two and
	// branches at 8 tokens, where a checkpoint is asked.
	a, _, err := m.Create(seqOf(1, 12), nil)
	require.NoError(t, err)
	require.NoError(t, m.Free(a))
	prompt := append(seqOf(1, 8), seqOf(500, 6)...)
	b, err := m.Add(prompt, nil)
	require.NoError(t, err)
	_, rest, err := m.AdmitChunk(b, 4, nil)
	require.NoError(t, err)
	require.Len(t, rest, 10)
	assert.Empty(t, m.TakeCheckpoints(nil), "the chunk does not reach the branch point")
	used := m.Stats().UsedBlocks
	// The next chunk stops before 8; drafts pass it.
	require.NoError(t, m.Append(b, rest[:3]...))
	require.NoError(t, m.AppendSpeculative(b, rest[3:6]...))
	assert.Empty(t, m.TakeCheckpoints(nil), "the branch point is a draft's position")
	assert.Equal(t, used+2+3*pages-pages, m.Stats().UsedBlocks, "blocks for positions 4-7 and 8-9, the drafts' states; the checkpoint's pages freed")
	require.NoError(t, m.Check())
	require.NoError(t, m.AcceptSpeculative(b, 3))
	assert.Empty(t, m.TakeCheckpoints(nil), "not taken afterwards either: no step computes 8 again")
	require.NoError(t, m.Check())
}

// TestStateDraftsSteadyStateAllocs: speculative decoding on a Qwen3-Next
// like layout (three State groups, one full-attention group) allocates
// nothing in steady state: each step appends the token sampled last and
// three drafts to every sequence, builds the batch and settles the drafts
// (every count accepted in turn).
func TestStateDraftsSteadyStateAllocs(t *testing.T) {
	const bs, pages, seqs, drafts = 16, 4, 16, 3
	groups := []paged.Group{{Kind: paged.FullAttention}, {Kind: paged.State, Pages: pages}, {Kind: paged.State, Pages: pages}, {Kind: paged.State, Pages: pages}}
	m, err := paged.New(paged.Config{BlockSize: bs, NumBlocks: 2048, Groups: groups})
	require.NoError(t, err)
	var sched []paged.Scheduled
	for i := range seqs {
		id, _, err := m.Create(seqOf(1000*i, 20), &paged.SeqOptions{MaxTokens: 600})
		require.NoError(t, err)
		sched = append(sched, paged.Scheduled{ID: id, NewTokens: 1 + drafts})
	}
	m.TakeCopies(nil)
	var b paged.Batch
	tok := int32(0)
	step := func() {
		for _, sc := range sched {
			tok++
			if err := m.Append(sc.ID, tok); err != nil {
				panic(err)
			}
			if err := m.AppendSpeculative(sc.ID, tok+1, tok+2, tok+3); err != nil {
				panic(err)
			}
		}
		if err := m.BuildBatch(&b, sched); err != nil {
			panic(err)
		}
		for i, sc := range sched {
			if err := m.AcceptSpeculative(sc.ID, (int(tok)+i)%(drafts+1)); err != nil {
				panic(err)
			}
		}
	}
	for range 20 {
		step()
	}
	require.NoError(t, m.Check())
	assert.Zero(t, testing.AllocsPerRun(50, step))
	require.NoError(t, m.Check())
	assert.Zero(t, m.Stats().StateDraftPages)
	// Every sequence keeps its three drafts' states as spares: the loop
	// takes no state page from the pool and gives none back.
	assert.Equal(t, seqs*drafts*3*pages, m.Stats().StateSparePages)
}

// ExampleBatch_stateDrafts: a State group (Mamba, Gated DeltaNet) keeps a
// state per draft, so that the verdict can keep the state of the last
// accepted one.
func ExampleBatch_stateDrafts() {
	m, _ := paged.New(paged.Config{BlockSize: 4, NumBlocks: 32, Groups: []paged.Group{
		{Kind: paged.FullAttention},
		{Kind: paged.State, Pages: 2}, // a state of two pages
	}})
	id, _, _ := m.Create([]int32{1, 2, 3, 4, 5}, nil)
	// A speculative step: the token sampled last, then two drafts.
	_ = m.Append(id, 6)
	_ = m.AppendSpeculative(id, 7, 8)
	st, _ := m.TableGroup(id, 1)
	fmt.Println("state, then the states after draft 1 and 2:", st)

	var b paged.Batch
	_ = m.BuildBatch(&b, []paged.Scheduled{{ID: id, NewTokens: 3}})
	// The kernel reads the state (StateRead 0: the group's row), updates it
	// in place with token 6, and writes the state after draft j into
	// StateDrafts' j-th pages.
	fmt.Println("row:", b.GroupTables[0], "drafts:", b.DraftStart, "read:", b.StateRead, "writes:", b.StateDrafts[0])

	// The verifier accepts the first draft: its state is the state now,
	// the others' pages go back to the pool.
	_ = m.AcceptSpeculative(id, 1)
	st, _ = m.TableGroup(id, 1)
	fmt.Println("state:", st, "draft pages held:", m.Stats().StateDraftPages, "spare pages:", m.Stats().StateSparePages)
	// The next drafts reuse the spares: no page comes from the pool.
	_ = m.Append(id, 9)
	_ = m.AppendSpeculative(id, 10, 11)
	st, _ = m.TableGroup(id, 1)
	fmt.Println("next drafts:", st, "spare pages:", m.Stats().StateSparePages)
	// Output:
	// state, then the states after draft 1 and 2: [3 4 5 6 7 8]
	// row: [3 4] drafts: [0 2] read: [0] writes: [5 6 7 8]
	// state: [5 6] draft pages held: 0 spare pages: 4
	// next drafts: [5 6 7 8 3 4] spare pages: 0
}

// BenchmarkSpeculativeStepStates: a speculative decode step of 256
// sequences on Qwen3-Next's layout (one full-attention group, three State
// groups of 34 pages, 16 tokens a block): each sequence takes the token
// sampled last and drafts (Append, AppendSpeculative: 34*3 pages per
// draft), the batch is built, and every draft count is accepted in turn
// (AcceptSpeculative). drafts=0 is the same step without drafts (one new
// token, no verdict), for comparison (x-no-drafts). Every 64 steps every
// sequence is freed and a new 100-token one created.
func BenchmarkSpeculativeStepStates(b *testing.B) {
	const n, pages = 256, 34
	var plain float64
	for _, k := range []int{0, 1, 3} {
		b.Run(fmt.Sprintf("seqs=%d/drafts=%d", n, k), func(b *testing.B) {
			groups := []paged.Group{{Kind: paged.FullAttention},
				{Kind: paged.State, Pages: pages}, {Kind: paged.State, Pages: pages}, {Kind: paged.State, Pages: pages}}
			m, err := paged.New(paged.Config{BlockSize: 16, NumBlocks: n * (3*pages*(1+k) + 32), Groups: groups})
			if err != nil {
				b.Fatal(err)
			}
			sched := make([]paged.Scheduled, n)
			renew := renewer(b, m, sched, 100+64*(1+k), 1+k)
			renew()
			var batch paged.Batch
			drafts := make([]int32, k)
			tok, steps := int32(0), 0
			step := func() {
				if steps++; steps%64 == 0 {
					renew()
				}
				for _, sc := range sched {
					tok++
					if err := m.Append(sc.ID, tok); err != nil {
						b.Fatal(err)
					}
					if k > 0 {
						for j := range drafts {
							drafts[j] = tok + int32(j) + 1
						}
						if err := m.AppendSpeculative(sc.ID, drafts...); err != nil {
							b.Fatal(err)
						}
					}
				}
				if err := m.BuildBatch(&batch, sched); err != nil {
					b.Fatal(err)
				}
				if k > 0 {
					for i, sc := range sched {
						if err := m.AcceptSpeculative(sc.ID, (steps+i)%(k+1)); err != nil {
							b.Fatal(err)
						}
					}
				}
			}
			for range 64 {
				step()
			}
			b.ReportAllocs()
			for b.Loop() {
				step()
			}
			perStep := float64(b.Elapsed().Nanoseconds()) / float64(b.N)
			b.ReportMetric(perStep/n, "ns/seq")
			if k == 0 {
				plain = perStep
			} else if plain > 0 {
				b.ReportMetric(perStep/plain, "x-no-drafts")
			}
		})
	}
}

// spared runs a speculative step of three drafts on id and accepts one:
// three states become spares.
func spared(t *testing.T, m *paged.Manager, id paged.SeqID, tok int32) {
	t.Helper()
	require.NoError(t, m.Append(id, tok))
	require.NoError(t, m.AppendSpeculative(id, tok+1, tok+2, tok+3))
	require.NoError(t, m.AcceptSpeculative(id, 1))
	require.NoError(t, m.Check())
}

// TestStateSpares: the spare draft states a verdict leaves stay with the
// sequence across a plain Append and Fork (the child gets none), go back
// when its next drafts are fewer and at SwapOut, Preempt and Free, and
// an allocation the free blocks cannot meet reclaims them: another
// sequence's admission succeeds where the spares would otherwise refuse
// it.
func TestStateSpares(t *testing.T) {
	const bs, pages = 4, 2
	cfg := stateLayout(bs, 40, pages)
	cfg.HostBlocks = 32
	m, err := paged.New(cfg)
	require.NoError(t, err)
	id, _, err := m.Create(seqOf(1, 6), nil)
	require.NoError(t, err)
	free := m.Stats().FreeBlocks
	spared(t, m, id, 100)
	assert.Equal(t, 3*pages, m.Stats().StateSparePages)
	assert.Equal(t, free-3*pages, m.Stats().FreeBlocks, "the spares: the 8 accepted tokens fill the prompt's blocks")

	// A plain Append keeps them; Fork neither copies nor gives them back.
	require.NoError(t, m.Append(id, 200))
	c, err := m.Fork(id)
	require.NoError(t, err)
	m.TakeCopies(nil)
	assert.Equal(t, 3*pages, m.Stats().StateSparePages)
	require.NoError(t, m.Check())
	require.NoError(t, m.Free(c))

	// Fewer drafts: one spare taken, the other two given back.
	free = m.Stats().FreeBlocks
	require.NoError(t, m.AppendSpeculative(id, 300))
	assert.Zero(t, m.Stats().StateSparePages)
	assert.Equal(t, pages, m.Stats().StateDraftPages)
	assert.Equal(t, free+2*pages, m.Stats().FreeBlocks)
	require.NoError(t, m.AcceptSpeculative(id, 0))
	require.NoError(t, m.Check())

	// SwapOut gives them back (they are not swapped), SwapIn none.
	spared(t, m, id, 400)
	require.NoError(t, m.SwapOut(id))
	m.TakeSwaps(nil)
	assert.Zero(t, m.Stats().StateSparePages)
	require.NoError(t, m.Check())
	require.NoError(t, m.SwapIn(id))
	m.TakeSwaps(nil)
	assert.Zero(t, m.Stats().StateSparePages)
	require.NoError(t, m.Check())

	// Preempt and Free give them back.
	spared(t, m, id, 500)
	require.NoError(t, m.Preempt(id))
	assert.Zero(t, m.Stats().StateSparePages)
	require.NoError(t, m.Check())
	_, err = m.Admit(id)
	require.NoError(t, err)
	spared(t, m, id, 600)
	require.NoError(t, m.Free(id))
	assert.Zero(t, m.Stats().StateSparePages)
	assert.Zero(t, m.Stats().UsedBlocks)
	require.NoError(t, m.Check())

	// Pool pressure: a prompt that needs every block but the spares'
	// is admitted, reclaiming them.
	id, _, err = m.Create(seqOf(1000, 6), nil)
	require.NoError(t, err)
	spared(t, m, id, 700)
	st := m.Stats()
	room := st.FreeBlocks + st.CachedBlocks // what the pool gives without the spares
	n := (room + st.StateSparePages - pages) * bs
	require.Greater(t, n, (room-pages)*bs, "the prompt needs the spares' pages")
	other, _, err := m.Create(seqOf(5000, n), nil)
	require.NoError(t, err, "the spares are reclaimed, not held against the admission")
	assert.Zero(t, m.Stats().StateSparePages)
	assert.Zero(t, m.Stats().FreeBlocks)
	require.NoError(t, m.Check())
	// The sequence drafts again from the pool once there is room.
	require.NoError(t, m.Free(other))
	spared(t, m, id, 800)
	assert.Equal(t, 3*pages, m.Stats().StateSparePages)
}
