package allocator_test

import (
	"errors"
	"testing"

	"github.com/stretchr/testify/assert"
	"github.com/stretchr/testify/require"

	"github.com/pagedkv/pagedkv/allocator"
)

func TestNewValidates(t *testing.T) {
	for _, tc := range []struct {
		name string
		cfg  allocator.Config
	}{
		{"zero blocks", allocator.Config{}},
		{"negative blocks", allocator.Config{NumBlocks: -1}},
		{"all reserved", allocator.Config{NumBlocks: 2, Reserved: 2}},
		{"negative reserved", allocator.Config{NumBlocks: 2, Reserved: -1}},
		{"bad order", allocator.Config{NumBlocks: 2, Order: 7}},
	} {
		t.Run(tc.name, func(t *testing.T) {
			_, err := allocator.New(tc.cfg)
			require.ErrorIs(t, err, allocator.ErrInvalid)
		})
	}
}

func TestOrders(t *testing.T) {
	for _, tc := range []struct {
		order allocator.Order
		want  []allocator.BlockID // after freeing 1 then 2, the next two allocations
	}{
		{allocator.LIFO, []allocator.BlockID{2, 1}},
		{allocator.FIFO, []allocator.BlockID{4, 1}},
	} {
		p, err := allocator.New(allocator.Config{NumBlocks: 5, Reserved: 1, Order: tc.order})
		require.NoError(t, err)
		ids, err := p.AppendAlloc(nil, 3)
		require.NoError(t, err)
		assert.Equal(t, []allocator.BlockID{1, 2, 3}, ids, "first allocations go in ID order")
		assert.True(t, p.Release(1))
		assert.True(t, p.Release(2))
		a, _ := p.Alloc()
		b, _ := p.Alloc()
		assert.Equal(t, tc.want, []allocator.BlockID{a, b}, "order %d", tc.order)
		require.NoError(t, p.Check())
	}
}

func TestAllOrNothing(t *testing.T) {
	p, err := allocator.New(allocator.Config{NumBlocks: 4})
	require.NoError(t, err)
	dst := []allocator.BlockID{99}
	got, err := p.AppendAlloc(dst, 5)
	require.ErrorIs(t, err, allocator.ErrNoSpace)
	assert.Equal(t, dst, got)
	assert.Equal(t, 4, p.Free(), "a failed AppendAlloc takes nothing")
	_, err = p.AppendAlloc(nil, -1)
	require.ErrorIs(t, err, allocator.ErrInvalid)
	got, err = p.AppendAlloc(dst, 4)
	require.NoError(t, err)
	assert.Len(t, got, 5)
	_, err = p.Alloc()
	assert.True(t, errors.Is(err, allocator.ErrNoSpace))
	require.NoError(t, p.Check())
}

func TestReferenceLifecycle(t *testing.T) {
	p, err := allocator.New(allocator.Config{NumBlocks: 3, Reserved: 1})
	require.NoError(t, err)
	id, err := p.Alloc()
	require.NoError(t, err)
	p.Ref(id)
	assert.EqualValues(t, 2, p.RefCount(id))
	assert.False(t, p.ReleaseToCache(id), "one reference left")
	assert.True(t, p.ReleaseToCache(id))
	assert.True(t, p.IsCached(id))
	s := p.Stats()
	assert.Equal(t, allocator.Stats{Total: 3, Reserved: 1, Free: 1, Cached: 1, Held: 0, Allocs: 1, Releases: 1}, s)
	p.Claim(id)
	assert.EqualValues(t, 1, p.RefCount(id))
	assert.True(t, p.ReleaseToCache(id))
	p.Evict(id)
	assert.True(t, p.IsFree(id))
	require.NoError(t, p.Check())
}

func TestMisusePanicsWithID(t *testing.T) {
	p, err := allocator.New(allocator.Config{NumBlocks: 3, Reserved: 1})
	require.NoError(t, err)
	id, _ := p.Alloc()
	p.Release(id)
	assert.PanicsWithValue(t, "allocator: release of block 1, which has no reference (double release)", func() { p.Release(id) })
	assert.Panics(t, func() { p.Ref(id) })
	assert.Panics(t, func() { p.Claim(id) })
	assert.Panics(t, func() { p.Evict(id) })
	assert.Panics(t, func() { p.Release(0) }, "reserved block")
	assert.Panics(t, func() { p.Release(3) }, "out of range")
	require.NoError(t, p.Check(), "a panic changed nothing")
}

func TestNoAllocations(t *testing.T) {
	p, err := allocator.New(allocator.Config{NumBlocks: 64})
	require.NoError(t, err)
	buf := make([]allocator.BlockID, 0, 16)
	allocs := testing.AllocsPerRun(1000, func() {
		id, _ := p.Alloc()
		p.Ref(id)
		p.Release(id)
		p.ReleaseToCache(id)
		p.Claim(id)
		p.Release(id)
		buf, _ = p.AppendAlloc(buf[:0], 16)
		for _, b := range buf {
			p.Release(b)
		}
	})
	assert.Zero(t, allocs)
}

// FuzzPool drives random operations against a simple model and checks
// conservation after each.
func FuzzPool(f *testing.F) {
	f.Add([]byte{0, 1, 2, 3, 4, 5, 0, 0, 6, 1})
	f.Fuzz(func(t *testing.T, ops []byte) {
		p, err := allocator.New(allocator.Config{NumBlocks: 9, Reserved: 1, Order: allocator.Order(len(ops) % 2)})
		require.NoError(t, err)
		refs := map[allocator.BlockID]int{}
		cached := map[allocator.BlockID]bool{}
		pick := func(b byte, want func(allocator.BlockID) bool) (allocator.BlockID, bool) {
			for i := range 8 {
				id := allocator.BlockID(1 + (int(b)+i)%8)
				if want(id) {
					return id, true
				}
			}
			return 0, false
		}
		for i, op := range ops {
			switch op % 6 {
			case 0:
				n := int(op/6) % 4
				before := p.Free()
				ids, err := p.AppendAlloc(nil, n)
				if n > before {
					require.ErrorIs(t, err, allocator.ErrNoSpace)
					require.Equal(t, before, p.Free())
				} else {
					require.NoError(t, err)
					for _, id := range ids {
						require.Zero(t, refs[id])
						require.False(t, cached[id])
						refs[id] = 1
					}
				}
			case 1:
				if id, ok := pick(op, func(id allocator.BlockID) bool { return refs[id] > 0 }); ok {
					p.Ref(id)
					refs[id]++
				}
			case 2:
				if id, ok := pick(op, func(id allocator.BlockID) bool { return refs[id] > 0 }); ok {
					refs[id]--
					require.Equal(t, refs[id] == 0, p.Release(id))
				}
			case 3:
				if id, ok := pick(op, func(id allocator.BlockID) bool { return refs[id] > 0 }); ok {
					refs[id]--
					became := p.ReleaseToCache(id)
					require.Equal(t, refs[id] == 0, became)
					cached[id] = became
				}
			case 4:
				if id, ok := pick(op, func(id allocator.BlockID) bool { return cached[id] }); ok {
					p.Claim(id)
					cached[id] = false
					refs[id] = 1
				}
			case 5:
				if id, ok := pick(op, func(id allocator.BlockID) bool { return cached[id] }); ok {
					p.Evict(id)
					cached[id] = false
				}
			}
			require.NoError(t, p.Check(), "after op %d", i)
			held := 0
			for _, r := range refs {
				if r > 0 {
					held++
				}
			}
			require.Equal(t, held, p.Held())
		}
	})
}
