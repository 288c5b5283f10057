//go:build redis

package main

import (
	"github.com/redis/go-redis/v9"

	"github.com/pagedkv/pagedkv/fleet"
	"github.com/pagedkv/pagedkv/fleet/redisindex"
)

func init() { openRedis = openRedisIndex }

type redisConn struct{ c *redis.Client }

func openRedisIndex(addr string) (redisIndex, error) {
	return redisConn{c: redis.NewClient(&redis.Options{Addr: addr})}, nil
}

func (r redisConn) Fresh(model string) (fleet.Backend, error) {
	back, err := redisindex.New(r.c, redisindex.Config{})
	if err != nil {
		return nil, err
	}
	if err := back.Delete(model); err != nil {
		return nil, err
	}
	return back, nil
}

func (r redisConn) Close() error { return r.c.Close() }
