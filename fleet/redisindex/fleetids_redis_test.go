package redisindex_test

import (
	"fmt"
	"testing"

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
