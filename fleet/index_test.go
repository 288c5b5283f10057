package fleet

import (
	"encoding/binary"
	"fmt"
	"math"
	"testing"
	"time"

	"github.com/stretchr/testify/assert"
	"github.com/stretchr/testify/require"

	"github.com/pagedkv/pagedkv/paged"
)

func h(i int) paged.Hash {
	var x paged.Hash
	binary.BigEndian.PutUint64(x[24:], uint64(i)+1000)
	return x
}

func hs(ids ...int) []paged.Hash {
	out := make([]paged.Hash, len(ids))
	for i, id := range ids {
		out[i] = h(id)
	}
	return out
}

func stored(seq uint64, m paged.Medium, ids ...int) paged.Event {
	return paged.Event{Seq: seq, Kind: paged.BlockStored, Hashes: hs(ids...), Medium: m}
}

func removed(seq uint64, m paged.Medium, ids ...int) paged.Event {
	return paged.Event{Seq: seq, Kind: paged.BlockRemoved, Hashes: hs(ids...), Medium: m}
}

func lookup(t *testing.T, x *Index, ids ...int) []Score {
	t.Helper()
	sc, err := x.Lookup(hs(ids...), nil)
	require.NoError(t, err)
	return sc
}

func TestScoresCountLeadingRunsWithTierWeights(t *testing.T) {
	x, err := New(Config{DeviceWeight: 2, HostWeight: 1})
	require.NoError(t, err)
	require.NoError(t, x.Apply("a", []paged.Event{stored(1, paged.Device, 1, 2, 3), stored(2, paged.Host, 4)}))
	require.NoError(t, x.Apply("b", []paged.Event{stored(1, paged.Host, 1, 2), stored(2, paged.Device, 4, 5)}))
	require.NoError(t, x.Apply("c", []paged.Event{stored(1, paged.Device, 2, 3)}))

	sc := lookup(t, x, 1, 2, 3, 4, 5)
	require.Len(t, sc, 3)
	assert.Equal(t, Score{Server: 0, Name: "a", Blocks: 4, Device: 3, Affinity: 4, Value: 7}, sc[0])
	assert.Equal(t, Score{Server: 1, Name: "b", Blocks: 2, Device: 0, Affinity: 2, Value: 2}, sc[1], "the run stops at the first hole")
	assert.Equal(t, Score{Server: 2, Name: "c", Blocks: 0, Value: 0}, sc[2], "a run must start at the first block")
	assert.Equal(t, 0, PrefixAware{}.Route(candidates(sc, 0, 0, 0)))
}

func candidates(sc []Score, loads ...float64) []Candidate {
	out := make([]Candidate, len(sc))
	for i := range sc {
		out[i] = Candidate{Score: sc[i], Load: loads[i]}
	}
	return out
}

func TestRemoveAndMove(t *testing.T) {
	x, err := New(Config{})
	require.NoError(t, err)
	require.NoError(t, x.Apply("a", []paged.Event{
		stored(1, paged.Device, 1, 2, 3),
		{Seq: 2, Kind: paged.BlockMoved, Hashes: hs(2), From: paged.Device, Medium: paged.Host},
		removed(3, paged.Device, 3),
	}))
	sc := lookup(t, x, 1, 2, 3)
	assert.Equal(t, 2, sc[0].Blocks)
	assert.Equal(t, 1, sc[0].Device)
	assert.Equal(t, 1.5, sc[0].Value)
	require.NoError(t, x.Apply("a", []paged.Event{removed(4, paged.Host, 2)}))
	assert.Equal(t, 1, lookup(t, x, 1, 2, 3)[0].Blocks)
}

func TestSequenceGapsDuplicatesAndClear(t *testing.T) {
	x, err := New(Config{})
	require.NoError(t, err)
	require.NoError(t, x.Apply("a", []paged.Event{stored(1, paged.Device, 1), stored(2, paged.Device, 2)}))
	require.NoError(t, x.Apply("b", []paged.Event{stored(1, paged.Device, 1)}))

	// A replay of events already taken changes nothing.
	require.NoError(t, x.Apply("a", []paged.Event{removed(1, paged.Device, 1), removed(2, paged.Device, 2)}))
	assert.Equal(t, 2, lookup(t, x, 1, 2)[0].Blocks)
	assert.Equal(t, uint64(2), x.Stats().Duplicates)

	// Event 3 lost: a's entries go, b's stay, a is partial, event 4 counts.
	require.NoError(t, x.Apply("a", []paged.Event{stored(4, paged.Device, 7)}))
	sc := lookup(t, x, 1, 2)
	assert.Equal(t, 0, sc[0].Blocks)
	assert.True(t, sc[0].Partial)
	assert.Equal(t, 1, sc[1].Blocks)
	assert.False(t, sc[1].Partial)
	assert.Equal(t, 1, lookup(t, x, 7)[0].Blocks)

	// AllBlocksCleared makes a exact again.
	require.NoError(t, x.Apply("a", []paged.Event{{Seq: 5, Kind: paged.AllBlocksCleared}, stored(6, paged.Device, 8)}))
	sc = lookup(t, x, 8)
	assert.False(t, sc[0].Partial)
	assert.Equal(t, 1, sc[0].Blocks)
	assert.Equal(t, 0, lookup(t, x, 7)[0].Blocks)

	// A server whose first event is not number 1 missed its beginning.
	require.NoError(t, x.Apply("late", []paged.Event{stored(10, paged.Device, 1)}))
	sc = lookup(t, x, 1)
	assert.True(t, sc[2].Partial)
	assert.Equal(t, 1, sc[2].Blocks)

	// Resync without a snapshot: an empty cache, any next number.
	require.NoError(t, x.Resync("late", nil))
	require.NoError(t, x.Apply("late", []paged.Event{stored(50, paged.Device, 2)}))
	sc = lookup(t, x, 1)
	assert.False(t, sc[2].Partial)
	assert.Equal(t, 0, sc[2].Blocks)
	assert.Equal(t, uint64(2), x.Stats().Gaps)
}

func TestApplyRejectsBadInputWithoutChange(t *testing.T) {
	x, err := New(Config{MaxServers: 1})
	require.NoError(t, err)
	require.ErrorIs(t, x.Apply("a", []paged.Event{stored(2, paged.Device, 1), stored(1, paged.Device, 2)}), ErrInvalid)
	require.ErrorIs(t, x.Apply("a", []paged.Event{{Seq: 1, Kind: 99}}), ErrInvalid)
	require.ErrorIs(t, x.Apply("", nil), ErrInvalid)
	require.NoError(t, x.Apply("a", []paged.Event{stored(1, paged.Device, 1)}))
	require.ErrorIs(t, x.Apply("b", []paged.Event{stored(1, paged.Device, 1)}), ErrTooManyServers)
	assert.Equal(t, uint64(0), x.Stats().Gaps, "rejected calls took no sequence numbers")
	_, err = New(Config{MaxServers: -1})
	require.ErrorIs(t, err, ErrInvalid)
	_, err = New(Config{HostWeight: -1})
	require.ErrorIs(t, err, ErrInvalid)
	_, err = NewMemory(MemoryConfig{Capacity: -5})
	require.ErrorIs(t, err, ErrInvalid)
}

// fakeClock is a settable clock for TTL tests.
type fakeClock struct{ t time.Time }

func (c *fakeClock) now() time.Time { return c.t }

func TestSilentServerExpires(t *testing.T) {
	clk := &fakeClock{t: time.Unix(1000, 0)}
	x, err := New(Config{TTL: time.Minute, Now: clk.now})
	require.NoError(t, err)
	require.NoError(t, x.Apply("a", []paged.Event{stored(1, paged.Device, 1)}))
	require.NoError(t, x.Apply("b", []paged.Event{stored(1, paged.Device, 1)}))
	clk.t = clk.t.Add(50 * time.Second)
	require.NoError(t, x.Heartbeat("b"))
	clk.t = clk.t.Add(50 * time.Second) // a silent 100 s, b 50 s
	sc := lookup(t, x, 1)
	assert.Equal(t, 0, sc[0].Blocks, "a expired")
	assert.True(t, sc[0].Partial)
	assert.Equal(t, 1, sc[1].Blocks, "b heartbeat in time")
	assert.False(t, sc[1].Partial)
	st, err := x.Servers(nil)
	require.NoError(t, err)
	assert.True(t, st[0].Expired)
	assert.False(t, st[1].Expired)
	assert.Equal(t, uint64(1), x.Stats().Expired)

	// a comes back with its next event: entries from now on, still partial.
	require.NoError(t, x.Apply("a", []paged.Event{stored(2, paged.Device, 2)}))
	sc = lookup(t, x, 2)
	assert.Equal(t, 1, sc[0].Blocks)
	assert.True(t, sc[0].Partial)
}

func TestMemoryEvictsLeastRecentlyUsedEntry(t *testing.T) {
	m, err := NewMemory(MemoryConfig{Capacity: 3})
	require.NoError(t, err)
	x, err := New(Config{Backend: m})
	require.NoError(t, err)
	require.NoError(t, x.Apply("a", []paged.Event{stored(1, paged.Device, 1, 2, 3)}))
	lookup(t, x, 1) // 1 is now the most recently used
	require.NoError(t, x.Apply("a", []paged.Event{stored(2, paged.Device, 4)}))
	assert.Equal(t, 3, m.Len())
	assert.Equal(t, 1, lookup(t, x, 1)[0].Blocks, "1 was used, 2 was the victim")
	assert.Equal(t, 0, lookup(t, x, 2)[0].Blocks)
	assert.Equal(t, 1, lookup(t, x, 3)[0].Blocks)
	// Removing the last holder frees the entry.
	require.NoError(t, x.Apply("a", []paged.Event{removed(3, paged.Device, 1, 3, 4)}))
	assert.Equal(t, 0, m.Len())
}

func TestManyServersBeyondOneWord(t *testing.T) {
	x, err := New(Config{MaxServers: 200})
	require.NoError(t, err)
	for s := range 200 {
		ids := []int{0}
		for i := 1; i <= s%7; i++ {
			ids = append(ids, i)
		}
		require.NoError(t, x.Apply(fmt.Sprint("s", s), []paged.Event{stored(1, paged.Device, ids...)}))
	}
	sc := lookup(t, x, 0, 1, 2, 3, 4, 5, 6)
	for s := range 200 {
		assert.Equal(t, 1+s%7, sc[s].Blocks, "server %d", s)
	}
}

func TestIndexIsSafeForConcurrentStreams(t *testing.T) {
	x, err := New(Config{})
	require.NoError(t, err)
	done := make(chan error, 4)
	for g := range 4 {
		go func() {
			name := fmt.Sprint("g", g)
			var err error
			for i := range 500 {
				if err = x.Apply(name, []paged.Event{stored(uint64(i+1), paged.Device, i%50)}); err != nil {
					break
				}
				if _, err = x.Lookup(hs(0, 1, 2), nil); err != nil {
					break
				}
			}
			done <- err
		}()
	}
	for range 4 {
		require.NoError(t, <-done)
	}
	assert.Equal(t, uint64(2000), x.Stats().Events)
	for _, s := range lookup(t, x, 0, 1, 2) {
		assert.Equal(t, 3, s.Blocks, s.Name)
	}
}

func TestLookupAndApplyAllocateNothing(t *testing.T) {
	x, err := New(Config{})
	require.NoError(t, err)
	req := make([]paged.Hash, 64)
	for i := range req {
		req[i] = h(i)
	}
	evs := make([]paged.Event, 8)
	for s := range 8 {
		for i := range evs {
			evs[i] = paged.Event{Seq: uint64(i + 1), Kind: paged.BlockStored, Hashes: req[:8*(i+1)]}
		}
		require.NoError(t, x.Apply(fmt.Sprint("s", s), evs))
	}
	sc, err := x.Lookup(req, nil)
	require.NoError(t, err)
	seq := uint64(len(evs))
	name := "s3"
	rm := []paged.Event{{Kind: paged.BlockRemoved}, {Kind: paged.BlockStored}}
	rm[0].Hashes, rm[1].Hashes = req[32:], req[32:]
	var lerr, aerr error
	allocs := testing.AllocsPerRun(200, func() {
		sc, lerr = x.Lookup(req, sc[:0])
		rm[0].Seq, rm[1].Seq = seq+1, seq+2
		seq += 2
		aerr = x.Apply(name, rm)
	})
	require.NoError(t, lerr)
	require.NoError(t, aerr)
	assert.Zero(t, allocs)
	assert.Equal(t, 64, sc[3].Blocks)
}

func TestMemoryEvictionForgetsCopies(t *testing.T) {
	m, err := NewMemory(MemoryConfig{Capacity: 2})
	require.NoError(t, err)
	x, err := New(Config{Backend: m})
	require.NoError(t, err)
	require.NoError(t, x.Apply("a", []paged.Event{stored(1, paged.Device, 1, 1, 1), stored(2, paged.Device, 2, 3)}))
	assert.Equal(t, 0, lookup(t, x, 1)[0].Blocks, "entry 1 and its copies were evicted")
	assert.Empty(t, m.copies)
	require.NoError(t, x.Apply("a", []paged.Event{stored(3, paged.Device, 1), removed(4, paged.Device, 1)}))
	assert.Equal(t, 0, lookup(t, x, 1)[0].Blocks, "no stale copy count survived the eviction")
}

func TestConfigAndEventsRejectNonsense(t *testing.T) {
	for _, cfg := range []Config{
		{Backend: (*Memory)(nil)},
		{Backend: &Memory{}},
		{DeviceWeight: math.Inf(1)},
		{MaxServers: 1 << 17},
		{MaxServers: 1 << 16, Backend: mustMemory(t, MaxMemoryCapacity)}, // over MaxMemoryBytes
	} {
		_, err := New(cfg)
		require.ErrorIs(t, err, ErrInvalid, "%+v", cfg)
	}
	_, err := NewMemory(MemoryConfig{Capacity: MaxMemoryCapacity + 1})
	require.ErrorIs(t, err, ErrInvalid)
	x, err := New(Config{})
	require.NoError(t, err)
	require.ErrorIs(t, x.Apply("a", []paged.Event{{Seq: 1, Kind: paged.BlockStored, Hashes: hs(1), Medium: 7}}), ErrInvalid)
	require.ErrorIs(t, x.Apply("a", []paged.Event{{Seq: 1, Kind: paged.BlockMoved, Hashes: hs(1), From: 9}}), ErrInvalid)
	sc := lookup(t, x, 1)
	assert.Empty(t, sc, "nothing was registered")
	m := mustMemory(t, 8)
	_, _, err = m.Lookup(hs(1), 1, nil, nil)
	require.ErrorIs(t, err, ErrInvalid, "a Memory used before Attach")
}

func mustMemory(t *testing.T, capacity int) *Memory {
	m, err := NewMemory(MemoryConfig{Capacity: capacity})
	require.NoError(t, err)
	return m
}
