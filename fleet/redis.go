package fleet

import (
	"context"
	"crypto/rand"
	"encoding/hex"
	"fmt"
	"reflect"
	"strconv"
	"strings"
	"time"

	"github.com/redis/go-redis/v9"

	"github.com/pagedkv/pagedkv/paged"
)

// RedisConfig configures a Redis backend. Zero values mean defaults.
type RedisConfig struct {
	// Prefix starts every key. Default "pagedkv".
	Prefix string
	// KeyTTL, when positive, gives every block key and server set an
	// expiry that each store refreshes: a safety net that lets Redis
	// reclaim entries if the indexer dies for good. A block cached longer
	// than KeyTTL without being stored again is then forgotten (the index
	// under-reports it). Default 0: no expiry; the Index's own TTL drops
	// silent servers' entries.
	KeyTTL time.Duration
	// MaxOps bounds the events' block operations sent in one script call,
	// so a huge batch cannot block Redis for long. Default 4096.
	MaxOps int
}

// Redis is a Backend on Redis (or Valkey) through go-redis, for an index
// shared by several routers or larger than one process should hold.
//
// Layout, all keys under Prefix:{model}: (the braces make the model a
// cluster hash tag, so one model's keys share a slot and a script may
// touch them together):
//
//	b:<32 hash bytes>  string: bit 2s is "server s holds the block on the device", bit 2s+1 "on the host" (SETBIT order)
//	s:<server id>      set of the block hashes server s holds, so its entries can be dropped
//	c:<server id>      hash: extra copies server s holds of a block (field: hash bytes + tier)
//	epoch              random token written by Init
//
// Events are applied by one Lua script call per batch (atomic, one round
// trip); a lookup is one MGET of the epoch and the request's block keys.
// A missing or different epoch means Redis lost the index (restart
// without persistence, flush, another Init): the backend then returns
// ErrIndexLost and the Index starts over.
type Redis struct {
	c      redis.UniversalClient
	cfg    RedisConfig
	prefix string // Prefix:{model}:
	token  string
	words  int
	keys   []string
	args   []any
}

var _ Backend = (*Redis)(nil)

// NewRedis returns a Redis backend using client c, which the caller owns
// and closes.
func NewRedis(c redis.UniversalClient, cfg RedisConfig) (*Redis, error) {
	if v := reflect.ValueOf(c); c == nil || (v.Kind() == reflect.Pointer && v.IsNil()) {
		return nil, fmt.Errorf("%w: nil redis client", ErrInvalid)
	}
	if cfg.Prefix == "" {
		cfg.Prefix = "pagedkv"
	}
	if cfg.KeyTTL < 0 {
		return nil, fmt.Errorf("%w: RedisConfig.KeyTTL %v must not be negative", ErrInvalid, cfg.KeyTTL)
	}
	if cfg.MaxOps == 0 {
		cfg.MaxOps = 4096
	}
	if cfg.MaxOps < 1 {
		return nil, fmt.Errorf("%w: RedisConfig.MaxOps %d must be positive", ErrInvalid, cfg.MaxOps)
	}
	return &Redis{c: c, cfg: cfg}, nil
}

// applyScript applies a run of block operations for one server.
// KEYS: epoch, server set, server copy counts, then one block key per block
// operation. ARGV: epoch token, bit base 2s, block key prefix, key TTL in ms
// (0 for none), then ops: "s<t>" store on tier t, "r<t>" remove from tier
// t, "m<f><t>" move from tier f to t (each with a key), "c" clear the
// server (no key). A store finding the bit already set counts an extra
// copy in the copy-count hash (field: hash bytes + tier); a remove takes
// a copy back before it clears the bit.
var applyScript = redis.NewScript(`
if redis.call('GET', KEYS[1]) ~= ARGV[1] then return redis.error_reply('PAGEDKV_EPOCH index lost') end
local base = tonumber(ARGV[2])
local plen = #ARGV[3]
local ttl = tonumber(ARGV[4])
local set, copies = KEYS[2], KEYS[3]
local function store(key, member, t)
  if redis.call('GETBIT', key, base + t) == 1 then
    redis.call('HINCRBY', copies, member .. t, 1)
  else
    redis.call('SETBIT', key, base + t, 1)
  end
  redis.call('SADD', set, member)
  if ttl > 0 then
    redis.call('PEXPIRE', key, ttl)
    redis.call('PEXPIRE', set, ttl)
    redis.call('PEXPIRE', copies, ttl)
  end
end
local function remove(key, member, t)
  local c = tonumber(redis.call('HGET', copies, member .. t) or '0')
  if c > 1 then
    redis.call('HINCRBY', copies, member .. t, -1)
    return
  elseif c == 1 then
    redis.call('HDEL', copies, member .. t)
    return
  end
  redis.call('SETBIT', key, base + t, 0)
  if redis.call('GETBIT', key, base + 1 - t) == 0 then
    redis.call('SREM', set, member)
    if redis.call('BITCOUNT', key) == 0 then redis.call('DEL', key) end
  end
end
local k = 4
for i = 5, #ARGV do
  local op = ARGV[i]
  local kind = string.sub(op, 1, 1)
  if kind == 'c' then
    for _, m in ipairs(redis.call('SMEMBERS', set)) do
      local key = ARGV[3] .. m
      redis.call('SETBIT', key, base, 0)
      redis.call('SETBIT', key, base + 1, 0)
      if redis.call('BITCOUNT', key) == 0 then redis.call('DEL', key) end
    end
    redis.call('DEL', set, copies)
  else
    local key = KEYS[k]
    k = k + 1
    local member = string.sub(key, plen + 1)
    local t = tonumber(string.sub(op, 2, 2))
    if kind == 's' then
      store(key, member, t)
    elseif kind == 'r' then
      remove(key, member, t)
    else
      remove(key, member, t)
      store(key, member, tonumber(string.sub(op, 3, 3)))
    end
  end
end
return 1
`)

// globEscaper quotes the characters SCAN MATCH treats specially.
var globEscaper = strings.NewReplacer(`\`, `\\`, `*`, `\*`, `?`, `\?`, `[`, `\[`, `]`, `\]`)

// Init implements Backend: it deletes the model's old keys and writes a
// fresh epoch.
func (r *Redis) Init(model string, maxServers int) error {
	ctx := context.Background()
	r.prefix = r.cfg.Prefix + ":{" + model + "}:"
	r.words = wordsFor(maxServers)
	var tok [16]byte
	if _, err := rand.Read(tok[:]); err != nil {
		return fmt.Errorf("fleet: redis epoch token: %w", err)
	}
	r.token = hex.EncodeToString(tok[:])
	iter := r.c.Scan(ctx, 0, globEscaper.Replace(r.prefix)+"*", 1000).Iterator()
	var batch []string
	for iter.Next(ctx) {
		batch = append(batch, iter.Val())
		if len(batch) == 1000 {
			if err := r.c.Unlink(ctx, batch...).Err(); err != nil {
				return fmt.Errorf("fleet: redis init: %w", err)
			}
			batch = batch[:0]
		}
	}
	if err := iter.Err(); err != nil {
		return fmt.Errorf("fleet: redis init: %w", err)
	}
	if len(batch) > 0 {
		if err := r.c.Unlink(ctx, batch...).Err(); err != nil {
			return fmt.Errorf("fleet: redis init: %w", err)
		}
	}
	if err := r.c.Set(ctx, r.prefix+"epoch", r.token, 0).Err(); err != nil {
		return fmt.Errorf("fleet: redis init: %w", err)
	}
	return nil
}

func (r *Redis) blockKey(h *paged.Hash) string { return r.prefix + "b:" + string(h[:]) }

// start resets the script call's keys and args for server s.
func (r *Redis) start(server ServerID) {
	id := strconv.Itoa(int(server))
	r.keys = append(r.keys[:0], r.prefix+"epoch", r.prefix+"s:"+id, r.prefix+"c:"+id)
	r.args = append(r.args[:0], r.token, 2*int(server), r.prefix+"b:", r.cfg.KeyTTL.Milliseconds())
}

// Apply implements Backend.
func (r *Redis) Apply(server ServerID, events []paged.Event) error {
	r.start(server)
	for i := range events {
		ev := &events[i]
		var op string
		switch ev.Kind {
		case paged.BlockStored:
			op = [2]string{"s0", "s1"}[tierBit(ev.Medium)]
		case paged.BlockRemoved:
			op = [2]string{"r0", "r1"}[tierBit(ev.Medium)]
		case paged.BlockMoved:
			op = "m" + strconv.Itoa(tierBit(ev.From)) + strconv.Itoa(tierBit(ev.Medium))
		case paged.AllBlocksCleared:
			r.args = append(r.args, "c")
			continue
		}
		for j := range ev.Hashes {
			if len(r.args)-4 >= r.cfg.MaxOps {
				if err := r.run(); err != nil {
					return err
				}
				r.start(server)
			}
			r.keys = append(r.keys, r.blockKey(&ev.Hashes[j]))
			r.args = append(r.args, op)
		}
	}
	return r.run()
}

func tierBit(m paged.Medium) int {
	if m == paged.Host {
		return 1
	}
	return 0
}

// run sends the pending script call, if it has any op.
func (r *Redis) run() error {
	if len(r.args) == 4 {
		return nil
	}
	err := applyScript.Run(context.Background(), r.c, r.keys, r.args...).Err()
	if err != nil && strings.Contains(err.Error(), "PAGEDKV_EPOCH") {
		return fmt.Errorf("fleet: redis: %w", ErrIndexLost)
	}
	if err != nil {
		return fmt.Errorf("fleet: redis apply: %w", err)
	}
	return nil
}

// Clear implements Backend.
func (r *Redis) Clear(server ServerID) error {
	r.start(server)
	r.args = append(r.args, "c")
	return r.run()
}

// Lookup implements Backend: one MGET, one round trip.
func (r *Redis) Lookup(hashes []paged.Hash, words int, dst []uint64) ([]uint64, error) {
	if words != r.words {
		return dst, fmt.Errorf("%w: lookup with %d words, backend has %d", ErrInvalid, words, r.words)
	}
	r.keys = append(r.keys[:0], r.prefix+"epoch")
	for i := range hashes {
		r.keys = append(r.keys, r.blockKey(&hashes[i]))
	}
	vals, err := r.c.MGet(context.Background(), r.keys...).Result()
	if err != nil {
		return dst, fmt.Errorf("fleet: redis lookup: %w", err)
	}
	if tok, _ := vals[0].(string); tok != r.token {
		return dst, fmt.Errorf("fleet: redis: %w", ErrIndexLost)
	}
	for _, v := range vals[1:] {
		n := len(dst)
		for range 2 * words {
			dst = append(dst, 0)
		}
		s, _ := v.(string)
		for i := 0; i < len(s); i++ {
			for b := s[i]; b != 0; b &= b - 1 {
				// SETBIT numbers bits from the most significant of byte 0.
				pos := 8*i + 7 - trailingZeros8(b)
				srv, tier := pos/2, pos%2
				if srv/64 < words {
					dst[n+tier*words+srv/64] |= 1 << (uint(srv) % 64)
				}
			}
		}
	}
	return dst, nil
}

func trailingZeros8(b byte) int {
	n := 0
	for b&1 == 0 {
		b >>= 1
		n++
	}
	return n
}
