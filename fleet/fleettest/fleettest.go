package fleettest

import (
	"encoding/binary"
	"fmt"
	"math/rand/v2"
	"testing"

	"github.com/stretchr/testify/require"

	"github.com/pagedkv/pagedkv/fleet"
	"github.com/pagedkv/pagedkv/paged"
)

// H names test block i: i+1000 big-endian in the last 8 bytes.
func H(i int) paged.Hash {
	var h paged.Hash
	binary.BigEndian.PutUint64(h[24:], uint64(i)+1000)
	return h
}

// Hs names test blocks.
func Hs(ids ...int) []paged.Hash {
	out := make([]paged.Hash, len(ids))
	for i, id := range ids {
		out[i] = H(id)
	}
	return out
}

// Stored is a BlockStored event of test blocks.
func Stored(seq uint64, m paged.Medium, ids ...int) paged.Event {
	return paged.Event{Seq: seq, Kind: paged.BlockStored, Hashes: Hs(ids...), Medium: m}
}

// Model is the reference: which servers hold which hash on which tier,
// with the index's sequence rules, written the obvious way.
type Model struct {
	held    map[paged.Hash]map[string][2]int // copies per tier
	last    map[string]uint64
	partial map[string]bool
}

// NewModel returns an empty model.
func NewModel() *Model {
	return &Model{held: map[paged.Hash]map[string][2]int{}, last: map[string]uint64{}, partial: map[string]bool{}}
}

func (m *Model) add(hh paged.Hash, s string, tier paged.Medium, d int) {
	if m.held[hh] == nil {
		m.held[hh] = map[string][2]int{}
	}
	t := m.held[hh][s]
	t[fleet.TierBit(tier)] = max(0, t[fleet.TierBit(tier)]+d)
	m.held[hh][s] = t
}

func (m *Model) clear(s string) {
	for _, by := range m.held {
		delete(by, s)
	}
}

// Apply applies one server's events.
func (m *Model) Apply(s string, evs []paged.Event) {
	for _, ev := range evs {
		last, seen := m.last[s]
		if seen && ev.Seq <= last {
			continue
		}
		if (!seen && ev.Seq != 1) || (seen && ev.Seq != last+1) {
			m.clear(s)
			m.partial[s] = true
		}
		m.last[s] = ev.Seq
		for _, hh := range ev.Hashes {
			switch ev.Kind {
			case paged.BlockStored:
				m.add(hh, s, ev.Medium, 1)
			case paged.BlockRemoved:
				m.add(hh, s, ev.Medium, -1)
			case paged.BlockMoved:
				m.add(hh, s, ev.From, -1)
				m.add(hh, s, ev.Medium, 1)
			}
		}
		if ev.Kind == paged.AllBlocksCleared {
			m.clear(s)
			m.partial[s] = false
		}
	}
}

// Score returns a server's leading blocks of req and how many are on the
// device.
func (m *Model) Score(s string, req []paged.Hash) (blocks, device int) {
	for _, hh := range req {
		t := m.held[hh][s]
		if t[0] == 0 && t[1] == 0 {
			break
		}
		blocks++
		if t[0] > 0 {
			device++
		}
	}
	return blocks, device
}

// Partial reports whether the model marks a server partial.
func (m *Model) Partial(s string) bool { return m.partial[s] }

// Expire drops a server's entries and marks it partial, as the index does
// to a server silent for longer than its TTL; its stream goes on.
func (m *Model) Expire(s string) {
	m.clear(s)
	m.partial[s] = true
}

// Forget drops a server altogether, as the index does when it
// unregisters the server or gives its ID to another name: events of the
// name after that start a new stream.
func (m *Model) Forget(s string) {
	m.clear(s)
	delete(m.last, s)
	delete(m.partial, s)
}

// Stream generates random events: chains of stores, removals, tier
// moves, clears, lost and replayed events.
type Stream struct {
	// Rng draws every choice of the stream (seeded by NewStream); a test
	// may draw from it too, to keep one reproducible sequence.
	Rng     *rand.Rand
	servers []string
	seq     map[string]uint64
}

// NewStream returns a stream over servers from a seed.
func NewStream(seed uint64, servers ...string) *Stream {
	return &Stream{Rng: rand.New(rand.NewPCG(seed, 1)), servers: servers, seq: map[string]uint64{}}
}

// Batch returns a random server and a batch of its events.
func (r *Stream) Batch() (string, []paged.Event) {
	s := r.servers[r.Rng.IntN(len(r.servers))]
	n := 1 + r.Rng.IntN(4)
	var evs []paged.Event
	for range n {
		r.seq[s]++
		switch p := r.Rng.IntN(100); {
		case p < 3:
			r.seq[s]++ // an event lost on the way
		case p < 5 && r.seq[s] > 2:
			r.seq[s] -= 2 // a replay of old numbers
			if len(evs) > 0 && r.seq[s] <= evs[len(evs)-1].Seq {
				r.seq[s] = evs[len(evs)-1].Seq + 1
			}
		}
		ev := paged.Event{Seq: r.seq[s], Medium: paged.Medium(r.Rng.IntN(2))}
		start, k := r.Rng.IntN(12), 1+r.Rng.IntN(5)
		for i := range k {
			ev.Hashes = append(ev.Hashes, H(start+i))
		}
		switch p := r.Rng.IntN(100); {
		case p < 55:
			ev.Kind = paged.BlockStored
		case p < 85:
			ev.Kind = paged.BlockRemoved
		case p < 98:
			ev.Kind, ev.From = paged.BlockMoved, 1-ev.Medium
		default:
			ev.Kind, ev.Hashes = paged.AllBlocksCleared, nil
		}
		evs = append(evs, ev)
	}
	return s, evs
}

// CheckAgainstModel replays a random stream into an Index on backend b
// (a fresh model name) and requires every server's score for random
// requests to equal the model's.
func CheckAgainstModel(t *testing.T, b fleet.Backend, seed uint64, steps int) {
	t.Helper()
	x, err := fleet.New(fleet.Config{Backend: b, Model: fmt.Sprint("model-test-", seed)})
	require.NoError(t, err)
	m := NewModel()
	r := NewStream(seed, "s0", "s1", "s2", "s3", "s4")
	var sc []fleet.Score
	for step := range steps {
		s, evs := r.Batch()
		require.NoError(t, x.Apply(s, evs))
		m.Apply(s, evs)
		start := r.Rng.IntN(4)
		req := Hs(start, start+1, start+2, start+3, start+4, start+5, start+6)
		sc, err = x.Lookup(req, sc[:0])
		require.NoError(t, err)
		for _, got := range sc {
			blocks, device := m.Score(got.Name, req)
			require.Equal(t, blocks, got.Blocks, "step %d server %s blocks", step, got.Name)
			require.Equal(t, device, got.Device, "step %d server %s device blocks", step, got.Name)
			require.Equal(t, m.Partial(got.Name), got.Partial, "step %d server %s partial", step, got.Name)
		}
	}
}

// CheckCopies requires backend b to count copies of one block on one
// server: a removal of one copy leaves the block held.
func CheckCopies(t *testing.T, b fleet.Backend) {
	t.Helper()
	x, err := fleet.New(fleet.Config{Backend: b, Model: "copies"})
	require.NoError(t, err)
	lookup := func(ids ...int) fleet.Score {
		sc, err := x.Lookup(Hs(ids...), nil)
		require.NoError(t, err)
		return sc[0]
	}
	removed := func(seq uint64, m paged.Medium, ids ...int) paged.Event {
		return paged.Event{Seq: seq, Kind: paged.BlockRemoved, Hashes: Hs(ids...), Medium: m}
	}
	// Two requests computed block 1 at once: two stores, two blocks.
	require.NoError(t, x.Apply("a", []paged.Event{Stored(1, paged.Device, 1), Stored(2, paged.Device, 1, 2)}))
	require.NoError(t, x.Apply("a", []paged.Event{removed(3, paged.Device, 1)}))
	require.Equal(t, 2, lookup(1, 2).Blocks, "one copy of block 1 is still there")
	require.NoError(t, x.Apply("a", []paged.Event{{Seq: 4, Kind: paged.BlockMoved, Hashes: Hs(1), From: paged.Device, Medium: paged.Host}}))
	sc := lookup(1, 2)
	require.Equal(t, 2, sc.Blocks)
	require.Equal(t, 1, sc.Device, "the last copy moved to the host")
	require.NoError(t, x.Apply("a", []paged.Event{removed(5, paged.Host, 1)}))
	require.Equal(t, 0, lookup(1, 2).Blocks)
	// A clear forgets the counts too.
	require.NoError(t, x.Apply("a", []paged.Event{Stored(6, paged.Device, 3, 3, 3), {Seq: 7, Kind: paged.AllBlocksCleared}, Stored(8, paged.Device, 3), removed(9, paged.Device, 3)}))
	require.Equal(t, 0, lookup(3).Blocks)
}
