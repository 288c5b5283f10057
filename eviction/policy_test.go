package eviction

import (
	"fmt"
	"math"
	"math/rand/v2"
	"testing"

	"github.com/stretchr/testify/assert"
	"github.com/stretchr/testify/require"

	"github.com/pagedkv/pagedkv/allocator"
)

// The conformance suite: every registered policy, driven the way the paged
// manager drives it, against a model that knows only which blocks are
// evictable.

// blockState is the model's view of one block.
type blockState uint8

const (
	free           blockState = iota // no content, no reference
	held                             // referenced, no committed content
	heldContent                      // referenced, content committed (hinted)
	evictable                        // in the policy, with content
	evictableEmpty                   // in the policy without content (vLLM's unified free queue)
)

// driver applies the manager's protocol to a policy and a model together.
type driver struct {
	t        *testing.T
	p        Policy
	acc      Accessor
	fgt      Forgetter
	hnt      Hinter
	tck      Ticker
	state    []blockState
	key      []uint64
	resident map[uint64]bool
	now      int64
	nextKey  uint64
	rng      *rand.Rand
}

func newDriver(t *testing.T, f Factory, capacity int, seed uint64) *driver {
	d := &driver{
		t:        t,
		p:        f(capacity),
		state:    make([]blockState, capacity),
		key:      make([]uint64, capacity),
		resident: map[uint64]bool{},
		rng:      rand.New(rand.NewPCG(seed, 0x9e3779b9)),
	}
	d.acc, _ = d.p.(Accessor)
	d.fgt, _ = d.p.(Forgetter)
	d.hnt, _ = d.p.(Hinter)
	d.tck, _ = d.p.(Ticker)
	return d
}

func (d *driver) pick(want ...blockState) (allocator.BlockID, bool) {
	// A few random probes keep the walk cheap; missing is just a no-op.
	for range 8 {
		id := allocator.BlockID(d.rng.IntN(len(d.state)))
		for _, s := range want {
			if d.state[id] == s {
				return id, true
			}
		}
	}
	return allocator.NoBlock, false
}

// hint commits new content to held block id.
func (d *driver) hint(id allocator.BlockID) {
	// Half the keys are recent ones no longer resident, so ghost lists see
	// hits; no two resident blocks share a key.
	k := d.nextKey
	if d.nextKey > 8 && d.rng.IntN(2) == 0 {
		k = d.nextKey - 1 - uint64(d.rng.IntN(int(min(d.nextKey, uint64(3*len(d.state))))))
	}
	if d.resident[k] {
		k = d.nextKey
	}
	if k == d.nextKey {
		d.nextKey++
	}
	d.resident[k] = true
	d.key[id] = k
	d.state[id] = heldContent
	if d.hnt == nil {
		return
	}
	h := Hint{Key: k, Depth: int32(d.rng.IntN(10)), Parent: allocator.NoBlock, Priority: DefaultPriority}
	if par, ok := d.pick(heldContent); ok && par != id {
		h.Parent = par
	}
	if d.rng.IntN(2) == 0 {
		h.Priority = d.rng.IntN(MaxPriority + 1)
		if d.rng.IntN(2) == 0 {
			h.Expires = d.now + 1 + int64(d.rng.IntN(20))
		}
	}
	d.hnt.Hint(id, h)
}

func (d *driver) drop(id allocator.BlockID) {
	delete(d.resident, d.key[id])
	d.state[id] = held
}

// step applies one random operation and checks the policy against the model.
func (d *driver) step() {
	switch d.rng.IntN(10) {
	case 0: // allocate a free block
		if id, ok := d.pick(free); ok {
			d.state[id] = held
		}
	case 1: // commit content
		if id, ok := d.pick(held); ok {
			d.hint(id)
		}
	case 2, 3: // release a block with content
		if id, ok := d.pick(heldContent); ok {
			d.p.Insert(id)
			d.state[id] = evictable
		}
	case 4: // release a block without content into a unified free queue
		if id, ok := d.pick(held); ok {
			d.p.Insert(id)
			d.state[id] = evictableEmpty
		}
	case 5: // prefix hit on an evictable block: claimed back
		if id, ok := d.pick(evictable); ok {
			if d.acc != nil {
				d.acc.Access(id)
			}
			d.p.Remove(id)
			d.state[id] = heldContent
		}
	case 6: // prefix hit on a held block
		if id, ok := d.pick(heldContent); ok && d.acc != nil {
			d.acc.Access(id)
		}
	case 7: // the manager needs a block
		id, ok := d.p.Victim()
		n := d.count()
		require.Equal(d.t, n > 0, ok, "Victim with %d evictable", n)
		if ok {
			require.True(d.t, d.state[id] == evictable || d.state[id] == evictableEmpty,
				"victim %d is in state %d", id, d.state[id])
			if d.state[id] == evictable {
				d.drop(id)
			}
			d.state[id] = held
		}
	case 8: // content dropped in place
		if id, ok := d.pick(heldContent, evictable); ok {
			if d.state[id] == evictable {
				d.p.Remove(id)
			}
			if d.fgt != nil {
				d.fgt.Forget(id)
			}
			d.drop(id)
		}
		if id, ok := d.pick(held); ok {
			d.state[id] = free
		}
	case 9:
		d.now += int64(d.rng.IntN(4))
		if d.tck != nil {
			d.tck.Advance(d.now)
		}
	}
	d.check()
}

func (d *driver) count() int {
	n := 0
	for _, s := range d.state {
		if s == evictable || s == evictableEmpty {
			n++
		}
	}
	return n
}

func (d *driver) check() {
	require.Equal(d.t, d.count(), d.p.Len())
	for id, s := range d.state {
		want := s == evictable || s == evictableEmpty
		if d.p.Contains(allocator.BlockID(id)) != want {
			require.Failf(d.t, "Contains", "block %d in state %d: Contains = %v", id, s, !want)
		}
	}
}

func forEachPolicy(t *testing.T, fn func(t *testing.T, f Factory)) {
	for _, name := range Names() {
		f, err := ByName(name)
		require.NoError(t, err)
		t.Run(name, func(t *testing.T) { fn(t, f) })
	}
}

func TestConformanceRandom(t *testing.T) {
	forEachPolicy(t, func(t *testing.T, f Factory) {
		for seed := range uint64(4) {
			d := newDriver(t, f, 48, seed)
			for range 4000 {
				d.step()
			}
			// Draining gives up every evictable block exactly once.
			seen := map[allocator.BlockID]bool{}
			for {
				id, ok := d.p.Victim()
				if !ok {
					break
				}
				require.False(t, seen[id], "block %d given up twice", id)
				require.True(t, d.state[id] == evictable || d.state[id] == evictableEmpty)
				seen[id] = true
			}
			require.Equal(t, d.count(), len(seen))
			require.Zero(t, d.p.Len())
		}
	})
}

func TestConformanceWithoutOptionalCalls(t *testing.T) {
	// Policies must work when the manager calls nothing but the five
	// Policy methods: each Insert after a Victim is new content.
	forEachPolicy(t, func(t *testing.T, f Factory) {
		d := newDriver(t, f, 32, 7)
		d.acc, d.fgt, d.hnt, d.tck = nil, nil, nil, nil
		for range 3000 {
			d.step()
		}
	})
}

func TestConformanceEmpty(t *testing.T) {
	forEachPolicy(t, func(t *testing.T, f Factory) {
		for _, capacity := range []int{-1, 0, 1} {
			p := f(capacity)
			id, ok := p.Victim()
			assert.False(t, ok)
			assert.Equal(t, allocator.NoBlock, id)
			assert.Zero(t, p.Len())
		}
		p := f(1)
		p.Insert(0)
		id, ok := p.Victim()
		assert.True(t, ok)
		assert.Equal(t, allocator.BlockID(0), id)
	})
}

func TestConformanceMisusePanics(t *testing.T) {
	forEachPolicy(t, func(t *testing.T, f Factory) {
		p := f(4)
		p.Insert(1)
		assert.PanicsWithValue(t, panicText(p, "Insert", 1, inPolicy), func() { p.Insert(1) })
		assert.PanicsWithValue(t, panicText(p, "Remove", 2, notInPolicy), func() { p.Remove(2) })
		for _, bad := range []allocator.BlockID{-1, 4, 5, math.MinInt32, math.MaxInt32} {
			want := rangeText(bad, 4)
			assert.PanicsWithValue(t, want, func() { p.Insert(bad) }, "Insert(%d)", bad)
			assert.PanicsWithValue(t, want, func() { p.Remove(bad) }, "Remove(%d)", bad)
			assert.PanicsWithValue(t, want, func() { p.Contains(bad) }, "Contains(%d)", bad)
			if a, ok := p.(Accessor); ok {
				assert.PanicsWithValue(t, want, func() { a.Access(bad) }, "Access(%d)", bad)
			}
			if fg, ok := p.(Forgetter); ok {
				assert.PanicsWithValue(t, want, func() { fg.Forget(bad) }, "Forget(%d)", bad)
			}
			if h, ok := p.(Hinter); ok {
				assert.PanicsWithValue(t, want, func() { h.Hint(bad, Hint{Parent: allocator.NoBlock, Priority: DefaultPriority}) },
					"Hint(%d)", bad)
				if _, usesParent := p.(*LeafLRU); usesParent && bad != allocator.NoBlock {
					assert.PanicsWithValue(t, want, func() { h.Hint(2, Hint{Parent: bad, Priority: DefaultPriority}) },
						"Hint with parent %d", bad)
				}
			}
		}
		if fg, ok := p.(Forgetter); ok {
			assert.PanicsWithValue(t, panicText(p, "Forget", 1, inPolicy), func() { fg.Forget(1) })
		}
		if h, ok := p.(Hinter); ok {
			assert.PanicsWithValue(t, panicText(p, "Hint", 1, inPolicy),
				func() { h.Hint(1, Hint{Parent: allocator.NoBlock, Priority: DefaultPriority}) })
		}
		// The panics changed nothing.
		assert.Equal(t, 1, p.Len())
		assert.True(t, p.Contains(1))
		id, ok := p.Victim()
		assert.True(t, ok)
		assert.Equal(t, allocator.BlockID(1), id)
		// Too large a capacity is refused before anything is allocated.
		assert.PanicsWithValue(t, fmt.Sprintf("eviction: capacity %d exceeds MaxCapacity (%d)", MaxCapacity+1, MaxCapacity),
			func() { f(MaxCapacity + 1) })
	})
}

// rangeText is the message of an ID outside [0, capacity).
func rangeText(id allocator.BlockID, capacity int) string {
	return fmt.Sprintf("eviction: block %d out of range [0, %d)", id, capacity)
}

// panicText is the message misuse gives for p.
func panicText(p Policy, op string, id allocator.BlockID, why string) string {
	name := fmt.Sprintf("%T", p)[len("*eviction."):]
	return fmt.Sprintf("eviction: %s.%s of block %d: %s", name, op, id, why)
}

func TestConformanceZeroAllocs(t *testing.T) {
	forEachPolicy(t, func(t *testing.T, f Factory) {
		w := newWorkload(f, 1024, 1)
		for range 5000 {
			w.step()
		}
		allocs := testing.AllocsPerRun(2000, w.step)
		assert.Zero(t, allocs)
	})
}

func TestRegistry(t *testing.T) {
	names := Names()
	require.Equal(t, "lru", names[0])
	for _, n := range names {
		f, err := ByName(n)
		require.NoError(t, err)
		require.NotNil(t, f(1))
	}
	f, err := ByName("LFU")
	require.NoError(t, err)
	assert.IsType(t, &LFU{}, f(1))
	_, err = ByName("mru")
	require.ErrorIs(t, err, ErrUnknownPolicy)
	assert.Contains(t, err.Error(), `"mru"`)
}
