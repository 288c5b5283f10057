package paged_test

import (
	"testing"

	"github.com/stretchr/testify/assert"
	"github.com/stretchr/testify/require"

	"github.com/pagedkv/pagedkv/eviction"
	"github.com/pagedkv/pagedkv/internal/probe"
	"github.com/pagedkv/pagedkv/paged"
)

func seqTokens(n int, base int32) []int32 {
	out := make([]int32, n)
	for i := range out {
		out[i] = base + int32(i)
	}
	return out
}

func kinds(swaps []paged.Swap) map[paged.SwapKind]int {
	out := map[paged.SwapKind]int{}
	for _, s := range swaps {
		out[s.Kind]++
	}
	return out
}

func TestSwapSharedBlocksStayShared(t *testing.T) {
	m, err := paged.New(paged.Config{BlockSize: 4, NumBlocks: 9, HostBlocks: 8, DisableOffload: true})
	require.NoError(t, err)
	parent, _, err := m.Create(seqTokens(10, 1), nil) // 3 blocks, the last partial
	require.NoError(t, err)
	child, err := m.Fork(parent)
	require.NoError(t, err)
	stepDone(m) // the step that computes the prompt

	require.NoError(t, m.SwapOut(parent, child))
	require.NoError(t, m.Check())
	swaps := m.TakeSwaps(nil)
	assert.Equal(t, map[paged.SwapKind]int{paged.SwapOut: 3}, kinds(swaps), "shared blocks are copied once")
	st := m.Stats()
	assert.Equal(t, 3, st.Tiers.HostUsed)
	assert.Equal(t, 2, st.Tiers.Swapped)
	assert.Equal(t, 0, st.UsedBlocks)
	running, err := m.Running(parent)
	require.NoError(t, err)
	assert.False(t, running)

	// A filler evicts the device copies, so everything comes back by copy.
	filler, _, err := m.Create(seqTokens(32, 100), nil)
	require.NoError(t, err)
	a, need, err := m.CanSwapIn(parent, child)
	require.NoError(t, err)
	assert.Equal(t, paged.AdmitLater, a)
	assert.Equal(t, 3, need)
	require.NoError(t, m.Free(filler))

	require.NoError(t, m.SwapIn(parent, child))
	require.NoError(t, m.Check())
	swaps = m.TakeSwaps(swaps[:0])
	assert.Equal(t, map[paged.SwapKind]int{paged.SwapIn: 3}, kinds(swaps))
	pt, err := m.Table(parent)
	require.NoError(t, err)
	ct, err := m.Table(child)
	require.NoError(t, err)
	assert.Equal(t, pt, ct, "the group comes back sharing its blocks")
	assert.Equal(t, 3, m.Stats().UsedBlocks)
	assert.Equal(t, 0, m.Stats().Tiers.HostUsed)

	// Appending to the shared partial block still copies on write.
	require.NoError(t, m.Append(child, 99))
	var b paged.Batch
	require.NoError(t, m.BuildBatch(&b, []paged.Scheduled{{ID: child, NewTokens: 1}}))
	assert.Len(t, b.Copies, 1)
}

func TestSwapInReclaimsCachedBlocks(t *testing.T) {
	m, err := paged.New(paged.Config{BlockSize: 4, NumBlocks: 9, HostBlocks: 8})
	require.NoError(t, err)
	id, _, err := m.Create(seqTokens(10, 1), nil)
	require.NoError(t, err)
	stepDone(m)
	require.NoError(t, m.SwapOut(id))
	m.TakeSwaps(nil)
	// The two full blocks are still in the device prefix cache: only the
	// partial one is copied back.
	a, need, err := m.CanSwapIn(id)
	require.NoError(t, err)
	assert.Equal(t, 3, need, "reclaiming an evictable block still consumes it")
	dry, err := m.CanAdmit(id)
	require.NoError(t, err)
	assert.Equal(t, a, dry, "CanAdmit of a swapped-out sequence answers for SwapIn")
	require.NoError(t, m.SwapIn(id))
	assert.Equal(t, map[paged.SwapKind]int{paged.SwapIn: 1}, kinds(m.TakeSwaps(nil)))
	require.NoError(t, m.Check())
}

func TestSwapBadInput(t *testing.T) {
	plain, err := paged.New(paged.Config{BlockSize: 4, NumBlocks: 9})
	require.NoError(t, err)
	id, _, err := plain.Create(seqTokens(6, 1), nil)
	require.NoError(t, err)
	require.ErrorIs(t, plain.SwapOut(id), paged.ErrNoHostTier)
	require.ErrorIs(t, plain.SwapIn(id), paged.ErrNoHostTier)
	running, _ := plain.Running(id)
	assert.True(t, running)

	m, err := paged.New(paged.Config{BlockSize: 4, NumBlocks: 9, HostBlocks: 2})
	require.NoError(t, err)
	a, _, err := m.Create(seqTokens(6, 1), nil) // 2 blocks
	require.NoError(t, err)
	b, _, err := m.Create(seqTokens(6, 50), nil) // 2 more
	require.NoError(t, err)
	stepDone(m)
	before := m.Stats()
	require.ErrorIs(t, m.SwapOut(a, a), paged.ErrInvalid)
	require.ErrorIs(t, m.SwapOut(a, b), paged.ErrNoSpace, "4 blocks into a 2-block host tier")
	require.ErrorIs(t, m.SwapOut(), paged.ErrInvalid)
	require.ErrorIs(t, m.SwapIn(a), paged.ErrSequenceState, "a is running")
	assert.Equal(t, before, m.Stats())
	require.NoError(t, m.Check())

	require.NoError(t, m.SwapOut(a))
	before = m.Stats()
	require.ErrorIs(t, m.SwapOut(a), paged.ErrSequenceState, "swapped twice")
	require.ErrorIs(t, m.Append(a, 1), paged.ErrSequenceState)
	require.ErrorIs(t, m.Truncate(a, 1), paged.ErrSequenceState)
	_, err = m.Admit(a)
	require.ErrorIs(t, err, paged.ErrSequenceState)
	require.ErrorIs(t, m.Preempt(a), paged.ErrSequenceState)
	require.ErrorIs(t, m.ResetCache(), paged.ErrCacheInUse)
	assert.Equal(t, before, m.Stats())
	require.NoError(t, m.Check())

	require.NoError(t, m.Free(a))
	assert.Equal(t, 0, m.Stats().Tiers.HostUsed)
	assert.Equal(t, 0, m.Stats().Tiers.Swapped)
	require.NoError(t, m.Check())

	_, err = paged.New(paged.Config{NumBlocks: 9, HostBlocks: -1})
	require.ErrorIs(t, err, paged.ErrInvalid)
	_, err = paged.New(paged.Config{NumBlocks: 9, HostBlocks: 4, OffloadPriority: 101})
	require.ErrorIs(t, err, paged.ErrInvalid)
}

func TestOffloadAndOnboard(t *testing.T) {
	m, err := paged.New(paged.Config{BlockSize: 4, NumBlocks: 5, HostBlocks: 8, Events: 64})
	require.NoError(t, err)
	promptA := seqTokens(9, 1) // 2 full blocks + 1 partial
	a, _, err := m.Create(promptA, nil)
	require.NoError(t, err)
	require.NoError(t, m.Free(a))
	b, _, err := m.Create(seqTokens(16, 100), nil) // every device block: A's cache is evicted
	require.NoError(t, err)
	st := m.Stats()
	assert.EqualValues(t, 2, st.Tiers.Offloads)
	assert.Equal(t, 2, st.Tiers.HostCached)
	assert.Equal(t, map[paged.SwapKind]int{paged.Offload: 2}, kinds(m.TakeSwaps(nil)))
	require.NoError(t, m.Check())
	require.NoError(t, m.Free(b))

	a2, cached, err := m.Create(promptA, nil)
	require.NoError(t, err)
	assert.Equal(t, 8, cached, "the offloaded prefix is onboarded, not recomputed")
	st = m.Stats()
	assert.EqualValues(t, 2, st.Tiers.Onboards)
	assert.EqualValues(t, 2, st.Tiers.HostHitBlocks)
	assert.EqualValues(t, 0, st.PrefixHitBlocks-st.Tiers.HostHitBlocks, "no device hits")
	// Onboarding evicts B's cached blocks, which are offloaded in turn.
	swaps := m.TakeSwaps(nil)
	assert.Equal(t, map[paged.SwapKind]int{paged.Onboard: 2, paged.Offload: 3}, kinds(swaps))
	require.NoError(t, m.Check())

	moved := map[paged.Medium]int{} // blocks moved, by destination
	for _, e := range m.DrainEvents(nil) {
		if e.Kind == paged.BlockMoved {
			assert.NotEqual(t, e.From, e.Medium)
			moved[e.Medium] += len(e.Hashes)
		}
	}
	assert.Equal(t, map[paged.Medium]int{paged.Host: 5, paged.Device: 2}, moved)
	require.NoError(t, m.Free(a2))
}

func TestOffloadPriorityFloorAndHostEviction(t *testing.T) {
	for _, tc := range []struct {
		name     string
		priority int
		offloads uint64
	}{{"below floor", 40, 0}, {"at floor", 50, 2}} {
		t.Run(tc.name, func(t *testing.T) {
			m, err := paged.New(paged.Config{BlockSize: 4, NumBlocks: 5, HostBlocks: 1, OffloadPriority: 50})
			require.NoError(t, err)
			a, _, err := m.Create(seqTokens(9, 1), &paged.SeqOptions{Retention: &paged.Retention{Priority: tc.priority}})
			require.NoError(t, err)
			require.NoError(t, m.Free(a))
			_, _, err = m.Create(seqTokens(16, 100), nil)
			require.NoError(t, err)
			st := m.Stats()
			assert.Equal(t, tc.offloads, st.Tiers.Offloads)
			if tc.offloads > 0 {
				// One host block: the second offload evicted the first.
				assert.EqualValues(t, 1, st.Tiers.HostEvictions)
				assert.Equal(t, 1, st.Tiers.HostCached)
			}
			require.NoError(t, m.Check())
		})
	}
}

func TestOffloadHostPolicyFIFO(t *testing.T) {
	m, err := paged.New(paged.Config{BlockSize: 2, NumBlocks: 3, HostBlocks: 2, HostPolicy: eviction.NewFIFO})
	require.NoError(t, err)
	for i := range 6 {
		id, _, err := m.Create(seqTokens(3, int32(10*i)), nil)
		require.NoError(t, err)
		require.NoError(t, m.Free(id))
		require.NoError(t, m.Check())
	}
	st := m.Stats()
	assert.Equal(t, 2, st.Tiers.HostCached)
	assert.EqualValues(t, st.Tiers.Offloads-2, st.Tiers.HostEvictions)
}

func TestWindowMemoryBounded(t *testing.T) {
	const bs, window, n = 16, 256, 32768
	m, err := paged.New(paged.Config{BlockSize: bs, NumBlocks: 64, MaxModelLen: n})
	require.NoError(t, err)
	id, _, err := m.Create(seqTokens(bs, 1), &paged.SeqOptions{Window: window})
	require.NoError(t, err)
	peak := 0
	for i := bs; i < n; i++ {
		require.NoError(t, m.Append(id, int32(i%1000)))
		peak = max(peak, m.Stats().UsedBlocks)
		if i%4096 == 0 {
			require.NoError(t, m.Check())
		}
	}
	require.NoError(t, m.Check())
	table, err := m.Table(id)
	require.NoError(t, err)
	assert.Len(t, table, n/bs, "the table keeps its length")
	held := 0
	for _, b := range table {
		if b != 0 {
			held++
		}
	}
	// The window reaches ceil((W-1)/bs)+1 blocks, plus the block being filled.
	bound := (window-1+bs-1)/bs + 2
	assert.LessOrEqual(t, peak, bound)
	assert.LessOrEqual(t, held, bound)
	assert.Equal(t, 63, m.Stats().UsableBlocks, "a 32K-token sequence in a 63-block pool")

	_, err = m.Add(seqTokens(4, 1), &paged.SeqOptions{Window: n + 1})
	require.ErrorIs(t, err, paged.ErrInvalid, "a window larger than the context")
	_, err = m.Add(seqTokens(4, 1), &paged.SeqOptions{Window: -1})
	require.ErrorIs(t, err, paged.ErrInvalid)
	require.ErrorIs(t, m.Truncate(id, bs), paged.ErrInvalid, "truncating into the released part")
}

func TestWindowPrefixHitNeedsOnlyTheWindow(t *testing.T) {
	m, err := paged.New(paged.Config{BlockSize: 4, NumBlocks: 32})
	require.NoError(t, err)
	h := func(i int) paged.Hash { var x paged.Hash; x[0], x[1] = byte(i), 7; return x }
	full := []paged.Hash{h(0), h(1), h(2), h(3), h(4), h(5)}
	other := []paged.Hash{h(10), h(11), h(12), h(3), h(4), h(5)} // same tail, other head
	y, _, err := m.CreateFromHashes(other, 24, nil)
	require.NoError(t, err)
	require.NoError(t, m.Free(y))

	// Full attention needs the head: no hit.
	_, cached, err := m.CreateFromHashes(full, 24, nil)
	require.NoError(t, err)
	assert.Equal(t, 0, cached)

	// Window 8: computing from position 20 reads positions 13..20, blocks 3
	// and 4, which are cached.
	w, cached, err := m.CreateFromHashes(full, 24, &paged.SeqOptions{Window: 8})
	require.NoError(t, err)
	assert.Equal(t, 20, cached)
	table, err := m.Table(w)
	require.NoError(t, err)
	assert.Equal(t, []int32{0, 0, 0}, []int32{int32(table[0]), int32(table[1]), int32(table[2])})
	assert.NotZero(t, table[3])
	require.NoError(t, m.Check())
}

func TestWindowSwapAndFork(t *testing.T) {
	m, err := paged.New(paged.Config{BlockSize: 4, NumBlocks: 16, HostBlocks: 16})
	require.NoError(t, err)
	id, _, err := m.Create(seqTokens(8, 1), &paged.SeqOptions{Window: 6})
	require.NoError(t, err)
	for i := range 20 {
		require.NoError(t, m.Append(id, int32(100+i)))
	}
	child, err := m.Fork(id)
	require.NoError(t, err)
	require.NoError(t, m.Check())
	stepDone(m)
	require.NoError(t, m.SwapOut(id, child))
	require.NoError(t, m.Check())
	require.NoError(t, m.SwapIn(child, id))
	require.NoError(t, m.Check())
	pt, _ := m.Table(id)
	ct, _ := m.Table(child)
	assert.Equal(t, pt, ct)
	assert.Zero(t, pt[0])
	require.NoError(t, m.Preempt(child))
	require.NoError(t, m.Check())
}

// BenchmarkSwap32K swaps a 32K-token sequence (2,048 blocks of 16) out and
// back in, with the directives drained as a server would each step.
func BenchmarkSwap32K(b *testing.B) {
	const blocks, bs = 2048, 16
	m, err := paged.New(paged.Config{BlockSize: bs, NumBlocks: blocks + 1, HostBlocks: blocks, DisablePrefixCaching: true})
	require.NoError(b, err)
	id, _, err := m.Create(seqTokens(blocks*bs, 0), nil)
	require.NoError(b, err)
	buf := make([]paged.Swap, 0, blocks)
	b.ReportAllocs()
	for b.Loop() {
		_ = m.SwapOut(id)
		buf = m.TakeSwaps(buf[:0])
		_ = m.SwapIn(id)
		buf = m.TakeSwaps(buf[:0])
	}
	b.ReportMetric(float64(b.Elapsed().Nanoseconds())/float64(b.N)/(2*blocks), "ns/block")
	b.ReportMetric(float64(b.Elapsed().Nanoseconds())/float64(b.N)/(2*blocks)/probe.MemoryWalk(), "x-memwalk")
}

func TestSwapAllocationFree(t *testing.T) {
	const blocks, bs = 2048, 16
	m, err := paged.New(paged.Config{BlockSize: bs, NumBlocks: blocks + 1, HostBlocks: blocks, DisablePrefixCaching: true})
	require.NoError(t, err)
	id, _, err := m.Create(seqTokens(blocks*bs, 0), nil)
	require.NoError(t, err)
	buf := make([]paged.Swap, 0, blocks)
	var errs [2]error
	cycle := func() {
		errs[0] = m.SwapOut(id)
		buf = m.TakeSwaps(buf[:0])
		errs[1] = m.SwapIn(id)
		buf = m.TakeSwaps(buf[:0])
	}
	cycle() // grows the directive and host-table buffers
	allocs := testing.AllocsPerRun(20, cycle)
	require.NoError(t, errs[0])
	require.NoError(t, errs[1])
	assert.Zero(t, allocs)
	assert.Len(t, buf, blocks)
	require.NoError(t, m.Check())
}

func TestOnboardAheadOfAdmission(t *testing.T) {
	plain, err := paged.New(paged.Config{BlockSize: 4, NumBlocks: 5})
	require.NoError(t, err)
	w, err := plain.Add(seqTokens(9, 1), nil)
	require.NoError(t, err)
	_, err = plain.Onboard(w)
	require.ErrorIs(t, err, paged.ErrNoHostTier, "onboarding with no host tier")

	m, err := paged.New(paged.Config{BlockSize: 4, NumBlocks: 5, HostBlocks: 8})
	require.NoError(t, err)
	prompt := seqTokens(9, 1)
	a, _, err := m.Create(prompt, nil)
	require.NoError(t, err)
	_, err = m.Onboard(a)
	require.ErrorIs(t, err, paged.ErrSequenceState)
	require.NoError(t, m.Free(a))
	b, _, err := m.Create(seqTokens(16, 100), nil) // evicts and offloads a's 2 blocks
	require.NoError(t, err)
	require.EqualValues(t, 2, m.Stats().Tiers.Offloads)
	m.TakeSwaps(nil)

	w, err = m.Add(prompt, nil)
	require.NoError(t, err)
	before := m.Stats()
	_, err = m.Onboard(w)
	require.ErrorIs(t, err, paged.ErrNoSpace, "b holds every device block")
	assert.Equal(t, before.Tiers, m.Stats().Tiers)
	require.NoError(t, m.Free(b))

	n, err := m.Onboard(w)
	require.NoError(t, err)
	assert.Equal(t, 2, n)
	assert.Equal(t, 2, kinds(m.TakeSwaps(nil))[paged.Onboard])
	require.NoError(t, m.Check())
	st := m.Stats()
	assert.Equal(t, 4, st.CachedBlocks, "a's 2 blocks are back in the device cache beside 2 of b's")
	cached, err := m.Admit(w)
	require.NoError(t, err)
	assert.Equal(t, 8, cached)
	assert.Empty(t, kinds(m.TakeSwaps(nil))[paged.Onboard], "admission finds it on the device")
	require.NoError(t, m.Check())
}

// TestOffloadChurnAllocatesNothing: prompts that cycle through a device
// pool too small for them are offloaded and onboarded over and over; once
// the buffers have grown this allocates nothing.
func TestOffloadChurnAllocatesNothing(t *testing.T) {
	m, err := paged.New(paged.Config{BlockSize: 4, NumBlocks: 5, HostBlocks: 64})
	require.NoError(t, err)
	prompts := make([][]int32, 8)
	for i := range prompts {
		prompts[i] = seqTokens(9, int32(100*i))
	}
	buf := make([]paged.Swap, 0, 64)
	var errs []error
	i := 0
	step := func() {
		id, _, err := m.Create(prompts[i%len(prompts)], nil)
		if err == nil {
			err = m.Free(id)
		}
		if err != nil {
			errs = append(errs, err)
		}
		buf = m.TakeSwaps(buf[:0])
		i++
	}
	for range 64 {
		step()
	}
	allocs := testing.AllocsPerRun(200, step)
	require.Empty(t, errs)
	assert.Zero(t, allocs)
	st := m.Stats().Tiers
	assert.Greater(t, st.Onboards, uint64(200), "every prompt comes back from the host")
	assert.Greater(t, st.Offloads, uint64(200))
	require.NoError(t, m.Check())
}

// BenchmarkOffloadChurn: one Create+Free of a 2-block prompt that is always
// onboarded from the host and whose predecessor is offloaded.
func BenchmarkOffloadChurn(b *testing.B) {
	m, err := paged.New(paged.Config{BlockSize: 16, NumBlocks: 5, HostBlocks: 64})
	require.NoError(b, err)
	prompts := make([][]int32, 8)
	for i := range prompts {
		prompts[i] = seqTokens(33, int32(100*i))
	}
	buf := make([]paged.Swap, 0, 64)
	i := 0
	b.ReportAllocs()
	for b.Loop() {
		id, _, _ := m.Create(prompts[i%len(prompts)], nil)
		_ = m.Free(id)
		buf = m.TakeSwaps(buf[:0])
		i++
	}
	st := m.Stats().Tiers
	b.ReportMetric(float64(st.Onboards)/float64(b.N), "onboards/op")
}

// TestDirectiveOrderWithinOneStep: a copy-on-write source freed by a
// swap-out and reused by a swap-in in the same step. The copy must read
// the source before the swap-in overwrites it, which the ordered stream
// (the copy folded into Batch.Swaps ahead of the swap-in) guarantees.
func TestDirectiveOrderWithinOneStep(t *testing.T) {
	m, err := paged.New(paged.Config{BlockSize: 4, NumBlocks: 16, HostBlocks: 16, DisablePrefixCaching: true})
	require.NoError(t, err)
	s := &machine{m: m, bs: 4, shadow: shadowKV{bs: 4, slot: map[int64]uint64{}},
		host: &hostShadow{slot: map[int64]uint64{}}}
	xTokens, pTokens := seqTokens(6, 1), seqTokens(6, 50)
	x, _, err := m.Create(xTokens, nil)
	require.NoError(t, err)
	s.shadow.write(t, m, x, 0, xTokens, 0)
	s.flushCopies(nil) // the step that computed x's prompt
	require.NoError(t, m.SwapOut(x))
	s.flushCopies(nil)
	p, _, err := m.Create(pTokens, nil)
	require.NoError(t, err)
	s.shadow.write(t, m, p, 0, pTokens, 0)
	c, err := m.Fork(p)
	require.NoError(t, err)
	s.flushCopies(nil)

	// One step: the child appends (copying the shared last block), the
	// parent is swapped out (freeing that block), x is swapped in (reusing it).
	require.NoError(t, m.Append(c, 99))
	require.NoError(t, m.SwapOut(p))
	require.NoError(t, m.SwapIn(x))
	var b paged.Batch
	require.NoError(t, m.BuildBatch(&b, []paged.Scheduled{{ID: c, NewTokens: 1}}))
	// The server: the stream in order, then the copies, then the kernels.
	for _, d := range b.Swaps {
		s.applyOne(d)
	}
	s.shadow.apply(b.Copies)
	cTokens := append(seqTokens(6, 50), 99)
	s.shadow.write(t, m, c, 0, cTokens, 6)
	s.shadow.readBack(t, m, c, 0, cTokens, 7)
	s.shadow.readBack(t, m, x, 0, xTokens, 6)
	require.NoError(t, m.SwapIn(p))
	s.flushCopies(nil)
	s.shadow.readBack(t, m, p, 0, pTokens, 6)
	require.NoError(t, m.Check())
}

// TestSwapInSharedBlockCommittedByOneSequence: a fork group shares a block
// that one member counts as committed (it accepted speculative tokens the
// other has not); swapping the group back in must commit that block for it,
// whichever member comes first.
func TestSwapInSharedBlockCommittedByOneSequence(t *testing.T) {
	m, err := paged.New(paged.Config{BlockSize: 4, NumBlocks: 5, HostBlocks: 8, DisableOffload: true})
	require.NoError(t, err)
	p, _, err := m.Create([]int32{1, 2}, nil)
	require.NoError(t, err)
	require.NoError(t, m.AppendSpeculative(p, 3, 4))
	c, err := m.Fork(p)
	require.NoError(t, err)
	require.NoError(t, m.AcceptSpeculative(p, 2)) // p commits the shared block; c has not
	stepDone(m)
	require.NoError(t, m.SwapOut(c, p))
	filler, _, err := m.Create(seqTokens(16, 100), nil) // evicts the device copy
	require.NoError(t, err)
	require.NoError(t, m.Free(filler))
	require.NoError(t, m.SwapIn(c, p))
	require.NoError(t, m.Check())
	pt, _ := m.Table(p)
	ct, _ := m.Table(c)
	assert.Equal(t, pt, ct)
}
