package eviction

import (
	"fmt"
	"slices"
	"testing"

	"pgregory.net/rapid"

	"github.com/pagedkv/pagedkv/allocator"
)

// Differential tests: every policy but Chain (whose order is learned) and
// Priority (being reworked; see TestAudit10Invariants for both) against
// the slowest, plainest model of its documented order (slices and linear
// scans; S3-FIFO's and ARC's in audit10_model2_test.go), driven through
// random sequences of every method with valid and invalid calls. Every
// call the model calls misuse must panic and change nothing; every Victim
// must be the model's; Len and Contains must agree after every step.

// refModel is the model of one policy. Each method reports false, changing
// nothing, for a call the policy's documentation calls misuse (it must
// panic); the range of IDs is checked by the harness.
type refModel interface {
	insert(id allocator.BlockID) bool
	remove(id allocator.BlockID) bool
	victim() (allocator.BlockID, bool)
	access(id allocator.BlockID)
	hint(id allocator.BlockID, h Hint) bool
	forget(id allocator.BlockID) bool
	in(id allocator.BlockID) bool
}

// released is the part of a model that LRU orders share: which blocks are
// evictable, and a stamp per block, increasing with each release (or move
// to the back), that the models order by.
type released struct {
	evictable []bool
	stamp     []int
	now       int
}

func newReleased(n int) released {
	return released{evictable: make([]bool, n), stamp: make([]int, n)}
}

func (r *released) next() int { r.now++; return r.now }

func (r *released) in(id allocator.BlockID) bool { return r.evictable[id] }

func (r *released) insert(id allocator.BlockID) bool {
	if r.evictable[id] {
		return false
	}
	r.evictable[id], r.stamp[id] = true, r.next()
	return true
}

func (r *released) remove(id allocator.BlockID) bool {
	if !r.evictable[id] {
		return false
	}
	r.evictable[id] = false
	return true
}

// oldest returns the block of least stamp among those ok accepts.
func oldest(n int, stamp []int, ok func(allocator.BlockID) bool) (allocator.BlockID, bool) {
	best := allocator.NoBlock
	for id := range allocator.BlockID(n) {
		if ok(id) && (best < 0 || stamp[id] < stamp[best]) {
			best = id
		}
	}
	return best, best >= 0
}

// lruModel: a slice, least recently inserted first.
type lruModel struct{ order []allocator.BlockID }

func (m *lruModel) in(id allocator.BlockID) bool { return slices.Contains(m.order, id) }
func (m *lruModel) insert(id allocator.BlockID) bool {
	if m.in(id) {
		return false
	}
	m.order = append(m.order, id)
	return true
}
func (m *lruModel) remove(id allocator.BlockID) bool {
	i := slices.Index(m.order, id)
	if i < 0 {
		return false
	}
	m.order = slices.Delete(m.order, i, i+1)
	return true
}
func (m *lruModel) victim() (allocator.BlockID, bool) {
	if len(m.order) == 0 {
		return allocator.NoBlock, false
	}
	id := m.order[0]
	m.order = m.order[1:]
	return id, true
}
func (m *lruModel) access(allocator.BlockID) {}

// hint and forget are misuse on a block in the policy: for a policy that
// is LRU without hints (LRU has neither method).
func (m *lruModel) hint(id allocator.BlockID, _ Hint) bool { return !m.in(id) }
func (m *lruModel) forget(id allocator.BlockID) bool       { return !m.in(id) }

// queueModel is FIFO, CLOCK (bits) and SIEVE (bits, sieve): a queue of
// content in creation order, oldest first, with an evictable flag and a
// reference bit per block.
type queueModel struct {
	released
	queue []allocator.BlockID
	bit   []bool
	bits  bool // CLOCK or SIEVE: Access sets the bit
	sieve bool
	hand  allocator.BlockID // SIEVE's hand, NoBlock: at the oldest
}

func newQueueModel(n int, bits, sieve bool) *queueModel {
	return &queueModel{released: newReleased(n), bit: make([]bool, n), bits: bits, sieve: sieve, hand: allocator.NoBlock}
}

func (m *queueModel) queued(id allocator.BlockID) bool {
	return slices.Contains(m.queue, id)
}
func (m *queueModel) insert(id allocator.BlockID) bool {
	if m.evictable[id] {
		return false
	}
	if !m.queued(id) {
		m.queue = append(m.queue, id)
	}
	m.evictable[id] = true
	return true
}
func (m *queueModel) access(id allocator.BlockID) {
	if m.bits {
		m.bit[id] = true
	}
}
func (m *queueModel) forget(id allocator.BlockID) bool {
	if m.evictable[id] {
		return false
	}
	m.unqueue(id)
	m.bit[id] = false
	return true
}
func (m *queueModel) hint(id allocator.BlockID, _ Hint) bool { return m.forget(id) }

// unqueue takes id off the queue; SIEVE's hand moves on to the next newer
// block, or back to the oldest past the newest.
func (m *queueModel) unqueue(id allocator.BlockID) {
	i := slices.Index(m.queue, id)
	if i < 0 {
		return
	}
	if m.hand == id {
		m.hand = allocator.NoBlock
		if i+1 < len(m.queue) {
			m.hand = m.queue[i+1]
		}
	}
	m.queue = slices.Delete(m.queue, i, i+1)
}

func (m *queueModel) victim() (allocator.BlockID, bool) {
	if !slices.Contains(m.evictable, true) {
		return allocator.NoBlock, false
	}
	for {
		id := m.queue[0]
		if m.sieve && m.hand >= 0 {
			id = m.hand
		}
		switch {
		case !m.evictable[id]:
			// Referenced: off the queue until released.
			m.unqueue(id)
		case m.bit[id] && m.sieve:
			// Spared in place; the hand moves on.
			m.bit[id] = false
			i := slices.Index(m.queue, id)
			m.hand = allocator.NoBlock
			if i+1 < len(m.queue) {
				m.hand = m.queue[i+1]
			}
		case m.bit[id]:
			// CLOCK: a second chance at the back.
			m.bit[id] = false
			m.unqueue(id)
			m.queue = append(m.queue, id)
		default:
			m.unqueue(id)
			m.evictable[id] = false
			return id, true
		}
	}
}

// lfuModel: the fewest hits (saturating at 4095) first, then the least
// recently inserted or moved.
type lfuModel struct {
	released
	count []int
}

func (m *lfuModel) access(id allocator.BlockID) {
	m.count[id]++
	if m.evictable[id] {
		m.stamp[id] = m.next() // moves up to its new bucket as the most recent
	}
}
func (m *lfuModel) forget(id allocator.BlockID) bool {
	if m.evictable[id] {
		return false
	}
	m.count[id] = 0
	return true
}
func (m *lfuModel) hint(id allocator.BlockID, _ Hint) bool { return m.forget(id) }
func (m *lfuModel) victim() (allocator.BlockID, bool) {
	best := allocator.NoBlock
	key := func(id allocator.BlockID) []int { return []int{min(m.count[id], lfuBuckets-1), m.stamp[id]} }
	for id := range allocator.BlockID(len(m.evictable)) {
		if m.evictable[id] && (best < 0 || slices.Compare(key(id), key(best)) < 0) {
			best = id
		}
	}
	if best < 0 {
		return best, false
	}
	m.evictable[best], m.count[best] = false, 0
	return best, true
}

// slruModel: probation and protection as tags on content, orders as
// stamps; the protected share is the content tagged protected.
type slruModel struct {
	released
	prot    []bool
	protMax int
}

func (m *slruModel) access(id allocator.BlockID) {
	m.prot[id] = true
	if m.evictable[id] {
		m.stamp[id] = m.next()
	}
	for {
		n := 0
		for _, p := range m.prot {
			if p {
				n++
			}
		}
		d, ok := oldest(len(m.prot), m.stamp, func(b allocator.BlockID) bool { return m.evictable[b] && m.prot[b] })
		if n <= m.protMax || !ok {
			return
		}
		m.prot[d], m.stamp[d] = false, m.next()
	}
}
func (m *slruModel) forget(id allocator.BlockID) bool {
	if m.evictable[id] {
		return false
	}
	m.prot[id] = false
	return true
}
func (m *slruModel) hint(id allocator.BlockID, _ Hint) bool { return m.forget(id) }
func (m *slruModel) victim() (allocator.BlockID, bool) {
	id, ok := oldest(len(m.prot), m.stamp, func(b allocator.BlockID) bool { return m.evictable[b] && !m.prot[b] })
	if !ok {
		id, ok = oldest(len(m.prot), m.stamp, func(b allocator.BlockID) bool { return m.evictable[b] })
	}
	if ok {
		m.evictable[id], m.prot[id] = false, false
	}
	return id, ok
}

// leafModel: LeafLRU's documented order. A block's children are the
// blocks hinted with it as parent while it held its present content; the
// least recently released evictable block without children goes first,
// and when every evictable block has children, the least recently
// released of them.
type leafModel struct {
	released
	version  []int // bumped whenever a block's content changes
	parent   []allocator.BlockID
	pversion []int
}

func (m *leafModel) children(id allocator.BlockID) int {
	n := 0
	for c, p := range m.parent {
		if p == id && m.pversion[c] == m.version[id] {
			n++
		}
	}
	return n
}
func (m *leafModel) access(allocator.BlockID) {}
func (m *leafModel) drop(id allocator.BlockID) {
	m.version[id]++
	m.parent[id] = allocator.NoBlock
}
func (m *leafModel) forget(id allocator.BlockID) bool {
	if m.evictable[id] {
		return false
	}
	m.drop(id)
	return true
}
func (m *leafModel) hint(id allocator.BlockID, h Hint) bool {
	if m.evictable[id] || (h.Parent != allocator.NoBlock && (h.Parent < 0 || int(h.Parent) >= len(m.parent))) {
		return false
	}
	m.drop(id)
	if h.Parent >= 0 && h.Parent != id {
		m.parent[id], m.pversion[id] = h.Parent, m.version[h.Parent]
	}
	return true
}
func (m *leafModel) victim() (allocator.BlockID, bool) {
	n := len(m.evictable)
	id, ok := oldest(n, m.stamp, func(b allocator.BlockID) bool { return m.evictable[b] && m.children(b) == 0 })
	if !ok {
		id, ok = oldest(n, m.stamp, func(b allocator.BlockID) bool { return m.evictable[b] })
	}
	if ok {
		m.evictable[id] = false
		m.drop(id)
	}
	return id, ok
}

// newModel returns the model of the policy called name, or nil when its
// order is not modelled (see TestAudit10Invariants).
func newModel(name string, n int) refModel {
	switch name {
	case "lru":
		return &lruModel{}
	case "fifo":
		return newQueueModel(n, false, false)
	case "clock":
		return newQueueModel(n, true, false)
	case "sieve":
		return newQueueModel(n, true, true)
	case "lfu":
		return &lfuModel{released: newReleased(n), count: make([]int, n)}
	case "slru":
		return &slruModel{released: newReleased(n), prot: make([]bool, n), protMax: max(n*slruProtectedPercent/100, 1)}
	case "s3fifo":
		return newS3Model(n)
	case "arc":
		return newARCModel(n)
	case "leaflru":
		m := &leafModel{released: newReleased(n), version: make([]int, n),
			parent: make([]allocator.BlockID, n), pversion: make([]int, n)}
		for i := range m.parent {
			m.parent[i] = allocator.NoBlock
		}
		return m
	}
	return nil
}

// call runs f and returns what it panicked with, or nil.
func call(f func()) (v any) {
	defer func() { v = recover() }()
	f()
	return nil
}

// drawID draws a block ID: usually one of want (when any), else any ID
// in [-2, n+2), out of range included.
func drawID(t *rapid.T, n int, want func(allocator.BlockID) bool) allocator.BlockID {
	var ok []allocator.BlockID
	for id := range allocator.BlockID(n) {
		if want(id) {
			ok = append(ok, id)
		}
	}
	if len(ok) > 0 && rapid.IntRange(0, 4).Draw(t, "valid") > 0 {
		return rapid.SampledFrom(ok).Draw(t, "id")
	}
	return allocator.BlockID(rapid.IntRange(-2, n+1).Draw(t, "any id"))
}

// drawHint draws a hint with keys from a small range (so ghosts and
// records meet again, and two blocks may share a key), any parent, and
// priorities and expiries in and out of range.
func drawHint(t *rapid.T, n int, now int64) Hint {
	return Hint{
		Key:      uint64(rapid.IntRange(0, 2*n).Draw(t, "key")),
		Depth:    int32(rapid.IntRange(0, 8).Draw(t, "depth")),
		Parent:   allocator.BlockID(rapid.IntRange(-2, n).Draw(t, "parent")),
		Priority: rapid.SampledFrom([]int{DefaultPriority, 0, 1, 50, MaxPriority}).Draw(t, "priority"),
		Expires:  now + int64(rapid.IntRange(-2, 6).Draw(t, "expires in")),
	}
}

func TestAudit10AgainstModels(t *testing.T) {
	for _, name := range Names() {
		if newModel(name, 1) == nil {
			continue
		}
		f, _ := ByName(name)
		t.Run(name, func(t *testing.T) {
			againstModel(t, f, func(n int) refModel { return newModel(name, n) }, true)
		})
	}
	// Without hints, Chain and LeafLRU are documented to be LRU, whatever
	// Access and Forget calls they get.
	for _, name := range []string{"chain", "leaflru"} {
		f, _ := ByName(name)
		t.Run(name+" without hints", func(t *testing.T) {
			againstModel(t, f, func(int) refModel { return &lruModel{} }, false)
		})
	}
}

// againstModel drives a policy of f and its model newM through random
// calls, Hint among them only if hints.
func againstModel(t *testing.T, f Factory, newM func(int) refModel, hints bool) {
	againstModelWith(t, f, newM, modelRun{hints: hints})
}

// modelRun tunes againstModelWith: hints draws Hint calls; bursts, when
// set, makes each Access step that many calls of one block, drawn from
// it (1 otherwise); check, when set, runs on the policy after every step.
type modelRun struct {
	hints  bool
	bursts []int
	check  func(Policy) error
}

// againstModelWith is againstModel with the options of r.
func againstModelWith(t *testing.T, f Factory, newM func(int) refModel, r modelRun) {
	hints := r.hints
	rapid.Check(t, func(t *rapid.T) {
		n := rapid.IntRange(1, 16).Draw(t, "capacity")
		p, m := f(n), newM(n)
		inRange := func(id allocator.BlockID) bool { return id >= 0 && int(id) < n }
		steps := rapid.IntRange(1, 120).Draw(t, "steps")
		for i := range steps {
			var what string
			var got any
			ok := true
			switch op := rapid.IntRange(0, 6).Draw(t, "op"); op {
			case 0, 1:
				id := drawID(t, n, func(b allocator.BlockID) bool { return !m.in(b) })
				what = fmt.Sprintf("Insert(%d)", id)
				got = call(func() { p.Insert(id) })
				ok = inRange(id) && m.insert(id)
			case 2:
				id := drawID(t, n, m.in)
				what = fmt.Sprintf("Remove(%d)", id)
				got = call(func() { p.Remove(id) })
				ok = inRange(id) && m.remove(id)
			case 3:
				id, vok := p.Victim()
				wid, wok := m.victim()
				what = fmt.Sprintf("Victim = %d, %v", id, vok)
				if id != wid || vok != wok {
					t.Fatalf("step %d: %s, model %d, %v", i, what, wid, wok)
				}
			case 4:
				a, is := p.(Accessor)
				if !is {
					continue
				}
				id := drawID(t, n, func(allocator.BlockID) bool { return true })
				k := 1
				if r.bursts != nil {
					k = rapid.SampledFrom(r.bursts).Draw(t, "hits")
				}
				what = fmt.Sprintf("%d x Access(%d)", k, id)
				got = call(func() {
					for range k {
						a.Access(id)
					}
				})
				if ok = inRange(id); ok {
					for range k {
						m.access(id)
					}
				}
			case 5:
				hn, is := p.(Hinter)
				if !is || !hints {
					continue
				}
				id := drawID(t, n, func(b allocator.BlockID) bool { return !m.in(b) })
				h := drawHint(t, n, 0)
				what = fmt.Sprintf("Hint(%d, %+v)", id, h)
				got = call(func() { hn.Hint(id, h) })
				ok = inRange(id) && m.hint(id, h)
			case 6:
				fg, is := p.(Forgetter)
				if !is {
					continue
				}
				id := drawID(t, n, func(b allocator.BlockID) bool { return !m.in(b) })
				what = fmt.Sprintf("Forget(%d)", id)
				got = call(func() { fg.Forget(id) })
				ok = inRange(id) && m.forget(id)
			}
			if (got == nil) != ok {
				t.Fatalf("step %d: %s panicked with %v; model says misuse=%v", i, what, got, !ok)
			}
			compare(t, i, what, p, n, m.in)
			if r.check != nil {
				if err := r.check(p); err != nil {
					t.Fatalf("step %d, after %s: %v", i, what, err)
				}
			}
		}
		// Draining gives the model's order to the end.
		for {
			id, vok := p.Victim()
			wid, wok := m.victim()
			if id != wid || vok != wok {
				t.Fatalf("drain: Victim = %d, %v, model %d, %v", id, vok, wid, wok)
			}
			if !vok {
				break
			}
		}
	})
}

// compare checks Len and Contains of every block against in.
func compare(t *rapid.T, step int, what string, p Policy, n int, in func(allocator.BlockID) bool) {
	want := 0
	for id := range allocator.BlockID(n) {
		if in(id) {
			want++
		}
		if p.Contains(id) != in(id) {
			t.Fatalf("step %d, after %s: Contains(%d) = %v", step, what, id, !in(id))
		}
	}
	if p.Len() != want {
		t.Fatalf("step %d, after %s: Len = %d, model %d", step, what, p.Len(), want)
	}
}
