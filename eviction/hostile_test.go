package eviction

import (
	"fmt"
	"math"
	"strings"
	"testing"

	"github.com/stretchr/testify/assert"
	"github.com/stretchr/testify/require"

	"github.com/pagedkv/pagedkv/allocator"
)

// The hostile-input test: every method of every policy with IDs out of
// range, calls in the wrong order, absurd hints and times, and degenerate
// capacities. A call either works or panics with the documented misuse
// message; after a panic the policy must behave exactly like a twin that
// never saw the call (same Len, same Contains, same victims in the same
// order, same reaction to later hits and hints).

const hostileCap = 8

// hostileSetup builds the state each case starts from: blocks 0..5 have
// content; 1, 2 and 3 are evictable (2 was hit), 4 is referenced, 5 was
// evictable and claimed back; 6 and 7 never had content. Time is 1.
func hostileSetup(f Factory) Policy {
	p := f(hostileCap)
	hn, _ := p.(Hinter)
	acc, _ := p.(Accessor)
	if tk, ok := p.(Ticker); ok {
		tk.Advance(1)
	}
	for id := range allocator.BlockID(6) {
		if hn != nil {
			par := id - 1
			if id == 0 {
				par = allocator.NoBlock
			}
			hn.Hint(id, Hint{Key: 1000 + uint64(id), Depth: int32(id), Parent: par, Priority: DefaultPriority + int(id%2), Expires: 10})
		}
	}
	for _, id := range []allocator.BlockID{5, 1, 2, 3} {
		p.Insert(id)
	}
	if acc != nil {
		acc.Access(2)
		acc.Access(5)
	}
	p.Remove(5)
	return p
}

// observe drives p through a fixed script and records what it does: the
// twin comparison that proves a refused call changed nothing.
func observe(p Policy) string {
	var b strings.Builder
	fmt.Fprintf(&b, "len %d:", p.Len())
	for id := range allocator.BlockID(hostileCap) {
		if p.Contains(id) {
			fmt.Fprintf(&b, " %d", id)
		}
	}
	hn, _ := p.(Hinter)
	acc, _ := p.(Accessor)
	if acc != nil {
		acc.Access(4)
	}
	p.Insert(4)
	if hn != nil {
		hn.Hint(6, Hint{Key: 1001, Parent: 4, Priority: DefaultPriority})
	}
	p.Insert(6)
	if tk, ok := p.(Ticker); ok {
		tk.Advance(20)
	}
	b.WriteString(" victims:")
	for {
		id, ok := p.Victim()
		if !ok {
			break
		}
		fmt.Fprintf(&b, " %d", id)
		if id == 3 && hn != nil {
			// Content that comes back after eviction meets its ghost.
			hn.Hint(3, Hint{Key: 1003, Parent: allocator.NoBlock, Priority: DefaultPriority})
			p.Insert(7)
		}
	}
	fmt.Fprintf(&b, " len %d", p.Len())
	return b.String()
}

type evictionCase struct {
	name string
	// applies reports whether the case means anything for p (it calls an
	// optional interface p implements); nil: always.
	applies func(p Policy) bool
	// before runs on both the policy and its twin: valid calls that set up
	// the wrong order.
	before func(p Policy)
	call   func(p Policy)
	// panic is the exact misuse message for p; nil: the call must not
	// panic, and then it may change the policy.
	panic func(p Policy) string
	// same: a call that does not panic must still change nothing.
	same bool
}

func isAccessor(p Policy) bool  { _, ok := p.(Accessor); return ok }
func isForgetter(p Policy) bool { _, ok := p.(Forgetter); return ok }
func isHinter(p Policy) bool    { _, ok := p.(Hinter); return ok }
func isTicker(p Policy) bool    { _, ok := p.(Ticker); return ok }
func isLeafLRU(p Policy) bool   { _, ok := p.(*LeafLRU); return ok }
func isPriority(p Policy) bool  { _, ok := p.(*Priority); return ok }

func hint(id allocator.BlockID) Hint {
	return Hint{Key: 5000 + uint64(id), Parent: allocator.NoBlock, Priority: DefaultPriority}
}

func evictionCases() []evictionCase {
	var cases []evictionCase
	outOfRange := func(id allocator.BlockID) func(Policy) string {
		return func(Policy) string { return rangeText(id, hostileCap) }
	}
	for _, id := range []allocator.BlockID{allocator.NoBlock, -2, math.MinInt32, hostileCap, hostileCap + 1, math.MaxInt32} {
		cases = append(cases,
			evictionCase{name: fmt.Sprintf("Insert(%d)", id), call: func(p Policy) { p.Insert(id) }, panic: outOfRange(id)},
			evictionCase{name: fmt.Sprintf("Remove(%d)", id), call: func(p Policy) { p.Remove(id) }, panic: outOfRange(id)},
			evictionCase{name: fmt.Sprintf("Contains(%d)", id), call: func(p Policy) { p.Contains(id) }, panic: outOfRange(id)},
			evictionCase{name: fmt.Sprintf("Access(%d)", id), applies: isAccessor,
				call: func(p Policy) { p.(Accessor).Access(id) }, panic: outOfRange(id)},
			evictionCase{name: fmt.Sprintf("Forget(%d)", id), applies: isForgetter,
				call: func(p Policy) { p.(Forgetter).Forget(id) }, panic: outOfRange(id)},
			evictionCase{name: fmt.Sprintf("Hint(%d)", id), applies: isHinter,
				call: func(p Policy) { p.(Hinter).Hint(id, hint(id)) }, panic: outOfRange(id)},
		)
		if id != allocator.NoBlock {
			cases = append(cases, evictionCase{name: fmt.Sprintf("Hint with parent %d", id), applies: isLeafLRU,
				call: func(p Policy) { p.(Hinter).Hint(4, Hint{Key: 77, Parent: id}) }, panic: outOfRange(id)})
		}
	}
	misuse := func(op string, id allocator.BlockID, why string) func(Policy) string {
		return func(p Policy) string { return panicText(p, op, id, why) }
	}
	victim := func(p Policy) { p.Victim() }
	drain := func(p Policy) {
		for p.Len() > 0 {
			p.Victim()
		}
	}
	cases = append(cases,
		// Duplicates and the wrong order of calls.
		evictionCase{name: "Insert of an evictable block", call: func(p Policy) { p.Insert(1) }, panic: misuse("Insert", 1, inPolicy)},
		evictionCase{name: "Insert of a hit evictable block", call: func(p Policy) { p.Insert(2) }, panic: misuse("Insert", 2, inPolicy)},
		evictionCase{name: "Remove of a referenced block", call: func(p Policy) { p.Remove(4) }, panic: misuse("Remove", 4, notInPolicy)},
		evictionCase{name: "Remove of a claimed block", call: func(p Policy) { p.Remove(5) }, panic: misuse("Remove", 5, notInPolicy)},
		evictionCase{name: "Remove of a block never seen", call: func(p Policy) { p.Remove(7) }, panic: misuse("Remove", 7, notInPolicy)},
		evictionCase{name: "Remove of block 0 at capacity's start", call: func(p Policy) { p.Remove(0) }, panic: misuse("Remove", 0, notInPolicy)},
		evictionCase{name: "Remove after Remove", before: func(p Policy) { p.Remove(3) },
			call: func(p Policy) { p.Remove(3) }, panic: misuse("Remove", 3, notInPolicy)},
		evictionCase{name: "Insert after Insert after Remove", before: func(p Policy) { p.Remove(3); p.Insert(3) },
			call: func(p Policy) { p.Insert(3) }, panic: misuse("Insert", 3, inPolicy)},
		evictionCase{name: "Remove of the victim", before: victim, call: func(p Policy) {
			// The twin took the same victim; find it again from Contains.
			for id := range allocator.BlockID(hostileCap) {
				if id != 4 && id != 5 && id < 6 && !p.Contains(id) && id != 0 {
					p.Remove(id)
				}
			}
		}, panic: func(p Policy) string {
			for id := range allocator.BlockID(hostileCap) {
				if id != 4 && id != 5 && id < 6 && !p.Contains(id) && id != 0 {
					return panicText(p, "Remove", id, notInPolicy)
				}
			}
			return "no victim"
		}},
		evictionCase{name: "Remove from an empty policy", before: drain, call: func(p Policy) { p.Remove(1) }, panic: misuse("Remove", 1, notInPolicy)},
		evictionCase{name: "Forget of an evictable block", applies: isForgetter,
			call: func(p Policy) { p.(Forgetter).Forget(1) }, panic: misuse("Forget", 1, inPolicy)},
		evictionCase{name: "Forget of a hit evictable block", applies: isForgetter,
			call: func(p Policy) { p.(Forgetter).Forget(2) }, panic: misuse("Forget", 2, inPolicy)},
		evictionCase{name: "Hint of an evictable block", applies: isHinter,
			call: func(p Policy) { p.(Hinter).Hint(3, hint(3)) }, panic: misuse("Hint", 3, inPolicy)},
		evictionCase{name: "Hint of an evictable block with a bad parent", applies: isHinter,
			call: func(p Policy) { p.(Hinter).Hint(3, Hint{Parent: math.MaxInt32}) }, panic: misuse("Hint", 3, inPolicy)},
		// Priorities out of range.
		evictionCase{name: "Priority -1", applies: isPriority, call: func(p Policy) { p.(Hinter).Hint(4, Hint{Priority: -1}) },
			panic: func(Policy) string { return "eviction: Priority.Hint of block 4: priority -1 outside [0, 100]" }},
		evictionCase{name: "Priority 101", applies: isPriority, call: func(p Policy) { p.(Hinter).Hint(4, Hint{Priority: 101}) },
			panic: func(Policy) string { return "eviction: Priority.Hint of block 4: priority 101 outside [0, 100]" }},
		evictionCase{name: "Priority MaxInt", applies: isPriority, call: func(p Policy) { p.(Hinter).Hint(6, Hint{Priority: math.MaxInt}) },
			panic: func(Policy) string {
				return fmt.Sprintf("eviction: Priority.Hint of block 6: priority %d outside [0, 100]", math.MaxInt)
			}},
		evictionCase{name: "Priority MinInt", applies: isPriority, call: func(p Policy) { p.(Hinter).Hint(6, Hint{Priority: math.MinInt}) },
			panic: func(Policy) string {
				return fmt.Sprintf("eviction: Priority.Hint of block 6: priority %d outside [0, 100]", math.MinInt)
			}},
		// Time that goes back is ignored.
		evictionCase{name: "Advance(0)", applies: isTicker, call: func(p Policy) { p.(Ticker).Advance(0) }, same: true},
		evictionCase{name: "Advance(-5)", applies: isTicker, call: func(p Policy) { p.(Ticker).Advance(-5) }, same: true},
		evictionCase{name: "Advance(MinInt64)", applies: isTicker, call: func(p Policy) { p.(Ticker).Advance(math.MinInt64) }, same: true},
		evictionCase{name: "Advance(1) again", applies: isTicker, call: func(p Policy) { p.(Ticker).Advance(1) }, same: true},
		// Valid calls with extreme values: they may change the policy but
		// must not panic.
		evictionCase{name: "Advance(MaxInt64)", applies: isTicker, call: func(p Policy) { p.(Ticker).Advance(math.MaxInt64) }},
		evictionCase{name: "Hint expiring at MaxInt64", applies: isHinter,
			call: func(p Policy) {
				p.(Hinter).Hint(6, Hint{Priority: MaxPriority, Expires: math.MaxInt64, Parent: allocator.NoBlock})
				p.Insert(6)
			}},
		evictionCase{name: "Hint expiring in the past", applies: isHinter,
			call: func(p Policy) {
				p.(Hinter).Hint(6, Hint{Priority: 0, Expires: -3, Parent: allocator.NoBlock})
				p.Insert(6)
			}},
		evictionCase{name: "Hint with extreme key and depth", applies: isHinter, call: func(p Policy) {
			p.(Hinter).Hint(6, Hint{Key: math.MaxUint64, Depth: math.MinInt32, Parent: 6, Priority: 0})
			p.(Hinter).Hint(7, Hint{Key: 0, Depth: math.MaxInt32, Parent: 6, Priority: MaxPriority})
			p.Insert(7)
			p.Insert(6)
		}},
		evictionCase{name: "Hint of the same key twice", applies: isHinter, call: func(p Policy) {
			p.(Hinter).Hint(6, Hint{Key: 1001, Parent: allocator.NoBlock, Priority: DefaultPriority})
			p.(Hinter).Hint(7, Hint{Key: 1001, Parent: allocator.NoBlock, Priority: DefaultPriority})
			p.Insert(6)
			p.Insert(7)
		}},
		evictionCase{name: "Access of a referenced block", applies: isAccessor, call: func(p Policy) { p.(Accessor).Access(4) }},
		evictionCase{name: "Access of a block never seen", applies: isAccessor, call: func(p Policy) { p.(Accessor).Access(7) }},
		evictionCase{name: "Forget of a block never seen", applies: isForgetter, call: func(p Policy) { p.(Forgetter).Forget(7) }},
		evictionCase{name: "Forget twice", applies: isForgetter, call: func(p Policy) { p.(Forgetter).Forget(4); p.(Forgetter).Forget(4) }},
		evictionCase{name: "Victim of an empty policy", before: drain, same: true, call: func(p Policy) {
			if id, ok := p.Victim(); ok || id != allocator.NoBlock {
				panic(fmt.Sprintf("Victim of an empty policy gave %d, %v", id, ok))
			}
		}},
		evictionCase{name: "Contains of every block", same: true, call: func(p Policy) {
			for id := range allocator.BlockID(hostileCap) {
				p.Contains(id)
			}
		}},
	)
	return cases
}

func TestHostileInput(t *testing.T) {
	n, defs := 0, evictionCases()
	forEachPolicy(t, func(t *testing.T, f Factory) {
		for _, tc := range defs {
			if tc.applies != nil && !tc.applies(f(1)) {
				continue
			}
			n++
			t.Run(tc.name, func(t *testing.T) {
				p, twin := hostileSetup(f), hostileSetup(f)
				if tc.before != nil {
					tc.before(p)
					tc.before(twin)
				}
				var recovered any
				func() {
					defer func() { recovered = recover() }()
					tc.call(p)
				}()
				if tc.panic != nil {
					require.NotNil(t, recovered, "want a misuse panic")
					assert.Equal(t, tc.panic(twin), recovered)
					assert.Equal(t, observe(twin), observe(p), "a refused call changed the policy")
					return
				}
				require.Nil(t, recovered)
				if tc.same {
					assert.Equal(t, observe(twin), observe(p), "a call that should be ignored changed the policy")
					return
				}
				// The policy still works: it drains to empty, giving each
				// block once.
				seen := map[allocator.BlockID]bool{}
				want := p.Len()
				for {
					id, ok := p.Victim()
					if !ok {
						break
					}
					require.False(t, seen[id], "block %d given up twice", id)
					seen[id] = true
				}
				assert.Len(t, seen, want)
				assert.Zero(t, p.Len())
			})
		}
	})
	t.Logf("%d hostile cases (%d definitions over %d policies)", n, len(defs), len(Names()))
}

// TestHostileCapacity: degenerate and absurd capacities.
func TestHostileCapacity(t *testing.T) {
	forEachPolicy(t, func(t *testing.T, f Factory) {
		for _, c := range []int{math.MinInt, -1, 0} {
			p := f(c)
			assert.Zero(t, p.Len())
			_, ok := p.Victim()
			assert.False(t, ok)
			assert.PanicsWithValue(t, rangeText(0, 0), func() { p.Insert(0) }, "capacity %d", c)
			assert.PanicsWithValue(t, rangeText(0, 0), func() { p.Contains(0) }, "capacity %d", c)
		}
		for _, c := range []int{MaxCapacity + 1, math.MaxInt32, math.MaxInt} {
			assert.PanicsWithValue(t, fmt.Sprintf("eviction: capacity %d exceeds MaxCapacity (%d)", c, MaxCapacity),
				func() { f(c) }, "capacity %d", c)
		}
	})
}

// TestHostileNames: names no policy has.
func TestHostileNames(t *testing.T) {
	for _, name := range []string{"", " ", "lru ", "l\x00ru", "ＬＲＵ", strings.Repeat("x", 1<<16)} {
		f, err := ByName(name)
		require.ErrorIs(t, err, ErrUnknownPolicy, "%.20q", name)
		assert.Nil(t, f)
	}
}
