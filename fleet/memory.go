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

// MaxMemoryCapacity is the largest MemoryConfig.Capacity: 2^24 block
// hashes, the most an eviction policy orders (eviction.MaxCapacity).
const MaxMemoryCapacity = eviction.MaxCapacity

// MaxMemoryBytes bounds what a Memory backend allocates up front, its
// slot arrays, hash table and policy for Capacity entries with holder sets
// for every server: 4 GiB. Init (called by New) refuses a Capacity and
// Config.MaxServers whose estimate exceeds it; about 110 bytes an entry
// for up to 64 servers, plus 16 bytes an entry per further 64 servers.
const MaxMemoryBytes = 4 << 30

// memoryBytes estimates the up-front allocation of a Memory backend with
// capacity entries and holder sets of words 64-bit words per tier.
func memoryBytes(capacity, words int) int64 {
	c := int64(capacity)
	table := int64(16)
	for table/16 < 2*c {
		table <<= 1
	}
	// hash 32, live 1, slotCopies 2, free 4, policy at most 64.
	return table + c*(32+1+2+4+64+16*int64(words))
}

// MemoryConfig configures a Memory backend. Zero values mean defaults.
type MemoryConfig struct {
	// Capacity bounds the number of block hashes held. When a new hash
	// arrives at capacity, the policy's victim is forgotten for every
	// server (the index then under-reports that block, which costs a
	// routing opportunity, never a wrong answer). Default
	// DefaultMemoryCapacity; at most MaxMemoryCapacity, and together with
	// Config.MaxServers within MaxMemoryBytes.
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
	cfg     MemoryConfig
	servers int // maxServers of the last Init; 0 before Init
	words   int // holder-set width per tier
	index   table
	n       int          // entries held
	live    []bool       // by slot
	hashes  []paged.Hash // by slot
	masks   []uint64     // by slot: words device, then words host
	free    []int32
	// copies counts extra copies (beyond the first, which is the bit);
	// slotCopies[s] is the number of copies keys of slot s, so entries
	// without extra copies never look at the map.
	copies     map[copyKey]uint32
	slotCopies []uint16
	policy     eviction.Policy
	access     eviction.Accessor
}

var _ Backend = (*Memory)(nil)

// NewMemory returns a Memory backend; Init (called by New) sizes it.
func NewMemory(cfg MemoryConfig) (*Memory, error) {
	if cfg.Capacity == 0 {
		cfg.Capacity = DefaultMemoryCapacity
	}
	if cfg.Capacity < 1 || cfg.Capacity > MaxMemoryCapacity {
		return nil, fmt.Errorf("%w: MemoryConfig.Capacity %d must be in [1, MaxMemoryCapacity=%d]", ErrInvalid, cfg.Capacity, MaxMemoryCapacity)
	}
	if cfg.Policy == nil {
		cfg.Policy = eviction.NewLRU
	}
	return &Memory{cfg: cfg}, nil
}

// Init implements Backend. It allocates the slot arrays up front, and
// refuses with ErrInvalid a size whose estimate exceeds MaxMemoryBytes.
func (m *Memory) Init(model string, maxServers int) error {
	if m == nil || m.cfg.Capacity == 0 {
		return fmt.Errorf("%w: Memory not created with NewMemory", ErrInvalid)
	}
	c := m.cfg.Capacity
	if maxServers < 1 || maxServers > maxServersLimit {
		return fmt.Errorf("%w: %d servers, must be in [1, %d]", ErrInvalid, maxServers, maxServersLimit)
	}
	if b := memoryBytes(c, wordsFor(maxServers)); b > MaxMemoryBytes {
		return fmt.Errorf("%w: MemoryConfig.Capacity %d with Config.MaxServers %d needs about %d MiB up front, over MaxMemoryBytes (%d MiB)",
			ErrInvalid, c, maxServers, b>>20, MaxMemoryBytes>>20)
	}
	policy := m.cfg.Policy(c)
	if policy == nil {
		return fmt.Errorf("%w: MemoryConfig.Policy returned a nil policy", ErrInvalid)
	}
	m.servers = maxServers
	m.words = wordsFor(maxServers)
	m.index = newTable(c)
	m.n = 0
	m.live = make([]bool, c)
	m.copies = make(map[copyKey]uint32)
	m.slotCopies = make([]uint16, c)
	m.hashes = make([]paged.Hash, c)
	m.masks = make([]uint64, c*2*m.words)
	m.free = make([]int32, c)
	for i := range m.free {
		m.free[i] = int32(c - 1 - i) // pop order 0, 1, 2, ...
	}
	m.policy = policy
	m.access, _ = m.policy.(eviction.Accessor)
	return nil
}

// Len returns the number of block hashes held.
func (m *Memory) Len() int { return m.n }

// usable checks that Init ran and server is one it made room for.
func (m *Memory) usable(server ServerID) error {
	if m.servers == 0 {
		return fmt.Errorf("%w: Memory used before Init", ErrInvalid)
	}
	if server < 0 || int(server) >= m.servers {
		return fmt.Errorf("%w: server %d out of range [0, %d)", ErrInvalid, server, m.servers)
	}
	return nil
}

// Apply implements Backend.
func (m *Memory) Apply(server ServerID, events []paged.Event) error {
	if err := m.usable(server); err != nil {
		return err
	}
	for i := range events {
		ev := &events[i]
		switch ev.Kind {
		case paged.BlockStored:
			for j := range ev.Hashes {
				m.store(m.slot(&ev.Hashes[j]), server, ev.Medium)
			}
		case paged.BlockRemoved:
			for j := range ev.Hashes {
				if s, ok := m.index.find(&ev.Hashes[j], m.hashes); ok {
					m.remove(s, server, ev.Medium)
				}
			}
		case paged.BlockMoved:
			for j := range ev.Hashes {
				if s, ok := m.index.find(&ev.Hashes[j], m.hashes); ok {
					m.remove(s, server, ev.From)
				}
				m.store(m.slot(&ev.Hashes[j]), server, ev.Medium)
			}
		case paged.AllBlocksCleared:
			m.clear(server)
		}
	}
	return nil
}

// copyKey names the extra copies one server holds of one entry on one
// tier. A server may hold a hash in several blocks at once (two requests
// computed the same block before either committed it); each copy is
// stored and removed by its own event, so the index counts them and keeps
// the server's bit until the last copy goes.
type copyKey struct {
	slot   int32
	server ServerID
	tier   paged.Medium
}

// store records one more copy of slot s on server's tier.
func (m *Memory) store(s int32, server ServerID, tier paged.Medium) {
	i, bit := int(s)*2*m.words+tierWord(tier, m.words)+int(server)/64, uint64(1)<<(uint(server)%64)
	if m.masks[i]&bit == 0 {
		m.masks[i] |= bit
		return
	}
	k := copyKey{s, server, tier}
	if m.copies[k] == 0 {
		m.slotCopies[s]++
	}
	m.copies[k]++
}

// remove drops one copy of slot s from server's tier, and the entry when
// no server holds it any more.
func (m *Memory) remove(s int32, server ServerID, tier paged.Medium) {
	if m.slotCopies[s] > 0 {
		k := copyKey{s, server, tier}
		if c := m.copies[k]; c > 0 {
			if c == 1 {
				delete(m.copies, k)
				m.slotCopies[s]--
			} else {
				m.copies[k] = c - 1
			}
			return
		}
	}
	m.masks[int(s)*2*m.words+tierWord(tier, m.words)+int(server)/64] &^= uint64(1) << (uint(server) % 64)
	m.dropIfEmpty(s)
}

// forgetCopies drops the copy counts of slot s, for one server or for all
// (server < 0).
func (m *Memory) forgetCopies(s int32, server ServerID) {
	if m.slotCopies[s] == 0 {
		return
	}
	for k := range m.copies {
		if k.slot == s && (server < 0 || k.server == server) {
			delete(m.copies, k)
			m.slotCopies[s]--
		}
	}
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
func (m *Memory) slot(h *paged.Hash) int32 {
	if s, ok := m.index.find(h, m.hashes); ok {
		m.touch(s)
		return s
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
	m.hashes[s] = *h
	m.index.insert(h, s)
	m.live[s] = true
	m.n++
	m.policy.Insert(allocator.BlockID(s))
	return s
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
	m.forgetCopies(s, -1)
	m.index.remove(&m.hashes[s], s)
	m.live[s] = false
	m.n--
	clear(m.masks[int(s)*2*m.words : (int(s)+1)*2*m.words])
	m.free = append(m.free, s)
}

// Clear implements Backend. It scans every slot: clearing is rare (lost
// events, a cache reset, an expired server), lookups and events are not.
func (m *Memory) Clear(server ServerID) error {
	if err := m.usable(server); err != nil {
		return err
	}
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
			m.forgetCopies(s, server)
			m.masks[base+w] &^= bit
			m.masks[base+m.words+w] &^= bit
			m.dropIfEmpty(s)
		}
	}
}

// Lookup implements Backend. A hit refreshes the entry in the policy.
func (m *Memory) Lookup(hashes []paged.Hash, words int, dst []uint64) ([]uint64, error) {
	if m.servers == 0 {
		return dst, fmt.Errorf("%w: Memory used before Init", ErrInvalid)
	}
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
