package fleet

import (
	"fmt"
	"math"
	"strings"
	"testing"
	"time"

	"github.com/stretchr/testify/assert"
	"github.com/stretchr/testify/require"

	"github.com/pagedkv/pagedkv/eviction"
	"github.com/pagedkv/pagedkv/paged"
)

// The hostile-input test: configurations out of range or large enough to
// exhaust memory, index and backend calls with bad names, numbers, kinds
// and media, malformed vLLM frames, and routers fed NaN and infinities.
// Nothing may panic, every refusal is an error of this package, and a
// refused call changes nothing (the index is compared with a twin that
// never saw the call).

func TestHostileConfig(t *testing.T) {
	n := 0
	defer func() { t.Logf("%d cases", n) }()
	memory := func(c MemoryConfig) Backend {
		m, err := NewMemory(c)
		require.NoError(t, err)
		return m
	}
	for _, tc := range []struct {
		name  string
		cfg   Config
		want  error
		field string
	}{
		{"MaxServers -1", Config{MaxServers: -1}, ErrInvalid, "Config.MaxServers"},
		{"MaxServers 2^16+1", Config{MaxServers: 1<<16 + 1}, ErrInvalid, "Config.MaxServers"},
		{"MaxServers MaxInt", Config{MaxServers: math.MaxInt}, ErrInvalid, "Config.MaxServers"},
		{"MaxServers MinInt", Config{MaxServers: math.MinInt}, ErrInvalid, "Config.MaxServers"},
		{"DeviceWeight -1", Config{DeviceWeight: -1}, ErrInvalid, "Config.DeviceWeight"},
		{"DeviceWeight NaN", Config{DeviceWeight: math.NaN()}, ErrInvalid, "Config.DeviceWeight"},
		{"DeviceWeight +Inf", Config{DeviceWeight: math.Inf(1)}, ErrInvalid, "Config.DeviceWeight"},
		{"DeviceWeight -Inf", Config{DeviceWeight: math.Inf(-1)}, ErrInvalid, "Config.DeviceWeight"},
		{"HostWeight -0.5", Config{HostWeight: -0.5}, ErrInvalid, "HostWeight"},
		{"HostWeight NaN", Config{HostWeight: math.NaN()}, ErrInvalid, "HostWeight"},
		{"HostWeight +Inf", Config{HostWeight: math.Inf(1)}, ErrInvalid, "HostWeight"},
		{"TTL -1ns", Config{TTL: -1}, ErrInvalid, "Config.TTL"},
		{"TTL MinInt64", Config{TTL: math.MinInt64}, ErrInvalid, "Config.TTL"},
		{"nil *Memory backend", Config{Backend: (*Memory)(nil)}, ErrInvalid, "Config.Backend"},
		{"zero Memory backend", Config{Backend: &Memory{}}, ErrInvalid, "NewMemory"},
		{"Memory policy returning nil", Config{Backend: memory(MemoryConfig{Capacity: 8, Policy: func(int) eviction.Policy { return nil }})},
			ErrInvalid, "MemoryConfig.Policy"},
		// Sizes whose metadata alone would take gigabytes are refused
		// before anything is allocated.
		{"default capacity for 2^16 servers", Config{MaxServers: 1 << 16}, ErrInvalid, "MemoryConfig.Capacity"},
		{"largest capacity for 2^16 servers", Config{MaxServers: 1 << 16, Backend: memory(MemoryConfig{Capacity: MaxMemoryCapacity})},
			ErrInvalid, "Config.MaxServers"},
		{"largest capacity for 1024 servers", Config{MaxServers: 1024, Backend: memory(MemoryConfig{Capacity: MaxMemoryCapacity})},
			ErrInvalid, "MaxMemoryBytes"},
	} {
		t.Run(tc.name, func(t *testing.T) {
			n++
			x, err := New(tc.cfg)
			require.ErrorIs(t, err, tc.want)
			assert.Nil(t, x)
			assert.True(t, strings.HasPrefix(err.Error(), "fleet: "), "%q lacks the package prefix", err)
			assert.Contains(t, err.Error(), tc.field)
		})
	}
	for _, c := range []int{-1, math.MinInt, MaxMemoryCapacity + 1, 1 << 30, math.MaxInt} {
		n++
		m, err := NewMemory(MemoryConfig{Capacity: c})
		require.ErrorIs(t, err, ErrInvalid, "capacity %d", c)
		assert.Nil(t, m)
		assert.Contains(t, err.Error(), "MemoryConfig.Capacity")
	}
}

// hostileIndex is the index a case starts from: servers a and b of at
// most two, a Memory of 16 entries, a fixed clock.
func hostileIndex(t *testing.T) *Index {
	clk := &fakeClock{t: time.Unix(1000, 0)}
	m, err := NewMemory(MemoryConfig{Capacity: 16})
	require.NoError(t, err)
	x, err := New(Config{MaxServers: 2, TTL: time.Hour, Now: clk.now, Backend: m})
	require.NoError(t, err)
	require.NoError(t, x.Apply("a", []paged.Event{stored(1, paged.Device, 1, 2, 3), stored(2, paged.Host, 4)}))
	require.NoError(t, x.Apply("b", []paged.Event{stored(1, paged.Device, 1)}))
	return x
}

// indexState reads everything an Index shows: servers, counters (before
// the probe lookup) and the scores of a probe request.
func indexState(t *testing.T, x *Index) string {
	servers, err := x.Servers(nil)
	require.NoError(t, err)
	stats := x.Stats()
	sc, err := x.Lookup(hs(1, 2, 3, 4, 5), nil)
	require.NoError(t, err)
	return fmt.Sprintf("%+v\n%+v\n%+v", servers, stats, sc)
}

func TestHostileIndex(t *testing.T) {
	n := 0
	defer func() { t.Logf("%d cases", n) }()
	ev := func(seq uint64, kind paged.EventKind, m, from paged.Medium) paged.Event {
		return paged.Event{Seq: seq, Kind: kind, Hashes: hs(9), Medium: m, From: from}
	}
	good := stored(3, paged.Device, 7)
	for _, tc := range []struct {
		name string
		call func(x *Index) error
		want error // nil: the call succeeds and may change the index
		same bool  // a successful call that must change nothing
	}{
		{"Apply with an empty name", func(x *Index) error { return x.Apply("", []paged.Event{good}) }, ErrInvalid, false},
		{"Apply from a third server", func(x *Index) error { return x.Apply("c", []paged.Event{stored(1, paged.Device, 5)}) }, ErrTooManyServers, false},
		{"Apply with a repeated number", func(x *Index) error { return x.Apply("a", []paged.Event{good, good}) }, ErrInvalid, false},
		{"Apply with decreasing numbers", func(x *Index) error {
			return x.Apply("a", []paged.Event{stored(9, paged.Device, 7), stored(8, paged.Device, 8)})
		}, ErrInvalid, false},
		{"Apply numbered 0 after 1", func(x *Index) error {
			return x.Apply("a", []paged.Event{stored(1, paged.Device, 7), stored(0, paged.Device, 8)})
		}, ErrInvalid, false},
		{"Apply with kind 0", func(x *Index) error { return x.Apply("a", []paged.Event{ev(3, 0, paged.Device, 0)}) }, ErrInvalid, false},
		{"Apply with kind 99", func(x *Index) error { return x.Apply("a", []paged.Event{ev(3, 99, paged.Device, 0)}) }, ErrInvalid, false},
		{"Apply with kind 255", func(x *Index) error { return x.Apply("a", []paged.Event{ev(3, 255, paged.Device, 0)}) }, ErrInvalid, false},
		{"Apply with medium 2", func(x *Index) error {
			return x.Apply("a", []paged.Event{ev(3, paged.BlockStored, 2, 0)})
		}, ErrInvalid, false},
		{"Apply with medium 255", func(x *Index) error {
			return x.Apply("a", []paged.Event{ev(3, paged.BlockRemoved, 255, 0)})
		}, ErrInvalid, false},
		{"Apply a move from medium 7", func(x *Index) error {
			return x.Apply("a", []paged.Event{ev(3, paged.BlockMoved, paged.Host, 7)})
		}, ErrInvalid, false},
		{"Apply a good event, then a bad kind", func(x *Index) error {
			return x.Apply("a", []paged.Event{good, ev(4, 42, paged.Device, 0)})
		}, ErrInvalid, false},
		{"Apply of a bad kind from a new server", func(x *Index) error {
			return x.Apply("new", []paged.Event{ev(1, 42, paged.Device, 0)})
		}, ErrInvalid, false},
		{"Register an empty name", func(x *Index) error { _, err := x.Register(""); return err }, ErrInvalid, false},
		{"Register a third server", func(x *Index) error { _, err := x.Register("c"); return err }, ErrTooManyServers, false},
		{"Heartbeat of an empty name", func(x *Index) error { return x.Heartbeat("") }, ErrInvalid, false},
		{"Heartbeat of a third server", func(x *Index) error { return x.Heartbeat("c") }, ErrTooManyServers, false},
		{"Resync of an empty name", func(x *Index) error { return x.Resync("", &paged.Snapshot{BlockSize: 16}) }, ErrInvalid, false},
		{"Resync of a third server", func(x *Index) error { return x.Resync("c", &paged.Snapshot{BlockSize: 16}) }, ErrTooManyServers, false},
		{"Resync with a block size of 0", func(x *Index) error { return x.Resync("a", &paged.Snapshot{}) }, ErrInvalid, false},
		{"Resync with a block of medium 9", func(x *Index) error {
			return x.Resync("a", &paged.Snapshot{BlockSize: 16, Blocks: []paged.CachedBlock{{Medium: 9}}})
		}, ErrInvalid, false},
		// Calls that succeed but carry nothing.
		{"Apply of no events", func(x *Index) error { return x.Apply("a", nil) }, nil, true},
		{"Apply of replays only", func(x *Index) error {
			return x.Apply("a", []paged.Event{stored(1, paged.Device, 9), stored(2, paged.Device, 9)})
		}, nil, false},
		{"Register of a known server", func(x *Index) error { _, err := x.Register("a"); return err }, nil, true},
		{"Servers into nil", func(x *Index) error { _, err := x.Servers(nil); return err }, nil, true},
		// Valid calls with extreme input.
		{"Lookup of no hashes", func(x *Index) error { _, err := x.Lookup(nil, nil); return err }, nil, false},
		{"Lookup of 100000 unknown hashes", func(x *Index) error {
			req := make([]paged.Hash, 100000)
			for i := range req {
				req[i] = paged.Hash{byte(i), byte(i >> 8), byte(i >> 16), 1}
			}
			_, err := x.Lookup(req, nil)
			return err
		}, nil, false},
		{"Apply of an event with no hashes", func(x *Index) error {
			return x.Apply("a", []paged.Event{{Seq: 3, Kind: paged.BlockStored}})
		}, nil, false},
		{"Apply of more hashes than the memory holds", func(x *Index) error {
			return x.Apply("a", []paged.Event{stored(3, paged.Device, 10, 11, 12, 13, 14, 15, 16, 17, 18, 19, 20, 21, 22, 23, 24, 25, 26, 27, 28, 29)})
		}, nil, false},
		{"Apply numbered MaxUint64", func(x *Index) error {
			return x.Apply("b", []paged.Event{{Seq: math.MaxUint64, Kind: paged.AllBlocksCleared}})
		}, nil, false},
		{"Apply of removals of unknown hashes", func(x *Index) error {
			return x.Apply("a", []paged.Event{removed(3, paged.Host, 40, 41), removed(4, paged.Device, 1, 1, 1)})
		}, nil, false},
	} {
		t.Run(tc.name, func(t *testing.T) {
			n++
			x, twin := hostileIndex(t), hostileIndex(t)
			err := tc.call(x)
			if tc.want == nil {
				require.NoError(t, err)
				if tc.same {
					assert.Equal(t, indexState(t, twin), indexState(t, x))
				}
				return
			}
			require.ErrorIs(t, err, tc.want)
			assert.True(t, strings.HasPrefix(err.Error(), "fleet: "), "%q lacks the package prefix", err)
			assert.Equal(t, indexState(t, twin), indexState(t, x), "a refused call changed the index")
		})
	}
	// The zero Index has no backend: every call is refused, none panics.
	t.Run("zero Index", func(t *testing.T) {
		n++
		var x Index
		require.ErrorIs(t, x.Apply("a", []paged.Event{good}), ErrInvalid)
		_, err := x.Register("a")
		require.ErrorIs(t, err, ErrInvalid)
		require.ErrorIs(t, x.Heartbeat("a"), ErrInvalid)
		require.ErrorIs(t, x.Resync("a", &paged.Snapshot{BlockSize: 16}), ErrInvalid)
		_, err = x.Lookup(hs(1, 2), nil)
		require.ErrorIs(t, err, ErrInvalid)
		_, err = x.Servers(nil)
		require.ErrorIs(t, err, ErrInvalid)
	})
}

func TestHostileMemory(t *testing.T) {
	n := 0
	defer func() { t.Logf("%d cases", n) }()
	ready := func(t *testing.T) *Memory {
		m, err := NewMemory(MemoryConfig{Capacity: 8})
		require.NoError(t, err)
		require.NoError(t, m.Attach("m", 2))
		a, st, err := m.Register("a", StreamState{})
		require.NoError(t, err)
		_, err = m.Update(a, st, StreamState{Gen: 1, Last: 2, Started: true}, false, []paged.Event{stored(1, paged.Device, 1, 2), stored(2, paged.Host, 2)})
		require.NoError(t, err)
		b, st, err := m.Register("b", StreamState{})
		require.NoError(t, err)
		_, err = m.Update(b, st, StreamState{Gen: 1, Last: 1, Started: true}, false, []paged.Event{stored(1, paged.Host, 1)})
		require.NoError(t, err)
		return m
	}
	fresh := func(t *testing.T) *Memory {
		m, err := NewMemory(MemoryConfig{Capacity: 8})
		require.NoError(t, err)
		return m
	}
	state := func(t *testing.T, m *Memory) string {
		if !m.attached {
			return fmt.Sprintf("unattached, %d entries", m.Len())
		}
		masks, states, err := m.Lookup(hs(1, 2, 3), 1, nil, nil)
		require.NoError(t, err)
		servers, err := m.Servers(nil)
		require.NoError(t, err)
		return fmt.Sprintf("%d entries, %x, %v, %v", m.Len(), masks, states, servers)
	}
	update := func(server ServerID) func(m *Memory) error {
		return func(m *Memory) error {
			_, err := m.Update(server, StreamState{}, StreamState{Gen: 9}, false, []paged.Event{stored(3, paged.Device, 3)})
			return err
		}
	}
	// updateEv updates server a from its current state with events, which
	// Update must refuse before any change (it used to store a block of
	// an unknown medium on the device and skip unknown kinds, then move
	// the state on).
	updateEv := func(events ...paged.Event) func(m *Memory) error {
		return func(m *Memory) error {
			_, err := m.Update(0, StreamState{Gen: 1, Last: 2, Started: true}, StreamState{Gen: 2, Last: 4, Started: true}, false, events)
			return err
		}
	}
	for _, tc := range []struct {
		name string
		mk   func(t *testing.T) *Memory
		call func(m *Memory) error
	}{
		{"Update before Attach", fresh, update(0)},
		{"Register before Attach", fresh, func(m *Memory) error { _, _, err := m.Register("a", StreamState{}); return err }},
		{"Lookup before Attach", fresh, func(m *Memory) error { _, _, err := m.Lookup(hs(1), 1, nil, nil); return err }},
		{"Attach of a zero Memory", func(*testing.T) *Memory { return &Memory{} }, func(m *Memory) error { return m.Attach("m", 1) }},
		{"Attach for 0 servers", fresh, func(m *Memory) error { return m.Attach("m", 0) }},
		{"Attach for -1 servers", fresh, func(m *Memory) error { return m.Attach("m", -1) }},
		{"Attach for 2^16+1 servers", fresh, func(m *Memory) error { return m.Attach("m", 1<<16+1) }},
		{"Attach again for another model", ready, func(m *Memory) error { return m.Attach("other", 2) }},
		{"Attach again for more servers", ready, func(m *Memory) error { return m.Attach("m", 3) }},
		{"Update from server -1", ready, update(-1)},
		{"Update from server 2 of 2", ready, update(2)},
		{"Update from server 64", ready, update(64)},
		{"Update from server MaxInt32", ready, update(math.MaxInt32)},
		{"Update from server MinInt32", ready, update(math.MinInt32)},
		{"Update with medium 9", ready, updateEv(paged.Event{Seq: 3, Kind: paged.BlockStored, Medium: 9, Hashes: hs(3)})},
		{"Update with kind 99", ready, updateEv(paged.Event{Seq: 3, Kind: 99, Hashes: hs(3)})},
		{"Update with kind 0", ready, updateEv(paged.Event{Seq: 3, Hashes: hs(1)})},
		{"Update of a move from medium 7", ready, updateEv(paged.Event{Seq: 3, Kind: paged.BlockMoved, Medium: paged.Host, From: 7, Hashes: hs(1)})},
		{"Update of a good event, then a bad one", ready, updateEv(stored(3, paged.Device, 3), paged.Event{Seq: 4, Kind: paged.BlockRemoved, Medium: 200, Hashes: hs(1)})},
		{"Lookup with 0 words", ready, func(m *Memory) error { _, _, err := m.Lookup(hs(1), 0, nil, nil); return err }},
		{"Lookup with 2 words", ready, func(m *Memory) error { _, _, err := m.Lookup(hs(1), 2, nil, nil); return err }},
		{"Lookup with -1 words", ready, func(m *Memory) error { _, _, err := m.Lookup(hs(1), -1, nil, nil); return err }},
	} {
		t.Run(tc.name, func(t *testing.T) {
			n++
			m, twin := tc.mk(t), tc.mk(t)
			err := tc.call(m)
			require.ErrorIs(t, err, ErrInvalid)
			assert.True(t, strings.HasPrefix(err.Error(), "fleet: "), "%q lacks the package prefix", err)
			assert.Equal(t, state(t, twin), state(t, m), "a refused call changed the backend")
		})
	}
	// A stale state is a conflict, not a write: nothing changes.
	n++
	m, twin := ready(t), ready(t)
	_, err := m.Update(0, StreamState{Gen: 7}, StreamState{Gen: 8}, true, []paged.Event{stored(3, paged.Device, 3)})
	require.ErrorIs(t, err, ErrConflict)
	assert.Equal(t, state(t, twin), state(t, m))
}

func TestHostileRouters(t *testing.T) {
	n := 0
	defer func() { t.Logf("%d cases", n) }()
	nan, inf := math.NaN(), math.Inf(1)
	cands := func(pairs ...float64) []Candidate {
		var out []Candidate
		for i := 0; i+1 < len(pairs); i += 2 {
			out = append(out, Candidate{Score: Score{Value: pairs[i]}, Load: pairs[i+1]})
		}
		return out
	}
	routers := map[string]Router{
		"prefix-aware":              PrefixAware{},
		"prefix-aware, cap NaN":     PrefixAware{LoadCap: nan},
		"prefix-aware, cap -1":      PrefixAware{LoadCap: -1},
		"prefix-aware, cap +Inf":    PrefixAware{LoadCap: inf},
		"prefix-aware, penalty NaN": PrefixAware{LoadPenalty: nan},
		"prefix-aware, penalty Inf": PrefixAware{LoadPenalty: inf},
		"least-loaded":              LeastLoaded{},
	}
	inputs := map[string][]Candidate{
		"nil":                 nil,
		"empty":               {},
		"NaN values":          cands(nan, 0, nan, 1),
		"NaN loads":           cands(1, nan, 2, nan),
		"infinite values":     cands(inf, 0, -inf, 0, 1, 0),
		"infinite loads":      cands(1, inf, 2, -inf),
		"all NaN":             cands(nan, nan, nan, nan, nan, nan),
		"negative everything": cands(-1, -5, -2, -1),
	}
	for rn, r := range routers {
		for in, c := range inputs {
			n++
			got := r.Route(c)
			if len(c) == 0 {
				assert.Equal(t, -1, got, "%s on %s", rn, in)
			} else {
				assert.True(t, got >= 0 && got < len(c), "%s on %s routed to %d of %d", rn, in, got, len(c))
			}
		}
	}
}
