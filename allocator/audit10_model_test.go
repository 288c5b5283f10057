package allocator_test

import (
	"errors"
	"fmt"
	"slices"
	"testing"

	"pgregory.net/rapid"

	"github.com/pagedkv/pagedkv/allocator"
)

// The pool against a slow model of its documented behaviour: the states,
// the reference counts and the exact reuse order of the free list (a stack
// for LIFO, a queue for FIFO, both starting from the lowest usable ID).
// Every operation is drawn with IDs and counts inside and outside their
// ranges; a refused one (an error, a false Try, a misuse panic) must leave
// the pool exactly as the model says, which the later exact comparisons
// of handed-out IDs check.

type poolModel struct {
	total, reserved int
	fifo            bool
	refs            []int32
	cached          []bool
	free            []allocator.BlockID // next handed out: free[0] (FIFO) or free[len-1] (LIFO)
	allocs, rels    uint64
}

func newPoolModel(total, reserved int, fifo bool) *poolModel {
	m := &poolModel{total: total, reserved: reserved, fifo: fifo,
		refs: make([]int32, total), cached: make([]bool, total)}
	for id := reserved; id < total; id++ {
		m.free = append(m.free, allocator.BlockID(id))
	}
	if !fifo {
		slices.Reverse(m.free)
	}
	return m
}

func (m *poolModel) valid(id allocator.BlockID) bool {
	return int(id) >= m.reserved && int(id) < m.total
}
func (m *poolModel) inRange(id allocator.BlockID) bool { return id >= 0 && int(id) < m.total }
func (m *poolModel) held(id allocator.BlockID) bool    { return m.valid(id) && m.refs[id] > 0 }
func (m *poolModel) isCached(id allocator.BlockID) bool {
	return m.valid(id) && m.cached[id]
}
func (m *poolModel) isFree(id allocator.BlockID) bool {
	return m.valid(id) && slices.Contains(m.free, id)
}

func (m *poolModel) pop() allocator.BlockID {
	var id allocator.BlockID
	if m.fifo {
		id, m.free = m.free[0], m.free[1:]
	} else {
		id, m.free = m.free[len(m.free)-1], m.free[:len(m.free)-1]
	}
	m.refs[id] = 1
	m.allocs++
	return id
}

func (m *poolModel) heldCount() int {
	n := 0
	for _, r := range m.refs {
		if r > 0 {
			n++
		}
	}
	return n
}

func (m *poolModel) cachedCount() int {
	n := 0
	for _, c := range m.cached {
		if c {
			n++
		}
	}
	return n
}

// panics runs f and reports whether it panicked.
func panics(f func()) (did bool) {
	defer func() { did = recover() != nil }()
	f()
	return false
}

// TestAudit10PoolAgainstModel: exact IDs, counts and refusals.
func TestAudit10PoolAgainstModel(t *testing.T) {
	rapid.Check(t, func(t *rapid.T) {
		total := rapid.IntRange(1, 12).Draw(t, "total")
		reserved := rapid.IntRange(0, total-1).Draw(t, "reserved")
		fifo := rapid.Bool().Draw(t, "fifo")
		order := allocator.LIFO
		if fifo {
			order = allocator.FIFO
		}
		p, err := allocator.New(allocator.Config{NumBlocks: total, Reserved: reserved, Order: order})
		if err != nil {
			t.Fatal(err)
		}
		m := newPoolModel(total, reserved, fifo)
		anyID := rapid.Custom(func(t *rapid.T) allocator.BlockID {
			return allocator.BlockID(rapid.IntRange(-2, total+1).Draw(t, "id"))
		})
		// pick draws a block the model says is in the wanted state most of
		// the time, so that valid calls are common, and any ID otherwise.
		pick := func(t *rapid.T, want func(allocator.BlockID) bool) allocator.BlockID {
			var ok []allocator.BlockID
			for id := range allocator.BlockID(total) {
				if want(id) {
					ok = append(ok, id)
				}
			}
			if len(ok) > 0 && rapid.IntRange(0, 3).Draw(t, "valid") > 0 {
				return rapid.SampledFrom(ok).Draw(t, "pick")
			}
			return anyID.Draw(t, "any")
		}
		steps := rapid.IntRange(1, 80).Draw(t, "steps")
		for i := range steps {
			var what string
			switch op := rapid.IntRange(0, 12).Draw(t, "op"); op {
			case 0:
				id, err := p.Alloc()
				what = fmt.Sprintf("Alloc = %d, %v", id, err)
				if len(m.free) == 0 {
					if !errors.Is(err, allocator.ErrNoSpace) || id != allocator.NoBlock {
						t.Fatalf("%s with nothing free", what)
					}
					break
				}
				if want := m.pop(); err != nil || id != want {
					t.Fatalf("%s, model hands out %d", what, want)
				}
			case 1:
				n := rapid.IntRange(-3, total+2).Draw(t, "n")
				dst := []allocator.BlockID{99}
				got, err := p.AppendAlloc(dst, n)
				what = fmt.Sprintf("AppendAlloc(%d) = %v, %v", n, got, err)
				switch {
				case n < 0:
					if !errors.Is(err, allocator.ErrInvalid) || len(got) != 1 {
						t.Fatal(what)
					}
				case n > len(m.free):
					if !errors.Is(err, allocator.ErrNoSpace) || len(got) != 1 {
						t.Fatal(what)
					}
				default:
					want := []allocator.BlockID{99}
					for range n {
						want = append(want, m.pop())
					}
					if err != nil || !slices.Equal(got, want) {
						t.Fatalf("%s, model hands out %v", what, want)
					}
				}
			case 2, 3:
				id := pick(t, m.held)
				ok := m.held(id) && m.refs[id] < 1<<31-1
				var got bool
				if op == 2 {
					got = !panics(func() { p.Ref(id) })
				} else {
					got = p.TryRef(id)
				}
				what = fmt.Sprintf("Ref(%d) ok=%v", id, got)
				if got != ok {
					t.Fatalf("%s, model says %v", what, ok)
				}
				if ok {
					m.refs[id]++
				}
			case 4, 5, 6:
				id := pick(t, m.held)
				ok := m.held(id)
				var last, done bool
				switch op {
				case 4:
					done = !panics(func() { last = p.Release(id) })
				case 5:
					done = !panics(func() { last = p.ReleaseToCache(id) })
				default:
					last, done = p.TryReleaseToCache(id)
				}
				what = fmt.Sprintf("release %d (op %d) = %v, %v", id, op, last, done)
				if done != ok {
					t.Fatalf("%s, model says held=%v", what, ok)
				}
				if !ok {
					if last {
						t.Fatalf("%s: refused but reports a last release", what)
					}
					break
				}
				m.refs[id]--
				if want := m.refs[id] == 0; last != want {
					t.Fatalf("%s, model says last=%v", what, want)
				}
				if m.refs[id] == 0 {
					m.rels++
					if op == 4 {
						m.free = append(m.free, id)
					} else {
						m.cached[id] = true
					}
				}
			case 7, 8:
				id := pick(t, m.isCached)
				ok := m.isCached(id)
				var got bool
				if op == 7 {
					got = !panics(func() { p.Claim(id) })
				} else {
					got = p.TryClaim(id)
				}
				what = fmt.Sprintf("Claim(%d) ok=%v", id, got)
				if got != ok {
					t.Fatalf("%s, model says %v", what, ok)
				}
				if ok {
					m.cached[id], m.refs[id] = false, 1
					m.allocs++
				}
			case 9:
				id := pick(t, m.isCached)
				ok := m.isCached(id)
				got := !panics(func() { p.Evict(id) })
				what = fmt.Sprintf("Evict(%d) ok=%v", id, got)
				if got != ok {
					t.Fatalf("%s, model says %v", what, ok)
				}
				if ok {
					m.cached[id] = false
					m.free = append(m.free, id)
				}
			case 10:
				id := anyID.Draw(t, "id")
				what = fmt.Sprintf("accessors of %d", id)
				if !m.inRange(id) {
					for _, f := range []func(){func() { p.RefCount(id) }, func() { p.IsFree(id) }, func() { p.IsCached(id) }} {
						if !panics(f) {
							t.Fatalf("%s: no panic out of range", what)
						}
					}
					break
				}
				if p.RefCount(id) != m.refs[id] || p.IsFree(id) != m.isFree(id) || p.IsCached(id) != m.isCached(id) ||
					p.Valid(id) != m.valid(id) {
					t.Fatalf("%s: refs %d free %v cached %v valid %v, model %d %v %v %v", what,
						p.RefCount(id), p.IsFree(id), p.IsCached(id), p.Valid(id),
						m.refs[id], m.isFree(id), m.isCached(id), m.valid(id))
				}
			case 11:
				id := anyID.Draw(t, "id")
				n := rapid.IntRange(-1, total+1).Draw(t, "n")
				var got int
				did := panics(func() { got = p.CountCached(id, n) })
				what = fmt.Sprintf("CountCached(%d, %d) = %d", id, n, got)
				inside := id >= 0 && n >= 0 && int(id)+n <= total
				if did == inside {
					t.Fatalf("%s: panicked=%v", what, did)
				}
				if inside {
					want := 0
					for b := id; b < id+allocator.BlockID(n); b++ {
						if m.isCached(b) {
							want++
						}
					}
					if got != want {
						t.Fatalf("%s, model %d", what, want)
					}
				}
			case 12:
				what = "Stats"
			}
			if err := p.Check(); err != nil {
				t.Fatalf("step %d, %s: %v", i, what, err)
			}
			want := allocator.Stats{Total: total, Reserved: reserved, Free: len(m.free), Cached: m.cachedCount(),
				Held: m.heldCount(), Allocs: m.allocs, Releases: m.rels}
			if got := p.Stats(); got != want {
				t.Fatalf("step %d, %s: stats %+v, model %+v", i, what, got, want)
			}
		}
	})
}
