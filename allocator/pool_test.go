package allocator_test

import (
	"errors"
	"fmt"
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

// TestMisuseMessages: each state-changing call names the operation and
// the block, or the range for a block outside it; a reserved block is
// outside the range the pool hands out.
func TestMisuseMessages(t *testing.T) {
	p, err := allocator.New(allocator.Config{NumBlocks: 4, Reserved: 1})
	require.NoError(t, err)
	ids, err := p.AppendAlloc(nil, 3)
	require.NoError(t, err)
	free, cached, held := ids[0], ids[1], ids[2]
	p.Release(free)
	p.ReleaseToCache(cached)
	for _, tc := range []struct {
		call func()
		want string
	}{
		{func() { p.Ref(free) }, fmt.Sprintf("allocator: Ref of block %d, which has no reference", free)},
		{func() { p.Ref(cached) }, fmt.Sprintf("allocator: Ref of block %d, which has no reference", cached)},
		{func() { p.Release(cached) }, fmt.Sprintf("allocator: release of block %d, which has no reference (double release)", cached)},
		{func() { p.ReleaseToCache(free) }, fmt.Sprintf("allocator: release of block %d, which has no reference (double release)", free)},
		{func() { p.Claim(held) }, fmt.Sprintf("allocator: Claim of block %d, which is not cached", held)},
		{func() { p.Claim(free) }, fmt.Sprintf("allocator: Claim of block %d, which is not cached", free)},
		{func() { p.Evict(held) }, fmt.Sprintf("allocator: Evict of block %d, which is not cached", held)},
		{func() { p.Release(0) }, "allocator: block 0 out of range [1, 4)"},
		{func() { p.Claim(0) }, "allocator: block 0 out of range [1, 4)"},
		{func() { p.Ref(4) }, "allocator: block 4 out of range [1, 4)"},
		{func() { p.Evict(-1) }, "allocator: block -1 out of range [1, 4)"},
	} {
		assert.PanicsWithValue(t, tc.want, tc.call)
	}
	require.NoError(t, p.Check(), "a panic changed nothing")
	assert.Equal(t, allocator.Stats{Total: 4, Reserved: 1, Free: 1, Cached: 1, Held: 1, Allocs: 3, Releases: 2}, p.Stats())
}

// TestTryFormsChangeNothingOnMisuse: TryReleaseToCache, TryClaim and
// TryRef report misuse (every ID in and around the pool, in every state)
// where the checked calls panic, change nothing then, and otherwise act as
// the checked calls do on a twin pool.
func TestTryFormsChangeNothingOnMisuse(t *testing.T) {
	mk := func() *allocator.Pool {
		p, err := allocator.New(allocator.Config{NumBlocks: 5, Reserved: 1})
		require.NoError(t, err)
		ids, err := p.AppendAlloc(nil, 3)
		require.NoError(t, err)
		p.Ref(ids[2])                 // held twice
		p.ReleaseToCache(ids[1])      // cached
		require.NoError(t, p.Check()) // ids[0] held once, block 4 free
		return p
	}
	for id := allocator.BlockID(-1); id <= 6; id++ {
		for _, op := range []string{"release", "claim", "ref"} {
			fast, checked := mk(), mk()
			var ok, last, wantLast bool
			switch op {
			case "claim":
				ok = fast.TryClaim(id)
			case "ref":
				ok = fast.TryRef(id)
			default:
				last, ok = fast.TryReleaseToCache(id)
			}
			panicked := func() (p bool) {
				defer func() { p = recover() != nil }()
				switch op {
				case "claim":
					checked.Claim(id)
				case "ref":
					checked.Ref(id)
				default:
					wantLast = checked.ReleaseToCache(id)
				}
				return false
			}()
			assert.Equal(t, !panicked, ok, "block %d, %s", id, op)
			assert.Equal(t, wantLast, last, "block %d, %s", id, op)
			assert.Equal(t, checked.Stats(), fast.Stats(), "block %d, %s", id, op)
			require.NoError(t, fast.Check())
			for b := range allocator.BlockID(5) {
				assert.Equal(t, checked.RefCount(b), fast.RefCount(b))
				assert.Equal(t, checked.IsCached(b), fast.IsCached(b))
			}
		}
	}
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

// fuzzMaxOps bounds the operations one input drives. The fuzzer grows
// inputs to kilobytes; past a few hundred operations on a pool of at most
// 16 blocks a longer input reaches no new state, only makes every
// execution (and the minimizer, which runs thousands of them) slower.
const fuzzMaxOps = 256

// FuzzPool drives random operations against a simple model and checks
// conservation after each. The first byte picks the pool (size, reserved
// blocks, order); each next byte is one operation.
func FuzzPool(f *testing.F) {
	f.Add([]byte{0x12, 0, 1, 2, 3, 4, 5, 0, 0, 6, 1})
	f.Add([]byte{0xff, 6, 12, 18, 3, 9, 4, 5, 2, 2, 2})
	f.Fuzz(func(t *testing.T, in []byte) {
		if len(in) == 0 {
			return
		}
		cfg, ops := in[0], in[1:]
		if len(ops) > fuzzMaxOps {
			ops = ops[:fuzzMaxOps]
		}
		reserved := int(cfg>>4) % 3
		total := reserved + 1 + int(cfg&0x0f)
		p, err := allocator.New(allocator.Config{NumBlocks: total, Reserved: reserved, Order: allocator.Order(cfg >> 7)})
		if err != nil {
			t.Fatal(err)
		}
		// The model: reference counts and cached flags by block, plain
		// arrays so each step costs nanoseconds.
		var refs [32]int
		var cached [32]bool
		usable := total - reserved
		pick := func(b byte, want func(allocator.BlockID) bool) (allocator.BlockID, bool) {
			for i := range usable {
				id := allocator.BlockID(reserved + (int(b)+i)%usable)
				if want(id) {
					return id, true
				}
			}
			return allocator.NoBlock, false
		}
		isHeld := func(id allocator.BlockID) bool { return refs[id] > 0 }
		isCached := func(id allocator.BlockID) bool { return cached[id] }
		held, ncached := 0, 0
		for i, op := range ops {
			switch op % 6 {
			case 0: // up to 2*usable blocks at once: often more than are free
				n := int(op/6) % (2*usable + 1)
				free := p.Free()
				ids, err := p.AppendAlloc(nil, n)
				if n > free {
					if !errors.Is(err, allocator.ErrNoSpace) || len(ids) != 0 || p.Free() != free {
						t.Fatalf("op %d: AppendAlloc(%d) with %d free: %v %v", i, n, free, ids, err)
					}
					break
				}
				if err != nil || len(ids) != n {
					t.Fatalf("op %d: AppendAlloc(%d) with %d free: %v %v", i, n, free, ids, err)
				}
				for _, id := range ids {
					if !p.Valid(id) || refs[id] != 0 || cached[id] {
						t.Fatalf("op %d: AppendAlloc handed out block %d, not free", i, id)
					}
					refs[id] = 1
					held++
				}
			case 1:
				if id, ok := pick(op, isHeld); ok {
					p.Ref(id)
					refs[id]++
				}
			case 2, 3:
				if id, ok := pick(op, isHeld); ok {
					refs[id]--
					last := refs[id] == 0
					var got bool
					if op%6 == 2 {
						got = p.Release(id)
					} else {
						got = p.ReleaseToCache(id)
						cached[id] = last
					}
					if got != last {
						t.Fatalf("op %d: release of block %d returned %v with %d references left", i, id, got, refs[id])
					}
					if last {
						held--
						if cached[id] {
							ncached++
						}
					}
				}
			case 4:
				if id, ok := pick(op, isCached); ok {
					p.Claim(id)
					cached[id], refs[id] = false, 1
					ncached--
					held++
				}
			case 5:
				if id, ok := pick(op, isCached); ok {
					p.Evict(id)
					cached[id] = false
					ncached--
				}
			}
			if err := p.Check(); err != nil {
				t.Fatalf("after op %d: %v", i, err)
			}
			if p.Held() != held || p.Cached() != ncached || p.Free() != usable-held-ncached {
				t.Fatalf("after op %d: pool %+v, model held %d cached %d", i, p.Stats(), held, ncached)
			}
		}
	})
}
