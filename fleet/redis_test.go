package fleet

import (
	"bufio"
	"context"
	"fmt"
	"math/rand/v2"
	"net"
	"os/exec"
	"strings"
	"testing"
	"time"

	"github.com/redis/go-redis/v9"
	"github.com/stretchr/testify/assert"
	"github.com/stretchr/testify/require"

	"github.com/pagedkv/pagedkv/internal/redistest"
	"github.com/pagedkv/pagedkv/paged"
)

// redisAddr returns the test Redis (see .ci/with-redis) or skips.
func redisAddr(t testing.TB) string { return redistest.Addr(t) }

func redisBackend(t testing.TB, addr string) *Redis {
	c := redis.NewClient(&redis.Options{Addr: addr, MaxRetries: -1})
	t.Cleanup(func() { c.Close() })
	r, err := NewRedis(c, RedisConfig{Prefix: "pagedkv-test"})
	require.NoError(t, err)
	return r
}

func TestRedisMatchesModel(t *testing.T) {
	addr := redisAddr(t)
	for seed := range uint64(3) {
		checkAgainstModel(t, redisBackend(t, addr), seed, 600)
	}
}

func TestRedisAndMemoryGiveIdenticalScores(t *testing.T) {
	rb := redisBackend(t, redisAddr(t))
	xr, err := New(Config{Backend: rb, Model: "identical"})
	require.NoError(t, err)
	xm, err := New(Config{Model: "identical"})
	require.NoError(t, err)
	r := &randomStream{rng: rand.New(rand.NewPCG(7, 7)), servers: []string{"a", "b", "c", "d"}, seq: map[string]uint64{}}
	var sr, sm []Score
	for step := range 800 {
		s, evs := r.batch()
		require.NoError(t, xr.Apply(s, evs))
		require.NoError(t, xm.Apply(s, evs))
		start := r.rng.IntN(6)
		req := hs(start, start+1, start+2, start+3, start+4, start+5)
		sr, err = xr.Lookup(req, sr[:0])
		require.NoError(t, err)
		sm, err = xm.Lookup(req, sm[:0])
		require.NoError(t, err)
		require.Equal(t, sm, sr, "step %d", step)
	}
}

func TestRedisSilentServerExpires(t *testing.T) {
	clk := &fakeClock{t: time.Unix(5000, 0)}
	x, err := New(Config{Backend: redisBackend(t, redisAddr(t)), Model: "ttl", TTL: time.Second, Now: clk.now})
	require.NoError(t, err)
	require.NoError(t, x.Apply("a", []paged.Event{stored(1, paged.Device, 1, 2)}))
	require.NoError(t, x.Apply("b", []paged.Event{stored(1, paged.Device, 1, 2)}))
	clk.t = clk.t.Add(900 * time.Millisecond)
	require.NoError(t, x.Apply("b", []paged.Event{stored(2, paged.Host, 3)}))
	clk.t = clk.t.Add(200 * time.Millisecond)
	sc := lookup(t, x, 1, 2, 3)
	assert.Equal(t, 0, sc[0].Blocks)
	assert.True(t, sc[0].Partial)
	assert.Equal(t, 3, sc[1].Blocks)
	// The expired server's keys are gone from Redis, not just hidden.
	c := redis.NewClient(&redis.Options{Addr: redisAddr(t)})
	defer c.Close()
	n, err := c.Exists(context.Background(), "pagedkv-test:{ttl}:s:0").Result()
	require.NoError(t, err)
	assert.Zero(t, n)
}

// redisProcess is a redis-server of the test's own, so it can be
// restarted.
type redisProcess struct {
	t    *testing.T
	port string
	cmd  *exec.Cmd
}

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

func TestRedisRestartMidReplay(t *testing.T) {
	redisAddr(t)
	if _, err := exec.LookPath("redis-server"); err != nil {
		t.Skip("redis-server not on PATH")
	}
	l, err := net.Listen("tcp", "127.0.0.1:0")
	require.NoError(t, err)
	port := fmt.Sprint(l.Addr().(*net.TCPAddr).Port)
	l.Close()
	p := &redisProcess{t: t, port: port}
	p.start()
	t.Cleanup(p.stop)

	x, err := New(Config{Backend: redisBackend(t, "127.0.0.1:"+port), Model: "restart"})
	require.NoError(t, err)
	m := newModel()
	apply := func(s string, evs ...paged.Event) error {
		m.apply(s, evs)
		return x.Apply(s, evs)
	}
	require.NoError(t, apply("a", stored(1, paged.Device, 1, 2, 3)))
	require.NoError(t, apply("b", stored(1, paged.Device, 1, 2)))
	assert.Equal(t, 3, lookup(t, x, 1, 2, 3)[0].Blocks)

	p.stop()
	require.Error(t, apply("a", stored(2, paged.Device, 4)), "events while Redis is down fail")
	_, err = x.Lookup(hs(1), nil)
	require.Error(t, err, "lookups while Redis is down fail; they do not answer from nothing")

	p.start()
	// Redis came back empty. The next batch finds the epoch gone, so the
	// index starts over: every server partial, rebuilt from new events.
	require.NoError(t, apply("b", stored(2, paged.Device, 5)))
	assert.Equal(t, uint64(1), x.Stats().Losses)
	sc := lookup(t, x, 1, 2)
	for _, s := range sc {
		assert.True(t, s.Partial, s.Name)
		assert.Zero(t, s.Blocks, s.Name)
	}
	assert.Equal(t, 1, lookup(t, x, 5)[1].Blocks)
	require.NoError(t, apply("a", stored(3, paged.Device, 6, 7)))
	assert.Equal(t, 2, lookup(t, x, 6, 7)[0].Blocks)
	// a resets its cache: it is exact again; b stays partial.
	require.NoError(t, apply("a", paged.Event{Seq: 4, Kind: paged.AllBlocksCleared}, stored(5, paged.Device, 1)))
	sc = lookup(t, x, 1)
	assert.False(t, sc[0].Partial)
	assert.Equal(t, 1, sc[0].Blocks)
	assert.True(t, sc[1].Partial)
}

// TestRedisLookupSeesFlush covers a loss noticed by a lookup rather than
// by an apply: the answer says partial for everyone instead of zero
// scores that look exact.
func TestRedisLookupSeesFlush(t *testing.T) {
	addr := redisAddr(t)
	x, err := New(Config{Backend: redisBackend(t, addr), Model: "flush"})
	require.NoError(t, err)
	require.NoError(t, x.Apply("a", []paged.Event{stored(1, paged.Device, 1)}))
	c := redis.NewClient(&redis.Options{Addr: addr})
	defer c.Close()
	require.NoError(t, c.Del(context.Background(), "pagedkv-test:{flush}:epoch").Err())
	sc := lookup(t, x, 1)
	assert.Equal(t, Score{Name: "a", Partial: true}, sc[0])
	require.NoError(t, x.Apply("a", []paged.Event{stored(2, paged.Device, 1)}))
	sc = lookup(t, x, 1)
	assert.Equal(t, 1, sc[0].Blocks)
	assert.True(t, sc[0].Partial)
}

func TestRedisKeyTTLIsSetAndRefreshed(t *testing.T) {
	addr := redisAddr(t)
	c := redis.NewClient(&redis.Options{Addr: addr})
	defer c.Close()
	back, err := NewRedis(c, RedisConfig{Prefix: "pagedkv-test", KeyTTL: time.Hour})
	require.NoError(t, err)
	x, err := New(Config{Backend: back, Model: "keyttl"})
	require.NoError(t, err)
	require.NoError(t, x.Apply("a", []paged.Event{stored(1, paged.Device, 1)}))
	ctx := context.Background()
	hash := h(1)
	for _, key := range []string{"pagedkv-test:{keyttl}:b:" + string(hash[:]), "pagedkv-test:{keyttl}:s:0"} {
		ttl, err := c.PTTL(ctx, key).Result()
		require.NoError(t, err)
		assert.Greater(t, ttl, 59*time.Minute, "key %q", key)
	}
	_, err = NewRedis(c, RedisConfig{KeyTTL: -1})
	require.ErrorIs(t, err, ErrInvalid)
	_, err = NewRedis(nil, RedisConfig{})
	require.ErrorIs(t, err, ErrInvalid)
}
