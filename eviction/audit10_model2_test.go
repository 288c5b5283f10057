package eviction

import (
	"slices"

	"github.com/pagedkv/pagedkv/allocator"
)

// Slice models of S3-FIFO and ARC, following their doc comments and papers
// step by step (queues and ghost lists as slices, oldest first), for
// TestAudit10AgainstModels.

// ghostModel is a ghost list set sharing slots slots: adding a key drops
// its earlier entry, and when every slot is taken the oldest key of the
// longest list (the first such list on a tie).
type ghostModel struct {
	lists [][]uint64
	slots int
}

func (g *ghostModel) total() int {
	n := 0
	for _, l := range g.lists {
		n += len(l)
	}
	return n
}

func (g *ghostModel) find(key uint64) int {
	for i, l := range g.lists {
		if slices.Contains(l, key) {
			return i
		}
	}
	return -1
}

func (g *ghostModel) remove(key uint64) {
	for i, l := range g.lists {
		if j := slices.Index(l, key); j >= 0 {
			g.lists[i] = slices.Delete(l, j, j+1)
		}
	}
}

func (g *ghostModel) dropOldest(i int) {
	if len(g.lists[i]) > 0 {
		g.lists[i] = g.lists[i][1:]
	}
}

func (g *ghostModel) add(i int, key uint64) {
	g.remove(key)
	if g.total() == g.slots {
		longest := 0
		for j := range g.lists {
			if len(g.lists[j]) > len(g.lists[longest]) {
				longest = j
			}
		}
		g.dropOldest(longest)
	}
	g.lists[i] = append(g.lists[i], key)
}

// s3Model: S and M as queues of content, G as a ghost list.
type s3Model struct {
	released
	small, main []allocator.BlockID
	queue       []uint8
	freq        []int
	key         []uint64
	keyed       []bool
	g           ghostModel
	smallMax    int
}

func newS3Model(n int) *s3Model {
	smallMax := max(n*s3SmallPercent/100, 1)
	return &s3Model{released: newReleased(n), queue: make([]uint8, n), freq: make([]int, n),
		key: make([]uint64, n), keyed: make([]bool, n), smallMax: smallMax,
		g: ghostModel{lists: make([][]uint64, 1), slots: max(n-smallMax, 1)}}
}

func (m *s3Model) queued(id allocator.BlockID) bool {
	return slices.Contains(m.small, id) || slices.Contains(m.main, id)
}
func (m *s3Model) insert(id allocator.BlockID) bool {
	if m.evictable[id] {
		return false
	}
	if !m.queued(id) {
		if m.queue[id] == queueNone {
			m.queue[id] = queueSmall
		}
		if m.queue[id] == queueMain {
			m.main = append(m.main, id)
		} else {
			m.small = append(m.small, id)
		}
	}
	m.evictable[id] = true
	return true
}
func (m *s3Model) access(id allocator.BlockID) { m.freq[id] = min(m.freq[id]+1, s3MaxFreq) }
func (m *s3Model) forget(id allocator.BlockID) bool {
	if m.evictable[id] {
		return false
	}
	for _, q := range []*[]allocator.BlockID{&m.small, &m.main} {
		if i := slices.Index(*q, id); i >= 0 {
			*q = slices.Delete(*q, i, i+1)
		}
	}
	m.queue[id], m.freq[id], m.keyed[id] = queueNone, 0, false
	return true
}
func (m *s3Model) hint(id allocator.BlockID, h Hint) bool {
	if !m.forget(id) {
		return false
	}
	m.key[id], m.keyed[id], m.queue[id] = h.Key, true, queueSmall
	if m.g.find(h.Key) >= 0 {
		m.g.remove(h.Key)
		m.queue[id] = queueMain
	}
	return true
}
func (m *s3Model) victim() (allocator.BlockID, bool) {
	if !slices.Contains(m.evictable, true) {
		return allocator.NoBlock, false
	}
	for {
		if len(m.small) > 0 && (len(m.small) >= m.smallMax || len(m.main) == 0) {
			id := m.small[0]
			m.small = m.small[1:]
			switch {
			case !m.evictable[id]: // referenced: rejoins S when released
			case m.freq[id] >= s3Promote:
				m.queue[id], m.freq[id] = queueMain, 0
				m.main = append(m.main, id)
			default:
				if m.keyed[id] {
					m.g.add(0, m.key[id])
				}
				return m.evict(id), true
			}
			continue
		}
		id := m.main[0]
		m.main = m.main[1:]
		switch {
		case !m.evictable[id]:
		case m.freq[id] > 0:
			m.freq[id]--
			m.main = append(m.main, id)
		default:
			return m.evict(id), true
		}
	}
}
func (m *s3Model) evict(id allocator.BlockID) allocator.BlockID {
	m.evictable[id] = false
	m.queue[id], m.freq[id], m.keyed[id] = queueNone, 0, false
	return id
}

// arcModel: T1 and T2 as tags on content, their LRU orders as stamps, B1
// and B2 as ghost lists of at most c keys, p as in the paper.
type arcModel struct {
	released
	tag   []uint8
	key   []uint64
	keyed []bool
	g     ghostModel
	p, c  int
}

func newARCModel(n int) *arcModel {
	return &arcModel{released: newReleased(n), tag: make([]uint8, n),
		key: make([]uint64, n), keyed: make([]bool, n), c: n,
		g: ghostModel{lists: make([][]uint64, 2), slots: max(n, 1)}}
}

func (m *arcModel) count(t uint8) int {
	n := 0
	for _, x := range m.tag {
		if x == t {
			n++
		}
	}
	return n
}

func (m *arcModel) insert(id allocator.BlockID) bool {
	if !m.released.insert(id) {
		return false
	}
	if m.tag[id] == arcNone {
		m.tag[id] = arcT1
	}
	return true
}
func (m *arcModel) access(id allocator.BlockID) {
	m.tag[id] = arcT2
	if m.evictable[id] {
		m.stamp[id] = m.next() // the most recent of T2
	}
}
func (m *arcModel) forget(id allocator.BlockID) bool {
	if m.evictable[id] {
		return false
	}
	m.tag[id], m.keyed[id] = arcNone, false
	return true
}
func (m *arcModel) hint(id allocator.BlockID, h Hint) bool {
	if m.evictable[id] {
		return false
	}
	m.tag[id], m.key[id], m.keyed[id] = arcT1, h.Key, true
	l := m.g.find(h.Key)
	if l < 0 {
		return true
	}
	b1, b2 := len(m.g.lists[ghostB1]), len(m.g.lists[ghostB2])
	if l == ghostB1 {
		m.p = min(m.c, m.p+max(b2/b1, 1))
	} else {
		m.p = max(0, m.p-max(b1/b2, 1))
	}
	m.g.remove(h.Key)
	m.tag[id] = arcT2
	return true
}
func (m *arcModel) victim() (allocator.BlockID, bool) {
	n := len(m.tag)
	of := func(t uint8) func(allocator.BlockID) bool {
		return func(b allocator.BlockID) bool { return m.evictable[b] && m.tag[b] == t }
	}
	_, t1 := oldest(n, m.stamp, of(arcT1))
	_, t2 := oldest(n, m.stamp, of(arcT2))
	from, b := uint8(arcT2), ghostB2
	if t1 && (m.count(arcT1) > m.p || !t2) {
		from, b = arcT1, ghostB1
	}
	id, ok := oldest(n, m.stamp, of(from))
	if !ok {
		return allocator.NoBlock, false
	}
	m.evictable[id], m.tag[id] = false, arcNone
	if m.keyed[id] {
		m.keyed[id] = false
		n1, b1 := m.count(arcT1), len(m.g.lists[ghostB1])
		if m.g.total() == m.g.slots {
			// Case IV: B1's oldest makes room while |T1|+|B1| is at c.
			if b1 > 0 && (n1+b1 >= m.c || len(m.g.lists[ghostB2]) == 0) {
				m.g.dropOldest(ghostB1)
			} else {
				m.g.dropOldest(ghostB2)
			}
		}
		m.g.add(b, m.key[id])
		for n1+len(m.g.lists[ghostB1]) > m.c && len(m.g.lists[ghostB1]) > 0 {
			m.g.dropOldest(ghostB1)
		}
	}
	return id, true
}
