package fleet

import (
	"fmt"

	"github.com/pagedkv/pagedkv/allocator"
	"github.com/pagedkv/pagedkv/eviction"
	"github.com/pagedkv/pagedkv/paged"
)

// DefaultMemoryCapacity is the number of block hashes a Memory backend
// keeps when MemoryConfig.Capacity is 0: 256Ki entries, about 30 MiB for
// a fleet of up to 64 servers.
const DefaultMemoryCapacity = 1 << 18

// MemoryConfig configures a Memory backend. Zero values mean defaults.
type MemoryConfig struct {
	// Capacity bounds the number of block hashes held. When a new hash
	// arrives at capacity, the policy's victim is forgotten for every
	// server (the index then under-reports that block, which costs a
	// routing opportunity, never a wrong answer). Default
	// DefaultMemoryCapacity.
	Capacity int
	// Policy orders the entries for eviction. Every store and every
	// lookup hit of an entry re-inserts it (or calls Access when the
	// policy is an eviction.Accessor), so eviction.NewLRU forgets the
	// least recently reported or asked-for hash. Default eviction.NewLRU.
	Policy eviction.Factory
}

// Memory is the in-process Backend: a hash map from block hash to a slot
// whose holder sets live in one flat slice, bounded by an eviction policy.
// Applying events and lookups allocate nothing once the map has grown.
type Memory struct {
	cfg    MemoryConfig
	words  int // holder-set width per tier
	index  table
	n      int          // entries held
	live   []bool       // by slot
	hashes []paged.Hash // by slot
	masks  []uint64     // by slot: words device, then words host
	free   []int32
	policy eviction.Policy
	access eviction.Accessor
}

var _ Backend = (*Memory)(nil)

// NewMemory returns a Memory backend; Init (called by New) sizes it.
func NewMemory(cfg MemoryConfig) (*Memory, error) {
	if cfg.Capacity == 0 {
		cfg.Capacity = DefaultMemoryCapacity
	}
	if cfg.Capacity < 1 || cfg.Capacity > 1<<30 {
		return nil, fmt.Errorf("%w: MemoryConfig.Capacity %d must be in [1, 2^30]", ErrInvalid, cfg.Capacity)
	}
	if cfg.Policy == nil {
		cfg.Policy = eviction.NewLRU
	}
	return &Memory{cfg: cfg}, nil
}

// Init implements Backend. It allocates the slot arrays up front.
func (m *Memory) Init(model string, maxServers int) error {
	c := m.cfg.Capacity
	m.words = wordsFor(maxServers)
	m.index = newTable(c)
	m.n = 0
	m.live = make([]bool, c)
	m.hashes = make([]paged.Hash, c)
	m.masks = make([]uint64, c*2*m.words)
	m.free = make([]int32, c)
	for i := range m.free {
		m.free[i] = int32(c - 1 - i) // pop order 0, 1, 2, ...
	}
	m.policy = m.cfg.Policy(c)
	m.access, _ = m.policy.(eviction.Accessor)
	return nil
}

// Len returns the number of block hashes held.
func (m *Memory) Len() int { return m.n }

// Apply implements Backend.
func (m *Memory) Apply(server ServerID, events []paged.Event) error {
	w, bit := int(server)/64, uint64(1)<<(uint(server)%64)
	for i := range events {
		ev := &events[i]
		switch ev.Kind {
		case paged.BlockStored:
			for _, h := range ev.Hashes {
				m.masks[m.slot(h)*2*m.words+tierWord(ev.Medium, m.words)+w] |= bit
			}
		case paged.BlockRemoved:
			for _, h := range ev.Hashes {
				if s, ok := m.index.find(&h, m.hashes); ok {
					m.masks[int(s)*2*m.words+tierWord(ev.Medium, m.words)+w] &^= bit
					m.dropIfEmpty(s)
				}
			}
		case paged.BlockMoved:
			for _, h := range ev.Hashes {
				base := m.slot(h) * 2 * m.words
				m.masks[base+tierWord(ev.From, m.words)+w] &^= bit
				m.masks[base+tierWord(ev.Medium, m.words)+w] |= bit
			}
		case paged.AllBlocksCleared:
			m.clear(server)
		}
	}
	return nil
}

// tierWord is the offset of a tier's holder set within a slot.
func tierWord(t paged.Medium, words int) int {
	if t == paged.Host {
		return words
	}
	return 0
}

// slot returns h's slot, creating the entry (evicting at capacity) when
// absent, and refreshes it in the policy.
func (m *Memory) slot(h paged.Hash) int {
	if s, ok := m.index.find(&h, m.hashes); ok {
		m.touch(s)
		return int(s)
	}
	if len(m.free) == 0 {
		v, ok := m.policy.Victim()
		if !ok {
			panic(fmt.Sprintf("fleet: memory index full with no eviction victim (entries %d)", m.n))
		}
		m.drop(int32(v), false)
	}
	s := m.free[len(m.free)-1]
	m.free = m.free[:len(m.free)-1]
	m.hashes[s] = h
	m.index.insert(&h, s)
	m.live[s] = true
	m.n++
	m.policy.Insert(allocator.BlockID(s))
	return int(s)
}

func (m *Memory) touch(s int32) {
	if m.access != nil {
		m.access.Access(allocator.BlockID(s))
		return
	}
	m.policy.Remove(allocator.BlockID(s))
	m.policy.Insert(allocator.BlockID(s))
}

// dropIfEmpty forgets an entry no server holds any more.
func (m *Memory) dropIfEmpty(s int32) {
	for _, x := range m.masks[int(s)*2*m.words : (int(s)+1)*2*m.words] {
		if x != 0 {
			return
		}
	}
	m.drop(s, true)
}

// drop forgets slot s; inPolicy says whether it must leave the policy
// (a victim already has).
func (m *Memory) drop(s int32, inPolicy bool) {
	if inPolicy {
		m.policy.Remove(allocator.BlockID(s))
	}
	m.index.remove(&m.hashes[s], s)
	m.live[s] = false
	m.n--
	clear(m.masks[int(s)*2*m.words : (int(s)+1)*2*m.words])
	m.free = append(m.free, s)
}

// Clear implements Backend. It scans every slot: clearing is rare (lost
// events, a cache reset, an expired server), lookups and events are not.
func (m *Memory) Clear(server ServerID) error {
	m.clear(server)
	return nil
}

func (m *Memory) clear(server ServerID) {
	w, bit := int(server)/64, uint64(1)<<(uint(server)%64)
	for s := range int32(len(m.live)) {
		if !m.live[s] {
			continue
		}
		base := int(s) * 2 * m.words
		if (m.masks[base+w]|m.masks[base+m.words+w])&bit != 0 {
			m.masks[base+w] &^= bit
			m.masks[base+m.words+w] &^= bit
			m.dropIfEmpty(s)
		}
	}
}

// Lookup implements Backend. A hit refreshes the entry in the policy.
func (m *Memory) Lookup(hashes []paged.Hash, words int, dst []uint64) ([]uint64, error) {
	if words != m.words {
		return dst, fmt.Errorf("%w: lookup with %d words, backend has %d", ErrInvalid, words, m.words)
	}
	for i := range hashes {
		s, ok := m.index.find(&hashes[i], m.hashes)
		if !ok {
			for range 2 * words {
				dst = append(dst, 0)
			}
			continue
		}
		m.touch(s)
		dst = append(dst, m.masks[int(s)*2*words:(int(s)+1)*2*words]...)
	}
	return dst, nil
}
