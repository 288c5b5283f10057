package redisindex_test

import (
	"slices"
	"sync"
	"testing"
	"time"

	"github.com/stretchr/testify/assert"
	"github.com/stretchr/testify/require"

	"github.com/pagedkv/pagedkv/fleet"
	"github.com/pagedkv/pagedkv/fleet/fleettest"
	"github.com/pagedkv/pagedkv/paged"
)

// TestAudit9RoutersFollowOneStreamConcurrently checks the package's
// concurrency claim (any number of Backends may share one Redis model)
// with routers that really run at once: three fleet.Index values, each on
// its own Backend and client, apply the same streams of five servers
// (with lost and replayed events) from their own goroutines, looking up
// as they go. Every event must take effect once, so at the end every
// router answers as a model that applied the streams alone; no call may
// fail for a conflict.
func TestAudit9RoutersFollowOneStreamConcurrently(t *testing.T) {
	addr := redisAddr(t)
	type batch struct {
		server string
		events []paged.Event
	}
	servers := []string{"s0", "s1"}
	r := fleettest.NewStream(11, servers...)
	m := fleettest.NewModel()
	var batches []batch
	for range 1000 {
		s, evs := r.Batch()
		evs = slices.Clone(evs)
		m.Apply(s, evs)
		batches = append(batches, batch{s, evs})
	}
	routers := []*fleet.Index{}
	for i := range 4 {
		b := attach(t, addr)
		if i == 0 {
			b = backend(t, addr, "audit9-concurrent")
		}
		x, err := fleet.New(fleet.Config{Backend: b, Model: "audit9-concurrent"})
		require.NoError(t, err)
		routers = append(routers, x)
	}
	var wg sync.WaitGroup
	for i, x := range routers {
		wg.Go(func() {
			var sc []fleet.Score
			for k, b := range batches {
				if !assert.NoError(t, x.Apply(b.server, b.events), "router %d batch %d", i, k) {
					return
				}
				var err error
				sc, err = x.Lookup(fleettest.Hs(k%6, k%6+1, k%6+2), sc[:0])
				if !assert.NoError(t, err, "router %d lookup %d", i, k) {
					return
				}
			}
		})
	}
	wg.Wait()
	for start := range 8 {
		req := fleettest.Hs(start, start+1, start+2, start+3, start+4)
		for i, x := range routers {
			sc, err := x.Lookup(req, nil)
			require.NoError(t, err)
			require.Len(t, sc, len(servers))
			for _, got := range sc {
				blocks, device := m.Score(got.Name, req)
				assert.Equal(t, []any{blocks, device, m.Partial(got.Name)}, []any{got.Blocks, got.Device, got.Partial},
					"router %d, server %s, request from %d", i, got.Name, start)
			}
		}
	}
	var dups uint64
	for _, x := range routers {
		dups += x.Stats().Duplicates
	}
	t.Logf("duplicates skipped: %d", dups)
}

// TestAudit9RoutersHeartbeatConcurrently has four routers on one Redis
// model send heartbeats for the same idle servers at once, as redundant
// routers of one fleet do: no heartbeat may fail for a conflict.
func TestAudit9RoutersHeartbeatConcurrently(t *testing.T) {
	addr := redisAddr(t)
	var routers []*fleet.Index
	for i := range 4 {
		b := attach(t, addr)
		if i == 0 {
			b = backend(t, addr, "audit9-heartbeat")
		}
		x, err := fleet.New(fleet.Config{Backend: b, Model: "audit9-heartbeat", TTL: time.Hour})
		require.NoError(t, err)
		require.NoError(t, x.Apply("s0", []paged.Event{fleettest.Stored(1, paged.Device, 1, 2)}))
		routers = append(routers, x)
	}
	var wg sync.WaitGroup
	for i, x := range routers {
		wg.Go(func() {
			for k := range 300 {
				if !assert.NoError(t, x.Heartbeat("s0"), "router %d heartbeat %d", i, k) {
					return
				}
			}
		})
	}
	wg.Wait()
	for _, x := range routers {
		sc, err := x.Lookup(fleettest.Hs(1, 2), nil)
		require.NoError(t, err)
		require.Equal(t, 2, sc[0].Blocks)
	}
}
