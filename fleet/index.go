package fleet

import (
	"errors"
	"fmt"
	"math"
	"math/bits"
	"reflect"
	"sync"
	"time"

	"github.com/pagedkv/pagedkv/paged"
)

// countBits is the width of the bit-sliced device counters: enough for
// any request a 32-bit block count can describe.
const countBits = 32

// DefaultMaxServers is the number of servers an Index has room for when
// Config.MaxServers is 0.
const DefaultMaxServers = 64

// maxServersLimit is the largest Config.MaxServers.
const maxServersLimit = 1 << 16

// Config configures an Index. Zero values mean the documented defaults.
type Config struct {
	// Model names the index; backends namespace their keys by it, so one
	// Redis can hold the indexes of many models. Default "default".
	Model string
	// Backend stores the entries. Default: a Memory backend with
	// DefaultMemoryCapacity entries. One backend serves one Index.
	Backend Backend
	// MaxServers bounds the number of distinct server names, at most
	// 1<<16. Default DefaultMaxServers.
	MaxServers int
	// DeviceWeight and HostWeight are what one leading block held on the
	// device or on the host adds to a server's Score.Value. A host block
	// must be copied back before use, so it is worth less. Defaults 1 and
	// 0.5; both must be positive.
	DeviceWeight, HostWeight float64
	// TTL expires a server that has sent no events for this long: its
	// entries are dropped and it is partial until it resyncs. A server
	// with an idle cache should send Heartbeat. Default 0: never.
	TTL time.Duration
	// Now is the clock for TTL. Default time.Now; tests pass a fake.
	Now func() time.Time
}

func (cfg Config) withDefaults() (Config, error) {
	if cfg.Model == "" {
		cfg.Model = "default"
	}
	if cfg.MaxServers == 0 {
		cfg.MaxServers = DefaultMaxServers
	}
	if cfg.MaxServers < 1 || cfg.MaxServers > maxServersLimit {
		return cfg, fmt.Errorf("%w: Config.MaxServers %d must be in [1, 65536]", ErrInvalid, cfg.MaxServers)
	}
	if cfg.DeviceWeight == 0 {
		cfg.DeviceWeight = 1
	}
	if cfg.HostWeight == 0 {
		cfg.HostWeight = 0.5
	}
	if !(cfg.DeviceWeight > 0) || !(cfg.HostWeight > 0) || math.IsInf(cfg.DeviceWeight, 0) || math.IsInf(cfg.HostWeight, 0) {
		return cfg, fmt.Errorf("%w: Config.DeviceWeight %v and HostWeight %v must be positive and finite", ErrInvalid, cfg.DeviceWeight, cfg.HostWeight)
	}
	if cfg.TTL < 0 {
		return cfg, fmt.Errorf("%w: Config.TTL %v must not be negative", ErrInvalid, cfg.TTL)
	}
	if cfg.Now == nil {
		cfg.Now = time.Now
	}
	if v := reflect.ValueOf(cfg.Backend); cfg.Backend != nil && v.Kind() == reflect.Pointer && v.IsNil() {
		return cfg, fmt.Errorf("%w: Config.Backend is a nil %T", ErrInvalid, cfg.Backend)
	}
	if cfg.Backend == nil {
		m, err := NewMemory(MemoryConfig{})
		if err != nil {
			return cfg, err
		}
		cfg.Backend = m
	}
	return cfg, nil
}

// Index is a fleet-wide prefix index: block hash -> the servers holding
// it, per tier, fed by the servers' KV events and asked for each server's
// run of leading blocks of a request. The server registry and each
// server's stream state live in the backend, so several Index values on
// one backend (routers sharing a Redis) see the same servers and entries.
// See the package documentation for ordering, staleness and concurrency.
type Index struct {
	mu         sync.Mutex
	cfg        Config
	words      int
	servers    []server // by ServerID: this Index's cache of the registry
	byName     map[string]ServerID
	needAttach bool
	masks      []uint64      // lookup scratch
	states     []StreamState // lookup scratch
	alive      []uint64      // lookup scratch: servers whose run goes on
	planes     []uint64      // lookup scratch: bit-sliced device counts, countBits per word
	stats      Stats
}

// server is this Index's view of one server.
type server struct {
	name string
	st   StreamState // as last read from or written to the backend
	// unsure: a write of ours failed without telling whether it was
	// applied; the entries are cleared before the next use.
	unsure bool
}

// Stats counts what an Index has done.
type Stats struct {
	// Events and Blocks count applied events and the block hashes in them.
	Events, Blocks uint64
	// Duplicates counts events skipped because their sequence number was
	// already taken (replays after a reconnect, or events another router
	// applied first).
	Duplicates uint64
	// Gaps counts sequence gaps (lost events); each dropped a server's
	// entries.
	Gaps uint64
	// Expired counts servers dropped for silence longer than the TTL.
	Expired uint64
	// Losses counts times the backend lost its content (Redis restart).
	Losses uint64
	// Conflicts counts writes retried because another router changed the
	// server's stream first.
	Conflicts uint64
	// Lookups counts Lookup calls.
	Lookups uint64
}

// New returns an Index attached to cfg.Backend: the model's index is
// created when absent and joined when another router made it; nothing is
// deleted.
func New(cfg Config) (*Index, error) {
	cfg, err := cfg.withDefaults()
	if err != nil {
		return nil, err
	}
	x := &Index{cfg: cfg, words: WordsFor(cfg.MaxServers), byName: make(map[string]ServerID)}
	x.alive = make([]uint64, x.words)
	x.planes = make([]uint64, x.words*countBits)
	x.needAttach = true
	if err := x.ready(); err != nil {
		return nil, err
	}
	return x, nil
}

// ready attaches to the backend (at start and after a loss) and loads the
// registry.
func (x *Index) ready() error {
	if x.cfg.Backend == nil {
		return fmt.Errorf("%w: Index not created with New", ErrInvalid)
	}
	if !x.needAttach {
		return nil
	}
	if err := x.cfg.Backend.Attach(x.cfg.Model, x.cfg.MaxServers); err != nil {
		return fmt.Errorf("fleet: attach backend: %w", err)
	}
	recs, err := x.cfg.Backend.Servers(nil)
	if err != nil {
		return fmt.Errorf("fleet: read server registry: %w", err)
	}
	old := x.servers
	x.servers = x.servers[:0:0]
	clear(x.byName)
	for _, r := range recs {
		x.byName[r.Name] = ServerID(len(x.servers))
		x.servers = append(x.servers, server{name: r.Name, st: r.State})
	}
	x.needAttach = false
	// After a loss, the servers this Index knew come back partial: the
	// index knows nothing of their caches until they resync.
	for _, s := range old {
		if _, ok := x.byName[s.name]; !ok {
			if _, _, err := x.register(s.name, true); err != nil {
				return err
			}
		}
	}
	return nil
}

// refresh reloads the registry after a backend call named a server this
// Index had not seen (another router registered it).
func (x *Index) refresh() error {
	recs, err := x.cfg.Backend.Servers(nil)
	if err != nil {
		return fmt.Errorf("fleet: read server registry: %w", err)
	}
	for i := len(x.servers); i < len(recs); i++ {
		x.byName[recs[i].Name] = ServerID(i)
		x.servers = append(x.servers, server{name: recs[i].Name, st: recs[i].State})
	}
	return nil
}

// register returns the server named name, registering it with the
// backend when new to this Index. partial says a new server's cache is
// unknown (a loss): its first event is taken as it comes.
func (x *Index) register(name string, partial bool) (ServerID, *server, error) {
	if id, ok := x.byName[name]; ok {
		return id, &x.servers[id], nil
	}
	if name == "" {
		return 0, nil, fmt.Errorf("%w: empty server name", ErrInvalid)
	}
	id, st, err := x.cfg.Backend.Register(name, StreamState{Partial: partial})
	if err != nil {
		if errors.Is(err, ErrIndexLost) {
			x.lost()
		}
		return 0, nil, fmt.Errorf("fleet: register %q: %w", name, err)
	}
	if int(id) >= len(x.servers) {
		if err := x.refresh(); err != nil {
			return 0, nil, err
		}
	}
	if int(id) >= len(x.servers) || x.servers[id].name != name {
		return 0, nil, fmt.Errorf("fleet: backend registered %q as server %d, which the registry does not list", name, id)
	}
	x.servers[id].st = st
	return id, &x.servers[id], nil
}

// Register adds a server without events, so it is scored (at zero) and
// subject to the TTL from now on. Apply registers servers by itself.
func (x *Index) Register(name string) (ServerID, error) {
	x.mu.Lock()
	defer x.mu.Unlock()
	if err := x.ready(); err != nil {
		return 0, err
	}
	id, s, err := x.register(name, false)
	if err == nil && s.st.Seen == 0 {
		err = x.touch(id, s)
	}
	return id, err
}

// Apply takes one server's events in its order. Sequence numbers must
// increase within the call (else ErrInvalid and nothing changes). An event
// at or below the last number taken is a replay and is skipped. A server's
// first event must be number 1 and each next one the last plus one; a gap
// means lost events: the server's entries are dropped, it is marked
// partial, and the events after the gap are applied (they are true; only
// what was lost is missing). AllBlocksCleared leaves the server complete
// again. Several routers may apply the same stream to one backend: each
// event is applied once. If the backend fails, the server is marked
// partial and its entries are cleared before the next use, so no lost
// write can make the index claim a block the server gave up.
func (x *Index) Apply(name string, events []paged.Event) error {
	for i := 1; i < len(events); i++ {
		if events[i].Seq <= events[i-1].Seq {
			return fmt.Errorf("%w: event sequence numbers %d then %d do not increase", ErrInvalid, events[i-1].Seq, events[i].Seq)
		}
	}
	if err := CheckEvents(events); err != nil {
		return err
	}
	x.mu.Lock()
	defer x.mu.Unlock()
	for attempt := 0; ; attempt++ {
		err := x.apply(name, events, attempt > 0)
		if attempt < maxAttempts-1 && (errors.Is(err, ErrConflict) || (errors.Is(err, ErrIndexLost) && attempt == 0)) {
			continue
		}
		return err
	}
}

// maxAttempts bounds the writes of one call that find a server's state
// changed by another router (ErrConflict): each such failure is another
// router's progress, and the call decides again from the new state.
const maxAttempts = 32

// apply is one attempt of Apply from the server's current state; retry
// says an earlier attempt found the state changed by another router.
func (x *Index) apply(name string, events []paged.Event, retry bool) error {
	if err := x.ready(); err != nil {
		return err
	}
	id, s, err := x.register(name, false)
	if err != nil {
		return err
	}
	st := s.st
	st.Seen, st.Expired = x.cfg.Now().UnixNano(), false // any event, even a replay, proves the server alive
	// Replays come first in a call (a publisher resends from an older
	// number after a reconnect); validation guarantees the rest increase.
	i := 0
	for i < len(events) && st.Started && events[i].Seq <= st.Last {
		i++
	}
	dup := uint64(i)
	if retry && i == len(events) && !s.st.Expired && (!s.st.Dirty || s.st.tag != "") && !s.unsure && x.seenLately(s.st, st.Seen) {
		// Another router applied every one of these events since this
		// one read the state, or is applying them (a tagged state: its
		// run is split, half written), and its write saw the server alive
		// lately: nothing is left to write. (Writing Seen alone would
		// change the state again under the routers still applying, and
		// routers that follow one stream would keep failing each other's
		// writes; taking over a half-written run would clear the server.
		// If that router died, the next write or lookup clears it.)
		x.stats.Duplicates += dup
		return nil
	}
	// Events go to the backend in gap-free runs: a gap flushes the run
	// before it, and the next run clears the server's entries first.
	seg, gaps := i, uint64(0)
	clearFirst := st.Dirty || s.unsure
	if clearFirst {
		st.Partial = true
	}
	for j := i; j < len(events); j++ {
		ev := &events[j]
		if (!st.Started && ev.Seq != 1 && !st.AnyStart) || (st.Started && ev.Seq != st.Last+1) {
			// A run before the gap is written first; an empty one is not:
			// the write after the gap carries the state and clears the
			// entries. (Routers applying one stream would each write it,
			// failing each other's write after the gap every time.)
			if j > seg {
				if err := x.flush(id, s, st, clearFirst, events[seg:j]); err != nil {
					return err
				}
				st = s.st
			}
			seg, clearFirst = j, true
			gaps++
			st.Partial = true
		}
		st.Started, st.AnyStart, st.Last, st.Dirty = true, false, ev.Seq, false
		if ev.Kind == paged.AllBlocksCleared {
			st.Partial = false
		}
	}
	st.Dirty = false
	if err := x.flush(id, s, st, clearFirst, events[seg:]); err != nil {
		return err
	}
	x.stats.Duplicates += dup
	x.stats.Gaps += gaps
	return nil
}

// flush writes one gap-free run of events and the state after it.
func (x *Index) flush(id ServerID, s *server, next StreamState, clearFirst bool, events []paged.Event) error {
	// s.st may be a backend's half-done state, tagged: the write names it
	// whole, and writes its own state untagged.
	next.Gen, next.tag = s.st.Gen+1, ""
	cur, err := x.cfg.Backend.Update(id, s.st, next, clearFirst, events)
	switch {
	case err == nil:
		s.st, s.unsure = next, false
		x.stats.Events += uint64(len(events))
		for i := range events {
			x.stats.Blocks += uint64(len(events[i].Hashes))
		}
		return nil
	case errors.Is(err, ErrConflict):
		s.st = cur
		x.stats.Conflicts++
		return err
	case errors.Is(err, ErrIndexLost):
		x.lost()
		return fmt.Errorf("fleet: apply events of %q: %w", s.name, err)
	}
	s.unsure = true
	return fmt.Errorf("fleet: apply events of %q: %w", s.name, err)
}

// touch records that a server is alive.
func (x *Index) touch(id ServerID, s *server) error {
	for range maxAttempts {
		next := s.st
		next.Seen = x.cfg.Now().UnixNano()
		err := x.flush(id, s, next, false, nil)
		if !errors.Is(err, ErrConflict) {
			return err
		}
		if x.seenLately(s.st, next.Seen) {
			// Another router's write (its own heartbeat, say) has just
			// recorded the server alive: writing again would only fail
			// that router's next write.
			return nil
		}
	}
	return fmt.Errorf("fleet: heartbeat of %q: %w", s.name, ErrConflict)
}

// seenLately reports whether state st records its server alive recently
// enough, as of now, that writing a newer Seen changes nothing the TTL
// decides before the next event or heartbeat: within half the TTL.
func (x *Index) seenLately(st StreamState, now int64) bool {
	return x.cfg.TTL == 0 || now-st.Seen < int64(x.cfg.TTL)/2
}

// cleanUnsure clears the entries of a server whose last write failed.
func (x *Index) cleanUnsure(id ServerID, s *server) error {
	for range maxAttempts {
		if !s.unsure && !s.st.Dirty {
			return nil
		}
		next := s.st
		next.Partial, next.Dirty = true, false
		err := x.flush(id, s, next, true, nil)
		if !errors.Is(err, ErrConflict) {
			return err
		}
		s.unsure = false // the state moved on: someone else wrote after us
	}
	return fmt.Errorf("fleet: clear %q: %w", s.name, ErrConflict)
}

// lost records that the backend's content vanished: the Index attaches
// again before its next call, and every server is partial until it
// resyncs.
func (x *Index) lost() {
	x.stats.Losses++
	x.needAttach = true
}

// Heartbeat tells the index that a server is alive though it has no
// events, so the TTL does not expire it.
func (x *Index) Heartbeat(name string) error {
	x.mu.Lock()
	defer x.mu.Unlock()
	if err := x.ready(); err != nil {
		return err
	}
	id, s, err := x.register(name, false)
	if err != nil {
		return err
	}
	return x.touch(id, s)
}

// Resync rebuilds a server's entries from a snapshot of its cache
// (paged.Manager.Snapshot): its entries are dropped, the snapshot's
// blocks stored, and its stream continues after snap.Seq, complete. The
// events the manager numbered up to snap.Seq are then replays. This is
// how a partial server becomes exact again, after lost events or after
// the backend lost its content. A nil snap resyncs to an empty cache
// whose next event may carry any number.
func (x *Index) Resync(name string, snap *paged.Snapshot) error {
	var events []paged.Event
	if snap != nil {
		if err := snap.Validate(); err != nil {
			return fmt.Errorf("%w: resync %q: %v", ErrInvalid, name, err)
		}
		events = snap.Events(nil)
	}
	x.mu.Lock()
	defer x.mu.Unlock()
	for attempt := 0; ; attempt++ {
		err := x.resync(name, snap, events)
		if attempt < maxAttempts-1 && (errors.Is(err, ErrConflict) || (errors.Is(err, ErrIndexLost) && attempt == 0)) {
			continue
		}
		return err
	}
}

func (x *Index) resync(name string, snap *paged.Snapshot, events []paged.Event) error {
	if err := x.ready(); err != nil {
		return err
	}
	id, s, err := x.register(name, false)
	if err != nil {
		return err
	}
	next := StreamState{AnyStart: true, Seen: x.cfg.Now().UnixNano()}
	if snap != nil {
		next = StreamState{Started: snap.Seq > 0, Last: snap.Seq, Seen: next.Seen}
	}
	if err := x.flush(id, s, next, true, events); err != nil {
		return fmt.Errorf("fleet: resync %q: %w", name, err)
	}
	return nil
}

// Score is one server's answer for a request.
type Score struct {
	// Server is the server's ID in the index.
	Server ServerID
	// Name is the name the server registered under.
	Name string
	// Blocks is the number of leading blocks of the request the server
	// holds, on either tier, without a hole; Device of them are on the
	// device.
	Blocks, Device int
	// Pending of the Blocks are not in the index but claimed by a Pending
	// record (requests routed there, their blocks not yet reported); 0
	// from Lookup. They are counted in Device.
	Pending int
	// Value is Device*DeviceWeight + (Blocks-Device)*HostWeight.
	Value float64
	// Partial says the index may be missing some of this server's blocks
	// (lost events, expiry, a backend restart): Blocks is a lower bound.
	Partial bool
}

// Lookup scores every registered server for a request whose block hashes
// are hashes (in chain order) and appends one Score per server, by
// ServerID, to dst. It costs one backend lookup (one round trip for Redis)
// and allocates nothing once dst and the index's scratch have grown.
func (x *Index) Lookup(hashes []paged.Hash, dst []Score) ([]Score, error) {
	x.mu.Lock()
	defer x.mu.Unlock()
	x.stats.Lookups++
	if err := x.ready(); err != nil {
		return dst, err
	}
	for i := range x.servers {
		// ErrConflict here means other routers keep writing the server's
		// state: the lookup goes on, and leaves the server's entries out
		// while its state is half written (below).
		if err := x.cleanUnsure(ServerID(i), &x.servers[i]); err != nil && !errors.Is(err, ErrConflict) {
			return dst, fmt.Errorf("fleet: clear %q before lookup: %w", x.servers[i].name, err)
		}
	}
	masks, states, err := x.cfg.Backend.Lookup(hashes, x.words, x.masks[:0], x.states[:0])
	x.masks, x.states = masks[:0], states[:0]
	base := len(dst)
	if errors.Is(err, ErrIndexLost) {
		// Nothing is known now, and every server says so.
		x.lost()
		for i := range x.servers {
			dst = append(dst, Score{Server: ServerID(i), Name: x.servers[i].name, Partial: true})
		}
		return dst, nil
	}
	if err != nil {
		return dst, fmt.Errorf("fleet: lookup: %w", err)
	}
	if len(states) > len(x.servers) {
		if err := x.refresh(); err != nil {
			return dst, err
		}
	}
	for i := range min(len(states), len(x.servers)) {
		x.servers[i].st = states[i]
	}
	expired, err := x.expire()
	if err != nil {
		return dst, err
	}
	// Every registered server gets a score, zero included: routers need
	// the whole fleet to weigh load.
	for i := range x.servers {
		dst = append(dst, Score{Server: ServerID(i), Name: x.servers[i].name})
	}
	if len(x.servers) == 0 || len(hashes) == 0 {
		x.markPartial(dst[base:])
		return dst, nil
	}
	out := dst[base:]
	w := x.words
	clear(x.alive)
	for i := range x.servers {
		x.alive[i/64] |= 1 << (uint(i) % 64)
	}
	for k := range w {
		x.alive[k] &^= expired[k] // cleared after the backend answered
	}
	clear(x.planes)
	// Blocks: a server's run ends at the first hash it does not hold, so
	// record where each bit dies. Device counts: bit-sliced counters (plane
	// p holds bit p of every server's count), so each hash costs a few
	// word operations whatever the number of servers.
	// A backend may stop after a hash no server holds.
	n := min(len(hashes), len(masks)/(2*w))
	if w == 1 {
		n = x.runsOneWord(masks, out, n)
	} else {
		n = x.runs(masks, out, n)
	}
	for k := range w {
		for alive := x.alive[k]; alive != 0; alive &= alive - 1 {
			out[k*64+bits.TrailingZeros64(alive)].Blocks = n
		}
		for p := range countBits {
			for b := x.planes[k*countBits+p]; b != 0; b &= b - 1 {
				out[k*64+bits.TrailingZeros64(b)].Device += 1 << p
			}
		}
	}
	for i := range out {
		if x.servers[i].st.Dirty {
			// Half written as of this lookup (another router's split run
			// in progress, or left by a router that died): its entries
			// may hold stores whose removals are not written yet.
			out[i].Blocks, out[i].Device = 0, 0
		}
		out[i].Value = float64(out[i].Device)*x.cfg.DeviceWeight + float64(out[i].Blocks-out[i].Device)*x.cfg.HostWeight
	}
	x.markPartial(out)
	return dst, nil
}

// runs records where each server's run of leading blocks ends (in
// out[s].Blocks, for the servers whose run ends before n) and counts
// device blocks in x.planes; it returns the number of hashes some server
// still holds at the end.
func (x *Index) runs(masks []uint64, out []Score, n int) int {
	w := x.words
	for i := range n {
		dev, host := masks[2*w*i:2*w*i+w], masks[2*w*i+w:2*w*(i+1)]
		any := false
		for k := range w {
			held := (dev[k] | host[k]) & x.alive[k]
			for died := x.alive[k] &^ held; died != 0; died &= died - 1 {
				out[k*64+bits.TrailingZeros64(died)].Blocks = i
			}
			x.alive[k] = held
			carry := dev[k] & held
			for p := k * countBits; carry != 0; p++ {
				carry, x.planes[p] = x.planes[p]&carry, x.planes[p]^carry
			}
			any = any || held != 0
		}
		if !any {
			return i
		}
	}
	return n
}

// runsOneWord is runs for up to 64 servers (the default), with the
// holder sets and counters in registers and on the stack.
func (x *Index) runsOneWord(masks []uint64, out []Score, n int) int {
	alive := x.alive[0]
	var planes [countBits]uint64
	masks = masks[:2*n]
	for i := range n {
		dev := masks[2*i]
		held := (dev | masks[2*i+1]) & alive
		for died := alive &^ held; died != 0; died &= died - 1 {
			out[bits.TrailingZeros64(died)].Blocks = i
		}
		alive = held
		for p, carry := 0, dev&held; carry != 0 && p < countBits; p++ {
			carry, planes[p] = planes[p]&carry, planes[p]^carry
		}
		if held == 0 {
			n = i
			break
		}
	}
	x.alive[0] = alive
	copy(x.planes, planes[:])
	return n
}

// markPartial sets Partial from the servers' states. A dirty server
// (another router's write failed half way) is partial too.
func (x *Index) markPartial(out []Score) {
	for i := range out {
		st := &x.servers[i].st
		out[i].Partial = st.Partial || st.Dirty || x.servers[i].unsure
	}
}

// expire drops the entries of servers silent for longer than the TTL and
// returns their bits (scratch: valid until the next call).
func (x *Index) expire() ([]uint64, error) {
	clear(x.planes[:x.words])
	expired := x.planes[:x.words]
	if x.cfg.TTL == 0 {
		return expired, nil
	}
	now := x.cfg.Now().UnixNano()
	for i := range x.servers {
		s := &x.servers[i]
		for range maxAttempts {
			if s.st.Expired || s.st.Seen == 0 || now-s.st.Seen <= int64(x.cfg.TTL) {
				break
			}
			next := s.st
			next.Expired, next.Partial, next.Dirty = true, true, false
			err := x.flush(ServerID(i), s, next, true, nil)
			if err == nil {
				x.stats.Expired++
				expired[i/64] |= 1 << (uint(i) % 64)
				break
			}
			if !errors.Is(err, ErrConflict) {
				return expired, err
			}
		}
	}
	return expired, nil
}

// ServerStatus describes one server's stream as the index sees it.
type ServerStatus struct {
	// ID is the server's ID in the index, in registration order from 0.
	ID ServerID
	// Name is the name the server registered under.
	Name string
	// Seq is the sequence number of the last event taken.
	Seq uint64
	// Partial: the index may miss some of the server's blocks.
	Partial bool
	// Expired: the server went silent for longer than the TTL.
	Expired bool
	// LastSeen is when the server last sent events or a heartbeat.
	LastSeen time.Time
}

// Servers appends the status of every registered server, by ID, to dst,
// as the backend holds it now (other routers' servers included).
func (x *Index) Servers(dst []ServerStatus) ([]ServerStatus, error) {
	x.mu.Lock()
	defer x.mu.Unlock()
	if err := x.ready(); err != nil {
		return dst, err
	}
	recs, err := x.cfg.Backend.Servers(nil)
	if err != nil {
		if errors.Is(err, ErrIndexLost) {
			x.lost()
		}
		return dst, fmt.Errorf("fleet: servers: %w", err)
	}
	if len(recs) > len(x.servers) {
		if err := x.refresh(); err != nil {
			return dst, err
		}
	}
	for i := range min(len(recs), len(x.servers)) {
		x.servers[i].st = recs[i].State
	}
	if _, err := x.expire(); err != nil {
		return dst, err
	}
	for i, s := range x.servers {
		st := s.st
		var seen time.Time
		if st.Seen != 0 {
			seen = time.Unix(0, st.Seen)
		}
		dst = append(dst, ServerStatus{ID: ServerID(i), Name: s.name, Seq: st.Last, Partial: st.Partial || st.Dirty || s.unsure, Expired: st.Expired, LastSeen: seen})
	}
	return dst, nil
}

// Stats returns the index's counters.
func (x *Index) Stats() Stats {
	x.mu.Lock()
	defer x.mu.Unlock()
	return x.stats
}
