package paged

import (
	"encoding/binary"
	"errors"
	"fmt"

	"github.com/pagedkv/pagedkv/allocator"
	"github.com/pagedkv/pagedkv/eviction"
)

// ErrNoHostTier: the operation needs a host tier (Config.HostBlocks) and
// the manager has none.
var ErrNoHostTier = errors.New("paged: no host tier")

// hostTier is the second memory pool of a manager, in host memory. Its
// blocks hold either the tables of swapped-out sequences (referenced, in
// no index) or offloaded prefix-cache content (unreferenced, in the host
// policy and the host index, at most one host block per (hash, group), the
// key of the device index). Host block IDs are a namespace of their own:
// block 0 is a real host block.
type hostTier struct {
	pool      *allocator.Pool
	policy    eviction.Policy
	forgetter eviction.Forgetter
	offload   bool
	floor     int

	// Per host block: hash holds the host index key of the content
	// (hostKey: the chain hash with the group mixed in).
	hash   []Hash
	parent []Hash // as Manager.parent
	// group is the KV cache group of each host block's offloaded content,
	// kept only with several groups (as the device index's blockLinks.group).
	group []uint8
	index hashIndex
	// hmark maps a host block to the device block it was swapped into
	// during one SwapIn call, so shared host blocks come back shared.
	hmark []allocator.BlockID
	// hprio and hexp are the retention promise each host block's
	// offloaded content carried (its device block's prio and expires
	// then), which onboarding gives back (Manager.onboardRef).
	hprio []int8
	hexp  []int64

	// Per device block: the retention of its committed content, for the
	// offload floor (Manager.noteCommitAt), and the host block it went to
	// during one SwapOut.
	prio    []int8
	expires []int64
	mark    []allocator.BlockID

	// moves is the ordered stream of pending tier directives (and the
	// copy-on-write copies that preceded them); copies are the manager's
	// pending copy-on-write copies (Manager.copies).
	moves  []Swap
	copies *[]Copy

	swapOuts, swapIns, offloads, onboards, hostEvictions uint64
	hostHitBlocks                                        uint64
	swapOutCalls, swapInCalls                            uint64
	nswapped                                             int

	// groups are the per-group figures (TierStatsGroup), one per KV cache
	// group; quiet marks the groups whose cached blocks are state
	// checkpoint pages, which are not reported as KV events (the pool's
	// blockPool.quiet).
	groups []GroupTierStats
	quiet  []bool
	// gone is blockPool.gone, for content leaving the host index.
	gone func(k, h *Hash, g int)
	// hinter and ticker are the host policy's optional abilities: it is
	// told the retention of the content offloaded into a block (hprio,
	// hexp) and the manager's logical time, as the device policy is.
	hinter eviction.Hinter
	ticker eviction.Ticker
}

// markCounted is a placeholder in hostTier.mark while a dry run counts
// distinct blocks; it is neither a block nor NoBlock.
const markCounted allocator.BlockID = -2

// withTierDefaults validates the tier fields of cfg.
func (cfg Config) withTierDefaults() (Config, error) {
	if cfg.HostBlocks < 0 || cfg.HostBlocks > MaxBlocks {
		return cfg, fmt.Errorf("%w: Config.HostBlocks %d must be in [0, MaxBlocks=%d]", ErrInvalid, cfg.HostBlocks, MaxBlocks)
	}
	if cfg.OffloadPriority < 0 || cfg.OffloadPriority > 100 {
		return cfg, fmt.Errorf("%w: Config.OffloadPriority %d must be in [0, 100]", ErrInvalid, cfg.OffloadPriority)
	}
	if cfg.HostBlocks > 0 && cfg.HostPolicy == nil {
		cfg.HostPolicy = eviction.NewLRU
	}
	return cfg, nil
}

// newHostTier builds the host tier of a manager with nDevice device blocks.
func newHostTier(cfg Config, nDevice int) (*hostTier, error) {
	pool, err := allocator.New(allocator.Config{NumBlocks: cfg.HostBlocks})
	if err != nil {
		return nil, fmt.Errorf("paged: host tier: %w", err)
	}
	t := &hostTier{
		pool:    pool,
		policy:  cfg.HostPolicy(cfg.HostBlocks),
		offload: !cfg.DisableOffload && !cfg.DisablePrefixCaching,
		floor:   cfg.OffloadPriority,
		hash:    make([]Hash, cfg.HostBlocks),
		hmark:   make([]allocator.BlockID, cfg.HostBlocks),
		hprio:   make([]int8, cfg.HostBlocks),
		hexp:    make([]int64, cfg.HostBlocks),
		prio:    make([]int8, nDevice),
		expires: make([]int64, nDevice),
		mark:    make([]allocator.BlockID, nDevice),
	}
	if cfg.Events > 0 {
		t.parent = make([]Hash, cfg.HostBlocks) // see Manager.parent
	}
	t.index = newHashIndex(cfg.HostBlocks, t.hash)
	if t.policy == nil {
		return nil, fmt.Errorf("%w: Config.HostPolicy returned a nil policy", ErrInvalid)
	}
	t.forgetter, _ = t.policy.(eviction.Forgetter)
	t.hinter, _ = t.policy.(eviction.Hinter)
	t.ticker, _ = t.policy.(eviction.Ticker)
	for i := range t.hmark {
		t.hmark[i] = allocator.NoBlock
	}
	for i := range t.mark {
		t.mark[i] = allocator.NoBlock
	}
	t.groups = make([]GroupTierStats, max(1, len(cfg.Groups)))
	if len(cfg.Groups) > 1 {
		t.group = make([]uint8, cfg.HostBlocks)
	}
	return t, nil
}

// groupOf returns the KV cache group of host block id's content.
func (t *hostTier) groupOf(id allocator.BlockID) int {
	if t.group == nil {
		return 0
	}
	return int(t.group[id])
}

// hostKey is the host index key of content h of group g, and, applied to
// a key, gives the content back: the hash with g mixed into its third word
// (as ckptKey mixes a page number into the fourth), so the host index needs
// only one key per entry, as it did with one group; group 0's key is the
// hash itself. The device index salts its tags with the group instead.
func hostKey(h *Hash, g int) Hash {
	k := *h
	if g != 0 {
		x := uint64(g) * 0xc2b2ae3d27d4eb4f
		for i := range 8 {
			k[16+i] ^= byte(x >> (8 * i))
		}
	}
	return k
}

// content returns the chain hash of host block id's content.
func (t *hostTier) content(id allocator.BlockID) Hash { return hostKey(&t.hash[id], t.groupOf(id)) }

// get looks (h, g) up in the host index.
func (t *hostTier) get(h *Hash, g int) (allocator.BlockID, bool) {
	if g == 0 {
		return t.index.get(h)
	}
	k := hostKey(h, g)
	return t.index.get(&k)
}

// put makes unreferenced host block id hold the offloaded content (h, g),
// whose chain hash before it is parent (nil without events), and indexes
// it. A host policy that takes hints is told the content's retention,
// hprio[id] and hexp[id], which the caller has set; the content's depth
// and parent block are not known on the host (0 and NoBlock).
// REQUIRES: (h, g) is not in the host index.
func (t *hostTier) put(id allocator.BlockID, h *Hash, g int, parent *Hash) {
	if t.hinter != nil {
		t.hinter.Hint(id, eviction.Hint{
			Key:      binary.LittleEndian.Uint64(h[:8]) ^ uint64(groupSalt(g)),
			Parent:   allocator.NoBlock,
			Priority: int(t.hprio[id]),
			Expires:  t.hexp[id],
		})
	}
	t.hash[id] = hostKey(h, g)
	if t.parent != nil {
		t.parent[id] = *parent
	}
	if t.group != nil {
		t.group[id] = uint8(g)
	}
	t.index.set(&t.hash[id], id)
	t.pool.ReleaseToCache(id)
	t.policy.Insert(id)
	t.groups[g].HostCached++
}

// unindex removes host block id's content from the host index.
func (t *hostTier) unindex(id allocator.BlockID) {
	k := &t.hash[id]
	if cur, _ := t.index.get(k); cur != id {
		panic(fmt.Sprintf("paged: host block %d is not the index entry of its hash", id))
	}
	t.index.del(k)
	t.groups[t.groupOf(id)].HostCached--
}

// available returns the host blocks an allocation may take.
func (t *hostTier) available() int { return t.pool.Free() + t.policy.Len() }

// alloc takes a host block: a free one, else the host policy's victim,
// whose offloaded content is given up. REQUIRES: available() > 0.
func (t *hostTier) alloc(ev *eventBuffer) allocator.BlockID {
	if t.pool.Free() > 0 {
		id, _ := t.pool.Alloc()
		return id
	}
	id, ok := t.policy.Victim()
	if !ok {
		panic("paged: host allocation with no free or evictable host block")
	}
	g := t.groupOf(id)
	t.drop(id, ev)
	t.pool.Claim(id)
	t.hostEvictions++
	t.groups[g].HostEvictions++
	return id
}

// drop removes host block id's content from the host index and reports it.
func (t *hostTier) drop(id allocator.BlockID, ev *eventBuffer) {
	g := t.groupOf(id)
	t.unindex(id)
	if !t.quiet[g] {
		h := t.content(id)
		ev.removed(&h, Host, g)
	} else if t.gone != nil {
		h := t.content(id)
		t.gone(&h, &t.parent[id], g)
	}
	t.hash[id] = Hash{}
}

// eachReported calls fn for every offloaded block reported as a KV event
// (state checkpoint pages are not), with its group.
func (t *hostTier) eachReported(fn func(h *Hash, id allocator.BlockID, g int)) {
	t.index.each(func(_ *Hash, id allocator.BlockID) {
		if g := t.groupOf(id); !t.quiet[g] {
			h := t.content(id)
			fn(&h, id, g)
		}
	})
}

// priority returns the retention of device block id's content at now.
func (t *hostTier) priority(id allocator.BlockID, now int64) int {
	if t.expires[id] != 0 && now >= t.expires[id] {
		return eviction.DefaultPriority
	}
	return int(t.prio[id])
}

// push appends a tier directive. Copy-on-write copies issued before it are
// folded into the stream first, so the server, running the stream in order
// and then Batch.Copies, sees every transfer in the order it was decided.
func (t *hostTier) push(d Swap) {
	if copies := *t.copies; len(copies) > 0 {
		for _, c := range copies {
			t.moves = append(t.moves, Swap{Src: c.Src, Dst: c.Dst, Kind: DeviceCopy})
		}
		*t.copies = copies[:0]
	}
	t.moves = append(t.moves, d)
}

// resetHost gives up all offloaded content (ResetCache).
func (t *hostTier) reset() {
	t.index.each(func(_ *Hash, id allocator.BlockID) {
		t.policy.Remove(id)
		if t.forgetter != nil {
			t.forgetter.Forget(id)
		}
		t.pool.Evict(id)
	})
	t.index.each(func(h *Hash, _ allocator.BlockID) { *h = Hash{} })
	t.index.clear()
	for g := range t.groups {
		t.groups[g].HostCached = 0
	}
}

// checkTier verifies the host tier: pool conservation, host reference
// counts against the host tables of swapped-out sequences, and the host
// index against the host policy.
func (m *Manager) checkTier() error {
	t := m.tier
	if t == nil {
		for i := range m.seqs {
			if m.seqs[i].state == seqSwapped {
				return fmt.Errorf("paged: sequence slot %d is swapped out without a host tier", i)
			}
		}
		return nil
	}
	if err := t.pool.Check(); err != nil {
		return fmt.Errorf("paged: host tier: %w", err)
	}
	total := t.pool.Total()
	refs := make([]int32, total)
	for i := range m.seqs {
		s := &m.seqs[i]
		if s.state != seqSwapped {
			if len(s.host) != 0 {
				return fmt.Errorf("paged: sequence slot %d in state %d has a host table", i, s.state)
			}
			continue
		}
		if len(s.blocks) != 0 {
			return fmt.Errorf("paged: swapped-out sequence slot %d holds %d device blocks", i, len(s.blocks))
		}
		if want := (len(s.tokens) + m.bs - 1) / m.bs; len(s.host) != want {
			return fmt.Errorf("paged: swapped-out sequence slot %d has %d tokens but %d host blocks", i, len(s.tokens), len(s.host))
		}
		if err := m.checkWindow(i, s, s.host, allocator.NoBlock); err != nil {
			return err
		}
		for k, b := range s.host {
			if k < s.released {
				if b != allocator.NoBlock {
					return fmt.Errorf("paged: swapped-out sequence slot %d entry %d is outside its window but names host block %d", i, k, b)
				}
				continue
			}
			if !t.pool.Valid(b) {
				return fmt.Errorf("paged: swapped-out sequence slot %d entry %d names host block %d", i, k, b)
			}
			refs[b]++
		}
	}
	for i := range m.seqs {
		if err := m.checkHostGroups(i, &m.seqs[i], refs); err != nil {
			return err
		}
	}
	cached := make([]int, len(t.groups))
	for id := allocator.BlockID(0); int(id) < total; id++ {
		if got := t.pool.RefCount(id); got != refs[id] {
			return fmt.Errorf("paged: host block %d has count %d but %d host table entries", id, got, refs[id])
		}
		indexed := t.pool.IsCached(id)
		if t.policy.Contains(id) != indexed {
			return fmt.Errorf("paged: host block %d in host policy = %v, cached = %v", id, !indexed, indexed)
		}
		if indexed {
			g := t.groupOf(id)
			if err := m.checkHostGroup(id, g); err != nil {
				return err
			}
			h := t.content(id)
			if cur, _ := t.get(&h, g); cur != id {
				return fmt.Errorf("paged: host block %d holds %x of group %d but the host index does not name it", id, h[:6], g)
			}
			cached[g]++
		}
		if t.hmark[id] != allocator.NoBlock {
			return fmt.Errorf("paged: host block %d has a stale swap mark", id)
		}
	}
	for g, n := range cached {
		if n != t.groups[g].HostCached {
			return fmt.Errorf("paged: host tier holds %d blocks of group %d, counts %d", n, g, t.groups[g].HostCached)
		}
	}
	if t.index.len() != t.pool.Cached() || t.policy.Len() != t.pool.Cached() {
		return fmt.Errorf("paged: host index has %d entries, host policy %d, host pool %d cached", t.index.len(), t.policy.Len(), t.pool.Cached())
	}
	for id, b := range t.mark {
		if b != allocator.NoBlock {
			return fmt.Errorf("paged: device block %d has a stale swap mark", id)
		}
	}
	return nil
}

// checkHostGroup verifies that offloaded host block id holds content of
// group g that the prefix cache keeps: a group with a table of its own
// whose blocks hold blocks of tokens, or a State group's checkpoint page,
// not reported as an event.
func (m *Manager) checkHostGroup(id allocator.BlockID, g int) error {
	t := m.tier
	if g >= len(t.groups) {
		return fmt.Errorf("paged: host block %d holds content of group %d of %d", id, g, len(t.groups))
	}
	if !m.hybrid() {
		return nil
	}
	ckpt := m.ret.ckpt && m.kinds[g].pages() > 0
	if !m.kinds[g].commits() && !ckpt {
		return fmt.Errorf("paged: host block %d holds content of group %d (%v), which caches none", id, g, m.cfg.Groups[g].Kind)
	}
	if t.quiet[g] != ckpt {
		return fmt.Errorf("paged: host tier reports events of group %d = %v, but it is a checkpoint group = %v", g, !t.quiet[g], ckpt)
	}
	return nil
}

// TierStats are the host tier's occupancy and lifetime counters.
type TierStats struct {
	// HostBlocks is the size of the host tier; HostFree are on its free
	// list, HostCached hold offloaded prefix-cache content (evictable under
	// Config.HostPolicy), HostUsed hold swapped-out sequences.
	HostBlocks, HostFree, HostCached, HostUsed int
	// Swapped counts sequences swapped out now (Stats.Waiting includes
	// them: they hold no device blocks).
	Swapped int
	// SwapOutCalls and SwapInCalls count successful calls; SwapOutBlocks
	// and SwapInBlocks count the directives they issued (blocks copied).
	SwapOutCalls, SwapInCalls, SwapOutBlocks, SwapInBlocks uint64
	// Offloads counts evicted device blocks whose content moved to the
	// host; Onboards counts host blocks moved back on a prefix hit;
	// HostEvictions counts offloaded content given up.
	Offloads, Onboards, HostEvictions uint64
	// HostHitBlocks is the part of Stats.PrefixHitBlocks found in the host
	// tier (counted at every Admit call, as PrefixHitBlocks is); device
	// hits are PrefixHitBlocks - HostHitBlocks. With KV cache groups both
	// count group 0's blocks; TierStatsGroup has every group's onboards.
	// The other counters sum every group.
	HostHitBlocks uint64
}

// tierStats fills ts from the host tier.
func (m *Manager) tierStats(ts *TierStats) {
	t := m.tier
	if t == nil {
		return
	}
	*ts = TierStats{
		HostBlocks: t.pool.Total(), HostFree: t.pool.Free(), HostCached: t.pool.Cached(), HostUsed: t.pool.Held(),
		Swapped:      t.nswapped,
		SwapOutCalls: t.swapOutCalls, SwapInCalls: t.swapInCalls, SwapOutBlocks: t.swapOuts, SwapInBlocks: t.swapIns,
		Offloads: t.offloads, Onboards: t.onboards, HostEvictions: t.hostEvictions,
		HostHitBlocks: t.hostHitBlocks,
	}
}

// GroupTierStats are the host tier's figures of one KV cache group
// (TierStatsGroup).
type GroupTierStats struct {
	// HostCached counts host blocks holding the group's offloaded content.
	HostCached int
	// SwapOutBlocks and SwapInBlocks count the group's blocks copied by
	// SwapOut and SwapIn.
	SwapOutBlocks, SwapInBlocks uint64
	// Offloads, Onboards and HostEvictions are TierStats' counters for the
	// group's blocks: Onboards counts host blocks moved back for a prefix
	// hit (or by Onboard), the hits the host tier saved in the group.
	Offloads, Onboards, HostEvictions uint64
}

// TierStatsGroup returns the host tier's figures of KV cache group g
// (Config.Groups; 0 for a model of one kind). With a State group in the
// default mode its offloaded blocks are state checkpoint pages. It returns
// ErrNoHostTier without a host tier and ErrInvalid for a group out of
// range; a Shared group holds nothing and its figures stay zero.
func (m *Manager) TierStatsGroup(g int) (GroupTierStats, error) {
	if m.tier == nil {
		return GroupTierStats{}, errorf(ErrNoHostTier, "TierStatsGroup: Config.HostBlocks is 0")
	}
	if g < 0 || g >= len(m.tier.groups) {
		return GroupTierStats{}, errorf(ErrInvalid, "TierStatsGroup: group %d of %d", g, len(m.tier.groups))
	}
	return m.tier.groups[g], nil
}
