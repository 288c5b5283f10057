package redisindex_test

import (
	"context"
	"fmt"
	"testing"
	"time"

	"github.com/redis/go-redis/v9"
	"github.com/stretchr/testify/require"

	"github.com/pagedkv/pagedkv/fleet"
	"github.com/pagedkv/pagedkv/fleet/redisindex"
	"github.com/pagedkv/pagedkv/paged"

	"github.com/pagedkv/pagedkv/fleet/fleettest"
)

// TestRedisChurn: the churn of fleettest.CheckChurn on Redis.
func TestRedisChurn(t *testing.T) {
	addr := redisAddr(t)
	for seed := range uint64(3) {
		t.Run(fmt.Sprint("seed", seed), func(t *testing.T) {
			model := fmt.Sprint("churn-", seed)
			fleettest.CheckChurn(t, backend(t, addr, model), model, seed)
		})
	}
}

// TestRedisLateEventsOfReclaimedID: one router gives an expired server's
// ID to a new name while another still maps the old name to it.
func TestRedisLateEventsOfReclaimedID(t *testing.T) {
	addr := redisAddr(t)
	fleettest.CheckLateEvents(t, "late", backend(t, addr, "late"), attach(t, addr), attach(t, addr))
}

// TestRedisConcurrentChurn: names registered and unregistered at once
// through three routers on one model.
func TestRedisConcurrentChurn(t *testing.T) {
	addr := redisAddr(t)
	fleettest.CheckConcurrentChurn(t, "concurrent", backend(t, addr, "concurrent"), attach(t, addr), attach(t, addr))
}

// TestRedisRenameRefusals: the backend call behind reclamation.
func TestRedisRenameRefusals(t *testing.T) {
	fleettest.CheckRename(t, backend(t, redisAddr(t), "rename"), "rename")
}

// TestRedisAttachRefusesOldLayouts: an index of layout 1 or 2 (or
// unmarked) keys blocks of every KV cache group under their bare hashes,
// which layout 3 would take for group 0's: Attach refuses it with a clear
// error and changes nothing; after Delete, a new index is made with
// Layout.
func TestRedisAttachRefusesOldLayouts(t *testing.T) {
	addr := redisAddr(t)
	back := backend(t, addr, "upgrade")
	c := redis.NewClient(&redis.Options{Addr: addr})
	t.Cleanup(func() { c.Close() })
	ctx := context.Background()
	base := testPrefix + ":{upgrade}:"
	for _, marker := range []string{"pagedkv-redisindex/1", "pagedkv-redisindex/2", ""} {
		require.NoError(t, back.Delete("upgrade"))
		require.NoError(t, c.MSet(ctx, base+"epoch", "feedface", base+"max", "64").Err())
		if marker != "" {
			require.NoError(t, c.Set(ctx, base+"layout", marker, 0).Err())
		}
		err := back.Attach("upgrade", 64)
		require.ErrorIs(t, err, fleet.ErrInvalid)
		require.Contains(t, err.Error(), redisindex.Layout)
		got, _ := c.Get(ctx, base+"layout").Result()
		require.Equal(t, marker, got, "a refused attach changes nothing")
	}
	require.NoError(t, back.Delete("upgrade"))
	require.NoError(t, back.Attach("upgrade", 64))
	got, err := c.Get(ctx, base+"layout").Result()
	require.NoError(t, err)
	require.Equal(t, redisindex.Layout, got)
}

// TestRedisServersKnownBeforeALossExpire: after Redis lost the index, the
// router registers the servers it knew again (partial); those that never
// speak again expire with the TTL and give their IDs to new names.
func TestRedisServersKnownBeforeALossExpire(t *testing.T) {
	addr := redisAddr(t)
	clk := fleettest.NewClock()
	x, err := fleet.New(fleet.Config{Backend: backend(t, addr, "lossttl"), Model: "lossttl", MaxServers: 2, TTL: time.Minute, Now: clk.Now})
	require.NoError(t, err)
	require.NoError(t, x.Apply("a", []paged.Event{fleettest.Stored(1, paged.Device, 1)}))
	require.NoError(t, x.Apply("b", []paged.Event{fleettest.Stored(1, paged.Device, 2)}))
	c := redis.NewClient(&redis.Options{Addr: addr})
	t.Cleanup(func() { c.Close() })
	require.NoError(t, c.Del(context.Background(), testPrefix+":{lossttl}:epoch").Err())
	clk.Advance(30 * time.Second)
	sc, err := x.Lookup(fleettest.Hs(1), nil)
	require.NoError(t, err)
	require.Len(t, sc, 2)
	st, err := x.Servers(nil)
	require.NoError(t, err)
	require.Len(t, st, 2)
	for _, s := range st {
		require.True(t, s.Partial, "%s after the loss", s.Name)
		require.Equal(t, clk.Now(), s.LastSeen, "%s is stamped when registered again", s.Name)
	}
	_, err = x.Register("c")
	require.ErrorIs(t, err, fleet.ErrTooManyServers, "a and b may still be alive")
	clk.Advance(2 * time.Minute)
	id, err := x.Register("c")
	require.NoError(t, err, "a and b never spoke again")
	require.Equal(t, fleet.ServerID(0), id)
}
