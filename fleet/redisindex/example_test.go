package redisindex_test

import (
	"errors"
	"fmt"
	"time"

	"github.com/redis/go-redis/v9"

	"github.com/pagedkv/pagedkv/fleet"
	"github.com/pagedkv/pagedkv/fleet/redisindex"
)

// A Backend wraps a client the caller owns; nothing talks to Redis until
// fleet.New attaches the index (which a running Redis needs, so this
// example stops short of it).
func ExampleNew() {
	client := redis.NewClient(&redis.Options{Addr: "127.0.0.1:6379"})
	defer client.Close()
	_, err := redisindex.New(client, redisindex.Config{KeyTTL: -time.Second})
	fmt.Println("negative KeyTTL:", errors.Is(err, fleet.ErrInvalid))
	back, err := redisindex.New(client, redisindex.Config{Prefix: "router", KeyTTL: 24 * time.Hour})
	fmt.Println("backend:", back != nil, err)
	// With Redis running: fleet.New(fleet.Config{Model: "llama-3-8b", Backend: back}).

	// Output:
	// negative KeyTTL: true
	// backend: true <nil>
}
