package redisindex

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

	"github.com/pagedkv/pagedkv/fleet"
	"github.com/pagedkv/pagedkv/paged"
)

// Config configures a Backend. Zero values mean defaults.
type Config struct {
	// Prefix starts every key. Default "pagedkv".
	Prefix string
	// KeyTTL, when positive, gives every block key and server set an
	// expiry that each store refreshes: a safety net that lets Redis
	// reclaim entries if every indexer dies for good. A block cached
	// longer than KeyTTL without being stored again is then forgotten
	// (the index under-reports it). A store of a block also refreshes the
	// sets of every server holding it, so a set never expires before a
	// block key naming its server (a clear would miss that block). Default
	// 0: no expiry; the Index's own TTL drops silent servers' entries.
	KeyTTL time.Duration
	// MaxOps bounds the block operations sent in one script call, so a
	// huge batch cannot block Redis for long. Default 4096.
	MaxOps int
}

// Backend is a fleet.Backend on Redis (or Valkey) through go-redis: an
// index shared by several routers, or larger than one process should
// hold. Every router attached to the same Prefix and model sees the same
// servers (IDs, names, stream states) and entries.
//
// Layout, all keys under Prefix:{model}: (the braces make the model a
// cluster hash tag, so one model's keys share a slot and a script may
// touch them together):
//
//	epoch              random token of the index's life, written by the first Attach
//	max                the maxServers the index was made for
//	layout             the key layout, the constant Layout (absent in indexes made before it)
//
// and the index itself under Prefix:{model}:<epoch token>:, so an index
// made anew after a loss never trusts keys left from an earlier life:
//
//	count              number of server IDs in use
//	names              hash: server name -> ID
//	ids                list: server names by ID ("" for an ID freed by Unregister)
//	st:<id>            server's stream state (fleet.StreamState.String, with the ID's Life)
//	ly:<id>            server's fleet.Layout (Layout.String), absent for none
//	b:<32 key bytes>   string: bit 2s is "server s holds the block on the device", bit 2s+1 "on the host" (SETBIT order);
//	                   the key is fleet.GroupKey of the block's hash and KV cache group (the hash itself for group 0)
//	s:<id>             set of the block hashes server s holds, so its entries can be dropped
//	c:<id>             hash: extra copies server s holds of a block (field: hash bytes + tier)
//
// Every write is one Lua script call (atomic) that first checks the epoch
// and the server's stream state (compare-and-set), so two routers never
// apply one event twice; a lookup is one MGET of the epoch, the count,
// the servers' states and the request's block keys. A missing or
// different epoch means Redis lost the index (restart without
// persistence, flush): the backend returns fleet.ErrIndexLost and the
// Index attaches again, which creates a fresh index or joins the one
// another router created since.
type Backend struct {
	c      redis.UniversalClient
	cfg    Config
	base   string // Prefix:{model}:
	prefix string // Prefix:{model}:<epoch token>: the keys of the index's current life
	epoch  string // the epoch key
	token  string
	words  int
	max    int
	n      int // servers known registered
	// head holds the boxed MGET arguments before the block keys (the
	// command, epoch, count and n state keys), rebuilt when n or the
	// epoch changes; boxed caches boxed block keys of recent lookups, so
	// a hot prefix costs no string building; mget is the argument scratch.
	head      []any
	headN     int
	headToken string
	boxed     map[paged.Hash]any
	mget      []any
	// raw and parsed cache the last state string read per server: most
	// lookups find the same states.
	raw    []string
	parsed []fleet.StreamState
	keys   []string
	args   []any
}

var _ fleet.Backend = (*Backend)(nil)

// New returns a Backend using client c, which the caller owns and closes.
func New(c redis.UniversalClient, cfg Config) (*Backend, error) {
	if v := reflect.ValueOf(c); c == nil || (v.Kind() == reflect.Pointer && v.IsNil()) {
		return nil, fmt.Errorf("%w: nil redis client", fleet.ErrInvalid)
	}
	if cfg.Prefix == "" {
		cfg.Prefix = "pagedkv"
	}
	if cfg.KeyTTL < 0 {
		return nil, fmt.Errorf("%w: redisindex.Config.KeyTTL %v must not be negative", fleet.ErrInvalid, cfg.KeyTTL)
	}
	if cfg.MaxOps == 0 {
		cfg.MaxOps = 4096
	}
	if cfg.MaxOps < 1 {
		return nil, fmt.Errorf("%w: redisindex.Config.MaxOps %d must be positive", fleet.ErrInvalid, cfg.MaxOps)
	}
	return &Backend{c: c, cfg: cfg}, nil
}

// epochCheck starts every script: the index's epoch must be the caller's.
const epochCheck = `if redis.call('GET', KEYS[1]) ~= ARGV[1] then return redis.error_reply('PAGEDKV_EPOCH index lost') end
`

// Layout names the key layout this package reads and writes (the one
// Backend's doc describes). Attach writes it with a new index and refuses
// to join an index marked with another, so routers of versions that lay
// keys out differently never misread each other's entries.
//
// Layout 2 added ID reclamation: freed IDs ("" in ids) and the Life in
// the states. Layout 3 keys blocks by (hash, KV cache group)
// (fleet.GroupKey: a block of a group other than 0 is no longer under its
// bare hash) and records server layouts (ly:<id>, the state flag y).
// An index of layout 2 or 1, or without a marker, holds blocks of every
// group under their bare hashes, which layout 3 would read as group 0's:
// Attach refuses it with fleet.ErrInvalid. Delete it (Backend.Delete; the
// servers' entries come back as they resync) or give the new routers
// another Config.Prefix; stop the routers of the old version first.
const Layout = "pagedkv-redisindex/3"

// upgradableLayout is the layout Attach upgrades to Layout: none (no
// earlier layout is readable as 3).
const upgradableLayout = ""

// attachScript creates the index when absent, and marks an index of the
// upgradable layout (or of none) with the current one. KEYS: epoch, max,
// layout. ARGV: new token, maxServers, layout, upgradable layout. Returns
// the token, max and layout in force.
var attachScript = redis.NewScript(`
local tok = redis.call('GET', KEYS[1])
if not tok then
  redis.call('SET', KEYS[1], ARGV[1])
  redis.call('SET', KEYS[2], ARGV[2])
  redis.call('SET', KEYS[3], ARGV[3])
  tok = ARGV[1]
end
local layout = redis.call('GET', KEYS[3])
if ARGV[4] ~= '' and layout == ARGV[4] and redis.call('GET', KEYS[2]) == ARGV[2] then
  redis.call('SET', KEYS[3], ARGV[3])
end
return {tok, redis.call('GET', KEYS[2]) or '', redis.call('GET', KEYS[3]) or ''}
`)

// registerScript returns a server's ID and state, adding it when new.
// KEYS: epoch, count, names, ids. ARGV: token, name, initial state, max,
// state key prefix.
var registerScript = redis.NewScript(epochCheck + `
local id = redis.call('HGET', KEYS[3], ARGV[2])
if id then return {tonumber(id), redis.call('GET', ARGV[5] .. id) or ''} end
local n = tonumber(redis.call('GET', KEYS[2]) or '0')
if n >= tonumber(ARGV[4]) then return redis.error_reply('PAGEDKV_FULL ' .. n) end
redis.call('HSET', KEYS[3], ARGV[2], n)
redis.call('RPUSH', KEYS[4], ARGV[2])
redis.call('SET', KEYS[2], n + 1)
redis.call('SET', ARGV[5] .. n, ARGV[3])
return {n, ARGV[3]}
`)

// clearServer defines the Lua function clearServer(set, copies, prefix,
// base): it drops every entry of the server whose block set, copy counts,
// block key prefix and bit base 2s are given (a block key no server holds
// any more is deleted).
const clearServer = `
local function clearServer(set, copies, prefix, base)
  for _, m in ipairs(redis.call('SMEMBERS', set)) do
    local key = prefix .. m
    redis.call('SETBIT', key, base, 0)
    redis.call('SETBIT', key, base + 1, 0)
    if redis.call('BITCOUNT', key) == 0 then redis.call('DEL', key) end
  end
  redis.call('DEL', set, copies)
end
`

// renameScript gives a server's ID to another name (or frees it) if its
// state is still the expected one: it drops the server's entries, moves
// the ID from its old name to the new one in names and ids, and sets the
// new state, all in one atomic call (the layout goes with the old name).
// KEYS: epoch, names, ids, state, server set, server copy counts, layout. ARGV: token, id, expected state, new
// name ("" frees the ID), new state, block key prefix, bit base 2s.
// Returns {1, new state}, or {0, current state} when the state differs,
// or {2, current state} when the new name is registered already.
var renameScript = redis.NewScript(epochCheck + clearServer + `
local id = tonumber(ARGV[2])
local old = redis.call('LINDEX', KEYS[3], id)
if not old then return redis.error_reply('PAGEDKV_NOSERVER ' .. id) end
local cur = redis.call('GET', KEYS[4]) or ''
if cur ~= ARGV[3] then return {0, cur} end
if ARGV[4] ~= '' and redis.call('HEXISTS', KEYS[2], ARGV[4]) == 1 then return {2, cur} end
clearServer(KEYS[5], KEYS[6], ARGV[6], tonumber(ARGV[7]))
redis.call('DEL', KEYS[7])
if old ~= '' and redis.call('HGET', KEYS[2], old) == ARGV[2] then redis.call('HDEL', KEYS[2], old) end
redis.call('LSET', KEYS[3], id, ARGV[4])
if ARGV[4] ~= '' then redis.call('HSET', KEYS[2], ARGV[4], ARGV[2]) end
redis.call('SET', KEYS[4], ARGV[5])
return {1, ARGV[5]}
`)

// serversScript reads the registry at one moment: the names by ID, each
// followed by its state and its layout. KEYS: epoch, ids. ARGV: token,
// state key prefix, layout key prefix.
var serversScript = redis.NewScript(epochCheck + `
local out = {}
for i, name in ipairs(redis.call('LRANGE', KEYS[2], 0, -1)) do
  out[#out + 1] = name
  out[#out + 1] = redis.call('GET', ARGV[2] .. (i - 1)) or ''
  out[#out + 1] = redis.call('GET', ARGV[3] .. (i - 1)) or ''
end
return out
`)

// setLayoutScript records a server's layout if its state is still the
// expected one, and sets the new state. KEYS: epoch, state, layout. ARGV:
// token, expected state, layout, new state. Returns {1, new state} or {0,
// current state}; a server without a state (an ID Register never gave
// out) is the error PAGEDKV_NOSERVER, as Memory refuses it (ErrInvalid).
var setLayoutScript = redis.NewScript(epochCheck + `
local cur = redis.call('GET', KEYS[2])
if not cur then return redis.error_reply('PAGEDKV_NOSERVER') end
if cur ~= ARGV[2] then return {0, cur} end
redis.call('SET', KEYS[3], ARGV[3])
redis.call('SET', KEYS[2], ARGV[4])
return {1, ARGV[4]}
`)

// applyScript applies a run of block operations for one server if its
// state is still the expected one, then sets the new state. KEYS: epoch,
// server set, server copy counts, server state, then one block key per
// block operation. ARGV: epoch token, bit base 2s, block key prefix, key
// TTL in ms (0 for none), expected state, new state, then
// ops: "s<t>" store on tier t, "r<t>" remove from tier
// t, "m<f><t>" move from tier f to t (each with a key), "c" clear the
// server (no key). A store finding the bit already set counts an extra
// copy in the copy-count hash (field: hash bytes + tier); a remove takes
// a copy back before it clears the bit. A server without a state (an ID
// Register never gave out) is the error PAGEDKV_NOSERVER.
var applyScript = redis.NewScript(epochCheck + clearServer + `
local cur = redis.call('GET', KEYS[4])
if not cur then return redis.error_reply('PAGEDKV_NOSERVER') end
if cur ~= ARGV[5] then return {0, cur} end
local base = tonumber(ARGV[2])
local plen = #ARGV[3]
local ttl = tonumber(ARGV[4])
local set, copies = KEYS[2], KEYS[3]
local sprefix = string.sub(ARGV[3], 1, plen - 2)
-- refresh gives the block key, and the set and copy counts of every
-- server holding it, a new expiry: a server set must outlive each block
-- key holding its server's bits, or a clear (which finds the server's
-- blocks through its set) would leave bits behind.
local function refresh(key)
  redis.call('PEXPIRE', key, ttl)
  local v = redis.call('GET', key) or ''
  -- Only the bytes holding bits are visited (a pattern search skips the
  -- zero bytes of servers that do not hold the block).
  local i = string.find(v, '[^%z]')
  while i do
    local b = string.byte(v, i)
    for k = 0, 3 do
      if bit.band(b, bit.rshift(192, 2 * k)) ~= 0 then
        local id = (i - 1) * 4 + k
        redis.call('PEXPIRE', sprefix .. 's:' .. id, ttl)
        redis.call('PEXPIRE', sprefix .. 'c:' .. id, ttl)
      end
    end
    i = string.find(v, '[^%z]', i + 1)
  end
end
local function store(key, member, t)
  if redis.call('GETBIT', key, base + t) == 1 then
    redis.call('HINCRBY', copies, member .. t, 1)
  else
    redis.call('SETBIT', key, base + t, 1)
  end
  redis.call('SADD', set, member)
  if ttl > 0 then
    refresh(key)
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
local k = 5
for i = 7, #ARGV do
  local op = ARGV[i]
  local kind = string.sub(op, 1, 1)
  if kind == 'c' then
    clearServer(set, copies, ARGV[3], base)
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
redis.call('SET', KEYS[4], ARGV[6])
return {1, ARGV[6]}
`)

// globEscaper quotes the characters SCAN MATCH treats specially.
var globEscaper = strings.NewReplacer(`\`, `\\`, `*`, `\*`, `?`, `\?`, `[`, `\[`, `]`, `\]`)

// maxServersLimit is the largest server bound, fleet.Config.MaxServers'
// limit.
const maxServersLimit = 1 << 16

// Attach implements fleet.Backend: it joins the model's index, creating
// it (a fresh epoch) when absent. It deletes nothing. A Backend not made
// by New, maxServers outside [1, 65536], or, once attached, another
// model or bound is refused with fleet.ErrInvalid before anything is sent
// (as Memory refuses them).
func (r *Backend) Attach(model string, maxServers int) error {
	if r == nil || r.c == nil {
		return fmt.Errorf("%w: redisindex.Backend not created with New", fleet.ErrInvalid)
	}
	if maxServers < 1 || maxServers > maxServersLimit {
		return fmt.Errorf("%w: %d servers, must be in [1, %d]", fleet.ErrInvalid, maxServers, maxServersLimit)
	}
	// Nothing of r changes until the index has accepted the call: a
	// refused Attach leaves an attached Backend as it was (it used to
	// keep the refused bound, and Register then added servers past the
	// model's).
	base := r.cfg.Prefix + ":{" + model + "}:"
	if r.token != "" && (base != r.base || maxServers != r.max) {
		// One Index's backend: it attaches again (after an index loss)
		// to its own model and bound only. Moved to another model, the
		// Index's server IDs would name another model's servers.
		return fmt.Errorf("%w: backend attached to %q for %d servers, not %q for %d", fleet.ErrInvalid, r.base, r.max, base, maxServers)
	}
	epoch := base + "epoch"
	var tok [16]byte
	if _, err := rand.Read(tok[:]); err != nil {
		return fmt.Errorf("redisindex: epoch token: %w", err)
	}
	res, err := attachScript.Run(context.Background(), r.c, []string{epoch, base + "max", base + "layout"},
		hex.EncodeToString(tok[:]), maxServers, Layout, upgradableLayout).StringSlice()
	if err != nil {
		return fmt.Errorf("redisindex: attach: %w", err)
	}
	if len(res) != 3 {
		return fmt.Errorf("redisindex: attach: unexpected reply %q", res)
	}
	if res[2] != Layout {
		found := strconv.Quote(res[2])
		if res[2] == "" {
			found = "of before the layout marker"
		}
		return fmt.Errorf("%w: model %q's index is in key layout %s, this version reads %q (blocks keyed by KV cache group): delete it (Backend.Delete) or use another Config.Prefix",
			fleet.ErrInvalid, model, found, Layout)
	}
	if res[1] != strconv.Itoa(maxServers) {
		return fmt.Errorf("%w: model %q was made for %s servers, not %d", fleet.ErrInvalid, model, res[1], maxServers)
	}
	r.base, r.epoch = base, epoch
	r.words, r.max, r.n = fleet.WordsFor(maxServers), maxServers, 0
	r.token = res[0]
	r.prefix = r.base + r.token + ":"
	return nil
}

// attached refuses a call on a Backend that has not joined an index.
func (r *Backend) attached() error {
	if r == nil || r.c == nil || r.token == "" {
		return fmt.Errorf("%w: redisindex.Backend used before Attach", fleet.ErrInvalid)
	}
	return nil
}

// Delete removes every key of one model (the index of every router
// attached to it), for tests and administration. Routers attached to it
// see an index loss.
func (r *Backend) Delete(model string) error {
	ctx := context.Background()
	iter := r.c.Scan(ctx, 0, globEscaper.Replace(r.cfg.Prefix+":{"+model+"}:")+"*", 1000).Iterator()
	var batch []string
	for iter.Next(ctx) {
		batch = append(batch, iter.Val())
		if len(batch) == 1000 {
			if err := r.c.Unlink(ctx, batch...).Err(); err != nil {
				return fmt.Errorf("redisindex: delete: %w", err)
			}
			batch = batch[:0]
		}
	}
	if err := iter.Err(); err != nil {
		return fmt.Errorf("redisindex: delete: %w", err)
	}
	if len(batch) > 0 {
		if err := r.c.Unlink(ctx, batch...).Err(); err != nil {
			return fmt.Errorf("redisindex: delete: %w", err)
		}
	}
	return nil
}

// scriptErr maps a script's error to the fleet sentinels.
func scriptErr(what string, err error) error {
	switch {
	case err == nil:
		return nil
	case strings.Contains(err.Error(), "PAGEDKV_EPOCH"):
		return fmt.Errorf("redisindex: %s: %w", what, fleet.ErrIndexLost)
	case strings.Contains(err.Error(), "PAGEDKV_FULL"):
		return fmt.Errorf("redisindex: %s: %w", what, fleet.ErrTooManyServers)
	case strings.Contains(err.Error(), "PAGEDKV_NOSERVER"):
		return fmt.Errorf("redisindex: %s: %w: server not registered", what, fleet.ErrInvalid)
	}
	return fmt.Errorf("redisindex: %s: %w", what, err)
}

// Register implements fleet.Backend.
func (r *Backend) Register(name string, init fleet.StreamState) (fleet.ServerID, fleet.StreamState, error) {
	if err := r.attached(); err != nil {
		return 0, fleet.StreamState{}, err
	}
	res, err := registerScript.Run(context.Background(), r.c,
		[]string{r.epoch, r.prefix + "count", r.prefix + "names", r.prefix + "ids"},
		r.token, name, init.String(), r.max, r.prefix+"st:").Slice()
	if err != nil {
		return 0, fleet.StreamState{}, scriptErr("register "+strconv.Quote(name), err)
	}
	id, _ := res[0].(int64)
	st, err := parseState(res[1])
	if err != nil {
		return 0, st, err
	}
	r.n = max(r.n, int(id)+1)
	return fleet.ServerID(id), st, nil
}

// parseState decodes a stored state; a missing one is the zero state.
func parseState(v any) (fleet.StreamState, error) {
	s, _ := v.(string)
	if s == "" {
		return fleet.StreamState{}, nil
	}
	st, err := fleet.ParseStreamState(s)
	if err != nil {
		return st, fmt.Errorf("redisindex: %w", err)
	}
	return st, nil
}

// Servers implements fleet.Backend: one script call reads the names and
// states at one moment.
func (r *Backend) Servers(dst []fleet.ServerRecord) ([]fleet.ServerRecord, error) {
	if err := r.attached(); err != nil {
		return dst, err
	}
	res, err := serversScript.Run(context.Background(), r.c, []string{r.epoch, r.prefix + "ids"}, r.token, r.prefix+"st:", r.prefix+"ly:").StringSlice()
	if err != nil {
		return dst, scriptErr("servers", err)
	}
	for i := 0; i+2 < len(res); i += 3 {
		st, err := parseState(res[i+1])
		if err != nil {
			return dst, err
		}
		dst = append(dst, fleet.ServerRecord{Name: res[i], State: st, Layout: res[i+2]})
	}
	r.n = max(r.n, len(res)/3)
	return dst, nil
}

// SetLayout implements fleet.Backend: one script call.
func (r *Backend) SetLayout(server fleet.ServerID, old fleet.StreamState, layout string, next fleet.StreamState) (fleet.StreamState, error) {
	if err := r.attached(); err != nil {
		return fleet.StreamState{}, err
	}
	if server < 0 || int(server) >= r.max {
		return fleet.StreamState{}, fmt.Errorf("%w: server %d out of range", fleet.ErrInvalid, server)
	}
	id := strconv.Itoa(int(server))
	res, err := setLayoutScript.Run(context.Background(), r.c, []string{r.epoch, r.prefix + "st:" + id, r.prefix + "ly:" + id},
		r.token, old.String(), layout, next.String()).Slice()
	if err != nil {
		return fleet.StreamState{}, scriptErr("set layout of server "+id, err)
	}
	if ok, _ := res[0].(int64); ok != 1 {
		st, err := parseState(res[1])
		if err != nil {
			return st, err
		}
		return st, fmt.Errorf("redisindex: set layout of server %d: %w", server, fleet.ErrConflict)
	}
	return next, nil
}

// Rename implements fleet.Backend: one script call.
func (r *Backend) Rename(server fleet.ServerID, old fleet.StreamState, name string, next fleet.StreamState) (fleet.StreamState, error) {
	if err := r.attached(); err != nil {
		return fleet.StreamState{}, err
	}
	if server < 0 || int(server) >= r.max {
		return fleet.StreamState{}, fmt.Errorf("%w: server %d out of range", fleet.ErrInvalid, server)
	}
	if next.Life <= old.Life {
		return fleet.StreamState{}, fmt.Errorf("%w: rename of server %d to life %d, not after %d", fleet.ErrInvalid, server, next.Life, old.Life)
	}
	id := strconv.Itoa(int(server))
	res, err := renameScript.Run(context.Background(), r.c,
		[]string{r.epoch, r.prefix + "names", r.prefix + "ids", r.prefix + "st:" + id, r.prefix + "s:" + id, r.prefix + "c:" + id, r.prefix + "ly:" + id},
		r.token, id, old.String(), name, next.String(), r.prefix+"b:", 2*int(server)).Slice()
	if err != nil {
		return fleet.StreamState{}, scriptErr("rename server "+id, err)
	}
	switch ok, _ := res[0].(int64); ok {
	case 1:
		return next, nil
	case 2:
		st, err := parseState(res[1])
		if err != nil {
			return st, err
		}
		return st, fmt.Errorf("redisindex: rename server %d: %q is registered already: %w", server, name, fleet.ErrConflict)
	}
	st, err := parseState(res[1])
	if err != nil {
		return st, err
	}
	return st, fmt.Errorf("redisindex: rename server %d: %w", server, fleet.ErrConflict)
}

func (r *Backend) blockKey(h *paged.Hash) string { return r.prefix + "b:" + string(h[:]) }

// boxedKeys bounds Backend.boxed: block keys of 1Ki 64-block requests.
const boxedKeys = 1 << 16

// fixedArgs is the number of script arguments before the ops.
const fixedArgs = 6

// start resets the script call's keys and args for server s, expecting
// state old.
func (r *Backend) start(server fleet.ServerID, old string) {
	id := strconv.Itoa(int(server))
	r.keys = append(r.keys[:0], r.epoch, r.prefix+"s:"+id, r.prefix+"c:"+id, r.prefix+"st:"+id)
	r.args = append(r.args[:0], r.token, 2*int(server), r.prefix+"b:", r.cfg.KeyTTL.Milliseconds(), old, "")
}

// Update implements fleet.Backend. A run longer than MaxOps goes in
// several script calls; the states between them are marked partial and
// dirty (tagged so each is unique), so a router that finds one left by a
// writer that died half way clears the server before going on.
func (r *Backend) Update(server fleet.ServerID, old, next fleet.StreamState, clearFirst bool, events []paged.Event) (fleet.StreamState, error) {
	if err := r.attached(); err != nil {
		return fleet.StreamState{}, err
	}
	if server < 0 || int(server) >= r.max {
		return fleet.StreamState{}, fmt.Errorf("%w: server %d out of range", fleet.ErrInvalid, server)
	}
	if err := fleet.CheckEvents(events); err != nil {
		return fleet.StreamState{}, err
	}
	cur, chunk := old.String(), 0
	mid := next
	mid.Partial, mid.Dirty = true, true
	// flush sends the pending ops, moving the state to an intermediate
	// one (or to next when last).
	flush := func(last bool) (fleet.StreamState, error) {
		to := next.String()
		if !last {
			chunk++
			to = mid.String() + " ~" + strconv.Itoa(chunk)
		}
		r.args[fixedArgs-1] = to
		res, err := applyScript.Run(context.Background(), r.c, r.keys, r.args...).Slice()
		if err != nil {
			return fleet.StreamState{}, scriptErr("update", err)
		}
		if ok, _ := res[0].(int64); ok != 1 {
			st, err := parseState(res[1])
			if err != nil {
				return st, err
			}
			return st, fmt.Errorf("redisindex: update server %d: %w", server, fleet.ErrConflict)
		}
		cur = to
		return next, nil
	}
	r.start(server, cur)
	if clearFirst {
		r.args = append(r.args, "c")
	}
	for i := range events {
		ev := &events[i]
		var op string
		switch ev.Kind {
		case paged.BlockStored:
			op = [2]string{"s0", "s1"}[fleet.TierBit(ev.Medium)]
		case paged.BlockRemoved:
			op = [2]string{"r0", "r1"}[fleet.TierBit(ev.Medium)]
		case paged.BlockMoved:
			op = "m" + strconv.Itoa(fleet.TierBit(ev.From)) + strconv.Itoa(fleet.TierBit(ev.Medium))
		case paged.AllBlocksCleared:
			r.args = append(r.args, "c")
			continue
		}
		for j := range ev.Hashes {
			if len(r.args)-fixedArgs >= r.cfg.MaxOps {
				if st, err := flush(false); err != nil {
					return st, err
				}
				r.start(server, cur)
			}
			r.keys = append(r.keys, r.blockKey(&ev.Hashes[j]))
			r.args = append(r.args, op)
		}
	}
	return flush(true)
}

// LookupAll implements fleet.Backend: Lookup, which never stops early.
func (r *Backend) LookupAll(hashes []paged.Hash, words int, dst []uint64, states []fleet.StreamState) ([]uint64, []fleet.StreamState, error) {
	return r.Lookup(hashes, words, dst, states)
}

// Lookup implements fleet.Backend: one MGET, one round trip (two when
// another router registered servers since this one last looked). It
// returns the holder sets of every hash.
func (r *Backend) Lookup(hashes []paged.Hash, words int, dst []uint64, states []fleet.StreamState) ([]uint64, []fleet.StreamState, error) {
	if err := r.attached(); err != nil {
		return dst, states, err
	}
	if words != r.words {
		return dst, states, fmt.Errorf("%w: lookup with %d words, backend has %d", fleet.ErrInvalid, words, r.words)
	}
	ctx := context.Background()
	n := r.n
	if r.headN != n || r.headToken != r.token || r.head == nil {
		r.head = append(r.head[:0], "mget", r.epoch, r.prefix+"count")
		for i := range n {
			r.head = append(r.head, r.prefix+"st:"+strconv.Itoa(i))
		}
		r.headN, r.headToken = n, r.token
		r.boxed = make(map[paged.Hash]any)
	}
	r.mget = append(r.mget[:0], r.head...)
	for i := range hashes {
		k, ok := r.boxed[hashes[i]]
		if !ok {
			if len(r.boxed) >= boxedKeys {
				clear(r.boxed)
			}
			k = r.blockKey(&hashes[i])
			r.boxed[hashes[i]] = k
		}
		r.mget = append(r.mget, k)
	}
	vals, err := r.c.Do(ctx, r.mget...).Slice()
	if err != nil {
		return dst, states, fmt.Errorf("redisindex: lookup: %w", err)
	}
	if tok, _ := vals[0].(string); tok != r.token {
		return dst, states, fmt.Errorf("redisindex: lookup: %w", fleet.ErrIndexLost)
	}
	r.raw, r.parsed = r.raw[:min(len(r.raw), n)], r.parsed[:min(len(r.parsed), n)]
	for i, v := range vals[2 : 2+n] {
		s, _ := v.(string)
		if i < len(r.raw) && r.raw[i] == s {
			states = append(states, r.parsed[i])
			continue
		}
		st, err := parseState(v)
		if err != nil {
			return dst, states, err
		}
		if i < len(r.raw) {
			r.raw[i], r.parsed[i] = s, st
		} else {
			r.raw, r.parsed = append(r.raw, s), append(r.parsed, st)
		}
		states = append(states, st)
	}
	count, _ := vals[1].(string)
	if c, _ := strconv.Atoi(count); c > n {
		// New servers: their states now, then the index reloads names.
		more := make([]string, 0, c-n)
		for i := n; i < c; i++ {
			more = append(more, r.prefix+"st:"+strconv.Itoa(i))
		}
		mv, err := r.c.MGet(ctx, more...).Result()
		if err != nil {
			return dst, states, fmt.Errorf("redisindex: lookup: %w", err)
		}
		for _, v := range mv {
			st, err := parseState(v)
			if err != nil {
				return dst, states, err
			}
			states = append(states, st)
		}
		r.n = c
	}
	for _, v := range vals[2+n:] {
		base := len(dst)
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
					dst[base+tier*words+srv/64] |= 1 << (uint(srv) % 64)
				}
			}
		}
	}
	return dst, states, nil
}

func trailingZeros8(b byte) int {
	n := 0
	for b&1 == 0 {
		b >>= 1
		n++
	}
	return n
}
