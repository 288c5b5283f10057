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
// hashes.
const MaxMemoryCapacity = 1 << 24

// MaxMemoryBytes bounds what a Memory backend allocates up front, its
// slot arrays, hash table and policy for Capacity entries with holder sets
// for every server: 4 GiB. Attach (called by New) refuses a Capacity and
// Config.MaxServers whose estimate exceeds it; about 120 bytes an entry
// for up to 64 servers, plus 16 bytes an entry per further 64 servers.
const MaxMemoryBytes = 4 << 30

// memoryBytes estimates the up-front allocation of a Memory backend with
// capacity entries and holder sets of words 64-bit words per tier.
func memoryBytes(capacity, words int) int64 {
	// hash 32, live 1, slotCopies 2, free 4, stamp 8, policy at most 64.
	return tableBytes(capacity) + int64(capacity)*(32+1+2+4+8+64+16*int64(words))
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
	// least recently reported or asked-for hash; a lookup hit of an entry
	// refreshed within the last Capacity/8 refreshes is not refreshed
	// again (under LRU it cannot be the victim before then). Default
	// eviction.NewLRU.
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
	// copies counts extra copies (beyond the first, which is the bit);
	// slotCopies[s] is the number of copies keys of slot s, so entries
	// without extra copies never look at the map.
	copies     map[copyKey]uint32
	slotCopies []uint16
	policy     eviction.Policy
	access     eviction.Accessor
	// clock counts policy refreshes and inserts; stamp[s] is the clock
	// at slot s's last one. A lookup hit refreshes an entry only when at
	// least window of them happened since its last: one refreshed or
	// inserted fewer than window ago is, under LRU, still among the
	// window most recent, far from being the victim, so skipping its
	// refresh changes no eviction it could suffer soon, and a hot prefix
	// looked up again and again costs no policy work.
	clock  uint64
	stamp  []uint64
	window uint64
	// The registry: one Index per Memory, so no one else writes it.
	model    string
	max      int
	names    []string
	layouts  []string
	byName   map[string]ServerID
	states   []StreamState
	attached bool
}

var _ Backend = (*Memory)(nil)

// NewMemory returns a Memory backend; Attach (called by New) sizes it.
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

// Attach implements Backend. The first call allocates the slot arrays
// (refusing with ErrInvalid a size whose estimate exceeds
// MaxMemoryBytes); a Memory holds one model's index and serves one Index.
func (m *Memory) Attach(model string, maxServers int) error {
	if m == nil || m.cfg.Capacity == 0 {
		return fmt.Errorf("%w: Memory not created with NewMemory", ErrInvalid)
	}
	if m.attached {
		if model != m.model || maxServers != m.max {
			return fmt.Errorf("%w: memory backend holds model %q for %d servers, not %q for %d", ErrInvalid, m.model, m.max, model, maxServers)
		}
		return nil
	}
	c := m.cfg.Capacity
	if maxServers < 1 || maxServers > maxServersLimit {
		return fmt.Errorf("%w: %d servers, must be in [1, %d]", ErrInvalid, maxServers, maxServersLimit)
	}
	if b := memoryBytes(c, WordsFor(maxServers)); b > MaxMemoryBytes {
		return fmt.Errorf("%w: MemoryConfig.Capacity %d with Config.MaxServers %d needs about %d MiB up front, over MaxMemoryBytes (%d MiB)",
			ErrInvalid, c, maxServers, b>>20, MaxMemoryBytes>>20)
	}
	policy := m.cfg.Policy(c)
	if policy == nil {
		return fmt.Errorf("%w: MemoryConfig.Policy returned a nil policy", ErrInvalid)
	}
	m.model, m.max, m.attached = model, maxServers, true
	m.byName = make(map[string]ServerID)
	m.words = WordsFor(maxServers)
	m.index = newTable(c)
	m.n = 0
	m.live = make([]bool, c)
	m.copies = make(map[copyKey]uint32)
	m.slotCopies = make([]uint16, c)
	m.stamp = make([]uint64, c)
	m.window = uint64(max(c/8, 1))
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

// Register implements Backend.
func (m *Memory) Register(name string, init StreamState) (ServerID, StreamState, error) {
	if !m.attached {
		return 0, StreamState{}, fmt.Errorf("%w: Memory used before Attach", ErrInvalid)
	}
	if id, ok := m.byName[name]; ok {
		return id, m.states[id], nil
	}
	if len(m.names) >= m.max {
		return 0, StreamState{}, fmt.Errorf("%w: %q would be server %d of %d", ErrTooManyServers, name, len(m.names)+1, m.max)
	}
	id := ServerID(len(m.names))
	m.names = append(m.names, name)
	m.layouts = append(m.layouts, "")
	m.states = append(m.states, init)
	m.byName[name] = id
	return id, init, nil
}

// Rename implements Backend.
func (m *Memory) Rename(server ServerID, old StreamState, name string, next StreamState) (StreamState, error) {
	if server < 0 || int(server) >= len(m.states) {
		return StreamState{}, fmt.Errorf("%w: server %d is not registered", ErrInvalid, server)
	}
	if next.Life <= old.Life {
		return StreamState{}, fmt.Errorf("%w: rename of server %d to life %d, not after %d", ErrInvalid, server, next.Life, old.Life)
	}
	if m.states[server] != old {
		return m.states[server], ErrConflict
	}
	if _, taken := m.byName[name]; taken && name != "" {
		return m.states[server], fmt.Errorf("%w: %q is registered already", ErrConflict, name)
	}
	m.clear(server)
	if prev := m.names[server]; prev != "" {
		delete(m.byName, prev)
	}
	m.names[server] = name
	m.layouts[server] = ""
	if name != "" {
		m.byName[name] = server
	}
	m.states[server] = next
	return next, nil
}

// Servers implements Backend.
func (m *Memory) Servers(dst []ServerRecord) ([]ServerRecord, error) {
	for i, n := range m.names {
		dst = append(dst, ServerRecord{Name: n, State: m.states[i], Layout: m.layouts[i]})
	}
	return dst, nil
}

// SetLayout implements Backend.
func (m *Memory) SetLayout(server ServerID, old StreamState, layout string, next StreamState) (StreamState, error) {
	if server < 0 || int(server) >= len(m.states) {
		return StreamState{}, fmt.Errorf("%w: server %d is not registered", ErrInvalid, server)
	}
	if m.states[server] != old {
		return m.states[server], ErrConflict
	}
	m.layouts[server] = layout
	m.states[server] = next
	return next, nil
}

// Update implements Backend.
func (m *Memory) Update(server ServerID, old, next StreamState, clearFirst bool, events []paged.Event) (StreamState, error) {
	if server < 0 || int(server) >= len(m.states) {
		return StreamState{}, fmt.Errorf("%w: server %d is not registered", ErrInvalid, server)
	}
	if err := CheckEvents(events); err != nil {
		return StreamState{}, err
	}
	if m.states[server] != old {
		return m.states[server], ErrConflict
	}
	if clearFirst {
		m.clear(server)
	}
	m.apply(server, events)
	m.states[server] = next
	return next, nil
}

func (m *Memory) apply(server ServerID, events []paged.Event) {
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
	m.clock++
	m.stamp[s] = m.clock
	return s
}

func (m *Memory) touch(s int32) {
	m.clock++
	m.stamp[s] = m.clock
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

// clear drops every entry of server. It scans every slot: clearing is
// rare (lost events, a cache reset, an expired server), lookups and
// events are not.
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

// Lookup implements Backend. A hit refreshes the entry in the policy
// (see MemoryConfig.Policy). It stops at the first hash it does not hold.
func (m *Memory) Lookup(hashes []paged.Hash, words int, dst []uint64, states []StreamState) ([]uint64, []StreamState, error) {
	return m.lookup(hashes, words, dst, states, true)
}

// LookupAll implements Backend: Lookup without stopping, a hash no
// server holds giving empty holder sets.
func (m *Memory) LookupAll(hashes []paged.Hash, words int, dst []uint64, states []StreamState) ([]uint64, []StreamState, error) {
	return m.lookup(hashes, words, dst, states, false)
}

func (m *Memory) lookup(hashes []paged.Hash, words int, dst []uint64, states []StreamState, stop bool) ([]uint64, []StreamState, error) {
	if !m.attached {
		return dst, states, fmt.Errorf("%w: Memory used before Attach", ErrInvalid)
	}
	if words != m.words {
		return dst, states, fmt.Errorf("%w: lookup with %d words, backend has %d", ErrInvalid, words, m.words)
	}
	states = append(states, m.states...)
	for i := range hashes {
		s, ok := m.index.find(&hashes[i], m.hashes)
		if !ok {
			if stop {
				break // no server holds it: every run ends here
			}
			for range 2 * words {
				dst = append(dst, 0)
			}
			continue
		}
		if m.clock-m.stamp[s] >= m.window {
			m.touch(s)
		}
		dst = append(dst, m.masks[int(s)*2*words:(int(s)+1)*2*words]...)
	}
	return dst, states, nil
}
