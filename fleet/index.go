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
// run of leading blocks of a request. See the package documentation for
// ordering, staleness and concurrency.
type Index struct {
	mu       sync.Mutex
	cfg      Config
	words    int
	servers  []server
	byName   map[string]ServerID
	needInit bool
	masks    []uint64 // lookup scratch
	alive    []uint64 // lookup scratch: servers whose run goes on
	planes   []uint64 // lookup scratch: bit-sliced device counts, countBits per word
	stats    Stats
}

// server is the Index's view of one server's event stream.
type server struct {
	name     string
	last     uint64 // sequence number of the last event taken
	started  bool
	anyStart bool // after Resync the next event may carry any number
	partial  bool // entries may be missing (lost events, expiry, index loss)
	dirty    bool // a backend write failed; entries must be cleared before use
	expired  bool
	lastSeen time.Time
}

// Stats counts what an Index has done.
type Stats struct {
	// Events and Blocks count applied events and the block hashes in them.
	Events, Blocks uint64
	// Duplicates counts events skipped because their sequence number was
	// already taken (replays after a reconnect).
	Duplicates uint64
	// Gaps counts sequence gaps (lost events); each dropped a server's
	// entries.
	Gaps uint64
	// Expired counts servers dropped for silence longer than the TTL.
	Expired uint64
	// Losses counts times the backend lost its content (Redis restart).
	Losses uint64
	// Lookups counts Lookup calls.
	Lookups uint64
}

// New returns an empty Index and initializes its backend (dropping what
// the backend held for this model before).
func New(cfg Config) (*Index, error) {
	cfg, err := cfg.withDefaults()
	if err != nil {
		return nil, err
	}
	x := &Index{cfg: cfg, words: wordsFor(cfg.MaxServers), byName: make(map[string]ServerID)}
	x.alive = make([]uint64, x.words)
	x.planes = make([]uint64, x.words*countBits)
	if err := cfg.Backend.Init(cfg.Model, cfg.MaxServers); err != nil {
		return nil, fmt.Errorf("fleet: init backend: %w", err)
	}
	return x, nil
}

// register returns the server named name, adding it when new.
func (x *Index) register(name string) (ServerID, *server, error) {
	if id, ok := x.byName[name]; ok {
		return id, &x.servers[id], nil
	}
	if name == "" {
		return 0, nil, fmt.Errorf("%w: empty server name", ErrInvalid)
	}
	if len(x.servers) >= x.cfg.MaxServers {
		return 0, nil, fmt.Errorf("%w: %q would be server %d of %d", ErrTooManyServers, name, len(x.servers)+1, x.cfg.MaxServers)
	}
	id := ServerID(len(x.servers))
	x.servers = append(x.servers, server{name: name})
	x.byName[name] = id
	return id, &x.servers[id], nil
}

// Register adds a server without events, so it is scored (at zero) and
// subject to the TTL from now on. Apply registers servers by itself.
func (x *Index) Register(name string) (ServerID, error) {
	x.mu.Lock()
	defer x.mu.Unlock()
	id, s, err := x.register(name)
	if err == nil && s.lastSeen.IsZero() {
		s.lastSeen = x.cfg.Now()
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
// again. If the backend fails, the server is marked partial and its
// entries are cleared before the next lookup, so no lost write can make
// the index claim a block the server gave up.
func (x *Index) Apply(name string, events []paged.Event) error {
	for i := 1; i < len(events); i++ {
		if events[i].Seq <= events[i-1].Seq {
			return fmt.Errorf("%w: event sequence numbers %d then %d do not increase", ErrInvalid, events[i-1].Seq, events[i].Seq)
		}
	}
	for i := range events {
		if k := events[i].Kind; k < paged.BlockStored || k > paged.BlockMoved {
			return fmt.Errorf("%w: event %d has unknown kind %d", ErrInvalid, events[i].Seq, k)
		}
		if m, f := events[i].Medium, events[i].From; m > paged.Host || f > paged.Host {
			return fmt.Errorf("%w: event %d has unknown medium %d (from %d)", ErrInvalid, events[i].Seq, m, f)
		}
	}
	x.mu.Lock()
	defer x.mu.Unlock()
	id, s, err := x.register(name)
	if err != nil {
		return err
	}
	// Any event, even a replay, proves the server alive.
	s.lastSeen, s.expired = x.cfg.Now(), false
	if err := x.ready(); err != nil {
		return err
	}
	// Replays come first in a call (a publisher resends from an older
	// number after a reconnect); validation above guarantees the rest
	// increase.
	i := 0
	for i < len(events) && s.started && events[i].Seq <= s.last {
		i++
	}
	x.stats.Duplicates += uint64(i)
	// Events go to the backend in gap-free runs: a gap flushes the run
	// before it, then the server's entries are cleared ahead of the next.
	seg := i
	for j := i; j < len(events); j++ {
		ev := &events[j]
		if (!s.started && ev.Seq != 1 && !s.anyStart) || (s.started && ev.Seq != s.last+1) {
			if err := x.flush(id, s, events[seg:j]); err != nil {
				return err
			}
			seg = j
			x.stats.Gaps++
			s.partial, s.dirty = true, true // the clear happens in the next flush
		}
		s.started, s.anyStart, s.last = true, false, ev.Seq
		if ev.Kind == paged.AllBlocksCleared {
			s.partial = false
		}
	}
	return x.flush(id, s, events[seg:])
}

// flush hands one gap-free run of events to the backend, clearing the
// server first when it is dirty.
func (x *Index) flush(id ServerID, s *server, events []paged.Event) error {
	for attempt := 0; ; attempt++ {
		err := x.clean(id, s)
		if err == nil && len(events) > 0 {
			err = x.cfg.Backend.Apply(id, events)
		}
		if err == nil {
			x.stats.Events += uint64(len(events))
			for i := range events {
				x.stats.Blocks += uint64(len(events[i].Hashes))
			}
			return nil
		}
		if errors.Is(err, ErrIndexLost) && attempt == 0 {
			// The content is gone for every server; start over and apply
			// these events to the fresh index.
			x.lost()
			if err = x.ready(); err == nil {
				continue
			}
		}
		s.partial, s.dirty = true, true
		return fmt.Errorf("fleet: apply events of %q: %w", s.name, err)
	}
}

// clean clears a dirty server's entries.
func (x *Index) clean(id ServerID, s *server) error {
	if !s.dirty {
		return nil
	}
	if err := x.cfg.Backend.Clear(id); err != nil {
		return err
	}
	s.dirty = false
	return nil
}

// lost records that the backend's content vanished: every server is
// partial until it resyncs, and the backend must be initialized anew.
func (x *Index) lost() {
	x.stats.Losses++
	for i := range x.servers {
		x.servers[i].partial = true
		x.servers[i].dirty = false
	}
	x.needInit = true
}

// ready initializes the backend again after a loss.
func (x *Index) ready() error {
	if !x.needInit {
		return nil
	}
	if err := x.cfg.Backend.Init(x.cfg.Model, x.cfg.MaxServers); err != nil {
		return fmt.Errorf("fleet: reinit backend after loss: %w", err)
	}
	x.needInit = false
	return nil
}

// Heartbeat tells the index that a server is alive though it has no
// events, so the TTL does not expire it.
func (x *Index) Heartbeat(name string) error {
	x.mu.Lock()
	defer x.mu.Unlock()
	_, s, err := x.register(name)
	if err == nil {
		s.lastSeen = x.cfg.Now()
	}
	return err
}

// Resync drops a server's entries and forgets its sequence state, so its
// next event may carry any number, and marks it complete: the caller
// promises to follow with events describing the server's whole cache (a
// snapshot as BlockStored events, or a fresh start).
func (x *Index) Resync(name string) error {
	x.mu.Lock()
	defer x.mu.Unlock()
	id, s, err := x.register(name)
	if err != nil {
		return err
	}
	if err := x.ready(); err != nil {
		return err
	}
	s.dirty = true
	if err := x.clean(id, s); err != nil {
		return fmt.Errorf("fleet: resync %q: %w", name, err)
	}
	s.started, s.anyStart, s.last, s.partial, s.expired = false, true, 0, false, false
	s.lastSeen = x.cfg.Now()
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
	x.expire()
	for i := range x.servers {
		if err := x.clean(ServerID(i), &x.servers[i]); err != nil {
			return dst, fmt.Errorf("fleet: clear %q before lookup: %w", x.servers[i].name, err)
		}
	}
	// Every registered server gets a score, zero included: routers need
	// the whole fleet to weigh load.
	base := len(dst)
	for i := range x.servers {
		dst = append(dst, Score{Server: ServerID(i), Name: x.servers[i].name})
	}
	if len(x.servers) == 0 || len(hashes) == 0 {
		x.markPartial(dst[base:])
		return dst, nil
	}
	masks, err := x.cfg.Backend.Lookup(hashes, x.words, x.masks[:0])
	x.masks = masks[:0]
	if errors.Is(err, ErrIndexLost) {
		x.lost()
		x.markPartial(dst[base:])
		return dst, nil // nothing is known now, and every server says so
	}
	if err != nil {
		return dst[:base], fmt.Errorf("fleet: lookup: %w", err)
	}
	out := dst[base:]
	w := x.words
	clear(x.alive)
	for i := range x.servers {
		x.alive[i/64] |= 1 << (uint(i) % 64)
	}
	clear(x.planes)
	// Blocks: a server's run ends at the first hash it does not hold, so
	// record where each bit dies. Device counts: bit-sliced counters (plane
	// p holds bit p of every server's count), so each hash costs a few
	// word operations whatever the number of servers.
	n := len(hashes)
	for i := range hashes {
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
			n = i
			break
		}
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
		out[i].Value = float64(out[i].Device)*x.cfg.DeviceWeight + float64(out[i].Blocks-out[i].Device)*x.cfg.HostWeight
	}
	x.markPartial(out)
	return dst, nil
}

func (x *Index) markPartial(out []Score) {
	for i := range out {
		out[i].Partial = x.servers[i].partial
	}
}

// expire drops the entries of servers silent for longer than the TTL.
func (x *Index) expire() {
	if x.cfg.TTL == 0 {
		return
	}
	now := x.cfg.Now()
	for i := range x.servers {
		s := &x.servers[i]
		if !s.expired && !s.lastSeen.IsZero() && now.Sub(s.lastSeen) > x.cfg.TTL {
			s.expired, s.partial, s.dirty = true, true, true
			x.stats.Expired++
		}
	}
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

// Servers appends the status of every registered server, by ID, to dst.
func (x *Index) Servers(dst []ServerStatus) []ServerStatus {
	x.mu.Lock()
	defer x.mu.Unlock()
	x.expire()
	for i, s := range x.servers {
		dst = append(dst, ServerStatus{ID: ServerID(i), Name: s.name, Seq: s.last, Partial: s.partial, Expired: s.expired, LastSeen: s.lastSeen})
	}
	return dst
}

// Stats returns the index's counters.
func (x *Index) Stats() Stats {
	x.mu.Lock()
	defer x.mu.Unlock()
	return x.stats
}
