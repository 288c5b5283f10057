package allocator

import (
	"fmt"
	"math"
	"runtime"
	"slices"
	"strings"
	"testing"

	"github.com/stretchr/testify/assert"
	"github.com/stretchr/testify/require"
)

// The hostile-input test: every exported entry point with nil, zero,
// negative, out-of-range and huge arguments and in the wrong order. Each
// case either returns an error, succeeds, or panics with the documented
// misuse message naming the block; a case that fails or panics must leave
// the pool exactly as it was (compared field by field, free list order
// included).

// fixture builds the pool a case starts from: blocks 0 and 1 reserved,
// 2..3 held (3 twice), 4 cached, 5..7 free.
func fixture(t *testing.T) *Pool {
	p, err := New(Config{NumBlocks: 8, Reserved: 2, Order: FIFO})
	require.NoError(t, err)
	ids, err := p.AppendAlloc(nil, 3)
	require.NoError(t, err)
	require.Equal(t, []BlockID{2, 3, 4}, ids)
	p.Ref(3)
	require.True(t, p.ReleaseToCache(4))
	require.NoError(t, p.Check())
	return p
}

const (
	fxReserved BlockID = 0
	fxHeld     BlockID = 2
	fxShared   BlockID = 3
	fxCached   BlockID = 4
	fxFree     BlockID = 5
	fxTotal    BlockID = 8
)

// clone copies every field of p, slices deeply.
func clone(p *Pool) *Pool {
	c := *p
	c.blocks, c.ring = slices.Clone(p.blocks), slices.Clone(p.ring)
	return &c
}

// freeList is the free list in pop order's storage order.
func freeList(p *Pool) []BlockID {
	var out []BlockID
	for i := range p.nfree {
		out = append(out, p.ring[(p.head+i)%len(p.ring)])
	}
	return out
}

type hostileCase struct {
	name string
	pool func(t *testing.T) *Pool // default: fixture
	call func(p *Pool) error
	// want is the sentinel the call must return; nil means it succeeds
	// (then it may change the pool) unless panicID is set.
	want error
	// panics: the call must panic with an allocator message naming
	// block panicID.
	panics  bool
	panicID BlockID
}

// outOfRangeIDs are IDs no block of the fixture has: negative, the
// reserved ones, one past the end, and the extremes of BlockID.
var outOfRangeIDs = []BlockID{NoBlock, -2, math.MinInt32, 0, 1, fxTotal, fxTotal + 1, math.MaxInt32}

func hostileCases() []hostileCase {
	var cases []hostileCase
	misuse := func(name string, id BlockID, call func(p *Pool)) {
		cases = append(cases, hostileCase{
			name:   fmt.Sprintf("%s(%d)", name, id),
			call:   func(p *Pool) error { call(p); return nil },
			panics: true, panicID: id,
		})
	}
	// Reference operations on IDs outside [Reserved, Total).
	for _, id := range outOfRangeIDs {
		misuse("Ref", id, func(p *Pool) { p.Ref(id) })
		misuse("Release", id, func(p *Pool) { p.Release(id) })
		misuse("ReleaseToCache", id, func(p *Pool) { p.ReleaseToCache(id) })
		misuse("Claim", id, func(p *Pool) { p.Claim(id) })
		misuse("Evict", id, func(p *Pool) { p.Evict(id) })
	}
	// Read-only accessors outside [0, Total).
	for _, id := range []BlockID{NoBlock, math.MinInt32, fxTotal, math.MaxInt32} {
		misuse("RefCount", id, func(p *Pool) { p.RefCount(id) })
		misuse("IsFree", id, func(p *Pool) { p.IsFree(id) })
		misuse("IsCached", id, func(p *Pool) { p.IsCached(id) })
		cases = append(cases, hostileCase{name: fmt.Sprintf("Valid(%d)", id), call: func(p *Pool) error {
			if p.Valid(id) {
				return fmt.Errorf("Valid(%d) = true", id)
			}
			return nil
		}})
	}
	// Reserved blocks are readable: count 0, neither free nor cached.
	cases = append(cases, hostileCase{name: "accessors of a reserved block", call: func(p *Pool) error {
		if p.RefCount(fxReserved) != 0 || p.IsFree(fxReserved) || p.IsCached(fxReserved) || p.Valid(fxReserved) {
			return fmt.Errorf("reserved block reads as usable")
		}
		return nil
	}})
	// Operations in the wrong state: the wrong order of calls.
	for _, tc := range []struct {
		op string
		id BlockID
		fn func(p *Pool, id BlockID)
	}{
		{"Ref of a free block", fxFree, func(p *Pool, id BlockID) { p.Ref(id) }},
		{"Ref of a cached block", fxCached, func(p *Pool, id BlockID) { p.Ref(id) }},
		{"Release of a free block", fxFree, func(p *Pool, id BlockID) { p.Release(id) }},
		{"Release of a cached block", fxCached, func(p *Pool, id BlockID) { p.Release(id) }},
		{"ReleaseToCache of a free block", fxFree, func(p *Pool, id BlockID) { p.ReleaseToCache(id) }},
		{"ReleaseToCache of a cached block", fxCached, func(p *Pool, id BlockID) { p.ReleaseToCache(id) }},
		{"Claim of a held block", fxHeld, func(p *Pool, id BlockID) { p.Claim(id) }},
		{"Claim of a shared block", fxShared, func(p *Pool, id BlockID) { p.Claim(id) }},
		{"Claim of a free block", fxFree, func(p *Pool, id BlockID) { p.Claim(id) }},
		{"Evict of a held block", fxHeld, func(p *Pool, id BlockID) { p.Evict(id) }},
		{"Evict of a shared block", fxShared, func(p *Pool, id BlockID) { p.Evict(id) }},
		{"Evict of a free block", fxFree, func(p *Pool, id BlockID) { p.Evict(id) }},
	} {
		cases = append(cases, hostileCase{
			name:   tc.op,
			call:   func(p *Pool) error { tc.fn(p, tc.id); return nil },
			panics: true, panicID: tc.id,
		})
	}
	// Misuse right after a valid call: the panic must not undo or redo it.
	for _, tc := range []struct {
		name  string
		first func(p *Pool)
		id    BlockID
		again func(p *Pool, id BlockID)
	}{
		{"double Release", func(p *Pool) { p.Release(fxHeld) }, fxHeld, func(p *Pool, id BlockID) { p.Release(id) }},
		{"Release after ReleaseToCache", func(p *Pool) { p.ReleaseToCache(fxHeld) }, fxHeld, func(p *Pool, id BlockID) { p.Release(id) }},
		{"ReleaseToCache after Release", func(p *Pool) { p.Release(fxHeld) }, fxHeld, func(p *Pool, id BlockID) { p.ReleaseToCache(id) }},
		{"Ref after the last Release", func(p *Pool) { p.Release(fxHeld) }, fxHeld, func(p *Pool, id BlockID) { p.Ref(id) }},
		{"double Claim", func(p *Pool) { p.Claim(fxCached) }, fxCached, func(p *Pool, id BlockID) { p.Claim(id) }},
		{"double Evict", func(p *Pool) { p.Evict(fxCached) }, fxCached, func(p *Pool, id BlockID) { p.Evict(id) }},
		{"Claim after Evict", func(p *Pool) { p.Evict(fxCached) }, fxCached, func(p *Pool, id BlockID) { p.Claim(id) }},
		{"Evict after Claim", func(p *Pool) { p.Claim(fxCached) }, fxCached, func(p *Pool, id BlockID) { p.Evict(id) }},
		{"third Release of a block shared twice", func(p *Pool) { p.Release(fxShared); p.Release(fxShared) }, fxShared, func(p *Pool, id BlockID) { p.Release(id) }},
	} {
		cases = append(cases, hostileCase{
			name: tc.name,
			pool: func(t *testing.T) *Pool {
				p := fixture(t)
				tc.first(p)
				require.NoError(t, p.Check())
				return p
			},
			call:   func(p *Pool) error { tc.again(p, tc.id); return nil },
			panics: true, panicID: tc.id,
		})
	}
	// A reference count at its ceiling.
	cases = append(cases, hostileCase{
		name: "Ref past 2^31-1 references",
		pool: func(t *testing.T) *Pool {
			p := fixture(t)
			p.blocks[fxHeld].refs = math.MaxInt32
			return p
		},
		call:   func(p *Pool) error { p.Ref(fxHeld); return nil },
		panics: true, panicID: fxHeld,
	})
	// Counts: negative, more than free, huge. The destination must come
	// back unchanged.
	for _, tc := range []struct {
		n    int
		want error
	}{
		{-1, ErrInvalid}, {math.MinInt, ErrInvalid}, {4, ErrNoSpace}, {8, ErrNoSpace},
		{math.MaxInt32, ErrNoSpace}, {math.MaxInt, ErrNoSpace},
	} {
		cases = append(cases, hostileCase{
			name: fmt.Sprintf("AppendAlloc(dst, %d)", tc.n),
			call: func(p *Pool) error {
				dst := []BlockID{42}
				got, err := p.AppendAlloc(dst, tc.n)
				if !slices.Equal(got, []BlockID{42}) {
					return fmt.Errorf("dst changed to %v", got)
				}
				return err
			},
			want: tc.want,
		})
	}
	cases = append(cases,
		hostileCase{name: "AppendAlloc(nil, 0)", call: func(p *Pool) error {
			got, err := p.AppendAlloc(nil, 0)
			if len(got) != 0 {
				return fmt.Errorf("got %v", got)
			}
			return err
		}},
		hostileCase{name: "Alloc from an exhausted pool", pool: func(t *testing.T) *Pool {
			p := fixture(t)
			_, err := p.AppendAlloc(nil, p.Free())
			require.NoError(t, err)
			return p
		}, call: func(p *Pool) error {
			id, err := p.Alloc()
			if id != NoBlock {
				return fmt.Errorf("Alloc returned block %d with %v", id, err)
			}
			return err
		}, want: ErrNoSpace},
		hostileCase{name: "AppendAlloc(1) from an exhausted pool", pool: func(t *testing.T) *Pool {
			p := fixture(t)
			_, err := p.AppendAlloc(nil, p.Free())
			require.NoError(t, err)
			return p
		}, call: func(p *Pool) error { _, err := p.AppendAlloc(nil, 1); return err }, want: ErrNoSpace},
	)
	// The zero Pool is a pool of no blocks.
	zero := func(*testing.T) *Pool { return &Pool{} }
	cases = append(cases,
		hostileCase{name: "zero Pool: Alloc", pool: zero, call: func(p *Pool) error { _, err := p.Alloc(); return err }, want: ErrNoSpace},
		hostileCase{name: "zero Pool: AppendAlloc(1)", pool: zero, call: func(p *Pool) error { _, err := p.AppendAlloc(nil, 1); return err }, want: ErrNoSpace},
		hostileCase{name: "zero Pool: AppendAlloc(-1)", pool: zero, call: func(p *Pool) error { _, err := p.AppendAlloc(nil, -1); return err }, want: ErrInvalid},
		hostileCase{name: "zero Pool: AppendAlloc(0)", pool: zero, call: func(p *Pool) error { _, err := p.AppendAlloc(nil, 0); return err }},
		hostileCase{name: "zero Pool: Stats and counts", pool: zero, call: func(p *Pool) error {
			if p.Stats() != (Stats{}) || p.Total()+p.Usable()+p.Free()+p.Held()+p.Cached()+p.Reserved() != 0 || p.Valid(0) {
				return fmt.Errorf("zero pool reports blocks: %+v", p.Stats())
			}
			return p.Check()
		}},
	)
	for _, id := range []BlockID{0, NoBlock} {
		misuseZero := func(name string, fn func(p *Pool)) {
			cases = append(cases, hostileCase{name: fmt.Sprintf("zero Pool: %s(%d)", name, id), pool: zero,
				call: func(p *Pool) error { fn(p); return nil }, panics: true, panicID: id})
		}
		misuseZero("Release", func(p *Pool) { p.Release(id) })
		misuseZero("Ref", func(p *Pool) { p.Ref(id) })
		misuseZero("Claim", func(p *Pool) { p.Claim(id) })
		misuseZero("Evict", func(p *Pool) { p.Evict(id) })
		misuseZero("RefCount", func(p *Pool) { p.RefCount(id) })
		misuseZero("IsFree", func(p *Pool) { p.IsFree(id) })
	}
	return cases
}

func TestHostileInput(t *testing.T) {
	cases := hostileCases()
	for _, tc := range cases {
		t.Run(tc.name, func(t *testing.T) {
			mk := tc.pool
			if mk == nil {
				mk = fixture
			}
			p := mk(t)
			before, beforeFree, beforeStats := clone(p), freeList(p), p.Stats()
			var (
				err       error
				recovered any
			)
			func() {
				defer func() { recovered = recover() }()
				err = tc.call(p)
			}()
			switch {
			case tc.panics:
				require.NotNil(t, recovered, "want a misuse panic, got error %v", err)
				// Misuse panics with a message; a read-only accessor with
				// an error whose text is the message.
				var msg string
				switch v := recovered.(type) {
				case string:
					msg = v
				case error:
					_, isRuntime := v.(runtime.Error)
					require.False(t, isRuntime, "a runtime panic: %v", v)
					msg = v.Error()
				default:
					require.Failf(t, "panic value", "%T %v is not the package's message", v, v)
				}
				assert.True(t, strings.HasPrefix(msg, "allocator: "), "panic %q lacks the package prefix", msg)
				assert.Regexp(t, fmt.Sprintf(`block %d(\D|$)`, tc.panicID), msg, "the panic does not name the block")
			case recovered != nil:
				require.Failf(t, "unexpected panic", "%v", recovered)
			case tc.want != nil:
				require.ErrorIs(t, err, tc.want)
				assert.True(t, strings.HasPrefix(err.Error(), "allocator: "), "error %q lacks the package prefix", err)
			default:
				require.NoError(t, err)
			}
			if tc.panics || tc.want != nil {
				assert.Equal(t, before, p, "a refused call changed the pool")
				assert.Equal(t, beforeFree, freeList(p))
				assert.Equal(t, beforeStats, p.Stats())
			}
			require.NoError(t, p.Check())
		})
	}
	t.Logf("%d hostile cases", len(cases))
}

// TestHostileConfig feeds New configurations that are out of range or
// would allocate absurd metadata up front.
func TestHostileConfig(t *testing.T) {
	for _, tc := range []struct {
		cfg   Config
		field string
	}{
		{Config{}, "NumBlocks"},
		{Config{NumBlocks: -1}, "NumBlocks"},
		{Config{NumBlocks: math.MinInt}, "NumBlocks"},
		{Config{NumBlocks: MaxBlocks + 1}, "NumBlocks"},
		{Config{NumBlocks: math.MaxInt32}, "NumBlocks"},
		{Config{NumBlocks: math.MaxInt}, "NumBlocks"},
		{Config{NumBlocks: min(1<<40, math.MaxInt), Reserved: 1}, "NumBlocks"},
		{Config{NumBlocks: 4, Reserved: -1}, "Reserved"},
		{Config{NumBlocks: 4, Reserved: math.MinInt}, "Reserved"},
		{Config{NumBlocks: 4, Reserved: 4}, "Reserved"},
		{Config{NumBlocks: 4, Reserved: math.MaxInt}, "Reserved"},
		{Config{NumBlocks: 1, Reserved: 1}, "Reserved"},
		{Config{NumBlocks: 4, Order: 2}, "Order"},
		{Config{NumBlocks: 4, Order: 255}, "Order"},
	} {
		t.Run(fmt.Sprintf("%+v", tc.cfg), func(t *testing.T) {
			p, err := New(tc.cfg)
			require.ErrorIs(t, err, ErrInvalid)
			assert.Nil(t, p)
			assert.Contains(t, err.Error(), "Config."+tc.field)
		})
	}
	// The limit itself is accepted: the bound is inclusive and documented.
	p, err := New(Config{NumBlocks: 1, Order: FIFO})
	require.NoError(t, err)
	require.NoError(t, p.Check())
}
