package redisindex_test

import (
	"bufio"
	"context"
	"fmt"
	"math/rand/v2"
	"net"
	"os"
	"os/exec"
	"strings"
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

const testPrefix = "pagedkv-test"

// redisAddr returns the test Redis (see .ci/with-redis) or skips.
func redisAddr(t testing.TB) string {
	addr := os.Getenv("PAGEDKV_REDIS_ADDR")
	if addr == "" {
		t.Skip("PAGEDKV_REDIS_ADDR unset: run under .ci/with-redis for the Redis tests")
	}
	return addr
}

// newClient returns a client of the Redis at addr, closed when the test
// ends.
func newClient(t testing.TB, addr string) *redis.Client {
	c := redis.NewClient(&redis.Options{Addr: addr, MaxRetries: -1})
	t.Cleanup(func() { c.Close() })
	return c
}

// backend returns a Backend on its own client, after deleting what an
// earlier run left under model.
func backend(t testing.TB, addr, model string) *redisindex.Backend {
	c := newClient(t, addr)
	r, err := redisindex.New(c, redisindex.Config{Prefix: testPrefix})
	require.NoError(t, err)
	require.NoError(t, r.Delete(model))
	return r
}

// attach returns a second router's Backend on the same model, deleting
// nothing.
func attach(t testing.TB, addr string) *redisindex.Backend {
	c := newClient(t, addr)
	r, err := redisindex.New(c, redisindex.Config{Prefix: testPrefix})
	require.NoError(t, err)
	return r
}

func lookup(t *testing.T, x *fleet.Index, ids ...int) []fleet.Score {
	t.Helper()
	sc, err := x.Lookup(fleettest.Hs(ids...), nil)
	require.NoError(t, err)
	return sc
}

func TestRedisMatchesModel(t *testing.T) {
	addr := redisAddr(t)
	for seed := range uint64(3) {
		fleettest.CheckAgainstModel(t, backend(t, addr, fmt.Sprint("model-test-", seed)), seed, 600)
	}
}

func TestRedisCountsCopies(t *testing.T) {
	fleettest.CheckCopies(t, backend(t, redisAddr(t), "copies"))
}

func TestRedisLayouts(t *testing.T) {
	fleettest.CheckLayouts(t, backend(t, redisAddr(t), "layouts"), "layouts")
}

func TestRedisAndMemoryGiveIdenticalScores(t *testing.T) {
	xr, err := fleet.New(fleet.Config{Backend: backend(t, redisAddr(t), "identical"), Model: "identical"})
	require.NoError(t, err)
	xm, err := fleet.New(fleet.Config{Model: "identical"})
	require.NoError(t, err)
	r := fleettest.NewStream(7, "a", "b", "c", "d")
	var sr, sm []fleet.Score
	for step := range 800 {
		s, evs := r.Batch()
		require.NoError(t, xr.Apply(s, evs))
		require.NoError(t, xm.Apply(s, evs))
		start := r.Rng.IntN(6)
		req := fleettest.Hs(start, start+1, start+2, start+3, start+4, start+5)
		sr, err = xr.Lookup(req, sr[:0])
		require.NoError(t, err)
		sm, err = xm.Lookup(req, sm[:0])
		require.NoError(t, err)
		require.Equal(t, sm, sr, "step %d", step)
	}
}

// TestRoutersShareOneIndex: a second router attaching to the same model
// deletes nothing, sees the first's servers and entries, and the two
// apply one stream without applying an event twice.
func TestRoutersShareOneIndex(t *testing.T) {
	addr := redisAddr(t)
	a, err := fleet.New(fleet.Config{Backend: backend(t, addr, "shared"), Model: "shared"})
	require.NoError(t, err)
	require.NoError(t, a.Apply("s0", []paged.Event{fleettest.Stored(1, paged.Device, 1, 2)}))
	b, err := fleet.New(fleet.Config{Backend: attach(t, addr), Model: "shared"})
	require.NoError(t, err)
	sc := lookup(t, b, 1, 2)
	require.Len(t, sc, 1)
	assert.Equal(t, fleet.Score{Name: "s0", Blocks: 2, Device: 2, Affinity: 2, Value: 2}, sc[0])
	// Both routers follow s0's stream: each event is applied once, so
	// the removal below is not undone by a second store.
	evs := []paged.Event{fleettest.Stored(2, paged.Device, 3), {Seq: 3, Kind: paged.BlockRemoved, Hashes: fleettest.Hs(3)}}
	require.NoError(t, a.Apply("s0", evs))
	require.NoError(t, b.Apply("s0", evs[:1]))
	require.NoError(t, b.Apply("s0", evs))
	assert.Equal(t, 2, lookup(t, a, 1, 2, 3)[0].Blocks)
	assert.Equal(t, uint64(3), b.Stats().Duplicates, "b skipped what a applied")
	assert.Equal(t, uint64(1), b.Stats().Conflicts, "b's first write found a's")
	// A server b registers is seen by a.
	require.NoError(t, b.Apply("s1", []paged.Event{fleettest.Stored(1, paged.Host, 1)}))
	sc = lookup(t, a, 1)
	require.Len(t, sc, 2)
	assert.Equal(t, fleet.Score{Server: 1, Name: "s1", Blocks: 1, Affinity: 1, Value: 0.5}, sc[1])
	st, err := a.Servers(nil)
	require.NoError(t, err)
	assert.Equal(t, uint64(3), st[0].Seq)
}

func TestRedisSilentServerExpires(t *testing.T) {
	addr := redisAddr(t)
	now := time.Unix(5000, 0)
	clk := func() time.Time { return now }
	x, err := fleet.New(fleet.Config{Backend: backend(t, addr, "ttl"), Model: "ttl", TTL: time.Second, Now: clk})
	require.NoError(t, err)
	require.NoError(t, x.Apply("a", []paged.Event{fleettest.Stored(1, paged.Device, 1, 2)}))
	require.NoError(t, x.Apply("b", []paged.Event{fleettest.Stored(1, paged.Device, 1, 2)}))
	now = now.Add(900 * time.Millisecond)
	require.NoError(t, x.Apply("b", []paged.Event{fleettest.Stored(2, paged.Host, 3)}))
	now = now.Add(200 * time.Millisecond)
	sc := lookup(t, x, 1, 2, 3)
	assert.Equal(t, 0, sc[0].Blocks)
	assert.True(t, sc[0].Partial)
	assert.Equal(t, 3, sc[1].Blocks)
	// The expired server's keys are gone from Redis, not just hidden.
	c := redis.NewClient(&redis.Options{Addr: addr})
	defer c.Close()
	keys, err := c.Keys(context.Background(), testPrefix+":{ttl}:*:s:*").Result()
	require.NoError(t, err)
	assert.Equal(t, []string{keys[0][:len(keys[0])-1] + "1"}, keys, "only b's set is left")
}

// redisProcess is a redis-server of the test's own, so it can be
// restarted.
type redisProcess struct {
	t    *testing.T
	port string
	cmd  *exec.Cmd
}

// ownRedis starts a redis-server on a free loopback port, or skips.
func ownRedis(t *testing.T) *redisProcess {
	if _, err := exec.LookPath("redis-server"); err != nil {
		t.Skip("redis-server not on PATH: install it (apt-get install redis-server) to run the restart tests")
	}
	l, err := net.Listen("tcp", "127.0.0.1:0")
	require.NoError(t, err)
	port := fmt.Sprint(l.Addr().(*net.TCPAddr).Port)
	l.Close()
	p := &redisProcess{t: t, port: port}
	p.start()
	t.Cleanup(p.stop)
	return p
}

func (p *redisProcess) addr() string { return "127.0.0.1:" + p.port }

func (p *redisProcess) start() {
	p.t.Helper()
	cmd := exec.Command("redis-server", "--bind", "127.0.0.1", "--port", p.port, "--save", "", "--appendonly", "no", "--dir", p.t.TempDir())
	out, err := cmd.StdoutPipe()
	require.NoError(p.t, err)
	require.NoError(p.t, cmd.Start())
	p.cmd = cmd
	// Wait for the server's own readiness line instead of polling.
	sc := bufio.NewScanner(out)
	for sc.Scan() {
		if strings.Contains(sc.Text(), "Ready to accept connections") {
			go func() {
				for sc.Scan() {
				}
			}()
			return
		}
	}
	p.t.Fatalf("redis-server on port %s exited before it was ready", p.port)
}

func (p *redisProcess) stop() {
	if p.cmd != nil {
		p.cmd.Process.Kill()
		p.cmd.Wait()
		p.cmd = nil
	}
}

// replay drives real managers with random requests over shared prefixes
// and feeds their events to a reference in-memory index and to routers.
type replay struct {
	t        *testing.T
	rng      *rand.Rand
	managers []*paged.Manager
	names    []string
	live     [][]paged.SeqID
	ref      *fleet.Index
	evs      []paged.Event
}

func newReplay(t *testing.T, servers int) *replay {
	r := &replay{t: t, rng: rand.New(rand.NewPCG(3, 4))}
	ref, err := fleet.New(fleet.Config{Model: "ref"})
	require.NoError(t, err)
	r.ref = ref
	for i := range servers {
		m, err := paged.New(paged.Config{BlockSize: 4, NumBlocks: 64, HostBlocks: 16, Events: 1 << 12})
		require.NoError(t, err)
		r.managers = append(r.managers, m)
		r.names = append(r.names, fmt.Sprint("s", i))
		r.live = append(r.live, nil)
	}
	return r
}

// request is a random prompt: a chain of 1-6 blocks over a few shared
// roots, so servers hold overlapping prefixes.
func (r *replay) request() []paged.Hash {
	n := 1 + r.rng.IntN(6)
	root := r.rng.IntN(4)
	out := make([]paged.Hash, n)
	for k := range n {
		out[k] = fleettest.H(root*100 + k*(1+r.rng.IntN(2)))
	}
	return out
}

// step admits or frees one request on a random server and returns that
// server's new events; the reference index takes them.
func (r *replay) step() (string, []paged.Event) {
	i := r.rng.IntN(len(r.managers))
	m := r.managers[i]
	if len(r.live[i]) > 3 || (len(r.live[i]) > 0 && r.rng.IntN(2) == 0) {
		k := r.rng.IntN(len(r.live[i]))
		require.NoError(r.t, m.Free(r.live[i][k]))
		r.live[i] = append(r.live[i][:k], r.live[i][k+1:]...)
	} else {
		req := r.request()
		id, _, err := m.CreateFromHashes(req, len(req)*4+1, &paged.SeqOptions{AllowFullHit: true})
		if err == nil {
			r.live[i] = append(r.live[i], id)
		}
	}
	r.evs = m.DrainEvents(r.evs[:0])
	require.NoError(r.t, r.ref.Apply(r.names[i], r.evs))
	return r.names[i], r.evs
}

// requireSame requires every router's scores to equal the reference's
// for random requests.
func (r *replay) requireSame(routers ...*fleet.Index) {
	r.t.Helper()
	for range 50 {
		req := r.request()
		want, err := r.ref.Lookup(req, nil)
		require.NoError(r.t, err)
		for k, x := range routers {
			got, err := x.Lookup(req, nil)
			require.NoError(r.t, err)
			require.Len(r.t, got, len(want))
			byName := map[string]fleet.Score{}
			for _, s := range got {
				byName[s.Name] = s
			}
			for _, w := range want {
				g := byName[w.Name]
				assert.Equal(r.t, [3]any{w.Blocks, w.Device, w.Partial}, [3]any{g.Blocks, g.Device, g.Partial}, "router %d server %s", k, w.Name)
			}
		}
	}
}

// TestRedisRestartWithTwoRoutersRecoversFromSnapshots kills the Redis two
// routers share in the middle of a replay of real managers' events and
// restarts it empty. The routers notice the loss and mark every server
// partial; each manager's Snapshot, given to Resync, rebuilds its server
// exactly, after which both routers answer like an in-memory index that
// never lost anything, and keep doing so as the replay goes on.
func TestRedisRestartWithTwoRoutersRecoversFromSnapshots(t *testing.T) {
	p := ownRedis(t)
	a, err := fleet.New(fleet.Config{Backend: attach(t, p.addr()), Model: "restart"})
	require.NoError(t, err)
	b, err := fleet.New(fleet.Config{Backend: attach(t, p.addr()), Model: "restart"})
	require.NoError(t, err)
	r := newReplay(t, 4)
	// Each router follows half of the servers' streams.
	apply := func(name string, evs []paged.Event) error {
		if name == "s0" || name == "s1" {
			return a.Apply(name, evs)
		}
		return b.Apply(name, evs)
	}
	for range 300 {
		require.NoError(t, apply(r.step()))
	}
	r.requireSame(a, b)

	p.stop()
	for range 20 {
		require.Error(t, apply(r.step()), "events while Redis is down fail")
	}
	_, err = a.Lookup(r.request(), nil)
	require.Error(t, err, "lookups while Redis is down fail; they do not answer from nothing")

	p.start()
	// Redis is back, empty. Events go on; the routers notice the loss.
	for range 20 {
		require.NoError(t, apply(r.step()))
	}
	assert.Equal(t, uint64(1), a.Stats().Losses)
	assert.Equal(t, uint64(1), b.Stats().Losses)
	sc, err := b.Lookup(r.request(), nil)
	require.NoError(t, err)
	require.Len(t, sc, 4)
	for _, s := range sc {
		assert.True(t, s.Partial, "%s must be partial after the loss", s.Name)
	}

	// Each server's snapshot, through either router.
	var snap paged.Snapshot
	for i, m := range r.managers {
		m.Snapshot(&snap)
		x := a
		if i%2 == 1 {
			x = b
		}
		require.NoError(t, x.Resync(r.names[i], &snap))
	}
	r.requireSame(a, b)
	// The events the managers queued before their snapshot are replays;
	// the stream goes on exactly.
	for range 200 {
		require.NoError(t, apply(r.step()))
	}
	r.requireSame(a, b)
}

// TestRedisLookupSeesFlush covers a loss noticed by a lookup rather than
// by an apply: the answer says partial for everyone instead of zero
// scores that look exact.
func TestRedisLookupSeesFlush(t *testing.T) {
	addr := redisAddr(t)
	x, err := fleet.New(fleet.Config{Backend: backend(t, addr, "flush"), Model: "flush"})
	require.NoError(t, err)
	require.NoError(t, x.Apply("a", []paged.Event{fleettest.Stored(1, paged.Device, 1)}))
	c := redis.NewClient(&redis.Options{Addr: addr})
	defer c.Close()
	require.NoError(t, c.Del(context.Background(), testPrefix+":{flush}:epoch").Err())
	sc := lookup(t, x, 1)
	assert.Equal(t, fleet.Score{Name: "a", Partial: true}, sc[0])
	require.NoError(t, x.Apply("a", []paged.Event{fleettest.Stored(2, paged.Device, 1)}))
	sc = lookup(t, x, 1)
	assert.Equal(t, 1, sc[0].Blocks)
	assert.True(t, sc[0].Partial)
}

func TestRedisKeyTTLIsSetAndRefreshed(t *testing.T) {
	addr := redisAddr(t)
	c := redis.NewClient(&redis.Options{Addr: addr})
	defer c.Close()
	back, err := redisindex.New(c, redisindex.Config{Prefix: testPrefix, KeyTTL: time.Hour})
	require.NoError(t, err)
	require.NoError(t, back.Delete("keyttl"))
	x, err := fleet.New(fleet.Config{Backend: back, Model: "keyttl"})
	require.NoError(t, err)
	require.NoError(t, x.Apply("a", []paged.Event{fleettest.Stored(1, paged.Device, 1)}))
	ctx := context.Background()
	keys, err := c.Keys(ctx, testPrefix+":{keyttl}:*:[bs]:*").Result()
	require.NoError(t, err)
	require.Len(t, keys, 2, "one block key and one server set")
	for _, key := range keys {
		ttl, err := c.PTTL(ctx, key).Result()
		require.NoError(t, err)
		assert.Greater(t, ttl, 59*time.Minute, "key %q", key)
	}
	_, err = redisindex.New(c, redisindex.Config{KeyTTL: -1})
	require.ErrorIs(t, err, fleet.ErrInvalid)
	_, err = redisindex.New(nil, redisindex.Config{})
	require.ErrorIs(t, err, fleet.ErrInvalid)
}

// TestRedisSplitsLongRuns: a run longer than MaxOps goes in several
// script calls and ends in the same state as one call.
func TestRedisSplitsLongRuns(t *testing.T) {
	addr := redisAddr(t)
	c := redis.NewClient(&redis.Options{Addr: addr})
	defer c.Close()
	back, err := redisindex.New(c, redisindex.Config{Prefix: testPrefix, MaxOps: 3})
	require.NoError(t, err)
	require.NoError(t, back.Delete("split"))
	x, err := fleet.New(fleet.Config{Backend: back, Model: "split"})
	require.NoError(t, err)
	require.NoError(t, x.Apply("a", []paged.Event{fleettest.Stored(1, paged.Device, 1, 2, 3, 4, 5, 6, 7), fleettest.Stored(2, paged.Host, 8)}))
	sc := lookup(t, x, 1, 2, 3, 4, 5, 6, 7, 8)
	assert.Equal(t, fleet.Score{Name: "a", Blocks: 8, Device: 7, Affinity: 8, Value: 7.5}, sc[0])
}

// BenchmarkRedisLookup64 measures lookups of one 64-block request over 8
// servers: one MGET of 74 keys.
func BenchmarkRedisLookup64(b *testing.B) {
	fleettest.BenchLookup(b, backend(b, redisAddr(b), "bench"))
}

// BenchmarkRedisApply measures block events: batches of 8 events of 16
// blocks, alternately storing and removing the same 128 blocks.
func BenchmarkRedisApply(b *testing.B) {
	fleettest.BenchApply(b, backend(b, redisAddr(b), "bench"))
}
