package redisindex

import (
	"math"
	"testing"
	"time"

	"github.com/redis/go-redis/v9"
	"github.com/stretchr/testify/assert"
	"github.com/stretchr/testify/require"

	"github.com/pagedkv/pagedkv/fleet"
	"github.com/pagedkv/pagedkv/paged"
)

// TestHostileNew: a nil client, typed or not, and out-of-range settings are
// refused with fleet.ErrInvalid, before anything is sent.
func TestHostileNew(t *testing.T) {
	var nilClient *redis.Client
	for name, tc := range map[string]struct {
		c   redis.UniversalClient
		cfg Config
	}{
		"nil client":       {nil, Config{}},
		"typed nil client": {nilClient, Config{}},
		"negative KeyTTL":  {redis.NewClient(&redis.Options{Addr: "127.0.0.1:1"}), Config{KeyTTL: -time.Second}},
		"negative MaxOps":  {redis.NewClient(&redis.Options{Addr: "127.0.0.1:1"}), Config{MaxOps: -1}},
	} {
		r, err := New(tc.c, tc.cfg)
		require.ErrorIs(t, err, fleet.ErrInvalid, name)
		assert.Nil(t, r, name)
		if tc.c != nil && tc.c != redis.UniversalClient(nilClient) {
			tc.c.Close()
		}
	}
	// A New Index over an unreachable Redis fails with an error, no panic.
	c := redis.NewClient(&redis.Options{Addr: "127.0.0.1:1", DialTimeout: 100 * time.Millisecond, MaxRetries: -1})
	defer c.Close()
	b, err := New(c, Config{})
	require.NoError(t, err)
	_, err = fleet.New(fleet.Config{Backend: b})
	require.Error(t, err)
}

// TestBadInputAttach: Attach refuses, with fleet.ErrInvalid and before
// anything reaches Redis, a server bound outside fleet.Config.MaxServers'
// range and a Backend not made by New. It used to create the model's
// index for 0 or -1 servers, which every later Attach with a valid bound
// then refused, and to panic on the zero Backend.
func TestBadInputAttach(t *testing.T) {
	// An unreachable Redis: a call that got as far as sending would fail
	// with a network error, not ErrInvalid.
	c := redis.NewClient(&redis.Options{Addr: "127.0.0.1:1", DialTimeout: 100 * time.Millisecond, MaxRetries: -1})
	defer c.Close()
	r, err := New(c, Config{})
	require.NoError(t, err)
	for _, n := range []int{0, -1, 1<<16 + 1, min(1<<40, math.MaxInt)} {
		require.ErrorIs(t, r.Attach("m", n), fleet.ErrInvalid, "maxServers %d", n)
	}
	var zero Backend
	require.ErrorIs(t, zero.Attach("m", 4), fleet.ErrInvalid)
	var nilBackend *Backend
	require.ErrorIs(t, nilBackend.Attach("m", 4), fleet.ErrInvalid)
}

// TestBadInputUpdateEvents: Update refuses events of an unknown kind or
// medium with fleet.ErrInvalid before sending anything (it used to write
// a block of an unknown medium as a device block and skip unknown kinds,
// then move the server's state on).
func TestBadInputUpdateEvents(t *testing.T) {
	c := redis.NewClient(&redis.Options{Addr: "127.0.0.1:1", DialTimeout: 100 * time.Millisecond, MaxRetries: -1})
	defer c.Close()
	r, err := New(c, Config{})
	require.NoError(t, err)
	r.max = 4 // as Attach would set it; nothing here reaches Redis
	h := make([]paged.Hash, 1)
	for name, ev := range map[string]paged.Event{
		"medium 9":           {Seq: 1, Kind: paged.BlockStored, Medium: 9, Hashes: h},
		"kind 99":            {Seq: 1, Kind: 99, Hashes: h},
		"kind 0":             {Seq: 1, Hashes: h},
		"move from medium 7": {Seq: 1, Kind: paged.BlockMoved, Medium: paged.Host, From: 7, Hashes: h},
	} {
		_, err := r.Update(0, fleet.StreamState{}, fleet.StreamState{Started: true, Last: 1}, false, []paged.Event{ev})
		require.ErrorIs(t, err, fleet.ErrInvalid, name)
	}
}

// TestBadInputBeforeAttach: every call but Attach on a Backend that has
// not joined an index is refused with fleet.ErrInvalid, as Memory refuses
// it, before anything is sent (the client here reaches no server).
func TestBadInputBeforeAttach(t *testing.T) {
	c := redis.NewClient(&redis.Options{Addr: "127.0.0.1:1", DialTimeout: 100 * time.Millisecond, MaxRetries: -1})
	defer c.Close()
	b, err := New(c, Config{})
	require.NoError(t, err)
	var zero Backend
	for _, r := range []*Backend{b, &zero, nil} {
		_, _, err = r.Register("a", fleet.StreamState{})
		assert.ErrorIs(t, err, fleet.ErrInvalid, "Register")
		_, err = r.Servers(nil)
		assert.ErrorIs(t, err, fleet.ErrInvalid, "Servers")
		_, err = r.Update(0, fleet.StreamState{}, fleet.StreamState{}, false, nil)
		assert.ErrorIs(t, err, fleet.ErrInvalid, "Update")
		_, _, err = r.Lookup(make([]paged.Hash, 1), 1, nil, nil)
		assert.ErrorIs(t, err, fleet.ErrInvalid, "Lookup")
	}
}
