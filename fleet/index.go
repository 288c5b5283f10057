package fleet

import (
	"errors"
	"fmt"
	"math"
	"math/bits"
	"reflect"
	"strconv"
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
	// entries are dropped and it is partial until it resyncs, and its ID
	// may be given to a new name when every ID is in use (see
	// Index.Register). A server with an idle cache should send Heartbeat.
	// Default 0: never (then only Index.Unregister frees an ID).
	//
	// Silence is measured on the monotonic clock (time.Time.Sub) since
	// the last event or heartbeat this Index wrote itself, so a step of
	// the wall clock neither expires a server early nor keeps it late.
	// When another router wrote the server's last stamp (a shared Redis)
	// only wall-clock time can be compared across processes, so the
	// routers' clocks must agree (NTP) to well within the TTL.
	TTL time.Duration
	// Now is the clock for TTL. Default time.Now, whose readings carry
	// the monotonic clock; tests pass a fake.
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
	// reloadNames: a backend state showed that an ID changed hands
	// (another Life) since the registry was read; the names are reloaded
	// before the next use.
	reloadNames bool
	// now and nowWall are the clock reading of the current call.
	now     time.Time
	nowWall int64
	masks   []uint64      // lookup scratch
	states  []StreamState // lookup scratch
	alive   []uint64      // lookup scratch: servers whose run goes on
	planes  []uint64      // lookup scratch: bit-sliced device counts, countBits per word
	// layouts counts the servers with a layout; keys, rows and evs are
	// scratch for their lookups and for events keyed by group.
	layouts int
	keys    []paged.Hash
	rows    []int // groups looked up, row r+1 is group rows[r]
	rowOf   []int // by group: its row, or -1
	skip    []uint64
	evs     []paged.Event
	evHash  []paged.Hash
	stats   Stats
}

// server is this Index's view of one server.
type server struct {
	name string
	st   StreamState // as last read from or written to the backend
	// unsure: a write of ours failed without telling whether it was
	// applied; the entries are cleared before the next use.
	unsure bool
	// seenAt is the clock reading (monotonic when the clock gives one)
	// at which this Index wrote the stamp seenWall into st.Seen: while
	// st.Seen is still that stamp, silence is measured from seenAt.
	seenAt   time.Time
	seenWall int64
	// layout is the server's recorded Layout, prepared; nil for none.
	layout *scorer
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
	// Reclaimed counts server IDs this Index gave to a new name after
	// their server expired or was unregistered.
	Reclaimed uint64
	// Unregistered counts servers this Index unregistered.
	Unregistered uint64
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

// errOwnerChanged: a backend refused a write because the server's ID now
// belongs to another name (its state has another Life). The Index
// reloads the registry and retries; the write is never applied to the
// new owner.
var errOwnerChanged = errors.New("fleet: server id given to another name")

// clock reads the clock once for the current call.
func (x *Index) clock() {
	if x.cfg.Now == nil { // a zero Index: ready refuses it
		return
	}
	x.now = x.cfg.Now()
	x.nowWall = x.now.UnixNano()
}

// retry runs one attempt of a call again while it failed on a conflict
// with another router (or once after a loss of the backend's content).
func (x *Index) retry(f func(again bool) error) error {
	for attempt := 0; ; attempt++ {
		err := f(attempt > 0)
		if attempt < maxAttempts-1 && (errors.Is(err, ErrConflict) || errors.Is(err, errOwnerChanged) || (errors.Is(err, ErrIndexLost) && attempt == 0)) {
			continue
		}
		return err
	}
}

// ready attaches to the backend (at start and after a loss) and loads the
// registry, and reloads the names when an ID changed hands.
func (x *Index) ready() error {
	if x.cfg.Backend == nil {
		return fmt.Errorf("%w: Index not created with New", ErrInvalid)
	}
	if !x.needAttach {
		if x.reloadNames {
			return x.reload()
		}
		return nil
	}
	if err := x.cfg.Backend.Attach(x.cfg.Model, x.cfg.MaxServers); err != nil {
		return fmt.Errorf("fleet: attach backend: %w", err)
	}
	x.clock() // Lookup reads the clock only with a TTL; re-registration stamps Seen
	old := x.servers
	x.servers = nil
	if err := x.reload(); err != nil {
		x.servers = old
		return err
	}
	x.needAttach = false
	// After a loss, the servers this Index knew come back partial: the
	// index knows nothing of their caches until they resync. Their
	// layouts come back with them: the backend lost those too, and a
	// hybrid server scored without its layout would be over-reported
	// once resynced.
	for _, s := range old {
		if _, ok := x.byName[s.name]; !ok && s.name != "" {
			if _, _, err := x.register(s.name, true); err != nil {
				return err
			}
		}
		if s.layout != nil && s.name != "" {
			if err := x.restoreLayout(s.name, s.layout); err != nil {
				return err
			}
		}
	}
	return nil
}

// restoreLayout records again, after a loss, the layout sc this Index
// knew for the server called name, unless another router recorded one
// since (a different one stays: the routers' configurations disagree,
// and the first recorded wins, as in SetLayout).
func (x *Index) restoreLayout(name string, sc *scorer) error {
	var err error
	for range maxAttempts {
		err = x.setLayout(name, sc)
		if !errors.Is(err, ErrConflict) && !errors.Is(err, errOwnerChanged) {
			break
		}
	}
	if errors.Is(err, ErrInvalid) {
		return nil
	}
	return err
}

// reload reads the whole registry again (names and states of one
// moment). A server keeps what only this Index knows of it (an unsure
// write, its monotonic stamp) when its ID still has the same name and
// Life.
func (x *Index) reload() error {
	recs, err := x.cfg.Backend.Servers(nil)
	if err != nil {
		if errors.Is(err, ErrIndexLost) {
			x.lost()
		}
		return fmt.Errorf("fleet: read server registry: %w", err)
	}
	old := x.servers
	x.servers = make([]server, len(recs))
	clear(x.byName)
	for i, r := range recs {
		s := server{name: r.Name, st: r.State}
		if i < len(old) && old[i].name == r.Name && old[i].st.Life == r.State.Life {
			s.unsure, s.seenAt, s.seenWall = old[i].unsure, old[i].seenAt, old[i].seenWall
		}
		if r.Layout != "" {
			if i < len(old) && old[i].layout != nil && old[i].layout.text == r.Layout {
				s.layout = old[i].layout
			} else {
				if l, err := ParseLayout(r.Layout); err == nil {
					s.layout = newScorer(l)
				} else {
					// Not a reason to fail every lookup of the fleet:
					// this server alone is scored nothing, partial.
					s.layout = unreadableLayout(r.Layout)
				}
			}
		}
		x.servers[i] = s
		if r.Name != "" {
			x.byName[r.Name] = ServerID(i)
		}
	}
	x.reloadNames = false
	x.countLayouts()
	return nil
}

// register returns the server named name, registering it with the
// backend when new to this Index. partial says a new server's cache is
// unknown (a loss): its first event is taken as it comes, and it is
// stamped seen now, so that the TTL expires it if it never speaks again.
// When every ID is in use, the ID of an unregistered or expired server is
// reclaimed.
func (x *Index) register(name string, partial bool) (ServerID, *server, error) {
	if id, ok := x.byName[name]; ok {
		return id, &x.servers[id], nil
	}
	if name == "" {
		return 0, nil, fmt.Errorf("%w: empty server name", ErrInvalid)
	}
	init := StreamState{Partial: partial}
	if partial {
		init.Seen = x.nowWall
	}
	id, st, err := x.cfg.Backend.Register(name, init)
	if errors.Is(err, ErrTooManyServers) {
		return x.reclaim(name, init)
	}
	if err != nil {
		if errors.Is(err, ErrIndexLost) {
			x.lost()
		}
		return 0, nil, fmt.Errorf("fleet: register %q: %w", name, err)
	}
	if int(id) >= len(x.servers) || x.servers[id].name != name || (st.HasLayout && x.servers[id].layout == nil) {
		if err := x.reload(); err != nil {
			return 0, nil, err
		}
	}
	if int(id) >= len(x.servers) || x.servers[id].name != name {
		return 0, nil, fmt.Errorf("fleet: backend registered %q as server %d, which the registry does not list", name, id)
	}
	s := &x.servers[id]
	s.st = st
	if st.Seen != 0 && st.Seen == x.nowWall {
		s.seenAt, s.seenWall = x.now, st.Seen
	}
	return id, s, nil
}

// reclaimable reports whether a server's ID may go to a new name: it is
// free (unregistered) or its server expired, or is silent for longer
// than the TTL (Lookup would expire it).
func (x *Index) reclaimable(s *server) bool {
	return s.name == "" || s.st.Expired || x.silent(s)
}

// silent reports whether a server has been silent for longer than the
// TTL and is not yet marked expired.
func (x *Index) silent(s *server) bool {
	if x.cfg.TTL == 0 || s.st.Expired || s.st.Seen == 0 {
		return false
	}
	var d time.Duration
	if s.st.Seen == s.seenWall && !s.seenAt.IsZero() {
		d = x.now.Sub(s.seenAt) // our own stamp: the monotonic clock
	} else {
		d = time.Duration(x.nowWall - s.st.Seen) // another router's: wall time
	}
	return d > x.cfg.TTL
}

// reclaim gives name the ID of a free or expired server: a free ID
// first (the lowest), else the one silent longest (lowest ID on ties).
// Backend.Rename drops the old server's entries in the same atomic step,
// so no reader ever sees them under the new name, and the new Life makes
// every write prepared for the old name fail.
func (x *Index) reclaim(name string, init StreamState) (ServerID, *server, error) {
	for range 8 {
		if err := x.reload(); err != nil {
			return 0, nil, err
		}
		if id, ok := x.byName[name]; ok { // another router registered it
			return id, &x.servers[id], nil
		}
		victim := -1
		for i := range x.servers {
			s := &x.servers[i]
			if s.name == "" {
				victim = i
				break
			}
			if x.reclaimable(s) && (victim < 0 || s.st.Seen < x.servers[victim].st.Seen) {
				victim = i
			}
		}
		if victim < 0 {
			return 0, nil, fmt.Errorf("fleet: register %q: %w: all %d server ids belong to live servers (none expired or unregistered)", name, ErrTooManyServers, len(x.servers))
		}
		s := &x.servers[victim]
		next := init
		next.Gen, next.Life, next.Seen = s.st.Gen+1, s.st.Life+1, x.nowWall
		_, err := x.cfg.Backend.Rename(ServerID(victim), s.st, name, next)
		switch {
		case err == nil:
			if s.name != "" {
				delete(x.byName, s.name)
			}
			*s = server{name: name, st: next, seenAt: x.now, seenWall: next.Seen}
			x.countLayouts()
			x.byName[name] = ServerID(victim)
			x.stats.Reclaimed++
			return ServerID(victim), s, nil
		case errors.Is(err, ErrConflict):
			x.stats.Conflicts++ // reload and choose again
		case errors.Is(err, ErrIndexLost):
			x.lost()
			return 0, nil, fmt.Errorf("fleet: register %q: %w", name, err)
		default:
			x.reloadNames = true
			return 0, nil, fmt.Errorf("fleet: register %q in place of %q: %w", name, s.name, err)
		}
	}
	return 0, nil, fmt.Errorf("fleet: register %q: %w", name, ErrConflict)
}

// Register adds a server without events, so it is scored (at zero) and
// subject to the TTL from now on. Apply, Heartbeat and Resync register
// servers by themselves, the same way. A new name takes the next unused
// ID; when all Config.MaxServers IDs are in use it takes the ID of an
// unregistered server or else of an expired one (silent for longer than
// the TTL; the longest silent first), whose entries are dropped in the
// same atomic step. ErrTooManyServers means every ID belongs to a live
// server.
func (x *Index) Register(name string) (ServerID, error) {
	x.mu.Lock()
	defer x.mu.Unlock()
	x.clock()
	var id ServerID
	err := x.retry(func(bool) error {
		if err := x.ready(); err != nil {
			return err
		}
		var s *server
		var err error
		id, s, err = x.register(name, false)
		if err == nil && s.st.Seen == 0 {
			err = x.touch(id, s)
		}
		return err
	})
	return id, err
}

// Unregister removes the server called name from the index: its entries
// are dropped and its ID freed for the next new name, in one atomic step
// of the backend. Call it when a server leaves for good (a pod deleted);
// a server that merely went silent is expired by the TTL instead. Events
// of the name that arrive later register it again as a new server (under
// whatever ID is free then), partial unless they start at sequence number
// 1: they never reach the server that takes over its ID. A router that
// keeps a Pending record calls Pending.ForgetServer with the ID. A name
// not registered is ErrUnknownServer.
func (x *Index) Unregister(name string) error {
	if name == "" {
		return fmt.Errorf("%w: empty server name", ErrInvalid)
	}
	x.mu.Lock()
	defer x.mu.Unlock()
	x.clock()
	return x.retry(func(bool) error { return x.unregister(name) })
}

func (x *Index) unregister(name string) error {
	if err := x.ready(); err != nil {
		return err
	}
	id, ok := x.byName[name]
	if !ok {
		if err := x.reload(); err != nil { // another router may have registered it
			return err
		}
		if id, ok = x.byName[name]; !ok {
			return fmt.Errorf("fleet: unregister %q: %w", name, ErrUnknownServer)
		}
	}
	s := &x.servers[id]
	next := StreamState{Gen: s.st.Gen + 1, Life: s.st.Life + 1, Partial: true, Expired: true}
	cur, err := x.cfg.Backend.Rename(id, s.st, "", next)
	if err != nil {
		return x.registryWriteFailed(s, cur, err, "unregister "+strconv.Quote(name))
	}
	delete(x.byName, name)
	*s = server{st: next}
	x.countLayouts()
	x.stats.Unregistered++
	return nil
}

// registryWriteFailed handles a failed write of a server's registry
// entry (its name, its layout): a conflict is taken as conflicted does,
// a loss recorded, and anything else leaves the entry unknown, so the
// registry is read again before the next use.
func (x *Index) registryWriteFailed(s *server, cur StreamState, err error, what string) error {
	switch {
	case errors.Is(err, ErrConflict):
		return x.conflicted(s, cur)
	case errors.Is(err, ErrIndexLost):
		x.lost()
	default:
		x.reloadNames = true
	}
	return fmt.Errorf("fleet: %s: %w", what, err)
}

// unreadable reports whether the server's recorded layout is one this
// version cannot read, so it cannot be scored.
func (s *server) unreadable() bool { return s.layout != nil && s.layout.unreadable }

// countLayouts counts the servers with a layout.
func (x *Index) countLayouts() {
	x.layouts = 0
	for i := range x.servers {
		if x.servers[i].layout != nil {
			x.layouts++
		}
	}
}

// conflicted takes the current state a backend returned with ErrConflict:
// the server's own new state (ErrConflict: the caller retries from it),
// or the state of the name its ID went to (errOwnerChanged: the registry
// is reloaded before anything else is written). A layout another router
// recorded meanwhile is read before the retry too, which checks the
// events against it.
func (x *Index) conflicted(s *server, cur StreamState) error {
	x.stats.Conflicts++
	if cur.Life != s.st.Life {
		x.reloadNames = true
		return fmt.Errorf("fleet: %q: %w", s.name, errOwnerChanged)
	}
	s.st = cur
	if cur.HasLayout && s.layout == nil {
		x.reloadNames = true
	}
	return ErrConflict
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
//
// A server that restarts under the same name (a StatefulSet pod, a
// process restarted in place) numbers its events from 1 again, so the
// index would read them as replays: the caller that sees the restart
// calls Unregister (or Resync with nil) first, then applies the new
// process's events. fleet/zmq's Follow handles a publisher restart it
// sees on its own: it leaves a gap in the numbers, and the gap drops the
// old process's entries.
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
	x.clock()
	return x.retry(func(again bool) error { return x.apply(name, events, again) })
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
	if s.layout != nil {
		if err := s.layout.check(events); err != nil {
			return fmt.Errorf("fleet: apply events of %q: %w", name, err)
		}
	}
	// A server silent for longer than the TTL is expired by whichever call
	// notices first: here its entries are dropped before its events go on.
	expire := x.silent(s)
	st := s.st
	st.Seen, st.Expired = x.nowWall, false // any event, even a replay, proves the server alive
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
	clearFirst := st.Dirty || s.unsure || expire
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
	if expire {
		x.stats.Expired++
	}
	return nil
}

// flush writes one gap-free run of events and the state after it.
func (x *Index) flush(id ServerID, s *server, next StreamState, clearFirst bool, events []paged.Event) error {
	// s.st may be a backend's half-done state, tagged: the write names it
	// whole, and writes its own state untagged.
	next.Gen, next.tag = s.st.Gen+1, ""
	cur, err := x.cfg.Backend.Update(id, s.st, next, clearFirst, x.keyed(events))
	switch {
	case err == nil:
		if next.Seen != s.st.Seen && next.Seen == x.nowWall {
			s.seenAt, s.seenWall = x.now, next.Seen
		}
		s.st, s.unsure = next, false
		x.stats.Events += uint64(len(events))
		for i := range events {
			x.stats.Blocks += uint64(len(events[i].Hashes))
		}
		return nil
	case errors.Is(err, ErrConflict):
		return x.conflicted(s, cur)
	case errors.Is(err, ErrIndexLost):
		x.lost()
		return fmt.Errorf("fleet: apply events of %q: %w", s.name, err)
	}
	s.unsure = true
	return fmt.Errorf("fleet: apply events of %q: %w", s.name, err)
}

// touch records that a server is alive (an expired one is no longer
// expired, and stays partial; one silent for longer than the TTL is
// expired first).
func (x *Index) touch(id ServerID, s *server) error {
	for range maxAttempts {
		expire := x.silent(s)
		next := s.st
		next.Seen, next.Expired = x.nowWall, false
		if expire {
			next.Partial, next.Dirty = true, false
		}
		err := x.flush(id, s, next, expire, nil)
		if err == nil && expire {
			x.stats.Expired++
		}
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
		if errors.Is(err, errOwnerChanged) {
			// Rename dropped the entries of the write we are unsure of.
			s.unsure = false
			return nil
		}
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
	x.clock()
	return x.retry(func(bool) error {
		if err := x.ready(); err != nil {
			return err
		}
		id, s, err := x.register(name, false)
		if err != nil {
			return err
		}
		return x.touch(id, s)
	})
}

// Resync rebuilds a server's entries from a snapshot of its cache
// (paged.Manager.Snapshot): its entries are dropped, the snapshot's
// blocks stored, and its stream continues after snap.Seq, complete. The
// events the manager numbered up to snap.Seq are then replays. This is
// how a partial server becomes exact again, after lost events or after
// the backend lost its content. A nil snap resyncs to an empty cache
// whose next event may carry any number. A snapshot older than the
// server's last applied event (another router applied newer events since
// it was taken) is refused with ErrInvalid and changes nothing: the
// events after it may have removed blocks it lists. A router keeping a
// Pending record calls Pending.ForgetServer with the server's ID too when
// events were lost: they may have held what ended its claims.
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
	x.clock()
	return x.retry(func(bool) error { return x.resync(name, snap, events) })
}

func (x *Index) resync(name string, snap *paged.Snapshot, events []paged.Event) error {
	if err := x.ready(); err != nil {
		return err
	}
	id, s, err := x.register(name, false)
	if err != nil {
		return err
	}
	if s.layout != nil {
		if err := s.layout.check(events); err != nil {
			return fmt.Errorf("fleet: resync %q: %w", name, err)
		}
		if snap != nil && snap.BlockSize != s.layout.bs {
			return fmt.Errorf("%w: resync %q: snapshot of %d-token blocks, the server's layout %q has %d", ErrInvalid, name, snap.BlockSize, s.layout.text, s.layout.bs)
		}
	}
	next := StreamState{AnyStart: true, Seen: x.nowWall, Life: s.st.Life, HasLayout: s.st.HasLayout}
	if snap != nil {
		if s.st.Started && !s.st.AnyStart && snap.Seq < s.st.Last {
			// The events after the snapshot up to Last were applied, and
			// may have removed blocks the snapshot lists: rebuilding from
			// it would claim them (and the stream's next event would
			// look like a gap only after lookups had used them).
			return fmt.Errorf("%w: resync %q: the snapshot is at event %d but event %d was applied already (a stale snapshot: take a newer one; a restarted server: Unregister it or Resync with nil first)",
				ErrInvalid, name, snap.Seq, s.st.Last)
		}
		next = StreamState{Started: snap.Seq > 0, Last: snap.Seq, Seen: next.Seen, Life: s.st.Life, HasLayout: s.st.HasLayout}
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
	// Name is the name the server registered under; "" for an ID freed by
	// Unregister and not yet reused, which routers skip.
	Name string
	// Blocks is the number of leading blocks of the request the server
	// holds, on either tier, without a hole; Device of them are on the
	// device. For a server with a Layout it is the longest prefix the
	// server can hit, every group holding what a hit there needs, and
	// Device counts the blocks of it that every group needing them holds
	// on the device (see Index.SetLayout).
	Blocks, Device int
	// Pending of the Blocks are not in the index but claimed by a Pending
	// record (requests routed there, their blocks not yet reported); 0
	// from Lookup. They are counted in Device.
	Pending int
	// Affinity is the server's run of leading blocks of the request in
	// its first full-attention group (group 0 in a paged manager; a vLLM
	// engine's groups come in its layers' order, a window first for
	// Gemma 3), or group 0 for a layout without one, on either tier: how
	// much of the request's prefix family the server holds, whether or
	// not it can hit it now. Equal to Blocks for a server without a
	// Layout; at least Blocks for one with a full-attention group, where
	// the rest (Affinity-Blocks) are blocks a hit cannot use yet (evicted
	// window blocks, no state checkpoint there).
	// A router reads it as where the family's later hits will be
	// (CostAware, PrefixAware); it is no hit, and Value ignores it.
	// Pending.Extend adds the claims that continue it.
	Affinity int
	// Value is Device*DeviceWeight + (Blocks-Device)*HostWeight.
	Value float64
	// Partial says the index may be missing some of this server's blocks
	// (lost events, expiry, a backend restart): Blocks is a lower bound.
	Partial bool
}

// Lookup scores every registered server for a request whose block hashes
// are hashes (in chain order) and appends one Score per server, by
// ServerID, to dst. Pass the blocks a hit may cover: a server computes a
// prompt's last token, so paged and vLLM hit at most (tokens-1)/BlockSize
// blocks of it. With more (every full block of a prompt of whole blocks),
// a server is scored up to its last block, and one with a Layout whose
// rule ends at the hit point (state, window) may be scored a hit there
// that its admission cannot use. An ID freed by Unregister and not yet reused is
// scored zero with an empty Name (and Partial): routers skip it. It costs one backend lookup (one round trip for Redis)
// and allocates nothing once dst and the index's scratch have grown.
func (x *Index) Lookup(hashes []paged.Hash, dst []Score) ([]Score, error) {
	x.mu.Lock()
	defer x.mu.Unlock()
	if x.cfg.TTL > 0 { // the clock is read for expiry only (a write here keeps Seen)
		x.clock()
	}
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
	var masks []uint64
	var states []StreamState
	var all bool
	base := len(dst)
	for attempt := 0; ; attempt++ {
		var err error
		all = x.layouts > 0
		if keys := x.lookupKeys(hashes); all {
			// Servers with a layout are scored from their groups'
			// entries too, holes included: no stopping at the first miss.
			masks, states, err = x.cfg.Backend.LookupAll(keys, x.words, x.masks[:0], x.states[:0])
		} else {
			masks, states, err = x.cfg.Backend.Lookup(keys, x.words, x.masks[:0], x.states[:0])
		}
		x.masks, x.states = masks[:0], states[:0]
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
		// An ID whose Life moved on was given to another name (by another
		// router): reload the names. The holder sets and the states are
		// of one moment, so the bits of an ID belong to the Life its
		// state shows; an ID whose name changed again since counts as
		// holding nothing (stale below). A layout another router recorded
		// is read the same way.
		reload := x.reloadNames || len(states) > len(x.servers)
		for i := range min(len(states), len(x.servers)) {
			reload = reload || states[i].Life != x.servers[i].st.Life || (states[i].HasLayout && x.servers[i].layout == nil)
		}
		if reload {
			if err := x.reload(); err != nil {
				return dst, err
			}
		}
		if attempt > 0 || x.layouts == 0 || (all && x.coversAll(masks, len(hashes))) {
			break
		}
		// A layout read just now needs groups the lookup did not ask
		// for: ask again, once.
	}
	for i := range min(len(states), len(x.servers)) {
		if states[i].Life == x.servers[i].st.Life {
			x.servers[i].st = states[i]
		}
	}
	expired, err := x.expire()
	if err != nil {
		return dst, err
	}
	if x.reloadNames {
		if err := x.reload(); err != nil {
			return dst, err
		}
	}
	stale := false
	for i := range min(len(states), len(x.servers)) {
		if states[i].Life != x.servers[i].st.Life {
			expired[i/64] |= 1 << (uint(i) % 64)
			stale = true
		}
	}
	// Every registered server gets a score, zero included: routers need
	// the whole fleet to weigh load.
	for i := range x.servers {
		dst = append(dst, Score{Server: ServerID(i), Name: x.servers[i].name})
	}
	if len(x.servers) == 0 || len(hashes) == 0 {
		x.markPartial(dst[base:])
		for i := range min(len(states), len(x.servers)) {
			if states[i].Life != x.servers[i].st.Life {
				dst[base+i].Partial = true
			}
		}
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
	if x.layouts > 0 {
		x.skip = append(x.skip[:0], expired...) // planes are reused below
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
	if x.layouts > 0 {
		if !all {
			masks = masks[:0] // read without the groups' rows: none covered
		}
		x.scoreLayouts(masks, len(hashes), out, x.skip)
	}
	for i := range out {
		if x.servers[i].st.Dirty {
			// Half written as of this lookup (another router's split run
			// in progress, or left by a router that died): its entries
			// may hold stores whose removals are not written yet.
			out[i].Blocks, out[i].Device = 0, 0
		}
		if x.servers[i].layout == nil || x.servers[i].st.Dirty {
			out[i].Affinity = out[i].Blocks
		}
		out[i].Value = float64(out[i].Device)*x.cfg.DeviceWeight + float64(out[i].Blocks-out[i].Device)*x.cfg.HostWeight
	}
	x.markPartial(out)
	if x.layouts > 0 {
		x.markUncovered(masks, len(hashes), out)
	}
	if stale {
		for i := range min(len(states), len(out)) {
			if states[i].Life != x.servers[i].st.Life {
				out[i].Partial = true
			}
		}
	}
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
		out[i].Partial = st.Partial || st.Dirty || x.servers[i].unsure || x.servers[i].unreadable()
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
	for i := range x.servers {
		s := &x.servers[i]
		for range maxAttempts {
			if !x.silent(s) {
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
			if errors.Is(err, errOwnerChanged) {
				break // the caller reloads the names
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
	// ID is the server's ID in the index: handed out from 0 in
	// registration order, then reused (see Index.Register).
	ID ServerID
	// Name is the name the server registered under; "" for an ID freed by
	// Unregister and not yet given to a new name.
	Name string
	// Seq is the sequence number of the last event taken.
	Seq uint64
	// Partial: the index may miss some of the server's blocks.
	Partial bool
	// Expired: the server went silent for longer than the TTL.
	Expired bool
	// LastSeen is when the server last sent events or a heartbeat.
	LastSeen time.Time
	// Layout is the server's recorded layout (Layout.String), "" for
	// none (Index.SetLayout).
	Layout string
}

// Servers appends the status of every ID in use, by ID, to dst, as the
// backend holds it now (other routers' servers included; a freed ID with
// an empty Name).
func (x *Index) Servers(dst []ServerStatus) ([]ServerStatus, error) {
	x.mu.Lock()
	defer x.mu.Unlock()
	x.clock()
	if err := x.ready(); err != nil {
		return dst, err
	}
	if err := x.reload(); err != nil {
		return dst, fmt.Errorf("fleet: servers: %w", err)
	}
	if _, err := x.expire(); err != nil {
		return dst, err
	}
	if x.reloadNames {
		if err := x.reload(); err != nil {
			return dst, fmt.Errorf("fleet: servers: %w", err)
		}
	}
	for i, s := range x.servers {
		st := s.st
		var seen time.Time
		if st.Seen != 0 {
			seen = time.Unix(0, st.Seen)
		}
		var layout string
		if s.layout != nil {
			layout = s.layout.text
		}
		dst = append(dst, ServerStatus{ID: ServerID(i), Name: s.name, Seq: st.Last, Partial: st.Partial || st.Dirty || s.unsure || s.unreadable(), Expired: st.Expired, LastSeen: seen, Layout: layout})
	}
	return dst, nil
}

// Stats returns the index's counters.
func (x *Index) Stats() Stats {
	x.mu.Lock()
	defer x.mu.Unlock()
	return x.stats
}
