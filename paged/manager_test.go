package paged_test

import (
	"testing"

	"github.com/stretchr/testify/assert"
	"github.com/stretchr/testify/require"

	"github.com/pagedkv/pagedkv/allocator"
	"github.com/pagedkv/pagedkv/paged"
)

func TestConfigValidation(t *testing.T) {
	for _, tc := range []struct {
		name  string
		cfg   paged.Config
		field string
	}{
		{"no blocks", paged.Config{}, "NumBlocks"},
		{"only the null block", paged.Config{NumBlocks: 1}, "NumBlocks"},
		{"negative block size", paged.Config{NumBlocks: 8, BlockSize: -1}, "BlockSize"},
		{"watermark 1", paged.Config{NumBlocks: 8, Watermark: 1}, "Watermark"},
		{"negative events", paged.Config{NumBlocks: 8, Events: -1}, "Events"},
		{"negative max len", paged.Config{NumBlocks: 8, MaxModelLen: -1}, "MaxModelLen"},
	} {
		t.Run(tc.name, func(t *testing.T) {
			_, err := paged.New(tc.cfg)
			require.ErrorIs(t, err, paged.ErrInvalid)
			assert.Contains(t, err.Error(), tc.field)
		})
	}
	m, err := paged.New(paged.Config{NumBlocks: 8})
	require.NoError(t, err)
	assert.Equal(t, 16, m.BlockSize(), "default block size")
	assert.Equal(t, 7*16, m.Config().MaxModelLen)
}

// TestBadInputChangesNothing: every call with bad input returns its
// sentinel and leaves the manager exactly as it was.
func TestBadInputChangesNothing(t *testing.T) {
	m, err := paged.New(paged.Config{BlockSize: 4, NumBlocks: 5, MaxModelLen: 64})
	require.NoError(t, err)
	live, _, err := m.Create(seqOf(1, 6), nil)
	require.NoError(t, err)
	freed, _, err := m.Create([]int32{9}, nil)
	require.NoError(t, err)
	require.NoError(t, m.Free(freed))
	waiting, err := m.Add([]int32{5, 6}, nil)
	require.NoError(t, err)
	before := m.Stats()

	for _, tc := range []struct {
		name string
		err  error
		call func() error
	}{
		{"empty prompt", paged.ErrInvalid, func() error { _, _, err := m.Create(nil, nil); return err }},
		{"prompt too long", paged.ErrNever, func() error { _, _, err := m.Create(seqOf(1, 65), nil); return err }},
		{"no space", paged.ErrNoSpace, func() error { _, _, err := m.Create(seqOf(100, 12), nil); return err }},
		{"zero handle", paged.ErrUnknownSequence, func() error { return m.Append(0, 1) }},
		{"never issued", paged.ErrUnknownSequence, func() error { return m.Append(paged.SeqID(1<<32|99), 1) }},
		{"append to freed", paged.ErrUnknownSequence, func() error { return m.Append(freed, 1) }},
		{"free twice", paged.ErrUnknownSequence, func() error { return m.Free(freed) }},
		{"fork freed", paged.ErrUnknownSequence, func() error { _, err := m.Fork(freed); return err }},
		{"no tokens", paged.ErrInvalid, func() error { return m.Append(live) }},
		// Longer than the 16 tokens the pool holds: never, whatever is freed.
		{"append past the pool", paged.ErrNever, func() error { return m.Append(live, seqOf(1, 11)...) }},
		{"append past max len", paged.ErrNever, func() error { return m.Append(live, seqOf(1, 59)...) }},
		{"truncate past the end", paged.ErrInvalid, func() error { return m.Truncate(live, 7) }},
		{"truncate to zero", paged.ErrInvalid, func() error { return m.Truncate(live, 0) }},
		{"fork a waiting sequence", paged.ErrSequenceState, func() error { _, err := m.Fork(waiting); return err }},
		{"admit a running one", paged.ErrSequenceState, func() error { _, err := m.Admit(live); return err }},
		{"preempt a waiting one", paged.ErrSequenceState, func() error { return m.Preempt(waiting) }},
		{"slot past the end", paged.ErrInvalid, func() error { _, err := m.Slot(live, 6); return err }},
		{"slot of a waiting one", paged.ErrSequenceState, func() error { _, err := m.Slot(waiting, 0); return err }},
		{"accept more than drafted", paged.ErrInvalid, func() error { return m.AcceptSpeculative(live, 1) }},
		{"negative priority", paged.ErrInvalid, func() error {
			_, err := m.Add([]int32{1}, &paged.SeqOptions{Retention: &paged.Retention{Priority: -1}})
			return err
		}},
		{"negative LoRA", paged.ErrInvalid, func() error { _, err := m.Add([]int32{1}, &paged.SeqOptions{LoRA: -2}); return err }},
		{"batch of a waiting one", paged.ErrSequenceState, func() error {
			return m.BuildBatch(&paged.Batch{}, []paged.Scheduled{{ID: waiting, NewTokens: 1}})
		}},
		{"batch twice the same", paged.ErrInvalid, func() error {
			return m.BuildBatch(&paged.Batch{}, []paged.Scheduled{{ID: live, NewTokens: 1}, {ID: live, NewTokens: 1}})
		}},
		{"batch zero new tokens", paged.ErrInvalid, func() error {
			return m.BuildBatch(&paged.Batch{}, []paged.Scheduled{{ID: live, NewTokens: 0}})
		}},
	} {
		t.Run(tc.name, func(t *testing.T) {
			err := tc.call()
			require.ErrorIs(t, err, tc.err)
			after := m.Stats()
			after.PrefixQueries, after.PrefixQueryTokens, after.PrefixHitTokens = before.PrefixQueries, before.PrefixQueryTokens, before.PrefixHitTokens
			after.PrefixQueryBlocks, after.PrefixHitBlocks = before.PrefixQueryBlocks, before.PrefixHitBlocks
			// Work counters: a Create refused for space has still hashed its prompt.
			after.BlocksHashed = before.BlocksHashed
			assert.Equal(t, before, after)
			n, err := m.Len(live)
			require.NoError(t, err)
			assert.Equal(t, 6, n)
			require.NoError(t, m.Check())
		})
	}
}

func TestForkCopyOnWrite(t *testing.T) {
	m, err := paged.New(paged.Config{BlockSize: 4, NumBlocks: 16})
	require.NoError(t, err)
	parent, _, err := m.Create(seqOf(1, 6), nil) // blocks [1 2], block 2 half full
	require.NoError(t, err)
	child, err := m.Fork(parent)
	require.NoError(t, err)
	assert.Equal(t, table(t, m, parent), table(t, m, child), "a fork shares every block")
	assert.Equal(t, 2, m.Stats().UsedBlocks)

	require.NoError(t, m.Append(child, 50))
	copies := m.TakeCopies(nil)
	require.Len(t, copies, 1, "the first write into the shared block copies it")
	assert.Equal(t, paged.Copy{Src: 2, Dst: copies[0].Dst}, copies[0])
	assert.Equal(t, []allocator.BlockID{1, copies[0].Dst}, table(t, m, child))
	assert.Equal(t, []allocator.BlockID{1, 2}, table(t, m, parent))

	require.NoError(t, m.Append(parent, 60))
	assert.Empty(t, m.TakeCopies(nil), "the parent is now the only owner: no copy")
	assert.EqualValues(t, 1, m.Stats().Copies)

	// A full shared block is never written: appending starts a new block.
	require.NoError(t, m.Append(parent, 61))
	c2, err := m.Fork(parent)
	require.NoError(t, err)
	require.NoError(t, m.Append(c2, 70))
	assert.Empty(t, m.TakeCopies(nil))
	require.NoError(t, m.Check())
}

func TestTruncateReleasesTailFirst(t *testing.T) {
	m, err := paged.New(paged.Config{BlockSize: 2, NumBlocks: 8, DisablePrefixCaching: true})
	require.NoError(t, err)
	a, _, err := m.Create(seqOf(1, 7), nil) // blocks 1..4
	require.NoError(t, err)
	require.NoError(t, m.Truncate(a, 3))
	assert.Equal(t, []allocator.BlockID{1, 2}, table(t, m, a))
	// LIFO free list: block 3 was released after block 4, so it comes back first.
	b, _, err := m.Create([]int32{9}, nil)
	require.NoError(t, err)
	assert.Equal(t, []allocator.BlockID{3}, table(t, m, b))
	require.NoError(t, m.Check())
}

func TestSpeculativeTokensAreNeverCached(t *testing.T) {
	m, err := paged.New(paged.Config{BlockSize: 2, NumBlocks: 16})
	require.NoError(t, err)
	a, _, err := m.Create([]int32{1, 2, 3}, nil)
	require.NoError(t, err)
	stored := m.Stats().BlocksStored
	require.NoError(t, m.AppendSpeculative(a, 4, 5, 6))
	assert.Equal(t, stored, m.Stats().BlocksStored, "draft tokens fill blocks but are not committed")
	require.NoError(t, m.AcceptSpeculative(a, 1)) // keep 4, drop 5 6
	n, _ := m.Len(a)
	assert.Equal(t, 4, n)
	assert.Equal(t, stored+1, m.Stats().BlocksStored, "the accepted token completed block [3 4]")
	require.NoError(t, m.Check())
}

func TestWatermark(t *testing.T) {
	m, err := paged.New(paged.Config{BlockSize: 1, NumBlocks: 11, Watermark: 0.2, DisablePrefixCaching: true})
	require.NoError(t, err)
	assert.Equal(t, paged.AdmitOK, m.CanAdmitTokens(8))
	assert.Equal(t, paged.AdmitNever, m.CanAdmitTokens(9), "10 usable blocks minus 2 of headroom")
	a, _, err := m.Create(seqOf(1, 8), nil)
	require.NoError(t, err)
	assert.Equal(t, paged.AdmitLater, m.CanAdmitTokens(1))
	require.NoError(t, m.Append(a, 1, 2), "running sequences may use the headroom")
	require.NoError(t, m.Check())
}

func TestPreemptAndResume(t *testing.T) {
	m, err := paged.New(paged.Config{BlockSize: 4, NumBlocks: 5})
	require.NoError(t, err)
	a, _, err := m.Create(seqOf(1, 9), nil)
	require.NoError(t, err)
	require.NoError(t, m.Preempt(a))
	require.NoError(t, m.Append(a, 10, 11)) // sampled before preemption
	assert.Equal(t, 0, m.Stats().UsedBlocks)
	cached, err := m.Admit(a)
	require.NoError(t, err)
	assert.Equal(t, 8, cached, "the blocks it released are still cached")
	n, _ := m.Len(a)
	assert.Equal(t, 11, n)
	require.NoError(t, m.Check())
}

func TestBuildBatch(t *testing.T) {
	m, err := paged.New(paged.Config{BlockSize: 2, NumBlocks: 32, MaxModelLen: 64})
	require.NoError(t, err)
	a, _, err := m.Create([]int32{1, 2, 3}, nil)
	require.NoError(t, err)
	b, _, err := m.Create([]int32{7}, nil)
	require.NoError(t, err)
	batch := paged.Batch{Stride: 4}
	require.NoError(t, m.BuildBatch(&batch, []paged.Scheduled{{ID: a, NewTokens: 3}, {ID: b, NewTokens: 1}}))
	assert.Equal(t, 4, batch.Stride)
	assert.Equal(t, []int32{1, 2, 0, 0, 3, 0, 0, 0}, batch.Tables)
	assert.Equal(t, []int32{3, 1}, batch.SeqLens)
	assert.Equal(t, []int64{2, 3, 4, 6}, batch.Slots)
	assert.Equal(t, []int32{0, 3, 4}, batch.QueryStart)

	// Next step: a forks and both decode; a writes first, so a copies the
	// shared block and the child keeps it.
	c, err := m.Fork(a)
	require.NoError(t, err)
	require.NoError(t, m.Append(a, 4))
	require.NoError(t, m.Append(c, 5))
	require.NoError(t, m.Append(b, 8))
	require.NoError(t, m.BuildBatch(&batch, []paged.Scheduled{{ID: a, NewTokens: 1}, {ID: c, NewTokens: 1}, {ID: b, NewTokens: 1}}))
	at := table(t, m, a)
	assert.Equal(t, []allocator.BlockID{1, 2}, table(t, m, c))
	assert.Equal(t, []int32{1, int32(at[1]), 0, 0, 1, 2, 0, 0, 3, 0, 0, 0}, batch.Tables)
	require.Len(t, batch.Copies, 1)
	assert.Equal(t, paged.Copy{Src: 2, Dst: at[1]}, batch.Copies[0])
	assert.Equal(t, []int64{int64(at[1])*2 + 1, 2*2 + 1, 3*2 + 1}, batch.Slots)

	// b finishes; the row that held it now holds a different sequence, and
	// a shrinking row leaves padding behind, not stale IDs.
	require.NoError(t, m.Free(b))
	require.NoError(t, m.Truncate(a, 1))
	require.NoError(t, m.BuildBatch(&batch, []paged.Scheduled{{ID: c, NewTokens: 1}, {ID: a, NewTokens: 1}}))
	assert.Equal(t, []int32{1, 2, 0, 0, 1, 0, 0, 0}, batch.Tables)
	assert.Empty(t, batch.Copies)
	require.NoError(t, m.Check())

	// A fixed stride refuses a wider sequence; an automatic one grows.
	require.NoError(t, m.Append(a, seqOf(1, 9)...))
	assert.ErrorIs(t, m.BuildBatch(&batch, []paged.Scheduled{{ID: a, NewTokens: 1}}), paged.ErrInvalid)
	var auto paged.Batch
	require.NoError(t, m.BuildBatch(&auto, []paged.Scheduled{{ID: c, NewTokens: 1}}))
	assert.Equal(t, 16, auto.Stride)
	long, _, err := m.Create(seqOf(1, 40), nil)
	require.NoError(t, err)
	require.NoError(t, m.BuildBatch(&auto, []paged.Scheduled{{ID: c, NewTokens: 1}, {ID: long, NewTokens: 1}}))
	assert.Equal(t, 32, auto.Stride)
	assert.Equal(t, []int32{1, 2, 0, 0}, auto.Tables[:4])
	lt := table(t, m, long)
	assert.Equal(t, int32(lt[19]), auto.Tables[32+19])
	assert.Zero(t, auto.Tables[32+20])
}

// TestDecodeStepAllocatesNothing: the serving hot path, append one token to
// every running sequence and build the batch, allocates nothing once the
// buffers have grown, with prefix caching on.
func TestDecodeStepAllocatesNothing(t *testing.T) {
	for _, caching := range []bool{true, false} {
		m, sched := decodeSetup(t, 64, 16, 1<<14, !caching)
		var batch paged.Batch
		steps := 0
		step := func() {
			for _, sc := range sched {
				if err := m.Append(sc.ID, int32(steps)); err != nil {
					panic(err)
				}
			}
			if err := m.BuildBatch(&batch, sched); err != nil {
				panic(err)
			}
			steps++
			if steps%64 == 0 { // keep sequences short: roll back
				for _, sc := range sched {
					if err := m.Truncate(sc.ID, 100); err != nil {
						panic(err)
					}
				}
			}
		}
		for range 200 {
			step()
		}
		allocs := testing.AllocsPerRun(500, step)
		assert.Zero(t, allocs, "caching %v", caching)
		require.NoError(t, m.Check())
	}
}

// decodeSetup returns a manager with n running sequences of 100 tokens.
func decodeSetup(tb testing.TB, n, bs, blocks int, noCache bool) (*paged.Manager, []paged.Scheduled) {
	m, err := paged.New(paged.Config{BlockSize: bs, NumBlocks: blocks, DisablePrefixCaching: noCache})
	require.NoError(tb, err)
	sched := make([]paged.Scheduled, n)
	for i := range sched {
		id, _, err := m.Create(seqOf(i*1000, 100), &paged.SeqOptions{MaxTokens: 100 + 256})
		require.NoError(tb, err)
		sched[i] = paged.Scheduled{ID: id, NewTokens: 1}
	}
	return m, sched
}

func TestBuildBatchSplitPlan(t *testing.T) {
	m, sched := decodeSetup(t, 8, 16, 256, false)
	batch := paged.Batch{SplitUnits: 4, SplitMinChunk: 2}
	require.NoError(t, m.BuildBatch(&batch, sched))
	assert.Equal(t, []int32{7, 7, 7, 7, 7, 7, 7, 7}, batch.BlocksPerSeq)
	require.NoError(t, batch.Split.Check(batch.BlocksPerSeq))
	assert.EqualValues(t, 56, batch.Split.TotalBlocks)
	assert.LessOrEqual(t, float64(batch.Split.MaxUnitBlocks), batch.Split.Ideal()+2)
	allocs := testing.AllocsPerRun(100, func() {
		if err := m.BuildBatch(&batch, sched); err != nil {
			panic(err)
		}
	})
	assert.Zero(t, allocs)
	bad := paged.Batch{SplitUnits: -1}
	assert.ErrorIs(t, m.BuildBatch(&bad, sched), paged.ErrInvalid)
}
