package fleet

import (
	"fmt"
	"strconv"
	"strings"

	"github.com/pagedkv/pagedkv/paged"
)

// ServerID is the dense number a backend gives a server the first time its
// name is registered, from 0. It is the server's bit in the holder sets.
// Every Index attached to one backend (several routers on one Redis) sees
// the same IDs. An ID outlives its name: Index.Unregister frees it and a
// new name may take over the ID of an expired or unregistered server
// (Backend.Rename), each time with a larger StreamState.Life.
type ServerID int32

// StreamState is what the index knows of one server's event stream. It
// lives in the backend, next to the entries it describes, so that every
// Index attached to the backend applies each server's events once, in
// order, and agrees on which servers are partial.
type StreamState struct {
	// Gen increases with every change; backends compare whole states
	// before writing (compare-and-set), so two routers applying the same
	// stream cannot both apply an event.
	Gen uint64
	// Last is the sequence number of the last event taken.
	Last uint64
	// Started: an event was taken. AnyStart: the next event may carry any
	// number (after a clear by resync without snapshot).
	Started, AnyStart bool
	// Partial: the entries may miss some of the server's blocks.
	Partial bool
	// Dirty: a write may have been half done; the entries must be cleared
	// before the stream goes on.
	Dirty bool
	// Expired: the server was silent for longer than the index's TTL.
	Expired bool
	// HasLayout: a Layout is recorded for the server (Backend.SetLayout),
	// so an Index that holds none for it reads the registry again.
	HasLayout bool
	// Seen is when the server last sent events or a heartbeat, in Unix
	// nanoseconds (0: never). It is wall-clock time because every router
	// sharing a backend reads it (see Config.TTL).
	Seen int64
	// Life counts the times the server's ID was given to another name
	// (or freed): 0 for the ID's first name. Since backends compare whole
	// states, a write from an Index that still holds a state of an
	// earlier life of the ID fails with ErrConflict, and the Index learns
	// from the current state's Life that the ID changed hands.
	Life uint64

	// tag is a backend's mark of an intermediate state (the text after
	// String's fourth field and its Life), kept so that a compare-and-set
	// against a state read back matches it: a router takes over a
	// half-done write only through it.
	tag string
}

// String encodes the state as backends store it: "gen last flags seen",
// flags being letters (s started, a any start, p partial, d dirty, x
// expired, y has a layout) or "-", then " L<life>" when Life is not 0.
func (st StreamState) String() string {
	var f []byte
	for _, b := range []struct {
		on bool
		c  byte
	}{{st.Started, 's'}, {st.AnyStart, 'a'}, {st.Partial, 'p'}, {st.Dirty, 'd'}, {st.Expired, 'x'}, {st.HasLayout, 'y'}} {
		if b.on {
			f = append(f, b.c)
		}
	}
	if len(f) == 0 {
		f = append(f, '-')
	}
	out := strconv.FormatUint(st.Gen, 10) + " " + strconv.FormatUint(st.Last, 10) + " " + string(f) + " " + strconv.FormatInt(st.Seen, 10)
	if st.Life != 0 {
		out += " L" + strconv.FormatUint(st.Life, 10)
	}
	if st.tag != "" {
		out += " " + st.tag
	}
	return out
}

// ParseStreamState decodes String's encoding. After the fourth field, a
// field "L<life>" is the Life; the text after it (a backend's tag of an
// intermediate state) is kept, and String gives it back, so a state read
// back compares equal to the one stored; the Index writes its states
// untagged. A malformed text is ErrMalformed with the
// zero state.
func ParseStreamState(s string) (StreamState, error) {
	var st StreamState
	p := strings.SplitN(s, " ", 5)
	if len(p) < 4 {
		return StreamState{}, fmt.Errorf("%w: stream state %q", ErrMalformed, s)
	}
	var err1, err2, err3 error
	st.Gen, err1 = strconv.ParseUint(p[0], 10, 64)
	st.Last, err2 = strconv.ParseUint(p[1], 10, 64)
	st.Seen, err3 = strconv.ParseInt(p[3], 10, 64)
	if err1 != nil || err2 != nil || err3 != nil {
		return StreamState{}, fmt.Errorf("%w: stream state %q", ErrMalformed, s)
	}
	if len(p) == 5 {
		st.tag = p[4]
		if strings.HasPrefix(st.tag, "L") {
			f, rest, _ := strings.Cut(st.tag, " ")
			life, err := strconv.ParseUint(f[1:], 10, 64)
			if err != nil {
				return StreamState{}, fmt.Errorf("%w: stream state %q", ErrMalformed, s)
			}
			st.Life, st.tag = life, rest
		}
	}
	for _, c := range []byte(p[2]) {
		switch c {
		case 's':
			st.Started = true
		case 'a':
			st.AnyStart = true
		case 'p':
			st.Partial = true
		case 'd':
			st.Dirty = true
		case 'x':
			st.Expired = true
		case 'y':
			st.HasLayout = true
		case '-':
		default:
			return StreamState{}, fmt.Errorf("%w: stream state %q", ErrMalformed, s)
		}
	}
	return st, nil
}

// ServerRecord is one registered server as a backend holds it.
type ServerRecord struct {
	// Name is the name the server registered under.
	Name string
	// State is its stream state.
	State StreamState
	// Layout is the server's Layout.String, "" for none.
	Layout string
}

// Backend stores the index: the server registry with each server's stream
// state, and for each block hash which servers hold it on which tier. The
// Index decides what events mean (order, replays, gaps) and asks the
// backend to apply them only if the server's state is still the one it
// decided from, so several Index values may share one backend (routers on
// one Redis). Calls from one Index are serialized; a backend shared by
// several processes must make each call atomic. Rename, Update and
// SetLayout refuse a server ID no Register has given out with ErrInvalid
// and change nothing (an ID freed by Rename stays given out). Implementations: Memory
// (one process) and the Redis backend in package fleet/redisindex.
type Backend interface {
	// Attach joins the model's index, creating it when absent, with room
	// for maxServers servers. It never deletes what other routers wrote.
	// A backend serves one Index: attached, it may be attached again
	// (after ErrIndexLost) to the same model and bound only; another is
	// refused with ErrInvalid and changes nothing.
	Attach(model string, maxServers int) error
	// Register returns the ID and state of the server called name, adding
	// it when new with state init under the next unused ID. When every ID
	// is in use it returns ErrTooManyServers (IDs are reused only through
	// Rename).
	Register(name string, init StreamState) (ServerID, StreamState, error)
	// Servers appends every ID in use, by ID, to dst: its name ("" for a
	// freed ID), state and layout, all read at one moment.
	Servers(dst []ServerRecord) ([]ServerRecord, error)
	// Rename gives server's ID to name if its state is still old: in one
	// atomic step it drops every entry of the server (and its copy
	// counts) and its layout, registers the ID under name instead of its
	// former name ("" frees the ID: Register never returns it, Servers
	// lists it with an empty name) and sets the state to next. next.Life must exceed
	// old.Life (else ErrInvalid), so no writer holding a state of the old
	// name can change the new one. If the state is not old, or name is
	// already registered, it changes nothing and returns the current state
	// with ErrConflict.
	Rename(server ServerID, old StreamState, name string, next StreamState) (StreamState, error)
	// Update applies one server's events if its state is still old:
	// first it drops every entry of the server when clear is set, then
	// applies events in order (BlockStored adds a copy of each hash on
	// Medium, BlockRemoved takes one away, BlockMoved takes one from From
	// and adds one on Medium, AllBlocksCleared drops every entry of the
	// server), then sets the state to next. A server holds a hash on a
	// tier while it has at least one copy there. If the state is not old,
	// it changes nothing and returns the current state with ErrConflict.
	Update(server ServerID, old, next StreamState, clear bool, events []paged.Event) (StreamState, error)
	// Lookup appends the holder sets of each hash, in order, to dst:
	// words uint64 of device holders (bit s for server s) then words
	// uint64 of host holders, 2*words per hash. It may stop after a hash
	// no server holds (the hashes left out count as held by none), since
	// every server's run of leading blocks ends there. It also appends to states
	// the state of every registered server, by ID, as of the same moment.
	Lookup(hashes []paged.Hash, words int, dst []uint64, states []StreamState) ([]uint64, []StreamState, error)
	// LookupAll is Lookup without stopping: it appends the holder sets of
	// every hash (the Index scores servers with a Layout from entries of
	// several groups, whose runs have holes).
	LookupAll(hashes []paged.Hash, words int, dst []uint64, states []StreamState) ([]uint64, []StreamState, error)
	// SetLayout records layout (Layout.String) for server if its state is
	// still old, and sets the state to next (with HasLayout). If the
	// state is not old, it changes nothing and returns the current state
	// with ErrConflict. The Index decides whether a layout may be set.
	SetLayout(server ServerID, old StreamState, layout string, next StreamState) (StreamState, error)
}

// Backends return ErrIndexLost from any call when the index's content
// vanished since Attach (a Redis restart without persistence, a flush);
// the Index then attaches again and rebuilds.

// CheckEvents returns an error wrapping ErrInvalid for the first event no
// backend can apply: an unknown kind, a Medium (or From) other than
// paged.Device and paged.Host, a negative group. Index.Apply refuses such events before any
// change; backends refuse them in Update the same way.
func CheckEvents(events []paged.Event) error {
	for i := range events {
		if k := events[i].Kind; k < paged.BlockStored || k > paged.BlockMoved {
			return fmt.Errorf("%w: event %d has unknown kind %d", ErrInvalid, events[i].Seq, k)
		}
		if m, f := events[i].Medium, events[i].From; m > paged.Host || f > paged.Host {
			return fmt.Errorf("%w: event %d has unknown medium %d (from %d)", ErrInvalid, events[i].Seq, m, f)
		}
		if events[i].Group < 0 {
			return fmt.Errorf("%w: event %d has group %d", ErrInvalid, events[i].Seq, events[i].Group)
		}
	}
	return nil
}

// WordsFor is the number of 64-bit words a holder set of n servers needs:
// 0 for n <= 0, and no overflow at math.MaxInt.
func WordsFor(n int) int {
	if n <= 0 {
		return 0
	}
	return (n-1)/64 + 1
}

// TierBit is 1 for the host tier and 0 for the device, the tier's bit in
// the backends' per-server pairs.
func TierBit(m paged.Medium) int {
	if m == paged.Host {
		return 1
	}
	return 0
}
