package redisindex

import (
	"testing"
	"time"

	"github.com/redis/go-redis/v9"
	"github.com/stretchr/testify/assert"
	"github.com/stretchr/testify/require"

	"github.com/pagedkv/pagedkv/fleet"
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
	for _, n := range []int{0, -1, 1<<16 + 1, 1 << 40} {
		require.ErrorIs(t, r.Attach("m", n), fleet.ErrInvalid, "maxServers %d", n)
	}
	var zero Backend
	require.ErrorIs(t, zero.Attach("m", 4), fleet.ErrInvalid)
	var nilBackend *Backend
	require.ErrorIs(t, nilBackend.Attach("m", 4), fleet.ErrInvalid)
}
