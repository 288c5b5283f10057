package redisindex_test

import (
	"context"
	"errors"
	"strings"
	"sync"
	"testing"

	"github.com/redis/go-redis/v9"
	"github.com/stretchr/testify/require"

	"github.com/pagedkv/pagedkv/fleet"
	"github.com/pagedkv/pagedkv/fleet/fleettest"
	"github.com/pagedkv/pagedkv/fleet/redisindex"
	"github.com/pagedkv/pagedkv/paged"
)

// The thirty-sixth mutation round (docs/testing.md): the Redis backend's
// Go side and its scripts.

// Config.Prefix defaults to "pagedkv", as documented: an index attached
// with the zero Config lives under pagedkv:{model}: (M1612).
func TestAudit82DefaultPrefix(t *testing.T) {
	addr := redisAddr(t)
	c := newClient(t, addr)
	r, err := redisindex.New(c, redisindex.Config{})
	require.NoError(t, err)
	const model = "audit82-default-prefix"
	require.NoError(t, r.Delete(model))
	t.Cleanup(func() { r.Delete(model) })
	require.NoError(t, r.Attach(model, 4))
	n, err := c.Exists(context.Background(), "pagedkv:{"+model+"}:epoch").Result()
	require.NoError(t, err)
	require.EqualValues(t, 1, n, "no epoch key under the default prefix")
}

// A router joining an index made for another server bound is refused
// with ErrInvalid naming the bound, and the index keeps its own (M1616).
func TestAudit82AttachRefusesAnotherBound(t *testing.T) {
	addr := redisAddr(t)
	const model = "audit82-bound"
	first := backend(t, addr, model)
	require.NoError(t, first.Attach(model, 4))
	second := attach(t, addr)
	err := second.Attach(model, 8)
	require.ErrorIs(t, err, fleet.ErrInvalid)
	require.Contains(t, err.Error(), "made for 4 servers")
	_, _, err = second.Register("a", fleet.StreamState{})
	require.ErrorIs(t, err, fleet.ErrInvalid, "the refused backend is not attached")
	require.NoError(t, second.Attach(model, 4))
	_, _, err = second.Register("a", fleet.StreamState{})
	require.NoError(t, err)
}

// After an index loss the backend attaches afresh and knows no server
// of the lost index: a lookup reports the states of the servers
// registered in the new one only (M1617).
func TestAudit82AttachAfterLossForgetsServers(t *testing.T) {
	addr := redisAddr(t)
	const model = "audit82-loss"
	r := backend(t, addr, model)
	require.NoError(t, r.Attach(model, 8))
	for _, name := range []string{"a", "b", "c"} {
		_, _, err := r.Register(name, fleet.StreamState{Gen: 1})
		require.NoError(t, err)
	}
	_, states, err := r.LookupAll(nil, 1, nil, nil)
	require.NoError(t, err)
	require.Len(t, states, 3)
	require.NoError(t, r.Delete(model))
	_, _, err = r.LookupAll(nil, 1, nil, nil)
	require.ErrorIs(t, err, fleet.ErrIndexLost)
	require.NoError(t, r.Attach(model, 8))
	_, _, err = r.Register("d", fleet.StreamState{Gen: 5})
	require.NoError(t, err)
	_, states, err = r.LookupAll(nil, 1, nil, nil)
	require.NoError(t, err)
	require.Equal(t, []fleet.StreamState{{Gen: 5}}, states)
}

// a82Hook counts the commands a client sends and can fail the script
// calls after the first few (a writer that dies half way through a run).
type a82Hook struct {
	mu       sync.Mutex
	cmds     []string
	scripts  int // script calls seen
	failFrom int // fail script calls from this one on (1-based; 0: never)
}

func (h *a82Hook) DialHook(next redis.DialHook) redis.DialHook { return next }

func (h *a82Hook) ProcessHook(next redis.ProcessHook) redis.ProcessHook {
	return func(ctx context.Context, cmd redis.Cmder) error {
		h.mu.Lock()
		name := cmd.Name()
		h.cmds = append(h.cmds, name)
		fail := false
		if name == "evalsha" || name == "eval" {
			h.scripts++
			fail = h.failFrom > 0 && h.scripts >= h.failFrom
		}
		h.mu.Unlock()
		if fail {
			err := errors.New("a82: the writer died")
			cmd.SetErr(err)
			return err
		}
		return next(ctx, cmd)
	}
}

func (h *a82Hook) ProcessPipelineHook(next redis.ProcessPipelineHook) redis.ProcessPipelineHook {
	return next
}

// sent returns the commands sent since the last call.
func (h *a82Hook) sent() []string {
	h.mu.Lock()
	defer h.mu.Unlock()
	out := h.cmds
	h.cmds = nil
	return out
}

// a82Backend is backend with a hook on its client.
func a82Backend(t *testing.T, addr, model string, cfg redisindex.Config) (*redisindex.Backend, *a82Hook) {
	c := newClient(t, addr)
	h := &a82Hook{}
	c.AddHook(h)
	cfg.Prefix = testPrefix
	r, err := redisindex.New(c, cfg)
	require.NoError(t, err)
	require.NoError(t, r.Delete(model))
	return r, h
}

// Lookup is one round trip once the backend knows the servers, whether
// it registered them itself or read them with Servers (M1622, M1624: it
// knew one server too few and asked the last one's state again, every
// lookup).
func TestAudit82LookupIsOneRoundTrip(t *testing.T) {
	addr := redisAddr(t)
	const model = "audit82-trips"
	r, h := a82Backend(t, addr, model, redisindex.Config{})
	require.NoError(t, r.Attach(model, 8))
	for _, name := range []string{"a", "b"} {
		_, _, err := r.Register(name, fleet.StreamState{Gen: 1})
		require.NoError(t, err)
	}
	h.sent()
	for range 2 {
		_, states, err := r.LookupAll(fleettest.Hs(1, 2), 1, nil, nil)
		require.NoError(t, err)
		require.Len(t, states, 2)
		require.Equal(t, []string{"mget"}, h.sent(), "a lookup after Register")
	}

	_, _, err := r.Register("c", fleet.StreamState{Gen: 2})
	require.NoError(t, err)
	other, oh := a82Backend(t, addr, model+"-unused", redisindex.Config{})
	require.NoError(t, other.Attach(model, 8))
	srv, err := other.Servers(nil)
	require.NoError(t, err)
	require.Len(t, srv, 3)
	oh.sent()
	for range 2 {
		_, states, err := other.LookupAll(fleettest.Hs(1), 1, nil, nil)
		require.NoError(t, err)
		require.Len(t, states, 3)
		require.Equal(t, []string{"mget"}, oh.sent(), "a lookup after Servers")
	}
}

// A server ID at the bound is refused before anything is sent, by
// SetLayout, Rename and Update alike, with an error saying it is out of
// range (M1625-M1627: Redis was asked, and answered that no such server
// is registered).
func TestAudit82ServerAtTheBoundSendsNothing(t *testing.T) {
	addr := redisAddr(t)
	const model = "audit82-bound-id"
	r, h := a82Backend(t, addr, model, redisindex.Config{})
	require.NoError(t, r.Attach(model, 4))
	_, st, err := r.Register("a", fleet.StreamState{Gen: 1})
	require.NoError(t, err)
	next := st
	next.Gen++
	renamed := st
	renamed.Life++
	h.sent()
	for _, c := range []struct {
		name string
		call func() error
	}{
		{"SetLayout", func() error { _, err := r.SetLayout(4, st, "x", next); return err }},
		{"Rename", func() error { _, err := r.Rename(4, st, "b", renamed); return err }},
		{"Update", func() error {
			_, err := r.Update(4, st, next, false, []paged.Event{{Seq: 1, Kind: paged.BlockStored, Hashes: fleettest.Hs(1)}})
			return err
		}},
	} {
		err := c.call()
		require.ErrorIs(t, err, fleet.ErrInvalid, c.name)
		require.Contains(t, err.Error(), "out of range", c.name)
		require.Empty(t, h.sent(), "%s sent commands", c.name)
	}
}

// A run longer than MaxOps goes in several script calls, each moving the
// server's state to an intermediate one marked partial and dirty and
// tagged with its call's number: a writer that dies after the first call
// leaves the first of them, which every router reads as partial (and
// takes over through its tag), never as a state some other writer could
// also have left (M1629, M1630).
func TestAudit82DeadWriterLeavesATaggedPartialState(t *testing.T) {
	addr := redisAddr(t)
	const model = "audit82-dead-writer"
	r, h := a82Backend(t, addr, model, redisindex.Config{MaxOps: 2})
	require.NoError(t, r.Attach(model, 4))
	_, st, err := r.Register("a", fleet.StreamState{Gen: 1})
	require.NoError(t, err)
	// One call first, so that Redis holds the script and each call of
	// the run is one EVALSHA.
	warm := st
	warm.Gen = 2
	st, err = r.Update(0, st, warm, false, []paged.Event{{Seq: 1, Kind: paged.BlockStored, Hashes: fleettest.Hs(9)}})
	require.NoError(t, err)
	next := st
	next.Gen, next.Last = 3, 2
	h.failFrom = h.scripts + 2 // the second call of the run fails
	ev := []paged.Event{{Seq: 2, Kind: paged.BlockStored, Hashes: fleettest.Hs(1, 2, 3, 4, 5)}}
	_, err = r.Update(0, st, next, false, ev)
	require.Error(t, err)
	h.failFrom = 0
	srv, err := r.Servers(nil)
	require.NoError(t, err)
	require.Len(t, srv, 1)
	left := srv[0].State
	require.True(t, left.Partial, "%+v", left)
	require.True(t, left.Dirty, "%+v", left)
	require.Equal(t, next.Gen, left.Gen)
	require.True(t, strings.HasSuffix(left.String(), " ~1"), "untagged: %q", left.String())

	// Another router takes over from the state it read, tag included.
	other, _ := a82Backend(t, addr, model+"-unused", redisindex.Config{})
	require.NoError(t, other.Attach(model, 4))
	done := next
	done.Gen = 4
	_, err = other.Update(0, left, done, true, nil)
	require.NoError(t, err)
	srv, err = other.Servers(nil)
	require.NoError(t, err)
	require.Equal(t, done, srv[0].State)
}

// Delete removes every key of the model, the last of its batches too
// when it holds a single key (M1619).
func TestAudit82DeleteTakesALoneKey(t *testing.T) {
	addr := redisAddr(t)
	c := newClient(t, addr)
	const model = "audit82-lone"
	r := backend(t, addr, model)
	key := testPrefix + ":{" + model + "}:stray"
	ctx := context.Background()
	require.NoError(t, c.Set(ctx, key, "x", 0).Err())
	require.NoError(t, r.Delete(model))
	n, err := c.Exists(ctx, key).Result()
	require.NoError(t, err)
	require.Zero(t, n, "the model's only key outlived Delete")
}
