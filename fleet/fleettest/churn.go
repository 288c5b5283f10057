package fleettest

import (
	"fmt"
	"math/rand/v2"
	"sync"
	"testing"
	"time"

	"github.com/stretchr/testify/require"

	"github.com/pagedkv/pagedkv/fleet"
	"github.com/pagedkv/pagedkv/paged"
)

// Clock is a settable clock for fleet.Config.Now, safe for concurrent
// use. Its readings carry no monotonic clock, so the index measures
// silence on their wall time.
type Clock struct {
	mu sync.Mutex
	t  time.Time
}

// NewClock returns a Clock at a fixed instant.
func NewClock() *Clock { return &Clock{t: time.Unix(1_700_000_000, 0)} }

// Now returns the clock's time.
func (c *Clock) Now() time.Time {
	c.mu.Lock()
	defer c.mu.Unlock()
	return c.t
}

// Advance moves the clock forward by d.
func (c *Clock) Advance(d time.Duration) {
	c.mu.Lock()
	defer c.mu.Unlock()
	c.t = c.t.Add(d)
}

// Churn bounds: CheckChurn's index has room for ChurnServers servers and
// a TTL of ChurnTTL, and sees ChurnNames distinct names over its life.
const (
	ChurnServers = 4
	ChurnTTL     = time.Minute
	ChurnNames   = 100
)

// names returns the names an Index has registered, and fails the test
// when one appears twice or the table holds more than ChurnServers IDs.
func names(t *testing.T, x *fleet.Index) map[string]bool {
	t.Helper()
	st, err := x.Servers(nil)
	require.NoError(t, err)
	require.LessOrEqual(t, len(st), ChurnServers, "server ids in use")
	out := map[string]bool{}
	for _, s := range st {
		if s.Name != "" {
			require.False(t, out[s.Name], "%q registered twice", s.Name)
			out[s.Name] = true
		}
	}
	return out
}

// CheckChurn runs servers that come and go through an Index on backend b
// (under a fresh model name) with room for ChurnServers servers and a
// TTL: ChurnNames distinct names over time, each sending random batches
// (lost and replayed events included) while it lives, then leaving by
// Index.Unregister or by going silent, and now and then sending a late
// batch after it left. Live servers heartbeat within the TTL. It requires
// a new name to be accepted exactly when fewer than ChurnServers
// registered servers are live (an ID is free or held by a server silent
// for longer than the TTL), the ID to be taken only from such a server,
// and after every step each server's score for a random request to equal
// a reference model's: no block is ever attributed to a server that does
// not hold it.
func CheckChurn(t *testing.T, b fleet.Backend, model string, seed uint64) {
	t.Helper()
	clk := NewClock()
	x, err := fleet.New(fleet.Config{Backend: b, Model: model, MaxServers: ChurnServers, TTL: ChurnTTL, Now: clk.Now})
	require.NoError(t, err)
	rng := rand.New(rand.NewPCG(seed, 2))
	m := NewModel()
	streams := map[string]*Stream{}
	seen := map[string]time.Time{}  // last call of each registered name
	registered := map[string]bool{} // as the model expects the index's registry
	expired := map[string]bool{}    // registered names the model expired
	var live, gone []string
	started, refused := 0, 0
	silent := func(name string) bool { return clk.Now().Sub(seen[name]) > ChurnTTL }
	// send gives one batch of name's events to the index and the model,
	// checking whether the index had to accept the name.
	send := func(step int, name string) {
		if registered[name] {
			_, evs := streams[name].Batch()
			require.NoError(t, x.Apply(name, evs), "step %d: %s", step, name)
			m.Apply(name, evs)
			seen[name] = clk.Now()
			delete(expired, name)
			return
		}
		room := len(registered) < ChurnServers
		for r := range registered {
			room = room || silent(r)
		}
		if !room {
			_, err := x.Register(name)
			require.ErrorIs(t, err, fleet.ErrTooManyServers, "step %d: %s with %d live servers", step, name, len(registered))
			refused++
			return
		}
		if streams[name] == nil {
			streams[name] = NewStream(seed<<16+uint64(len(streams)), name)
		}
		_, evs := streams[name].Batch()
		require.NoError(t, x.Apply(name, evs), "step %d: %s with %d servers registered", step, name, len(registered))
		after := names(t, x)
		require.True(t, after[name], "step %d: %s not registered", step, name)
		full := len(registered) == ChurnServers
		for r := range registered {
			if !after[r] {
				require.True(t, full, "step %d: %s took the id of %s with an id unused", step, name, r)
				require.True(t, silent(r), "step %d: %s took the id of live %s", step, name, r)
				m.Forget(r)
				delete(registered, r)
				delete(expired, r)
			}
		}
		require.Len(t, registered, len(after)-1, "step %d: registry %v after %s", step, after, name)
		m.Forget(name) // a name seen before starts a new stream
		m.Apply(name, evs)
		registered[name] = true
		seen[name] = clk.Now()
	}
	var sc []fleet.Score
	for step := 0; started < ChurnNames || len(live) > 0; step++ {
		require.Less(t, step, 100*ChurnNames, "churn did not finish")
		clk.Advance(time.Duration(1+rng.IntN(20)) * time.Second)
		for r := range registered {
			if silent(r) && !expired[r] {
				m.Expire(r)
				expired[r] = true
			}
		}
		for _, name := range live {
			if clk.Now().Sub(seen[name]) > ChurnTTL/2 {
				require.NoError(t, x.Heartbeat(name), "step %d: heartbeat of %s", step, name)
				seen[name] = clk.Now()
			}
		}
		switch p := rng.IntN(100); {
		case p < 25 && len(live) < ChurnServers && started < ChurnNames:
			name := fmt.Sprintf("pod-%d", started)
			send(step, name)
			if registered[name] {
				started++
				live = append(live, name)
			}
		case p < 70 && len(live) > 0:
			send(step, live[rng.IntN(len(live))])
		case (p < 80 || started == ChurnNames) && len(live) > 0:
			i := rng.IntN(len(live))
			name := live[i]
			live = append(live[:i], live[i+1:]...)
			gone = append(gone, name)
			if rng.IntN(2) == 0 {
				require.NoError(t, x.Unregister(name), "step %d: unregister %s", step, name)
				m.Forget(name)
				delete(registered, name)
				delete(expired, name)
			}
		case p < 88 && len(gone) > 0:
			send(step, gone[rng.IntN(len(gone))]) // a late batch
		}
		start := rng.IntN(4)
		req := Hs(start, start+1, start+2, start+3, start+4, start+5, start+6)
		sc, err = x.Lookup(req, sc[:0])
		require.NoError(t, err)
		got := 0
		for _, s := range sc {
			if s.Name == "" {
				require.Zero(t, s.Blocks, "step %d: free id %d holds blocks", step, s.Server)
				continue
			}
			got++
			require.True(t, registered[s.Name], "step %d: %s scored, not registered", step, s.Name)
			blocks, device := m.Score(s.Name, req)
			require.Equal(t, blocks, s.Blocks, "step %d server %s (id %d) blocks", step, s.Name, s.Server)
			require.Equal(t, device, s.Device, "step %d server %s (id %d) device blocks", step, s.Name, s.Server)
			require.Equal(t, m.Partial(s.Name), s.Partial, "step %d server %s (id %d) partial", step, s.Name, s.Server)
		}
		require.Equal(t, len(registered), got, "step %d: servers scored", step)
	}
	require.Equal(t, ChurnNames, started)
	st := x.Stats()
	require.Positive(t, st.Reclaimed, "no id was reclaimed")
	require.Positive(t, st.Unregistered, "no server was unregistered")
	t.Logf("%d names, %d refused while %d servers were live, %d ids reclaimed, %d unregistered, %d expired",
		started, refused, ChurnServers, st.Reclaimed, st.Unregistered, st.Expired)
}

// CheckLateEvents plays the race between a late event of an expired
// server and the new owner of its ID, with routers (Index values) on the
// given backends, which must share one store (one Memory for a single
// router, or Redis backends on one model for several): router 0 knows
// the old server, the last router gives its ID to a new name, router 0
// then receives the old server's late events. They must never be
// applied to the new owner; each router must score the ID under its new
// name with only the new owner's blocks.
func CheckLateEvents(t *testing.T, model string, backends ...fleet.Backend) {
	t.Helper()
	clk := NewClock()
	routers := make([]*fleet.Index, len(backends))
	for i, b := range backends {
		x, err := fleet.New(fleet.Config{Backend: b, Model: model, MaxServers: 2, TTL: time.Minute, Now: clk.Now})
		require.NoError(t, err)
		routers[i] = x
	}
	a, z := routers[0], routers[len(routers)-1]
	score := func(x *fleet.Index, ids ...int) map[string]fleet.Score {
		t.Helper()
		sc, err := x.Lookup(Hs(ids...), nil)
		require.NoError(t, err)
		out := map[string]fleet.Score{}
		for _, s := range sc {
			out[s.Name] = s
		}
		return out
	}
	require.NoError(t, a.Apply("old", []paged.Event{Stored(1, paged.Device, 1, 2, 3)}))
	require.NoError(t, a.Apply("other", []paged.Event{Stored(1, paged.Device, 9)}))
	for _, x := range routers {
		require.Equal(t, 3, score(x, 1, 2, 3)["old"].Blocks)
	}
	clk.Advance(2 * time.Minute)
	require.NoError(t, a.Heartbeat("other"))
	// The last router gives old's ID to new (old is silent past the TTL).
	id, err := z.Register("new")
	require.NoError(t, err)
	require.Equal(t, uint64(1), z.Stats().Reclaimed)
	// Router 0 still maps old to that ID; old's late events must not land
	// there, and with other live the table is full.
	err = a.Apply("old", []paged.Event{Stored(2, paged.Device, 1, 2, 3, 4)})
	require.ErrorIs(t, err, fleet.ErrTooManyServers)
	require.NoError(t, z.Apply("new", []paged.Event{Stored(1, paged.Host, 7)}))
	for i, x := range routers {
		sc := score(x, 1, 2, 3, 4)
		require.NotContains(t, sc, "old", "router %d", i)
		require.Equal(t, id, sc["new"].Server, "router %d", i)
		require.Zero(t, sc["new"].Blocks, "router %d: old's blocks scored for new", i)
		require.Equal(t, 1, score(x, 7)["new"].Blocks, "router %d", i)
		require.False(t, score(x, 7)["new"].Partial, "router %d", i)
	}
	// other goes silent; old comes back (numbers go on, so it is partial)
	// and takes other's ID.
	clk.Advance(2 * time.Minute)
	require.NoError(t, z.Heartbeat("new"))
	require.NoError(t, a.Apply("old", []paged.Event{Stored(3, paged.Device, 5)}))
	for i, x := range routers {
		sc := score(x, 5, 9)
		require.NotContains(t, sc, "other", "router %d", i)
		require.Equal(t, 1, sc["old"].Blocks, "router %d", i)
		require.True(t, sc["old"].Partial, "router %d: old's first events were lost", i)
		require.Zero(t, sc["new"].Blocks, "router %d", i)
	}
	// new is unregistered by the last router; router 0's late events of
	// new register it afresh (partial), and no router sees new's old
	// blocks.
	require.NoError(t, z.Unregister("new"))
	require.ErrorIs(t, z.Unregister("new"), fleet.ErrUnknownServer)
	require.NoError(t, a.Apply("new", []paged.Event{Stored(2, paged.Device, 8)}))
	for i, x := range routers {
		sc := score(x, 8)
		require.Equal(t, 1, sc["new"].Blocks, "router %d", i)
		require.True(t, sc["new"].Partial, "router %d", i)
		require.Zero(t, score(x, 7)["new"].Blocks, "router %d: new's blocks from before it was unregistered", i)
	}
}

// CheckConcurrentChurn runs goroutines that each register a stream of
// names one after another, store blocks no other name stores, look them
// up through a random router (Index values on the given backends, one
// shared store) and unregister the name or let a late event register it
// again, all at once. Every lookup must score the name's blocks to it and
// to no other name. Run it under the race detector.
func CheckConcurrentChurn(t *testing.T, model string, backends ...fleet.Backend) {
	t.Helper()
	const workers, rounds = 4, 60
	routers := make([]*fleet.Index, len(backends))
	for i, b := range backends {
		x, err := fleet.New(fleet.Config{Backend: b, Model: model, MaxServers: 2 * workers})
		require.NoError(t, err)
		routers[i] = x
	}
	errs := make(chan error, workers)
	var wg sync.WaitGroup
	for w := range workers {
		wg.Go(func() {
			errs <- churnWorker(w, rounds, routers)
		})
	}
	wg.Wait()
	close(errs)
	for err := range errs {
		require.NoError(t, err)
	}
}

// churnWorker is one goroutine of CheckConcurrentChurn.
func churnWorker(w, rounds int, routers []*fleet.Index) error {
	rng := rand.New(rand.NewPCG(uint64(w), 3))
	check := func(x *fleet.Index, name string, ids []int, want int) error {
		sc, err := x.Lookup(Hs(ids...), nil)
		if err != nil {
			return err
		}
		for _, s := range sc {
			if s.Name == name && s.Blocks != want {
				return fmt.Errorf("%s scored %d blocks, holds %d", name, s.Blocks, want)
			}
			if s.Name != name && s.Blocks != 0 {
				return fmt.Errorf("%s (id %d) scored %d blocks of %s", s.Name, s.Server, s.Blocks, name)
			}
		}
		return nil
	}
	for j := range rounds {
		name := fmt.Sprintf("w%d-%d", w, j)
		ids := []int{w<<20 + j<<4, w<<20 + j<<4 + 1, w<<20 + j<<4 + 2}
		x := routers[rng.IntN(len(routers))]
		if err := x.Apply(name, []paged.Event{Stored(1, paged.Device, ids...)}); err != nil {
			return err
		}
		if err := check(routers[rng.IntN(len(routers))], name, ids, 3); err != nil {
			return err
		}
		if err := routers[rng.IntN(len(routers))].Unregister(name); err != nil {
			return err
		}
		if err := check(routers[rng.IntN(len(routers))], name, ids, 0); err != nil {
			return err
		}
		if rng.IntN(3) == 0 { // a late event registers the name again
			late := []int{ids[0]}
			if err := x.Apply(name, []paged.Event{Stored(2, paged.Device, late...)}); err != nil {
				return err
			}
			if err := check(routers[rng.IntN(len(routers))], name, ids, 1); err != nil {
				return err
			}
			if err := routers[rng.IntN(len(routers))].Unregister(name); err != nil {
				return err
			}
		}
	}
	return nil
}

// CheckRename requires backend b (not yet attached) to refuse, changing
// nothing, a Rename whose Life does not move on, of an ID out of range or
// not registered, from a stale state, or to a name registered already;
// and to free an ID (Rename to "") without making Register reuse it.
func CheckRename(t *testing.T, b fleet.Backend, model string) {
	t.Helper()
	require.NoError(t, b.Attach(model, 2))
	id, st, err := b.Register("a", fleet.StreamState{})
	require.NoError(t, err)
	_, err = b.Rename(id, st, "b", st)
	require.ErrorIs(t, err, fleet.ErrInvalid)
	_, err = b.Rename(2, st, "b", fleet.StreamState{Life: 1})
	require.ErrorIs(t, err, fleet.ErrInvalid)
	_, err = b.Rename(1, st, "b", fleet.StreamState{Life: 1})
	require.ErrorIs(t, err, fleet.ErrInvalid, "id 1 is not registered")
	_, err = b.Rename(id, fleet.StreamState{Gen: 9}, "b", fleet.StreamState{Gen: 9, Life: 1})
	require.ErrorIs(t, err, fleet.ErrConflict)
	_, _, err = b.Register("c", fleet.StreamState{})
	require.NoError(t, err)
	_, err = b.Rename(id, st, "c", fleet.StreamState{Life: 1})
	require.ErrorIs(t, err, fleet.ErrConflict, "c holds an id already")
	recs, err := b.Servers(nil)
	require.NoError(t, err)
	require.Equal(t, []fleet.ServerRecord{{Name: "a"}, {Name: "c"}}, recs, "refusals change nothing")
	next, err := b.Rename(id, st, "", fleet.StreamState{Life: 1, Expired: true})
	require.NoError(t, err)
	recs, err = b.Servers(nil)
	require.NoError(t, err)
	require.Equal(t, []fleet.ServerRecord{{State: next}, {Name: "c"}}, recs)
	_, _, err = b.Register("a", fleet.StreamState{})
	require.ErrorIs(t, err, fleet.ErrTooManyServers, "a freed id is reused only through Rename")
}
