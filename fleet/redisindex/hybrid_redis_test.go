package redisindex_test

import (
	"sync"
	"testing"

	"github.com/stretchr/testify/require"
	"pgregory.net/rapid"

	"github.com/pagedkv/pagedkv/fleet"
	"github.com/pagedkv/pagedkv/fleet/fleettest"
	"github.com/pagedkv/pagedkv/fleet/redisindex"
	"github.com/pagedkv/pagedkv/paged"
)

// TestRedisHybridScoresAreManagerHits: on Redis, a server with a layout
// is scored exactly the hit its paged manager gives, as on Memory
// (fleettest.CheckHybridScores).
func TestRedisHybridScoresAreManagerHits(t *testing.T) {
	addr := redisAddr(t)
	c := newClient(t, addr)
	compared, hits, corrected, partial := fleettest.CheckHybridScores(t, "hybrid", func(rt *rapid.T) fleet.Backend {
		r, err := redisindex.New(c, redisindex.Config{Prefix: testPrefix})
		if err != nil {
			rt.Fatal(err)
		}
		if err := r.Delete("hybrid"); err != nil {
			rt.Fatal(err)
		}
		return r
	})
	t.Logf("%d admissions compared exactly, %d with a hit, %d where group 0's run over-reported; %d on a partial server", compared, hits, corrected, partial)
	require.NotZero(t, hits)
	require.NotZero(t, corrected)
}

// TestRedisLayoutSharedByRouters: a layout one router records is read by
// another attached to the same model (its next lookup scores with it),
// a different one is refused through either, and Unregister drops it.
func TestRedisLayoutSharedByRouters(t *testing.T) {
	x, y := twoRouters(t, "layouts")
	// Full attention and a 1-token window at 1 token a block: a hit of L
	// needs the full blocks of [0, L) and the window's block L-1.
	l := fleet.Layout{BlockSize: 1, Groups: []paged.Group{{}, {Kind: paged.SlidingWindow, Window: 1}}}
	require.NoError(t, y.Apply("gpu", []paged.Event{
		{Seq: 1, Kind: paged.BlockStored, Hashes: fleettest.Hs(1, 2, 3), Medium: paged.Device},
		{Seq: 2, Kind: paged.BlockStored, Hashes: fleettest.Hs(1), Medium: paged.Device, Group: 1},
	}))
	sc, err := y.Lookup(fleettest.Hs(1, 2, 3), nil)
	require.NoError(t, err)
	require.Equal(t, 3, sc[0].Blocks, "no layout yet: group 0's run")
	require.NoError(t, x.SetLayout("gpu", l))
	sc, err = y.Lookup(fleettest.Hs(1, 2, 3), nil)
	require.NoError(t, err)
	require.Equal(t, 1, sc[0].Blocks, "the other router's layout: the window holds block 0 only")
	got, ok := y.Layout("gpu")
	require.True(t, ok)
	require.Equal(t, l.String(), got.String())
	other := fleet.Layout{BlockSize: 1, Groups: []paged.Group{{}, {Kind: paged.SlidingWindow, Window: 2}}}
	require.ErrorIs(t, y.SetLayout("gpu", other), fleet.ErrInvalid)
	require.NoError(t, y.SetLayout("gpu", l), "the same layout again")
	require.NoError(t, x.Unregister("gpu"))
	_, err = y.Lookup(fleettest.Hs(1), nil) // y learns of it at its next lookup
	require.NoError(t, err)
	_, err = y.Register("gpu")
	require.NoError(t, err)
	_, ok = y.Layout("gpu")
	require.False(t, ok, "a new life starts without a layout")
	require.NoError(t, y.SetLayout("gpu", other))
}

// TestRedisLayoutRace: routers racing to record two different layouts
// for one server (each router from its own goroutines): one layout
// wins, every call of it succeeds and every call of the other is
// refused, and both routers end up scoring with the winner.
func TestRedisLayoutRace(t *testing.T) {
	x, y := twoRouters(t, "layoutrace")
	layouts := []fleet.Layout{
		{BlockSize: 1, Groups: []paged.Group{{}, {Kind: paged.SlidingWindow, Window: 1}}},
		{BlockSize: 1, Groups: []paged.Group{{}, {Kind: paged.State}}},
	}
	errs := make([]error, 8)
	var wg sync.WaitGroup
	for i := range errs {
		wg.Add(1)
		go func() {
			defer wg.Done()
			idx := []*fleet.Index{x, y}[i%2]
			errs[i] = idx.SetLayout("gpu", layouts[(i/2)%2])
		}()
	}
	wg.Wait()
	won := -1
	for i, err := range errs {
		if err == nil {
			if won < 0 {
				won = (i / 2) % 2
			}
			require.Equal(t, won, (i/2)%2, "call %d recorded the other layout", i)
		} else {
			require.ErrorIs(t, err, fleet.ErrInvalid)
		}
	}
	require.GreaterOrEqual(t, won, 0)
	for _, idx := range []*fleet.Index{x, y} {
		_, err := idx.Lookup(fleettest.Hs(1), nil)
		require.NoError(t, err)
		l, ok := idx.Layout("gpu")
		require.True(t, ok)
		require.Equal(t, layouts[won].String(), l.String())
	}
}

// twoRouters returns two indexes of model on the test's Redis: the first
// creates the model, the second attaches to it, as two routers would.
func twoRouters(t *testing.T, model string) (x, y *fleet.Index) {
	t.Helper()
	addr := redisAddr(t)
	x, err := fleet.New(fleet.Config{Backend: backend(t, addr, model), Model: model})
	require.NoError(t, err)
	y, err = fleet.New(fleet.Config{Backend: attach(t, addr), Model: model})
	require.NoError(t, err)
	return x, y
}

// TestRedisAffinityOfFullGroup: on Redis, Affinity is the full group's
// run where it is not group 0, as on Memory
// (fleettest.CheckAffinityOfFullGroup).
func TestRedisAffinityOfFullGroup(t *testing.T) {
	addr := redisAddr(t)
	c := newClient(t, addr)
	r, err := redisindex.New(c, redisindex.Config{Prefix: testPrefix})
	require.NoError(t, err)
	require.NoError(t, r.Delete("affinity"))
	fleettest.CheckAffinityOfFullGroup(t, "affinity", r)
}
