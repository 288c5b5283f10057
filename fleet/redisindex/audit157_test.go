package redisindex_test

import (
	"context"
	"regexp"
	"testing"
	"time"

	"github.com/redis/go-redis/v9"
	"github.com/stretchr/testify/require"

	"github.com/pagedkv/pagedkv/fleet"
	"github.com/pagedkv/pagedkv/fleet/fleettest"
	"github.com/pagedkv/pagedkv/fleet/redisindex"
	"github.com/pagedkv/pagedkv/paged"
)

// The hundred-and-ninth mutation round (docs/testing.md): the Redis
// backend's scripts, keys and lookups.

// a157Entries returns the entry keys (block keys b:, server sets s:, copy
// counts c:) of model's current index by kind.
func a157Entries(t *testing.T, c *redis.Client, model string) map[string][]string {
	t.Helper()
	ctx := context.Background()
	entry := regexp.MustCompile(`:[0-9a-f]{32}:(b|s|c):`)
	out := map[string][]string{}
	iter := c.Scan(ctx, 0, testPrefix+":{"+model+"}:*", 1000).Iterator()
	for iter.Next(ctx) {
		if m := entry.FindStringSubmatch(iter.Val()); m != nil {
			out[m[1]] = append(out[m[1]], iter.Val())
		}
	}
	require.NoError(t, iter.Err())
	return out
}

// A removal that leaves a block with no holder deletes its key and takes
// the block out of the server's set, and a clear leaves no entry key of
// the server behind: the index does not grow with blocks long gone
// (M4491-M4493). Lookups cannot tell (an all-zero key reads as no
// holder), so the keys are counted.
func TestAudit157RemovedBlocksLeaveNoKeys(t *testing.T) {
	addr := redisAddr(t)
	c := newClient(t, addr)
	const model = "audit157-keys"
	back := backend(t, addr, model)
	x, err := fleet.New(fleet.Config{Backend: back, Model: model})
	require.NoError(t, err)
	require.NoError(t, x.Apply("a", []paged.Event{fleettest.Stored(1, paged.Device, 1, 2), fleettest.Stored(2, paged.Host, 3)}))
	require.NoError(t, x.Apply("b", []paged.Event{fleettest.Stored(1, paged.Device, 2)}))
	ks := a157Entries(t, c, model)
	require.Len(t, ks["b"], 3)
	require.Len(t, ks["s"], 2)
	setSize := func(name string) int64 {
		t.Helper()
		for _, k := range ks["s"] {
			if name == "a" && k[len(k)-1] == '0' || name == "b" && k[len(k)-1] == '1' {
				n, err := c.SCard(context.Background(), k).Result()
				require.NoError(t, err)
				return n
			}
		}
		t.Fatalf("no set of %s", name)
		return 0
	}
	require.EqualValues(t, 3, setSize("a"))
	// a drops block 1 (no other holder) and block 2 (b holds it too).
	require.NoError(t, x.Apply("a", []paged.Event{{Seq: 3, Kind: paged.BlockRemoved, Hashes: fleettest.Hs(1, 2), Medium: paged.Device}}))
	ks = a157Entries(t, c, model)
	require.Len(t, ks["b"], 2, "block 1's key outlives its last holder")
	require.EqualValues(t, 1, setSize("a"), "a's set still names blocks it removed")
	// b clears its cache: block 2 has no holder left.
	require.NoError(t, x.Apply("b", []paged.Event{{Seq: 2, Kind: paged.AllBlocksCleared}}))
	ks = a157Entries(t, c, model)
	require.Len(t, ks["b"], 1, "block 2's key outlives the clear of its last holder")
	require.Len(t, ks["s"], 1, "b's set outlives its clear")
	for _, s := range lookup(t, x, 1, 2) {
		require.Zero(t, s.Blocks, "%+v", s)
	}
}

// With KeyTTL a store gives an expiry to the block key and to the set and
// copy counts of every server holding the block: one holding it on the
// host only (a, server 0, two copies), and one whose bits sit in the key's
// second byte (b, server 4). A server's keys without an expiry would stay
// forever once its router dies (M4497: a host-only holder not seen;
// M4504: only the first byte with bits visited).
func TestAudit157KeyTTLReachesEveryHolder(t *testing.T) {
	addr := redisAddr(t)
	c := newClient(t, addr)
	const model = "audit157-ttl"
	back, err := redisindex.New(c, redisindex.Config{Prefix: testPrefix, KeyTTL: time.Hour})
	require.NoError(t, err)
	require.NoError(t, back.Delete(model))
	x, err := fleet.New(fleet.Config{Backend: back, Model: model})
	require.NoError(t, err)
	for _, name := range []string{"a", "p1", "p2", "p3"} {
		require.NoError(t, x.Heartbeat(name))
	}
	require.NoError(t, x.Apply("a", []paged.Event{fleettest.Stored(1, paged.Host, 1), fleettest.Stored(2, paged.Host, 1)}))
	require.NoError(t, x.Apply("b", []paged.Event{fleettest.Stored(1, paged.Device, 1)}))
	ks := a157Entries(t, c, model)
	require.Len(t, ks["b"], 1)
	require.Len(t, ks["s"], 2, "the sets of a and b")
	require.Len(t, ks["c"], 1, "a's copy counts")
	for _, k := range append(append(ks["b"], ks["s"]...), ks["c"]...) {
		ttl, err := c.PTTL(context.Background(), k).Result()
		require.NoError(t, err)
		require.Greater(t, ttl, 59*time.Minute, "key %q", k)
	}
}

// Delete takes the model's keys only: a model named with SCAN's glob
// characters does not take the keys of the models its name would match
// as a pattern (M4500).
func TestAudit157DeleteEscapesGlobs(t *testing.T) {
	addr := redisAddr(t)
	c := newClient(t, addr)
	other := backend(t, addr, "audit157-gx")
	require.NoError(t, other.Attach("audit157-gx", 4))
	_, _, err := other.Register("a", fleet.StreamState{Gen: 1})
	require.NoError(t, err)
	glob := backend(t, addr, "audit157-g?")
	require.NoError(t, glob.Attach("audit157-g?", 4))
	for _, model := range []string{"audit157-g*", "audit157-g?", "audit157-g[x]"} {
		require.NoError(t, glob.Delete(model))
	}
	n, err := c.Exists(context.Background(), testPrefix+":{audit157-gx}:epoch").Result()
	require.NoError(t, err)
	require.EqualValues(t, 1, n, "Delete of a glob took another model's index")
	_, states, err := other.LookupAll(nil, 1, nil, nil)
	require.NoError(t, err)
	require.Equal(t, []fleet.StreamState{{Gen: 1}}, states)
	require.NoError(t, other.Delete("audit157-gx"))
}

// A lookup that finds servers another router registered reads their
// states in a second round trip and remembers them: the next lookup is
// one round trip again, as Lookup's doc says (M4508: every lookup asked
// for the new servers' states again).
func TestAudit157LookupRemembersServersRegisteredElsewhere(t *testing.T) {
	addr := redisAddr(t)
	const model = "audit157-elsewhere"
	r, _ := a82Backend(t, addr, model, redisindex.Config{})
	require.NoError(t, r.Attach(model, 8))
	other, h := a82Backend(t, addr, model+"-unused", redisindex.Config{})
	require.NoError(t, other.Attach(model, 8))
	for _, name := range []string{"a", "b"} {
		_, _, err := r.Register(name, fleet.StreamState{Gen: 1})
		require.NoError(t, err)
	}
	h.sent()
	for i, want := range [][]string{{"mget", "mget"}, {"mget"}, {"mget"}} {
		_, states, err := other.LookupAll(fleettest.Hs(1, 2), 1, nil, nil)
		require.NoError(t, err)
		require.Equal(t, []fleet.StreamState{{Gen: 1}, {Gen: 1}}, states, "lookup %d", i)
		require.Equal(t, want, h.sent(), "lookup %d", i)
	}
}
