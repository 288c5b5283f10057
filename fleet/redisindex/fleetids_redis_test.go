package redisindex_test

import (
	"context"
	"fmt"
	"testing"

	"github.com/redis/go-redis/v9"
	"github.com/stretchr/testify/require"

	"github.com/pagedkv/pagedkv/fleet"
	"github.com/pagedkv/pagedkv/fleet/redisindex"

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

// TestRedisAttachUpgradesLayout1: an index of layout 1 (or unmarked) is
// joined and marked with Layout, so routers of layout 1, which know no
// freed IDs or lives, refuse to attach from then on; a refused attach
// (another server bound) leaves the marker alone.
func TestRedisAttachUpgradesLayout1(t *testing.T) {
	addr := redisAddr(t)
	back := backend(t, addr, "upgrade")
	c := redis.NewClient(&redis.Options{Addr: addr})
	t.Cleanup(func() { c.Close() })
	ctx := context.Background()
	base := testPrefix + ":{upgrade}:"
	for _, marker := range []string{"pagedkv-redisindex/1", ""} {
		require.NoError(t, back.Delete("upgrade"))
		require.NoError(t, c.MSet(ctx, base+"epoch", "feedface", base+"max", "64").Err())
		if marker != "" {
			require.NoError(t, c.Set(ctx, base+"layout", marker, 0).Err())
		}
		require.ErrorIs(t, back.Attach("upgrade", 32), fleet.ErrInvalid)
		got, _ := c.Get(ctx, base+"layout").Result()
		require.Equal(t, marker, got, "a refused attach changes nothing")
		require.NoError(t, back.Attach("upgrade", 64))
		got, err := c.Get(ctx, base+"layout").Result()
		require.NoError(t, err)
		require.Equal(t, redisindex.Layout, got)
	}
}
