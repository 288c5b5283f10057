package redisindex_test

import (
	"context"
	"errors"
	"fmt"
	"slices"
	"sync"
	"sync/atomic"
	"testing"
	"time"

	"github.com/redis/go-redis/v9"
	"github.com/stretchr/testify/assert"
	"github.com/stretchr/testify/require"

	"github.com/pagedkv/pagedkv/fleet"
	"github.com/pagedkv/pagedkv/fleet/fleettest"
	"github.com/pagedkv/pagedkv/fleet/redisindex"
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
	for _, maxOps := range []int{0, 3} {
		t.Run(fmt.Sprint("MaxOps=", maxOps), func(t *testing.T) { routersFollowOneStream(t, maxOps) })
	}
}

// routersFollowOneStream is TestAudit9RoutersFollowOneStreamConcurrently
// with Backends that split runs of more than maxOps operations (0: the
// default), so routers also meet each other's half-written runs: then a
// server may end partial, its scores lower bounds of the model's.
func routersFollowOneStream(t *testing.T, maxOps int) {
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
	model := fmt.Sprint("audit9-concurrent-", maxOps)
	require.NoError(t, backend(t, addr, model).Delete(model))
	for range 4 {
		c := newClient(t, addr)
		b, err := redisindex.New(c, redisindex.Config{Prefix: testPrefix, MaxOps: maxOps})
		require.NoError(t, err)
		x, err := fleet.New(fleet.Config{Backend: b, Model: model})
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
				if maxOps == 0 || !got.Partial {
					assert.Equal(t, []any{blocks, device, m.Partial(got.Name)}, []any{got.Blocks, got.Device, got.Partial},
						"router %d, server %s, request from %d", i, got.Name, start)
					continue
				}
				// A router that finds another's split run half done cannot
				// tell it from one whose router died: it clears the
				// server, which stays partial, a lower bound.
				assert.LessOrEqual(t, got.Blocks, blocks, "router %d, server %s, request from %d: a partial server's blocks", i, got.Name, start)
				assert.LessOrEqual(t, got.Device, device, "router %d, server %s, request from %d: a partial server's device blocks", i, got.Name, start)
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

// failScripts is a go-redis hook that fails every script call after the
// first once armed: a router whose connection drops in the middle of a
// run split into several calls (Config.MaxOps).
type failScripts struct {
	armed atomic.Bool
	calls atomic.Int32
}

func (f *failScripts) DialHook(next redis.DialHook) redis.DialHook { return next }
func (f *failScripts) ProcessPipelineHook(next redis.ProcessPipelineHook) redis.ProcessPipelineHook {
	return next
}
func (f *failScripts) ProcessHook(next redis.ProcessHook) redis.ProcessHook {
	return func(ctx context.Context, cmd redis.Cmder) error {
		if n := cmd.Name(); (n == "evalsha" || n == "eval") && f.armed.Load() && f.calls.Add(1) > 1 {
			cmd.SetErr(errors.New("injected: connection lost"))
			return cmd.Err()
		}
		return next(ctx, cmd)
	}
}

// TestAudit9HalfDoneWriteIsTakenOver: a router that dies in the middle of
// a split run leaves the server's state tagged as half done (dirty). The
// other routers must take it over: clear the server's entries, mark it
// partial and go on with its stream, and answer lookups. Before, no other
// router could ever write that state (it compared the state without the
// backend's tag), so every Apply for the server, and every Lookup, which
// first clears a dirty server, failed with ErrConflict for good.
func TestAudit9HalfDoneWriteIsTakenOver(t *testing.T) {
	addr := redisAddr(t)
	const model = "audit9-half-done"
	require.NoError(t, backend(t, addr, model).Delete(model))
	hook := &failScripts{}
	ca := redis.NewClient(&redis.Options{Addr: addr, MaxRetries: -1})
	ca.AddHook(hook)
	t.Cleanup(func() { ca.Close() })
	ba, err := redisindex.New(ca, redisindex.Config{Prefix: testPrefix, MaxOps: 2})
	require.NoError(t, err)
	a, err := fleet.New(fleet.Config{Backend: ba, Model: model})
	require.NoError(t, err)
	require.NoError(t, a.Apply("s0", []paged.Event{fleettest.Stored(1, paged.Device, 1)}))
	hook.armed.Store(true)
	require.Error(t, a.Apply("s0", []paged.Event{fleettest.Stored(2, paged.Device, 2, 3, 4, 5, 6, 7)}), "a's connection drops after its first call")
	require.Equal(t, int32(2), hook.calls.Load(), "a wrote its first part, then failed")

	b, err := fleet.New(fleet.Config{Backend: attach(t, addr), Model: model})
	require.NoError(t, err)

	sc, err := b.Lookup(fleettest.Hs(1, 2, 3), nil)
	require.NoError(t, err, "b's lookup")
	require.Len(t, sc, 1)
	require.True(t, sc[0].Partial, "a half-done write leaves the server partial")
	require.NoError(t, b.Apply("s0", []paged.Event{fleettest.Stored(2, paged.Device, 2, 3, 4, 5, 6, 7), {Seq: 3, Kind: paged.AllBlocksCleared}, fleettest.Stored(4, paged.Device, 1, 2)}))
	sc, err = b.Lookup(fleettest.Hs(1, 2, 3), nil)
	require.NoError(t, err)
	require.Equal(t, fleet.Score{Name: "s0", Blocks: 2, Device: 2, Affinity: 2, Value: 2}, sc[0], "exact again after the stream's clear")
}
