package paged_test

import (
	"testing"

	"github.com/stretchr/testify/assert"
	"github.com/stretchr/testify/require"

	"github.com/pagedkv/pagedkv/paged"
)

// a66Check checks b, just built for sched, against the manager: each row
// is its sequence's table padded with the null block, each new token's
// slot is the one Slot names, the lengths and query offsets add up, and,
// with a split plan, each sequence's FirstBlocks entry is the block the
// window of its first new token reaches (0 without a window).
func a66Check(t *testing.T, m *paged.Manager, b *paged.Batch, sched []paged.Scheduled, windows map[paged.SeqID]int) {
	t.Helper()
	require.Len(t, b.Seqs, len(sched))
	require.Len(t, b.Tables, len(sched)*b.Stride)
	require.Equal(t, int32(0), b.QueryStart[0], "QueryStart[0]")
	bs := m.BlockSize()
	for i, sc := range sched {
		table, err := m.Table(sc.ID)
		require.NoError(t, err)
		toks, err := m.Tokens(sc.ID)
		require.NoError(t, err)
		row := b.Tables[i*b.Stride : (i+1)*b.Stride]
		for k := range row {
			want := int32(0)
			if k < len(table) {
				want = int32(table[k])
			}
			require.Equal(t, want, row[k], "row %d entry %d (table %v)", i, k, table)
		}
		assert.Equal(t, sc.ID, b.Seqs[i])
		assert.Equal(t, int32(len(toks)), b.SeqLens[i])
		assert.Equal(t, int32(sc.NewTokens), b.QueryLens[i])
		assert.Equal(t, int32(len(table)), b.BlocksPerSeq[i])
		require.Equal(t, b.QueryStart[i]+int32(sc.NewTokens), b.QueryStart[i+1], "QueryStart[%d]", i+1)
		for j, sl := range b.Slots[b.QueryStart[i]:b.QueryStart[i+1]] {
			want, err := m.Slot(sc.ID, len(toks)-sc.NewTokens+j)
			require.NoError(t, err)
			require.Equal(t, want, sl, "slot %d of row %d", j, i)
		}
		if b.SplitUnits > 0 {
			first := 0
			if w := windows[sc.ID]; w > 0 {
				first = max(0, len(toks)-sc.NewTokens-w+1) / bs
			}
			assert.Equal(t, int32(first), b.FirstBlocks[i], "FirstBlocks[%d]", i)
		}
	}
}

// TestAudit66CallerChangesTheBatch: a Batch's rows persist from call to
// call, so what the caller may change between calls must be taken: a new
// fixed Stride (M952: the rows stayed laid out 16 wide, and row 0 of
// the 32-wide table showed row 1's entries), a Stride set back to automatic,
// Tables replaced by a shorter slice (M953: the rows took themselves as
// written), a QueryStart[0] overwritten (M967); and an automatic Stride
// is the smallest power of two that fits (M954: 32 blocks made it 64).
func TestAudit66CallerChangesTheBatch(t *testing.T) {
	m, err := paged.New(paged.Config{BlockSize: 2, NumBlocks: 128, MaxModelLen: 128})
	require.NoError(t, err)
	a, _, err := m.Create([]int32{1, 2, 3}, nil)
	require.NoError(t, err)
	c, _, err := m.Create(seqOf(100, 9), nil)
	require.NoError(t, err)
	sched := []paged.Scheduled{{ID: a, NewTokens: 3}, {ID: c, NewTokens: 9}}
	b := paged.Batch{Stride: 16}
	require.NoError(t, m.BuildBatch(&b, sched))
	a66Check(t, m, &b, sched, nil)
	next := []paged.Scheduled{{ID: a, NewTokens: 1}, {ID: c, NewTokens: 1}}
	step := func(stride int) {
		t.Helper()
		require.NoError(t, m.Append(a, 7))
		require.NoError(t, m.Append(c, 8))
		b.Stride = stride
		require.NoError(t, m.BuildBatch(&b, next))
		a66Check(t, m, &b, next, nil)
	}
	step(32)
	assert.Equal(t, 32, b.Stride, "the caller's new width")
	step(0)
	assert.Equal(t, 16, b.Stride, "automatic again: the smallest that fits")
	b.Tables = make([]int32, 0, 4) // the caller's own, shorter
	step(16)
	b.QueryStart[0] = 7 // the caller's to modify
	step(16)
	// Exactly 32 blocks: an automatic width of 32.
	long, _, err := m.Create(seqOf(1000, 64), nil)
	require.NoError(t, err)
	var auto paged.Batch
	one := []paged.Scheduled{{ID: long, NewTokens: 1}}
	require.NoError(t, m.BuildBatch(&auto, one))
	assert.Equal(t, 32, auto.Stride, "32 blocks fit a width of 32")
	a66Check(t, m, &auto, one, nil)
	require.NoError(t, m.Check())
}

// TestAudit66FirstBlocks: with a split plan, FirstBlocks names, for each
// scheduled sequence, the first block the window of its first new token
// reaches: a chunk of 6 new tokens after 12 (window 4, blocks of 2)
// reads from block (12-3)/2 = 4, not from where its last token's window
// starts (block 7, M956); and a sequence without a window in a row a
// windowed one held the step before reads from block 0 (M955 kept the
// old entry).
func TestAudit66FirstBlocks(t *testing.T) {
	m, err := paged.New(paged.Config{BlockSize: 2, NumBlocks: 128, MaxModelLen: 128})
	require.NoError(t, err)
	w, _, err := m.Create(seqOf(1, 12), &paged.SeqOptions{Window: 4})
	require.NoError(t, err)
	a, _, err := m.Create(seqOf(100, 12), nil)
	require.NoError(t, err)
	windows := map[paged.SeqID]int{w: 4}
	b := paged.Batch{SplitUnits: 2}
	first := []paged.Scheduled{{ID: w, NewTokens: 12}, {ID: a, NewTokens: 12}}
	require.NoError(t, m.BuildBatch(&b, first))
	a66Check(t, m, &b, first, windows)
	require.NoError(t, m.Append(w, seqOf(500, 6)...))
	require.NoError(t, m.Append(a, 9))
	chunk := []paged.Scheduled{{ID: w, NewTokens: 6}, {ID: a, NewTokens: 1}}
	require.NoError(t, m.BuildBatch(&b, chunk))
	a66Check(t, m, &b, chunk, windows)
	assert.Equal(t, int32(4), b.FirstBlocks[0])
	require.NoError(t, m.Append(w, 10))
	require.NoError(t, m.Append(a, 11))
	swapped := []paged.Scheduled{{ID: a, NewTokens: 1}, {ID: w, NewTokens: 1}}
	require.NoError(t, m.BuildBatch(&b, swapped))
	a66Check(t, m, &b, swapped, windows)
	require.NoError(t, b.Split.CheckFrom(b.FirstBlocks, b.BlocksPerSeq))
	require.NoError(t, m.Check())
}

// TestAudit66DraftStartRewritten: with State groups, DraftStart is the
// caller's to modify between calls, like the other per-step rows; the
// next BuildBatch writes it whole, its first entry 0 included (M978 left
// the caller's value there).
func TestAudit66DraftStartRewritten(t *testing.T) {
	m, err := paged.New(paged.Config{BlockSize: 4, NumBlocks: 64,
		Groups: []paged.Group{{}, {Kind: paged.State, Pages: 2}}})
	require.NoError(t, err)
	a, _, err := m.Create(seqOf(1, 6), nil)
	require.NoError(t, err)
	var b paged.Batch
	sched := []paged.Scheduled{{ID: a, NewTokens: 6}}
	require.NoError(t, m.BuildBatch(&b, sched))
	require.Equal(t, []int32{0, 0}, b.DraftStart)
	b.DraftStart[0] = 3
	require.NoError(t, m.Append(a, 7))
	sched[0].NewTokens = 1
	require.NoError(t, m.BuildBatch(&b, sched))
	assert.Equal(t, []int32{0, 0}, b.DraftStart, "no drafts: every entry 0")
	a66Check(t, m, &b, sched, nil)
}
