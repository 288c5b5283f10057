package redisindex_test

import (
	"context"
	"fmt"
	"regexp"
	"strconv"
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

// The Audit47 tests close the gaps the fifth mutation round found in
// redisindex (docs/testing.md, "Mutation testing, fifth round, part B").

// TestAudit47KeyTTLReclaimsEveryEntryKey (M392): with KeyTTL, block keys,
// server sets and copy counts all expire once nobody stores for longer
// than KeyTTL, as Config.KeyTTL promises ("every block key and server
// set"), for servers past the first byte of a block key too (a byte holds
// the two bits of 4 servers: server 5's sit in the second byte). Only the
// index's own records (epoch, servers, states) stay.
func TestAudit47KeyTTLReclaimsEveryEntryKey(t *testing.T) {
	addr := redisAddr(t)
	c := redis.NewClient(&redis.Options{Addr: addr, MaxRetries: -1})
	defer c.Close()
	ctx := context.Background()
	const ttl = 300 * time.Millisecond
	entry := regexp.MustCompile(`:[0-9a-f]{32}:(b|s|c):`)
	for _, pad := range []int{0, 5} {
		model := fmt.Sprint("audit47-ttl-", pad)
		back, err := redisindex.New(c, redisindex.Config{Prefix: testPrefix, KeyTTL: ttl})
		require.NoError(t, err)
		require.NoError(t, back.Delete(model))
		x, err := fleet.New(fleet.Config{Backend: back, Model: model})
		require.NoError(t, err)
		for i := range pad {
			require.NoError(t, x.Heartbeat(fmt.Sprint("pad", i)))
		}
		// Two copies of blocks 1 and 2 (a copy count), block 3 on the host.
		require.NoError(t, x.Apply("a", []paged.Event{fleettest.Stored(1, paged.Device, 1, 2),
			fleettest.Stored(2, paged.Device, 1, 2), fleettest.Stored(3, paged.Host, 3)}))
		keys := func() []string {
			var out []string
			iter := c.Scan(ctx, 0, testPrefix+":{"+model+"}:*", 1000).Iterator()
			for iter.Next(ctx) {
				if entry.MatchString(iter.Val()) {
					out = append(out, iter.Val())
				}
			}
			require.NoError(t, iter.Err())
			return out
		}
		require.Len(t, keys(), 5, "%d servers first: 3 block keys, a's set and copy counts", pad)
		time.Sleep(3 * ttl)
		assert.Empty(t, keys(), "%d servers first: entry keys left after KeyTTL", pad)
	}
}

// opsHook records the keys of every script call while on.
type opsHook struct {
	on   bool
	keys []int
}

func (h *opsHook) DialHook(next redis.DialHook) redis.DialHook { return next }

func (h *opsHook) ProcessHook(next redis.ProcessHook) redis.ProcessHook {
	return func(ctx context.Context, cmd redis.Cmder) error {
		if args := cmd.Args(); h.on && (cmd.Name() == "evalsha" || cmd.Name() == "eval") && len(args) > 2 {
			n, err := strconv.Atoi(fmt.Sprint(args[2]))
			if err == nil {
				h.keys = append(h.keys, n)
			}
		}
		return next(ctx, cmd)
	}
}

func (h *opsHook) ProcessPipelineHook(next redis.ProcessPipelineHook) redis.ProcessPipelineHook {
	return next
}

// TestAudit47UpdateSendsAtMostMaxOps (M395): an Update of more block
// operations than MaxOps goes in script calls of at most MaxOps block
// keys each (Config.MaxOps), and every block arrives.
func TestAudit47UpdateSendsAtMostMaxOps(t *testing.T) {
	addr := redisAddr(t)
	c := redis.NewClient(&redis.Options{Addr: addr, MaxRetries: -1})
	defer c.Close()
	hook := &opsHook{}
	c.AddHook(hook)
	const model, maxOps = "audit47-maxops", 3
	back, err := redisindex.New(c, redisindex.Config{Prefix: testPrefix, MaxOps: maxOps})
	require.NoError(t, err)
	require.NoError(t, back.Delete(model))
	require.NoError(t, back.Attach(model, 4))
	_, st, err := back.Register("a", fleet.StreamState{Gen: 1})
	require.NoError(t, err)
	next := st
	next.Gen++
	// Warm the scripts so each call below is one EVALSHA.
	_, err = back.Update(0, st, next, false, nil)
	require.NoError(t, err)
	st = next
	next.Gen++
	hook.on = true
	_, err = back.Update(0, st, next, false, []paged.Event{fleettest.Stored(1, paged.Device, 1, 2, 3, 4, 5),
		fleettest.Stored(2, paged.Host, 6, 7)})
	hook.on = false
	require.NoError(t, err)
	const fixedKeys = 4 // epoch, set, copies, state
	total := 0
	for i, n := range hook.keys {
		assert.LessOrEqual(t, n-fixedKeys, maxOps, "script call %d", i)
		total += n - fixedKeys
	}
	assert.Equal(t, 7, total, "every block operation sent once")
	assert.Len(t, hook.keys, 3, "7 operations in calls of 3")
	sets, _, err := back.LookupAll(fleettest.Hs(1, 2, 3, 4, 5, 6, 7), 1, nil, nil)
	require.NoError(t, err)
	assert.Equal(t, []uint64{1, 0, 1, 0, 1, 0, 1, 0, 1, 0, 0, 1, 0, 1}, sets)
}
