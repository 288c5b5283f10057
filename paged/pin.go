package paged

import (
	"errors"
	"fmt"
	"math"

	"github.com/pagedkv/pagedkv/allocator"
)

// Pinning keeps a cached prefix (a system prompt, a tool schema) resident
// for a promised time, as a prompt-caching API does ("cached for five
// minutes, refreshed on use"). A pin holds one reference on each block of
// the prefix that is cached on the device, and computed, when the pin is
// made (no block stored in the prefix cache during the step being built,
// whose kernels have not written it yet), exactly as a sequence's table
// entry does: a pinned block is never in the eviction
// policy, so it is never evicted, whatever the policy, until the pin is
// released by Unpin or expires. Expiry is in the caller's logical time
// (Manager.Advance), never a wall clock. The blocks pins hold at once are
// bounded by a budget (SetPinBudget, 0 until set), so pins cannot starve
// admission; a pin that would exceed it fails with ErrPinBudget and changes
// nothing. Blocks shared by several pins count once. On a hybrid manager
// (Config.Groups) a pin holds every block a hit on its prefix needs, in
// every group (the window or chunk blocks before the prefix's end, a
// state checkpoint's pages), and pins the longest prefix that is such a
// hit on the device: the full-attention blocks alone would stay resident
// without being a hit.

// ErrPinBudget is returned (wrapped) when a pin would hold more blocks than
// the pin budget allows.
var ErrPinBudget = errors.New("paged: pin budget exhausted")

// ErrUnknownPin is returned (wrapped) for a PinID that was never issued,
// was unpinned, or has expired.
var ErrUnknownPin = errors.New("paged: unknown or expired pin")

// PinID names a pin. The zero PinID is never issued, and no PinID is
// issued twice: a pin slot whose 2^32 generations are spent is retired.
type PinID uint64

// PinEventKind says what a PinEvent reports.
type PinEventKind uint8

const (
	// Pinned reports a new pin.
	Pinned PinEventKind = iota + 1
	// Unpinned reports a pin released by Unpin.
	Unpinned
	// PinExpired reports a pin released because its expiry passed.
	PinExpired
	// PinExtended reports a pin whose expiry moved (ExtendPin).
	PinExtended
	// PinRejected reports a pin refused because the budget was full.
	PinRejected
)

// String names the kind.
func (k PinEventKind) String() string {
	switch k {
	case Pinned:
		return "Pinned"
	case Unpinned:
		return "Unpinned"
	case PinExpired:
		return "PinExpired"
	case PinExtended:
		return "PinExtended"
	case PinRejected:
		return "PinRejected"
	}
	return "PinEventKind(?)"
}

// PinEvent is one pin lifecycle event.
type PinEvent struct {
	// Kind is the event's type.
	Kind PinEventKind
	// Pin is the pin concerned (0 for PinRejected).
	Pin PinID
	// Blocks is the number of blocks the pin holds (or asked for).
	Blocks int
	// Until is the pin's expiry (0: none).
	Until int64
	// Now is the manager's logical time when the event happened.
	Now int64
}

// PinStats reports pinning.
type PinStats struct {
	// Budget is the most blocks pins may hold at once.
	Budget int
	// Pins is the number of live pins; PinnedBlocks the distinct blocks
	// they hold, PeakPinnedBlocks the most ever held at once.
	Pins, PinnedBlocks, PeakPinnedBlocks int
	// Lasting counts the live pins without an expiry (until 0), which
	// hold their blocks until Unpin: a scheduler that waits for pinned
	// blocks to come back cannot count on those.
	Lasting int
	// Made, Unpinned, Expired and Rejected count pins made, released by
	// Unpin, released by expiry and refused for the budget.
	Made, Unpinned, Expired, Rejected uint64
	// EventsDropped counts pin events lost because the caller did not
	// drain them (TakePinEvents) before maxPinEvents piled up.
	EventsDropped uint64
}

// maxPinEvents bounds the undrained pin events, as the KV event buffer is
// bounded: pin operations are rare, so this is hours of them.
const maxPinEvents = 4096

type pin struct {
	blocks []allocator.BlockID
	until  int64
	gen    uint32
	live   bool
}

// pinSet is the manager's pin state; the zero value has a budget of 0.
type pinSet struct {
	budget   int
	pins     []pin
	free     []uint32
	count    []int32 // pins holding each block, indexed by BlockID
	distinct int
	live     int
	lasting  int   // live pins without an expiry
	next     int64 // earliest expiry among live pins, 0 for none
	stats    PinStats
	events   []PinEvent
	scratch  []allocator.BlockID
	hashes   []Hash
	// probe is the sequence a hybrid manager's pin looks its prefix up
	// with (pinGroups); it holds only the hashes, during the lookup.
	probe sequence
}

// SetPinBudget sets the most blocks pins may hold at once, between 0 (no
// pins; the default) and the pool's usable blocks. It fails with ErrInvalid
// when blocks is out of range or below the blocks pins hold now.
func (m *Manager) SetPinBudget(blocks int) error {
	ps := &m.pins
	if blocks < 0 || blocks > m.bp.pool.Usable() {
		return errorf(ErrInvalid, "pin budget of %d blocks: want 0 to %d", blocks, m.bp.pool.Usable())
	}
	if blocks < ps.distinct {
		return errorf(ErrInvalid, "pin budget of %d blocks is below the %d blocks pinned now", blocks, ps.distinct)
	}
	if ps.count == nil {
		ps.count = make([]int32, m.bp.pool.Total())
	}
	ps.budget = blocks
	return nil
}

// Pin pins the cached device prefix of prompt (hashed as Create would with
// opts) until logical time until (0: until Unpin). It returns the pin and
// the number of prompt tokens it holds: the leading full blocks found in
// the cache, possibly none (on a hybrid manager, the longest prefix whose
// every block a hit needs, in every group, is on the device). Only content
// cached now and computed is pinned: the prefix ends before the first
// block (in any group, on a hybrid manager) stored in the prefix cache
// during the step being built, whose KV that step's kernels have not
// written yet (a step ends when its directives are taken: BuildBatch,
// DecodeStep, TakeSwaps, TakeCopies, or EndStep; see SwapOut). Blocks
// onboarded from the host tier or swapped in during the step count as
// computed: their copies run before the kernels. So compute the prompt
// once (Create, the step, Free) and pin it afterwards; a pin made in the
// step admitting the prompt holds none of it, and a step that then drops
// the prompt (Uncompute, Free) leaves nothing uncomputed in the cache.
// An until at or before the current time (Advance) is ErrInvalid; a pin
// that would take the pinned blocks past the budget (SetPinBudget) is
// ErrPinBudget, which pins nothing but counts in PinStats.Rejected and
// queues a PinRejected event.
func (m *Manager) Pin(prompt []int32, opts *SeqOptions, until int64) (PinID, int, error) {
	hs, err := m.BlockHashes(m.pins.hashes[:0], prompt, opts)
	m.pins.hashes = hs[:0]
	if err != nil {
		return 0, 0, err
	}
	return m.PinHashes(hs, until)
}

// PinHashes is Pin for a prompt given by its block hashes (as
// Manager.BlockHashes computes them).
func (m *Manager) PinHashes(hashes []Hash, until int64) (PinID, int, error) {
	ps := &m.pins
	if until != 0 && until <= m.now {
		return 0, 0, errorf(ErrInvalid, "pin expiry %d is not after now (%d)", until, m.now)
	}
	blocks, hit := ps.scratch[:0], 0
	switch {
	case !m.hashing:
	case m.hybrid():
		blocks, hit = m.pinGroups(blocks, hashes)
	default:
		for i := range hashes {
			id, ok := m.bp.index.get(&hashes[i])
			if !ok || m.bp.fresh(id) {
				break
			}
			blocks = append(blocks, id)
		}
		hit = len(blocks)
	}
	ps.scratch = blocks[:0]
	fresh := 0
	for i, id := range blocks {
		if ps.count == nil || ps.count[id] == 0 && !containsBlock(blocks[:i], id) {
			fresh++
		}
	}
	if ps.distinct+fresh > ps.budget {
		ps.stats.Rejected++
		ps.event(PinEvent{Kind: PinRejected, Blocks: len(blocks), Until: until, Now: m.now})
		return 0, 0, errorf(ErrPinBudget, "pinning %d more blocks: %d of %d pinned", fresh, ps.distinct, ps.budget)
	}
	var idx uint32
	if n := len(ps.free); n > 0 {
		idx = ps.free[n-1]
		ps.free = ps.free[:n-1]
	} else {
		idx = uint32(len(ps.pins))
		ps.pins = append(ps.pins, pin{})
	}
	p := &ps.pins[idx]
	p.blocks = append(p.blocks[:0], blocks...)
	p.until, p.live = until, true
	p.gen++
	for _, id := range p.blocks {
		m.claim(id)
		if ps.count[id] == 0 {
			ps.distinct++
		}
		ps.count[id]++
	}
	m.notePeak() // claims of cached blocks reference more blocks
	ps.live++
	if until == 0 {
		ps.lasting++
	}
	ps.stats.Made++
	ps.stats.PeakPinnedBlocks = max(ps.stats.PeakPinnedBlocks, ps.distinct)
	if until != 0 && (ps.next == 0 || until < ps.next) {
		ps.next = until
	}
	id := PinID(uint64(p.gen)<<32 | uint64(idx+1))
	ps.event(PinEvent{Kind: Pinned, Pin: id, Blocks: len(p.blocks), Until: until, Now: m.now})
	return id, hit * m.bs, nil
}

// pinGroups appends to dst the device blocks that a hit on the prefix
// hashes needs in every KV cache group of a hybrid manager, as admission
// claims them (the full-attention blocks, the window or chunk blocks
// before the hit's end, the state checkpoint's pages), for the longest
// prefix whose every such block is on the device, and returns them with
// that prefix's length in blocks. Pinning the full-attention blocks alone
// would leave the rest evictable, and with them the hit.
func (m *Manager) pinGroups(dst []allocator.BlockID, hashes []Hash) ([]allocator.BlockID, int) {
	probe := &m.pins.probe
	probe.hashes = hashes
	defer func() { probe.hashes = nil }()
	for limit := len(hashes); limit > 0; {
		hit := m.lookupGroups(probe, limit)
		out, onHost, fresh := dst, false, false
		add := func(row []allocator.BlockID) {
			for _, b := range row {
				switch {
				case b < 0:
					onHost = true
				case b > nullBlock:
					fresh = fresh || m.bp.fresh(b)
					out = append(out, b)
				}
			}
		}
		add(m.hits[:hit])
		for _, row := range m.ghits {
			add(row)
		}
		add(m.ret.hitPages)
		if !onHost && !fresh {
			return out, hit
		}
		// A shorter prefix may be on the device and computed.
		limit = hit - 1
		for i, b := range m.hits[:hit] {
			if b > nullBlock && m.bp.fresh(b) {
				limit = i
				break
			}
		}
	}
	return dst, 0
}

func containsBlock(s []allocator.BlockID, id allocator.BlockID) bool {
	for _, b := range s {
		if b == id {
			return true
		}
	}
	return false
}

// lookupPin returns the live pin named id.
func (m *Manager) lookupPin(id PinID) (*pin, error) {
	idx, gen := uint32(id)-1, uint32(id>>32)
	if id == 0 || uint(idx) >= uint(len(m.pins.pins)) {
		return nil, errorf(ErrUnknownPin, "pin %#x", uint64(id))
	}
	p := &m.pins.pins[idx]
	if !p.live || p.gen != gen {
		return nil, errorf(ErrUnknownPin, "pin %#x", uint64(id))
	}
	return p, nil
}

// Unpin releases a pin: its blocks that no sequence or other pin holds
// become evictable again. A pin released already (by Unpin or by expiry)
// or never made is ErrUnknownPin, and nothing changes.
func (m *Manager) Unpin(id PinID) error {
	p, err := m.lookupPin(id)
	if err != nil {
		return err
	}
	m.pins.stats.Unpinned++
	m.pins.event(PinEvent{Kind: Unpinned, Pin: id, Blocks: len(p.blocks), Until: p.until, Now: m.now})
	m.dropPin(uint32(id) - 1)
	return nil
}

// ExtendPin moves a pin's expiry to until (0: until Unpin), for example
// each time a request uses the pinned prefix. until must be after now.
func (m *Manager) ExtendPin(id PinID, until int64) error {
	p, err := m.lookupPin(id)
	if err != nil {
		return err
	}
	if until != 0 && until <= m.now {
		return errorf(ErrInvalid, "pin expiry %d is not after now (%d)", until, m.now)
	}
	if (p.until == 0) != (until == 0) {
		if until == 0 {
			m.pins.lasting++
		} else {
			m.pins.lasting--
		}
	}
	p.until = until
	if until != 0 && (m.pins.next == 0 || until < m.pins.next) {
		m.pins.next = until
	}
	m.pins.event(PinEvent{Kind: PinExtended, Pin: id, Blocks: len(p.blocks), Until: until, Now: m.now})
	return nil
}

// dropPin releases pin idx's references, tail first as a sequence does.
func (m *Manager) dropPin(idx uint32) {
	ps := &m.pins
	p := &ps.pins[idx]
	for i := len(p.blocks) - 1; i >= 0; i-- {
		id := p.blocks[i]
		ps.count[id]--
		if ps.count[id] == 0 {
			ps.distinct--
		}
		m.bp.release(id)
	}
	if p.until == 0 {
		ps.lasting--
	}
	p.blocks, p.live = p.blocks[:0], false
	if p.gen != math.MaxUint32 {
		ps.free = append(ps.free, idx)
	} // else the slot's generations are spent: retired, so no PinID repeats
	ps.live--
}

// expirePins releases the pins whose expiry is at or before now. Called by
// Advance; it costs O(pins) only when some pin is due.
func (m *Manager) expirePins(now int64) {
	ps := &m.pins
	if ps.next == 0 || now < ps.next {
		return
	}
	ps.next = 0
	for i := range ps.pins {
		p := &ps.pins[i]
		if !p.live || p.until == 0 {
			continue
		}
		if p.until <= now {
			ps.stats.Expired++
			ps.event(PinEvent{Kind: PinExpired, Pin: PinID(uint64(p.gen)<<32 | uint64(i+1)), Blocks: len(p.blocks), Until: p.until, Now: now})
			m.dropPin(uint32(i))
			continue
		}
		if ps.next == 0 || p.until < ps.next {
			ps.next = p.until
		}
	}
}

func (ps *pinSet) event(e PinEvent) {
	if len(ps.events) >= maxPinEvents {
		ps.stats.EventsDropped++
		return
	}
	ps.events = append(ps.events, e)
}

// TakePinEvents appends the pin events since the last call to dst, oldest
// first, and returns it.
func (m *Manager) TakePinEvents(dst []PinEvent) []PinEvent {
	dst = append(dst, m.pins.events...)
	m.pins.events = m.pins.events[:0]
	return dst
}

// PinStats returns the pin budget, the live pins and their counters.
func (m *Manager) PinStats() PinStats {
	s := m.pins.stats
	s.Budget, s.Pins, s.PinnedBlocks, s.Lasting = m.pins.budget, m.pins.live, m.pins.distinct, m.pins.lasting
	return s
}

// checkPins adds the pins' references to refs (per block, as Check counts
// table entries) and verifies the pin accounting: per-block counts match
// the live pins, pinned blocks hold cached content, the distinct count is
// within the budget.
func (m *Manager) checkPins(refs []int32) error {
	ps := &m.pins
	if ps.count == nil {
		return nil
	}
	want := make([]int32, len(ps.count))
	live, lasting := 0, 0
	for i := range ps.pins {
		p := &ps.pins[i]
		if !p.live {
			continue
		}
		live++
		if p.until == 0 {
			lasting++
		}
		for _, id := range p.blocks {
			if !m.bp.hasContent(id) {
				return fmt.Errorf("paged: pin %d holds block %d, which holds no cached content", i, id)
			}
			want[id]++
			refs[id]++
		}
	}
	distinct := 0
	for id, c := range ps.count {
		if c != want[id] {
			return fmt.Errorf("paged: block %d has pin count %d but %d pins name it", id, c, want[id])
		}
		if c > 0 {
			distinct++
		}
	}
	if distinct != ps.distinct || live != ps.live || distinct > ps.budget || lasting != ps.lasting {
		return fmt.Errorf("paged: %d pins (%d without expiry) hold %d blocks (counters %d, %d, %d), budget %d",
			live, lasting, distinct, ps.live, ps.lasting, ps.distinct, ps.budget)
	}
	return nil
}
