package fleet

import (
	"fmt"
	"math"
	"sync"
	"time"

	"github.com/pagedkv/pagedkv/paged"
)

// DefaultPendingCapacity is the number of block hashes a Pending record
// keeps when PendingConfig.Capacity is 0.
const DefaultPendingCapacity = 1 << 16

// MaxPendingCapacity is the largest PendingConfig.Capacity.
const MaxPendingCapacity = 1 << 22

// DefaultPendingTTL is how long a claim lives without confirmation when
// PendingConfig.TTL is 0. Claims normally end much sooner, when the
// server's events report the block; the TTL only bounds the claims whose
// confirmation never comes (a request the server dropped, events lost).
const DefaultPendingTTL = time.Minute

// PendingConfig configures a Pending record. Zero values mean defaults.
type PendingConfig struct {
	// Capacity bounds the block hashes held. At capacity the oldest claim
	// is forgotten (under-reporting, never a wrong claim). Default
	// DefaultPendingCapacity, at most MaxPendingCapacity.
	Capacity int
	// MaxServers bounds the server IDs, as Config.MaxServers does for the
	// Index whose scores Extend completes. Default DefaultMaxServers.
	MaxServers int
	// TTL ends a claim this long after the last Add of its hash, if no
	// event ended it before; a TTL reaching past the clock's range never
	// ends it. Default DefaultPendingTTL.
	TTL time.Duration
	// DeviceWeight is what one pending block adds to Score.Value: the
	// Index's Config.DeviceWeight (a pending block is computed on the
	// device). Default 1.
	DeviceWeight float64
	// Now is the clock of the TTL. Default time.Now; a simulation passes
	// its own clock.
	Now func() time.Time
}

// Pending is a router's record of the prefixes it routed whose blocks the
// servers have not reported yet. The Index knows only what the servers'
// events announce, so the requests of a burst that share a new prefix
// would otherwise be spread over the fleet before the first one's blocks
// exist anywhere; with Pending they follow it. SGLang's cache-aware router
// (an approximate radix tree of the prompts routed to each worker), llm-d's
// approximate prefix-cache scorer and NVIDIA Dynamo's KV router (which
// predicts the blocks a routed request will create before their events
// arrive) do the same; this is our own bounded, hash-keyed form.
//
// Add records that a server was sent blocks it does not hold; Extend adds
// to each server's Score the pending blocks that continue its indexed run
// (Score.Pending counts them); Observe, fed the same events as the Index,
// ends a server's claim on every block it reports stored, moved or
// removed, since the Index answers for it from then on; Forget ends the
// claims of a request the server will not compute. A claim the events
// never end expires TTL after the last Add of its hash, and at Capacity
// the oldest claims go first.
//
// Why a pending block counts as a cached one. A request routed to a server
// where an earlier request is computing (or waiting to compute) the same
// blocks is served after it by a first-come-first-served engine (vLLM,
// package sched): the earlier prompt's chunks are scheduled, and their
// blocks cached, before the later request is admitted, so it finds them
// all. The cost of waiting for them is the server's queued prefill, which
// CostAware already charges as Candidate.Work. So no discount applies on
// such an engine; an engine that may admit the later request first
// (priorities) would have to discount.
//
// Pending is in memory, per router, and not shared through the Index's
// backend on purpose: it describes this router's own decisions, lives for
// seconds, and is read on every lookup, where a Redis round trip would
// double the lookup's cost. Routers sharing one Index each keep their own;
// the blocks of the others' requests reach them through the events a
// moment later.
//
// Pending is safe for concurrent use; Extend allocates nothing once its
// scratch has grown to the longest request.
type Pending struct {
	mu     sync.Mutex
	cfg    PendingConfig
	words  int
	index  table
	n      int
	live   []bool
	hashes []paged.Hash
	masks  []uint64 // by slot: words of server bits, the servers claiming it
	// points are, by slot, the servers whose claim is a hit point: a hit
	// may end after the block (Claim; every block of Add).
	points []uint64
	latest []uint64 // by slot: number of its latest ring record
	// next is, by slot, the slot+1 of the hash that followed it in the
	// latest Add: Extend follows it and checks the hash instead of
	// looking each one up (a hint; 0 or a stale slot means look up).
	next    []int32
	free    []int32
	ring    []pendingRecord
	head    uint64   // number of the oldest ring record
	tail    uint64   // number of the next ring record
	servers []uint64 // servers with at least one claim (a superset)
	memo    []int32  // Extend's per-hash slot+1, -1 for none, 0 unknown
}

// pendingRecord is one Add of a hash, in Add order: the FIFO of expiry.
type pendingRecord struct {
	slot     int32
	deadline int64
}

// pendingBytes estimates what NewPending allocates for capacity hashes
// and server sets of words 64-bit words.
func pendingBytes(capacity, words int) int64 {
	// The table as newTable makes it (2 to 4 entries a hash), then
	// hash 32, live 1, latest 8, next 4, free 4, ring 16, masks and points.
	return tableBytes(capacity) + int64(capacity)*(32+1+8+4+4+16+16*int64(words))
}

// NewPending returns an empty Pending record. It refuses (ErrInvalid) a
// Capacity and MaxServers whose arrays would exceed MaxMemoryBytes.
func NewPending(cfg PendingConfig) (*Pending, error) {
	if cfg.Capacity == 0 {
		cfg.Capacity = DefaultPendingCapacity
	}
	if cfg.MaxServers == 0 {
		cfg.MaxServers = DefaultMaxServers
	}
	if cfg.TTL == 0 {
		cfg.TTL = DefaultPendingTTL
	}
	if cfg.DeviceWeight == 0 {
		cfg.DeviceWeight = 1
	}
	if cfg.Now == nil {
		cfg.Now = time.Now
	}
	switch {
	case cfg.Capacity < 1 || cfg.Capacity > MaxPendingCapacity:
		return nil, fmt.Errorf("%w: PendingConfig.Capacity %d must be in [1, %d]", ErrInvalid, cfg.Capacity, MaxPendingCapacity)
	case cfg.MaxServers < 1 || cfg.MaxServers > maxServersLimit:
		return nil, fmt.Errorf("%w: PendingConfig.MaxServers %d must be in [1, %d]", ErrInvalid, cfg.MaxServers, maxServersLimit)
	case cfg.TTL < 0:
		return nil, fmt.Errorf("%w: PendingConfig.TTL %v must not be negative", ErrInvalid, cfg.TTL)
	case !(cfg.DeviceWeight > 0) || math.IsInf(cfg.DeviceWeight, 0):
		return nil, fmt.Errorf("%w: PendingConfig.DeviceWeight %v must be positive and finite", ErrInvalid, cfg.DeviceWeight)
	}
	w := WordsFor(cfg.MaxServers)
	c := cfg.Capacity
	if b := pendingBytes(c, w); b > MaxMemoryBytes {
		return nil, fmt.Errorf("%w: PendingConfig.Capacity %d with MaxServers %d needs about %d MiB, over MaxMemoryBytes (%d MiB)",
			ErrInvalid, c, cfg.MaxServers, b>>20, MaxMemoryBytes>>20)
	}
	p := &Pending{
		cfg: cfg, words: w, index: newTable(c),
		live: make([]bool, c), hashes: make([]paged.Hash, c), masks: make([]uint64, c*w), points: make([]uint64, c*w), latest: make([]uint64, c), next: make([]int32, c),
		free: make([]int32, c), ring: make([]pendingRecord, c), servers: make([]uint64, w),
	}
	for i := range p.free {
		p.free[i] = int32(c - 1 - i)
	}
	return p, nil
}

func (p *Pending) checkServer(s ServerID) error {
	if s < 0 || int(s) >= p.cfg.MaxServers {
		return fmt.Errorf("%w: server %d outside [0, PendingConfig.MaxServers %d)", ErrInvalid, s, p.cfg.MaxServers)
	}
	return nil
}

// Add records that server s was sent a request with these blocks, which
// it does not hold yet: the hashes after the server's indexed run,
// hashes[score.Blocks-score.Pending:] of its Score. Each becomes a hit
// there once computed, as on a server of one group or one without a
// State group (Claim decides that from the layout). It refreshes the
// TTL of hashes already pending.
func (p *Pending) Add(s ServerID, hashes []paged.Hash) error {
	return p.add(s, hashes, -1)
}

// Claim records what a request sent to server s will leave there, for
// the requests after it: hashes are the request's blocks as given to
// Index.Lookup, sc the server's Score for them after Extend, l the
// server's layout (the zero Layout for one full-attention group). The
// blocks after the server's indexed run are claimed, as Add does; the
// group-0 blocks among them extend Score.Affinity in Extend. Which of
// them become a hit depends on the layout. Without a State group, each
// does (a window or a chunk is computed with the blocks). With one, a
// hit needs a checkpoint, which paged takes only at the request's branch
// point: the end of the group-0 run its lookup finds (sc.Affinity), when
// the run stops at a block the server does not hold before the request
// ends and the server cannot hit that far already (docs/hybrid.md,
// "State groups"). That is then the claims' only hit point, and Extend
// scores no block past it: the request's own end is no hit for the next
// one. A layout Validate refuses is ErrInvalid. Scores no Lookup and
// Extend give are clamped: a negative Blocks counts as 0 and Pending as
// within [0, Blocks], so the claims start at Blocks-Pending, never
// before it by an overflow.
func (p *Pending) Claim(s ServerID, hashes []paged.Hash, sc Score, l Layout) error {
	if len(l.Groups) > 0 {
		if err := l.Validate(); err != nil {
			return fmt.Errorf("fleet: pending claim: %w", err)
		}
	}
	b := max(sc.Blocks, 0)
	from := min(b-min(max(sc.Pending, 0), b), len(hashes))
	if !l.hasState() {
		return p.add(s, hashes[from:], -1)
	}
	point := -2 // none
	if b := sc.Affinity; b > sc.Blocks && b < len(hashes) && b > from {
		point = b - 1 - from
	}
	return p.add(s, hashes[from:], point)
}

// add claims hashes for server s: each a hit point when point is -1,
// else only hashes[point] (none when point is out of range).
func (p *Pending) add(s ServerID, hashes []paged.Hash, point int) error {
	if err := p.checkServer(s); err != nil {
		return err
	}
	p.mu.Lock()
	defer p.mu.Unlock()
	now := p.cfg.Now().UnixNano()
	p.expire(now)
	deadline := now + int64(p.cfg.TTL)
	if deadline < now { // overflow: a TTL longer than the clock counts
		deadline = math.MaxInt64
	}
	w, bit := int(s)/64, uint64(1)<<(uint(s)%64)
	prev := int32(-1)
	for i := 0; i < len(hashes); i++ {
		h := &hashes[i]
		slot, ok := p.index.find(h, p.hashes)
		if !ok {
			for len(p.free) == 0 {
				p.pop()
			}
			slot = p.free[len(p.free)-1]
			p.free = p.free[:len(p.free)-1]
			p.live[slot], p.hashes[slot], p.latest[slot], p.next[slot] = true, *h, ^uint64(0), 0
			clear(p.masks[int(slot)*p.words : int(slot+1)*p.words])
			clear(p.points[int(slot)*p.words : int(slot+1)*p.words])
			p.index.insert(h, slot)
			p.n++
		}
		if p.tail-p.head == uint64(len(p.ring)) {
			p.pop()
			if !p.live[slot] { // the oldest record was this hash's own: again
				i--
				continue
			}
		}
		p.masks[int(slot)*p.words+w] |= bit
		if point == -1 || point == i {
			p.points[int(slot)*p.words+w] |= bit
		}
		if prev >= 0 && p.live[prev] {
			p.next[prev] = slot + 1
		}
		prev = slot
		p.ring[p.tail%uint64(len(p.ring))] = pendingRecord{slot: slot, deadline: deadline}
		p.latest[slot] = p.tail
		p.tail++
	}
	if len(hashes) > 0 {
		p.servers[w] |= bit
	}
	return nil
}

// pop drops the oldest ring record, and its hash if that was the hash's
// latest Add.
func (p *Pending) pop() {
	r := p.ring[p.head%uint64(len(p.ring))]
	if p.live[r.slot] && p.latest[r.slot] == p.head {
		p.drop(r.slot)
	}
	p.head++
}

// drop removes a slot's hash.
func (p *Pending) drop(slot int32) {
	p.index.remove(&p.hashes[slot], slot)
	p.live[slot] = false
	p.free = append(p.free, slot)
	p.n--
}

// expire pops the records whose deadline has passed. Deadlines increase
// along the ring as long as the clock does not go back; if it does, some
// claims live longer, never past Capacity.
func (p *Pending) expire(now int64) {
	for p.head != p.tail && p.ring[p.head%uint64(len(p.ring))].deadline <= now {
		p.pop()
	}
	if p.n == 0 {
		clear(p.servers)
	}
}

// end clears server s's claim on h; a hash no server claims goes.
func (p *Pending) end(s ServerID, h *paged.Hash) {
	slot, ok := p.index.find(h, p.hashes)
	if !ok {
		return
	}
	m := p.masks[int(slot)*p.words : int(slot+1)*p.words]
	m[int(s)/64] &^= 1 << (uint(s) % 64)
	p.points[int(slot)*p.words+int(s)/64] &^= 1 << (uint(s) % 64)
	for _, v := range m {
		if v != 0 {
			return
		}
	}
	p.drop(slot) // its ring records find it gone (or reused: latest differs)
}

// Observe ends server s's claims on the blocks its events report:
// stored, moved or removed, the Index answers for them now. Pass it the
// events given to Index.Apply for the same server. An event of any KV
// cache group ends a claim: a request routed to a hybrid server may
// compute blocks group 0 held already, which only another group's
// events then report (ending a claim early only under-reports). AllBlocksCleared ends
// all of the server's claims (it scans the record).
func (p *Pending) Observe(s ServerID, events []paged.Event) error {
	if err := p.checkServer(s); err != nil {
		return err
	}
	p.mu.Lock()
	defer p.mu.Unlock()
	if p.servers[int(s)/64]&(1<<(uint(s)%64)) == 0 {
		return nil
	}
	for i := range events {
		ev := &events[i]
		if ev.Kind == paged.AllBlocksCleared {
			p.endAll(s)
			continue
		}
		for k := range ev.Hashes {
			p.end(s, &ev.Hashes[k])
		}
	}
	return nil
}

// Forget ends server s's claims on hashes: the request that made them
// will not be computed there (rejected, cancelled).
func (p *Pending) Forget(s ServerID, hashes []paged.Hash) error {
	if err := p.checkServer(s); err != nil {
		return err
	}
	p.mu.Lock()
	defer p.mu.Unlock()
	for i := range hashes {
		p.end(s, &hashes[i])
	}
	return nil
}

// ForgetServer ends every claim of server s, as an AllBlocksCleared
// event does. Call it when the server's ID stops naming the server the
// claims were made for: after Index.Unregister, or when Index.Servers
// lists the ID under another name (the Index gave an expired server's ID
// to a new one). Otherwise the new owner would inherit the claims until
// their TTL. Call it too when Index.Resync rebuilds a server after lost
// events: they may have held the stores and removals that end claims, so
// claims left over would score the server, complete again, blocks it
// evicted or never kept (fleettest.CheckHybridScores failed so before it
// did this). It scans the record.
func (p *Pending) ForgetServer(s ServerID) error {
	if err := p.checkServer(s); err != nil {
		return err
	}
	p.mu.Lock()
	defer p.mu.Unlock()
	p.endAll(s)
	return nil
}

// endAll ends every claim of server s.
func (p *Pending) endAll(s ServerID) {
	if p.servers[int(s)/64]&(1<<(uint(s)%64)) == 0 {
		return
	}
	for slot := range p.live {
		if p.live[slot] {
			p.end(s, &p.hashes[slot])
		}
	}
}

// Len returns the number of hashes some server has a claim on.
func (p *Pending) Len() int {
	p.mu.Lock()
	defer p.mu.Unlock()
	if p.n == 0 { // nothing to expire; the zero Pending has no clock
		return 0
	}
	p.expire(p.cfg.Now().UnixNano())
	return p.n
}

// Extend completes the scores Index.Lookup returned for hashes with the
// pending blocks: for each server, the run of hashes it has a claim on
// right after its indexed run, up to the last of them that is a hit
// point (every one of Add's; see Claim), is added to Blocks and Device
// (and Value, at DeviceWeight each), and counted in Score.Pending; the
// run of claims right after its Affinity is added to Affinity. It
// allocates nothing once its scratch has grown to the longest request.
func (p *Pending) Extend(hashes []paged.Hash, scores []Score) {
	p.mu.Lock()
	defer p.mu.Unlock()
	if p.n == 0 { // nothing to extend with; the zero Pending has no clock
		return
	}
	p.expire(p.cfg.Now().UnixNano())
	if p.n == 0 {
		return
	}
	if cap(p.memo) < len(hashes) {
		p.memo = make([]int32, len(hashes))
	}
	memo := p.memo[:len(hashes)]
	clear(memo)
	for k := range scores {
		sc := &scores[k]
		s := sc.Server
		if sc.Blocks < 0 || s < 0 || int(s) >= p.cfg.MaxServers || p.servers[int(s)/64]&(1<<(uint(s)%64)) == 0 {
			continue
		}
		end, hit := p.run(hashes, memo, sc.Blocks, s)
		if sc.Affinity == sc.Blocks {
			sc.Affinity = end
		} else if sc.Affinity >= 0 {
			sc.Affinity, _ = p.run(hashes, memo, sc.Affinity, s)
		}
		n := hit - sc.Blocks
		if n <= 0 {
			continue
		}
		sc.Blocks += n
		sc.Device += n
		sc.Pending += n
		sc.Value += float64(n) * p.cfg.DeviceWeight
	}
}

// run follows server s's claims on hashes from block i: it returns the
// end of the run of blocks claimed and the end of the last of them that
// is a hit point (i when none), filling memo (Extend's).
func (p *Pending) run(hashes []paged.Hash, memo []int32, i int, s ServerID) (end, hit int) {
	w, bit := int(s)/64, uint64(1)<<(uint(s)%64)
	hit, prev := i, int32(-1)
	for ; i < len(hashes); i++ {
		if memo[i] == 0 {
			memo[i] = -1
			// The hash after the previous one in the latest Add is
			// usually this one: check it before looking up.
			if n := p.nextOf(prev); n >= 0 && same(&p.hashes[n], &hashes[i]) {
				memo[i] = n + 1
			} else if slot, ok := p.index.find(&hashes[i], p.hashes); ok {
				memo[i] = slot + 1
			}
		}
		if memo[i] < 0 {
			break
		}
		k := int(memo[i]-1)*p.words + w
		if p.masks[k]&bit == 0 {
			break
		}
		if p.points[k]&bit != 0 {
			hit = i + 1
		}
		prev = memo[i] - 1
	}
	return i, hit
}

// nextOf returns the live slot the latest Add put after slot, or -1.
func (p *Pending) nextOf(slot int32) int32 {
	if slot < 0 {
		return -1
	}
	n := p.next[slot] - 1
	if n < 0 || !p.live[n] {
		return -1
	}
	return n
}
