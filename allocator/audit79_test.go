package allocator

import (
	"testing"

	"github.com/stretchr/testify/require"
)

// Tests written for the thirty-third round of mutation testing (session
// 32, docs/testing.md): each kills a mutation the model, fuzz and hostile
// tests let survive.

// TestAudit79NewTakesMaxBlocks: the bound on Config.NumBlocks is
// inclusive, as MaxBlocks' doc says. TestHostileConfig refused one past
// it and took a pool of one block, so a New refusing MaxBlocks itself
// passed. The pool's metadata is about 200 MB, allocated and freed once.
func TestAudit79NewTakesMaxBlocks(t *testing.T) {
	for _, order := range []Order{LIFO, FIFO} {
		p, err := New(Config{NumBlocks: MaxBlocks, Reserved: 1, Order: order})
		require.NoError(t, err, "order %d", order)
		require.Equal(t, MaxBlocks, p.Total())
		require.Equal(t, MaxBlocks-1, p.Free())
		id, err := p.Alloc()
		require.NoError(t, err)
		require.Equal(t, BlockID(1), id, "order %d: the lowest usable ID goes first", order)
		require.False(t, p.Valid(MaxBlocks))
		require.True(t, p.Valid(MaxBlocks-1))
	}
}

// TestAudit79CheckFindsCorruption: Check is what every model test trusts
// to find a broken pool, so each of its tests must fire on the corruption
// it is there for. The pools the exported API builds are never corrupt,
// so no other test reached the per-block test of count against state or
// the free list's duplicate test (M1495 and M1496 dropped them). Each
// case corrupts the fixture (blocks 0 and 1 reserved, 2 held, 3 held
// twice, 4 cached, 5..7 free, FIFO) in one way that leaves every counter
// Check compares with the states as it was.
func TestAudit79CheckFindsCorruption(t *testing.T) {
	for _, tc := range []struct {
		name    string
		corrupt func(p *Pool)
		want    string
	}{
		{"held with no reference", func(p *Pool) { p.blocks[fxHeld].refs = 0 }, "block 2 in state 2 has count 0"},
		{"cached with a reference", func(p *Pool) { p.blocks[fxCached].refs = 1 }, "block 4 in state 1 has count 1"},
		{"free with a reference", func(p *Pool) { p.blocks[fxFree].refs = 2 }, "block 5 in state 0 has count 2"},
		{"reserved with a reference", func(p *Pool) { p.blocks[fxReserved].refs = 1 }, "block 0 in state 3 has count 1"},
		{"negative count", func(p *Pool) { p.blocks[fxFree].refs = -1 }, "block 5 in state 0 has count -1"},
		{"free list names a block twice", func(p *Pool) {
			// 5, 6, 7 become 5, 5, 7: as many entries as free blocks,
			// each of them free, but block 6 is lost.
			p.ring[(p.head+1)%len(p.ring)] = p.ring[p.head]
		}, "free list entry 1 is block 5"},
		{"free list names a held block", func(p *Pool) {
			p.ring[(p.head+2)%len(p.ring)] = fxShared
		}, "free list entry 2 is block 3"},
		{"free list names a reserved block", func(p *Pool) {
			p.ring[p.head] = fxReserved
		}, "free list entry 0 is block 0"},
	} {
		t.Run(tc.name, func(t *testing.T) {
			p := fixture(t)
			tc.corrupt(p)
			err := p.Check()
			require.Error(t, err)
			require.Contains(t, err.Error(), tc.want)
		})
	}
}

// TestAudit79CheckFollowsTheRingsHead: a FIFO pool whose free list has
// wrapped around its ring passes Check, and a duplicate past the wrap is
// still found: Check reads the list from the head, modulo the ring.
func TestAudit79CheckFollowsTheRingsHead(t *testing.T) {
	p, err := New(Config{NumBlocks: 5, Order: FIFO})
	require.NoError(t, err)
	ids, err := p.AppendAlloc(nil, 4) // 0..3; the head moves to slot 4
	require.NoError(t, err)
	for _, id := range ids {
		p.Release(id) // 0..3 go to slots 0..3, after block 4 in slot 4
	}
	require.Equal(t, 4, p.head)
	require.NoError(t, p.Check())
	p.ring[2] = p.ring[1] // the list 4, 0, 1, 1, 3: block 2 lost
	require.ErrorContains(t, p.Check(), "free list entry 3 is block 1")
}
