package eviction

import (
	"fmt"
	"math"
	"math/rand/v2"
	"runtime/debug"
	"strings"
	"testing"

	"github.com/pagedkv/pagedkv/allocator"
)

// Audit 37: random call sequences with hostile values for every policy.
// TestHostileInput (hostile_test.go) starts each hostile call from one
// fixed state; here the hostile calls are mixed into long random
// sequences, so they meet every state the protocol reaches: hints with
// extreme depths, keys shared by many blocks, a block named as its own
// parent and parent cycles through reused blocks, expiries and times at
// the ends of int64, Retain on blocks with no content, misuse of every
// kind. A twin policy gets every call that did not panic; the two must
// agree on every victim, Len and Contains, which shows that a refused
// call changed nothing. A model of the evictable set checks that Victim
// gives up only blocks that were inserted and not removed (nothing held
// is ever given up) and gives each one once, and the internal checks of
// the policies that have them run after every call.

var audit37Depths = []int32{0, 1, 2, -1, math.MinInt32, math.MaxInt32, 1 << 20}

var audit37Times = []int64{0, 1, 2, 5, -1, math.MinInt64, math.MaxInt64, math.MaxInt64 - 1, 1 << 40}

var audit37Levels = []int{0, 1, DefaultPriority, MaxPriority, -1, MaxPriority + 1, math.MaxInt, math.MinInt}

// audit37Call is one call made to both policies: fn gets the policy.
type audit37Call struct {
	name string
	fn   func(p Policy) (allocator.BlockID, bool)
	// misuse: the protocol says the call panics (the model knows it).
	misuse bool
}

func TestAudit37HostileSequences(t *testing.T) {
	seeds := uint64(300)
	if testing.Short() {
		seeds = 40
	}
	forEachPolicy(t, func(t *testing.T, f Factory) {
		panics := 0
		for seed := range seeds {
			panics += audit37Policy(t, f, seed)
			if t.Failed() {
				return
			}
		}
		t.Logf("%d seeds, %d refused calls", seeds, panics)
	})
}

// audit37Check runs the internal check of p's type, if it has one.
func audit37Check(t *testing.T, p Policy) error {
	if err := audit10Check(p); err != nil {
		return err
	}
	switch q := p.(type) {
	case *Priority:
		return q.check()
	case *Chain:
		q.checkSegments(t)
	}
	return nil
}

func audit37Policy(t *testing.T, f Factory, seed uint64) (refused int) {
	r := rand.New(rand.NewPCG(seed, 37))
	c := 1 + r.IntN(24)
	p, twin := f(c), f(c)
	in := make([]bool, c)
	n := 0
	_, hinter := p.(Hinter)
	_, forgetter := p.(Forgetter)
	_, accessor := p.(Accessor)
	_, ticker := p.(Ticker)
	_, retainer := p.(Retainer)
	id := func() allocator.BlockID {
		if r.IntN(12) == 0 {
			return []allocator.BlockID{allocator.NoBlock, -2, math.MinInt32, allocator.BlockID(c), math.MaxInt32}[r.IntN(5)]
		}
		return allocator.BlockID(r.IntN(c))
	}
	valid := func(x allocator.BlockID) bool { return x >= 0 && int(x) < c }
	var log []string
	defer func() {
		if e := recover(); e != nil {
			t.Fatalf("seed %d cap %d: %v\n%s\ncalls:\n%s", seed, c, e, debug.Stack(), strings.Join(log, "\n"))
		}
	}()
	for it := 0; it < 300; it++ {
		var call audit37Call
		x := id()
		switch op := r.IntN(10); {
		case op <= 1:
			call = audit37Call{fmt.Sprintf("Insert(%d)", x), func(p Policy) (allocator.BlockID, bool) { p.Insert(x); return 0, false }, !valid(x) || in[x]}
		case op == 2:
			call = audit37Call{fmt.Sprintf("Remove(%d)", x), func(p Policy) (allocator.BlockID, bool) { p.Remove(x); return 0, false }, !valid(x) || !in[x]}
		case op == 3:
			call = audit37Call{"Victim", func(p Policy) (allocator.BlockID, bool) { return p.Victim() }, false}
		case op == 4 && hinter:
			h := Hint{Key: uint64(r.IntN(6)), Depth: audit37Depths[r.IntN(len(audit37Depths))], Parent: allocator.BlockID(r.IntN(c)), Priority: r.IntN(MaxPriority + 1), Expires: audit37Times[r.IntN(len(audit37Times))]}
			switch r.IntN(6) {
			case 0:
				h.Parent = allocator.NoBlock
			case 1:
				h.Parent = x // its own parent
			case 2:
				h.Parent = id()
			}
			if r.IntN(8) == 0 {
				h.Key = []uint64{math.MaxUint64, 1 << 63}[r.IntN(2)]
			}
			if r.IntN(10) == 0 {
				h.Priority = audit37Levels[r.IntN(len(audit37Levels))]
			}
			_, prio := p.(*Priority)
			_, leaf := p.(*LeafLRU)
			_, chain := p.(*Chain)
			bad := !valid(x) || in[x] || (prio && (h.Priority < 0 || h.Priority > MaxPriority)) ||
				((leaf || chain) && h.Parent != allocator.NoBlock && !valid(h.Parent))
			call = audit37Call{fmt.Sprintf("Hint(%d, %+v)", x, h), func(p Policy) (allocator.BlockID, bool) { p.(Hinter).Hint(x, h); return 0, false }, bad}
		case op == 5 && forgetter:
			call = audit37Call{fmt.Sprintf("Forget(%d)", x), func(p Policy) (allocator.BlockID, bool) { p.(Forgetter).Forget(x); return 0, false }, !valid(x) || in[x]}
		case op == 6 && accessor:
			call = audit37Call{fmt.Sprintf("Access(%d)", x), func(p Policy) (allocator.BlockID, bool) { p.(Accessor).Access(x); return 0, false }, !valid(x)}
		case op == 7 && ticker:
			now := audit37Times[r.IntN(len(audit37Times))] + int64(r.IntN(3))
			if r.IntN(3) == 0 {
				now = int64(it)
			}
			call = audit37Call{fmt.Sprintf("Advance(%d)", now), func(p Policy) (allocator.BlockID, bool) { p.(Ticker).Advance(now); return 0, false }, false}
		case op == 8 && retainer:
			lv := r.IntN(MaxPriority + 1)
			if r.IntN(6) == 0 {
				lv = audit37Levels[r.IntN(len(audit37Levels))]
			}
			exp := audit37Times[r.IntN(len(audit37Times))]
			if r.IntN(3) == 0 {
				exp = int64(it + r.IntN(20))
			}
			call = audit37Call{fmt.Sprintf("Retain(%d, %d, %d)", x, lv, exp), func(p Policy) (allocator.BlockID, bool) { p.(Retainer).Retain(x, lv, exp); return 0, false }, !valid(x) || lv < 0 || lv > MaxPriority}
		default:
			call = audit37Call{fmt.Sprintf("Contains(%d)", x), func(p Policy) (allocator.BlockID, bool) { return 0, p.Contains(x) }, !valid(x)}
		}
		log = append(log, call.name)
		var got allocator.BlockID
		var ok bool
		var pv any
		func() {
			defer func() { pv = recover() }()
			got, ok = call.fn(p)
		}()
		if pv != nil {
			msg, isString := pv.(string)
			if !isString || !strings.HasPrefix(msg, "eviction: ") {
				t.Fatalf("seed %d cap %d %s: panic %v is not a misuse message\ncalls:\n%s", seed, c, call.name, pv, strings.Join(log, "\n"))
			}
			if !call.misuse {
				t.Fatalf("seed %d cap %d %s: panicked (%s) on a call the protocol allows\ncalls:\n%s", seed, c, call.name, msg, strings.Join(log, "\n"))
			}
			refused++
		} else {
			if call.misuse {
				t.Fatalf("seed %d cap %d %s: misuse did not panic\ncalls:\n%s", seed, c, call.name, strings.Join(log, "\n"))
			}
			tg, tok := call.fn(twin)
			if tg != got || tok != ok {
				t.Fatalf("seed %d cap %d %s: policy says (%d, %v), twin (%d, %v)\ncalls:\n%s", seed, c, call.name, got, ok, tg, tok, strings.Join(log, "\n"))
			}
			switch {
			case strings.HasPrefix(call.name, "Insert"):
				in[x] = true
				n++
			case strings.HasPrefix(call.name, "Remove"):
				in[x] = false
				n--
			case call.name == "Victim":
				if ok != (n > 0) {
					t.Fatalf("seed %d cap %d: Victim ok=%v with %d evictable", seed, c, ok, n)
				}
				if ok {
					if !valid(got) || !in[got] {
						t.Fatalf("seed %d cap %d: Victim gave up block %d, which is not evictable\ncalls:\n%s", seed, c, got, strings.Join(log, "\n"))
					}
					in[got] = false
					n--
				}
			case strings.HasPrefix(call.name, "Contains"):
				if ok != in[x] {
					t.Fatalf("seed %d cap %d: Contains(%d) = %v, model %v", seed, c, x, ok, in[x])
				}
			}
		}
		if p.Len() != n || twin.Len() != n {
			t.Fatalf("seed %d cap %d after %s: Len %d, twin %d, model %d\ncalls:\n%s", seed, c, call.name, p.Len(), twin.Len(), n, strings.Join(log, "\n"))
		}
		if err := audit37Check(t, p); err != nil {
			t.Fatalf("seed %d cap %d after %s: %v\ncalls:\n%s", seed, c, call.name, err, strings.Join(log, "\n"))
		}
	}
	// Drain both: the same victims, each evictable block once.
	for {
		a, aok := p.Victim()
		b, bok := twin.Victim()
		if a != b || aok != bok {
			t.Fatalf("seed %d cap %d drain: policy (%d, %v), twin (%d, %v)\ncalls:\n%s", seed, c, a, aok, b, bok, strings.Join(log, "\n"))
		}
		if !aok {
			break
		}
		if !in[a] {
			t.Fatalf("seed %d cap %d drain: block %d given up, not evictable", seed, c, a)
		}
		in[a] = false
		n--
	}
	if n != 0 {
		t.Fatalf("seed %d cap %d: %d evictable blocks never given up", seed, c, n)
	}
	return refused
}

// TestAudit37PriorityPastExpiry: a Hint whose expiry is a tick before the
// current time (a negative one, since time starts at 0) applies at once,
// as the Hint documentation says of any expiry at or before the current
// tick, and as Retain treats the same promise. Hint used to test
// Expires > 0 for "set", which made a negative expiry keep the level for
// good: block 0 stayed at level 100 and block 1 went first.
func TestAudit37PriorityPastExpiry(t *testing.T) {
	for _, exp := range []int64{-1, math.MinInt64, 5} {
		p := NewPriority(2)
		p.(Ticker).Advance(5)
		hn := p.(Hinter)
		hn.Hint(0, Hint{Key: 1, Parent: allocator.NoBlock, Priority: MaxPriority, Expires: exp})
		hn.Hint(1, Hint{Key: 2, Parent: allocator.NoBlock, Priority: DefaultPriority})
		p.Insert(0)
		p.Insert(1)
		if v, _ := p.Victim(); v != 0 {
			t.Errorf("expiry %d at tick 5: victim %d, want 0 (its level lapsed at once)", exp, v)
		}
		// Retain with the same promise agrees: it is not recorded.
		q := NewPriority(1).(*Priority)
		q.Advance(5)
		q.Retain(0, MaxPriority, exp)
		if q.Retains() != 0 {
			t.Errorf("Retain with expiry %d at tick 5 recorded a promise", exp)
		}
	}
}
