package allocator

import (
	"errors"
	"fmt"
	"math"
	"math/rand/v2"
	"reflect"
	"slices"
	"strings"
	"testing"
)

// Audit 37: hostile calls mixed into long random sequences. TestHostileInput
// (hostile_test.go) makes each hostile call from one fixed pool; here they
// meet every state random use reaches (LIFO and FIFO, a wrapped free ring,
// shared and cached blocks, an exhausted pool). A model keeps each block's
// count and state. Every call either does what the model says, returns a
// sentinel error, or panics with the documented misuse message; a Try form
// reports false exactly where its checked form would panic. A refused call
// (error, panic or false) must leave the pool equal to a clone taken before
// it, field by field, and a cached or held block is never handed out again
// (nothing referenced is lost).

func TestAudit37HostileSequences(t *testing.T) {
	refused := 0
	for seed := range uint64(2000) {
		refused += audit37Pool(t, seed)
		if t.Failed() {
			return
		}
	}
	t.Logf("2000 seeds, %d refused calls", refused)
}

var audit37Ns = []int{-1, 0, 1, 2, 3, math.MaxInt, math.MinInt, math.MaxInt32, min(1<<40, math.MaxInt)}

func audit37Pool(t *testing.T, seed uint64) (refused int) {
	r := rand.New(rand.NewPCG(seed, 37))
	total := 1 + r.IntN(20)
	res := r.IntN(total)
	p, err := New(Config{NumBlocks: total, Reserved: res, Order: Order(r.IntN(2))})
	if err != nil {
		t.Fatalf("seed %d: %v", seed, err)
	}
	const (
		free = iota
		cached
		held
		reserved
	)
	st := make([]int, total)
	refs := make([]int32, total)
	for i := range res {
		st[i] = reserved
	}
	id := func() BlockID {
		if r.IntN(10) == 0 {
			return []BlockID{NoBlock, -2, math.MinInt32, BlockID(total), math.MaxInt32}[r.IntN(5)]
		}
		return BlockID(r.IntN(total))
	}
	in := func(x BlockID) bool { return x >= 0 && int(x) < total }
	usable := func(x BlockID) bool { return in(x) && int(x) >= res }
	var log []string
	fail := func(format string, args ...any) {
		t.Fatalf("seed %d (total %d, reserved %d, order %d): %s\ncalls:\n%s", seed, total, res, p.order, fmt.Sprintf(format, args...), strings.Join(log, "\n"))
	}
	take := func(x BlockID) {
		if !usable(x) || st[x] != free {
			fail("handed out block %d, which is not free (state %d)", x, st[x])
		}
		st[x], refs[x] = held, 1
	}
	for it := 0; it < 200; it++ {
		x := id()
		before := clone(p)
		var name string
		var perr any
		// misuse: the model says the checked call panics; changed: it
		// says the call succeeds.
		var misuse, ok bool
		func() {
			defer func() { perr = recover() }()
			switch r.IntN(12) {
			case 0:
				name = "Alloc"
				got, err := p.Alloc()
				if err != nil {
					if !errors.Is(err, ErrNoSpace) || got != NoBlock || slices.Contains(st, free) {
						fail("Alloc: (%d, %v) with free blocks %v", got, err, st)
					}
					refused++
					break
				}
				take(got)
			case 1:
				n := r.IntN(4)
				if r.IntN(4) == 0 {
					n = audit37Ns[r.IntN(len(audit37Ns))]
				}
				name = fmt.Sprintf("AppendAlloc(%d)", n)
				dst := []BlockID{7, 8}[:r.IntN(3)]
				if r.IntN(3) == 0 {
					dst = nil
				}
				keep := slices.Clone(dst)
				out, err := p.AppendAlloc(dst, n)
				if err != nil {
					want := ErrNoSpace
					if n < 0 {
						want = ErrInvalid
					}
					if !errors.Is(err, want) || !slices.Equal(out, keep) || len(out) != len(dst) {
						fail("%s: (%v, %v), want dst %v and %v", name, out, err, keep, want)
					}
					refused++
					break
				}
				if n < 0 || !slices.Equal(out[:len(keep)], keep) || len(out) != len(keep)+n {
					fail("%s: accepted, out %v from dst %v", name, out, keep)
				}
				for _, b := range out[len(keep):] {
					take(b)
				}
			case 2:
				name = fmt.Sprintf("Ref(%d)", x)
				misuse = !usable(x) || st[x] != held
				if tryOrChecked(r, &name, &misuse, &ok, func() bool { return p.TryRef(x) }, func() { p.Ref(x) }, fail) {
					refs[x]++
				}
			case 3, 4:
				name = fmt.Sprintf("Release(%d)", x)
				misuse = !usable(x) || st[x] != held
				last := p.Release(x)
				refs[x]--
				if last != (refs[x] == 0) {
					fail("%s = %v with %d references left", name, last, refs[x])
				}
				if last {
					st[x] = free
				}
			case 5, 6:
				name = fmt.Sprintf("ReleaseToCache(%d)", x)
				misuse = !usable(x) || st[x] != held
				var last bool
				if r.IntN(2) == 0 {
					name = "Try" + name
					last, ok = p.TryReleaseToCache(x)
					if ok == misuse {
						fail("%s ok = %v", name, ok)
					}
					misuse = false
				} else {
					last, ok = p.ReleaseToCache(x), true
				}
				if ok {
					refs[x]--
					if last != (refs[x] == 0) {
						fail("%s = %v with %d references left", name, last, refs[x])
					}
					if last {
						st[x] = cached
					}
				}
			case 7:
				name = fmt.Sprintf("Claim(%d)", x)
				misuse = !usable(x) || st[x] != cached
				if tryOrChecked(r, &name, &misuse, &ok, func() bool { return p.TryClaim(x) }, func() { p.Claim(x) }, fail) {
					st[x], refs[x] = held, 1
				}
			case 8:
				name = fmt.Sprintf("Evict(%d)", x)
				misuse = !usable(x) || st[x] != cached
				p.Evict(x)
				st[x] = free
			case 9:
				name = fmt.Sprintf("accessors(%d)", x)
				misuse = !in(x)
				rc, f, c := p.RefCount(x), p.IsFree(x), p.IsCached(x)
				if rc != refs[x] || f != (st[x] == free) || c != (st[x] == cached) || p.Valid(x) != usable(x) {
					fail("%s: count %d free %v cached %v, model %d state %d", name, rc, f, c, refs[x], st[x])
				}
			case 10:
				n := r.IntN(total + 1)
				if r.IntN(3) == 0 {
					n = audit37Ns[r.IntN(len(audit37Ns))]
				}
				name = fmt.Sprintf("CountCached(%d, %d)", x, n)
				misuse = x < 0 || n < 0 || int(x) > total-n
				got := p.CountCached(x, n)
				want := 0
				for i := int(x); i < int(x)+n; i++ {
					want += b2i(st[i] == cached)
				}
				if got != want {
					fail("%s = %d, model %d", name, got, want)
				}
			case 11:
				name = "Stats"
				s := p.Stats()
				var c [4]int
				for _, v := range st {
					c[v]++
				}
				if s.Total != total || s.Reserved != c[reserved] || s.Free != c[free] || s.Cached != c[cached] || s.Held != c[held] ||
					p.Free() != s.Free || p.Cached() != s.Cached || p.Held() != s.Held || p.Usable() != total-res {
					fail("Stats %+v, model %v", s, c)
				}
			}
		}()
		log = append(log, name)
		switch {
		case perr != nil:
			if !misuse {
				fail("%s panicked: %v", name, perr)
			}
			msg := fmt.Sprint(perr)
			// CountCached names the first block past the pool instead.
			named := strings.Contains(msg, fmt.Sprintf("block %d", x)) || strings.HasPrefix(name, "CountCached") && strings.Contains(msg, "out of range")
			if !strings.HasPrefix(msg, "allocator: ") || !named {
				fail("%s: panic %q does not name block %d", name, msg, x)
			}
			refused++
		case misuse:
			fail("%s: misuse did not panic", name)
		}
		if perr != nil || (strings.HasPrefix(name, "Try") && !ok) {
			if !reflect.DeepEqual(before, p) {
				fail("refused %s changed the pool\nbefore %+v\nafter  %+v", name, before, p)
			}
		}
		if err := p.Check(); err != nil {
			fail("after %s: %v", name, err)
		}
	}
	return refused
}

// tryOrChecked calls, at random, the Try form (prefixing *name with
// "Try"; its answer must be false exactly on misuse, which it then
// clears, since a Try form does not panic) or the checked form (which
// panics on misuse). It reports, and stores in *ok, whether the call took
// effect.
func tryOrChecked(r *rand.Rand, name *string, misuse, ok *bool, try func() bool, checked func(), fail func(string, ...any)) bool {
	if r.IntN(2) == 0 {
		*name = "Try" + *name
		if *ok = try(); *ok == *misuse {
			fail("%s = %v", *name, *ok)
		}
		*misuse = false
		return *ok
	}
	checked()
	*ok = true
	return true
}

func b2i(b bool) int {
	if b {
		return 1
	}
	return 0
}
