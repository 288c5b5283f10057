package fleet

import (
	"testing"
	"time"

	"github.com/stretchr/testify/require"

	"github.com/pagedkv/pagedkv/paged"
)

// TestFleetidsSilenceOnTheMonotonicClock: a wall clock that read two
// hours late when the servers were stamped (and was corrected since) must
// not expire a server this Index stamped 30 s ago by the monotonic clock;
// a stamp written by another router can only be compared in wall time.
// A test cannot step the wall clock under a monotonic reading, so the
// step is put into the stored stamps.
func TestFleetidsSilenceOnTheMonotonicClock(t *testing.T) {
	var now time.Time
	m, err := NewMemory(MemoryConfig{Capacity: 16})
	require.NoError(t, err)
	x, err := New(Config{TTL: time.Minute, Now: func() time.Time { return now }, Backend: m})
	require.NoError(t, err)
	t0 := time.Now() // carries a monotonic reading
	now = t0
	require.NoError(t, x.Apply("own", []paged.Event{stored(1, paged.Device, 1)}))
	require.NoError(t, x.Apply("other", []paged.Event{stored(1, paged.Device, 1)}))
	stepped := t0.Add(-2 * time.Hour).UnixNano()
	for i := range m.states {
		m.states[i].Seen = stepped
		x.servers[i].st.Seen = stepped
	}
	x.servers[0].seenWall = stepped // "own": the stamp this Index wrote, at t0 by the monotonic clock
	now = t0.Add(30 * time.Second)
	sc, err := x.Lookup(hs(1), nil)
	require.NoError(t, err)
	require.Equal(t, Score{Server: 0, Name: "own", Blocks: 1, Device: 1, Affinity: 1, Value: 1}, sc[0], "30 s of silence")
	require.Equal(t, Score{Server: 1, Name: "other", Partial: true}, sc[1], "2 h 30 s of silence in wall time")
	now = t0.Add(61 * time.Second)
	sc, err = x.Lookup(hs(1), nil)
	require.NoError(t, err)
	require.Equal(t, Score{Server: 0, Name: "own", Partial: true}, sc[0], "61 s of silence")
}
