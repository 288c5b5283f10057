package paged

import (
	"fmt"
	"slices"

	"github.com/pagedkv/pagedkv/allocator"
)

// Layout says how a context-parallel sequence's logical blocks are dealt
// to its devices.
type Layout uint8

const (
	// Contiguous gives each device a shard of consecutive blocks: logical
	// block k goes to shard k / ShardBlocks, local block k % ShardBlocks.
	// Ring attention over sequence shards (Liu et al., 2023) uses it.
	Contiguous Layout = iota
	// RoundRobin deals blocks in turn: logical block k goes to shard
	// k mod D, local block k / D, which balances a growing sequence's
	// decode writes across devices.
	RoundRobin
)

// String returns "contiguous" or "round-robin".
func (l Layout) String() string {
	if l == RoundRobin {
		return "round-robin"
	}
	return "contiguous"
}

// PlacementConfig configures a Placement.
type PlacementConfig struct {
	// Device configures every device's Manager. Prefix caching and the
	// watermark are turned off on them: a chain hash covers the whole
	// sequence, so one shard alone can never hit. Its MaxModelLen is
	// ignored: MaxModelLen below bounds a sequence. Device.Groups may name
	// one full-attention group at most (ErrInvalid otherwise): a shard is
	// one block table.
	Device Config
	// Devices is the number of device pools. Required, at least 1; the
	// devices together hold at most MaxBlocks blocks.
	Devices int
	// Layout deals logical blocks to devices. Default Contiguous.
	Layout Layout
	// ShardBlocks is the length in blocks of one device's shard under
	// Contiguous. Default: the per-sequence maximum spread evenly over the
	// sequence's devices, at most one device's usable blocks.
	ShardBlocks int
	// MaxModelLen bounds the tokens of one sequence. Default: Devices times
	// what one device holds.
	MaxModelLen int
}

// Placement places sequences across several device pools for context
// parallelism (ring attention): each sequence is spread over D of the
// devices, each device keeps the block table of its shard in its own
// Manager, and BuildBatch gives each device its tables and slot mapping.
// The longest sequence grows linearly with D. Like Manager it is not safe
// for concurrent use.
type Placement struct {
	cfg   PlacementConfig
	bs    int
	devs  []*Manager
	seqs  []placed
	free  []uint32
	nlive int
	need  []int
	order []int
	stamp uint32
}

type placed struct {
	gen   uint32
	live  bool
	devs  []int   // device of each shard
	sub   []SeqID // the shard's sequence on its device, 0 before its first token
	n     int     // tokens
	shard int     // Contiguous: blocks per shard
	mark  uint32  // BuildBatch's duplicate detection
}

// NewPlacement returns a placement of cfg.Devices managers.
func NewPlacement(cfg PlacementConfig) (*Placement, error) {
	if cfg.Devices < 1 {
		return nil, errorf(ErrInvalid, "PlacementConfig.Devices %d must be at least 1", cfg.Devices)
	}
	if cfg.Layout != Contiguous && cfg.Layout != RoundRobin {
		return nil, errorf(ErrInvalid, "PlacementConfig.Layout %d is unknown", cfg.Layout)
	}
	if cfg.ShardBlocks < 0 || cfg.ShardBlocks > MaxBlocks || cfg.MaxModelLen < 0 || cfg.MaxModelLen > MaxSeqLen {
		return nil, errorf(ErrInvalid, "PlacementConfig.ShardBlocks %d must be in [0, MaxBlocks] and MaxModelLen %d in [0, MaxSeqLen]", cfg.ShardBlocks, cfg.MaxModelLen)
	}
	// Bound the metadata before building any device (NumBlocks itself is
	// validated by New).
	if nb := max(cfg.Device.NumBlocks, 2); cfg.Devices > MaxBlocks/nb {
		return nil, errorf(ErrInvalid, "PlacementConfig.Devices %d of %d blocks each: more than MaxBlocks=%d blocks in all", cfg.Devices, nb, MaxBlocks)
	}
	if len(cfg.Device.Groups) > 1 {
		// Each device keeps one full-attention table per shard: the dry
		// run counts a block per logical block, BuildBatch gives group 0.
		return nil, errorf(ErrInvalid, "PlacementConfig.Device.Groups: a placement spreads one full-attention group, not %d groups", len(cfg.Device.Groups))
	}
	dc := cfg.Device
	dc.DisablePrefixCaching, dc.Watermark, dc.MaxModelLen = true, 0, 0
	p := &Placement{cfg: cfg, need: make([]int, cfg.Devices)}
	for range cfg.Devices {
		m, err := New(dc)
		if err != nil {
			return nil, err
		}
		p.devs = append(p.devs, m)
	}
	p.bs = p.devs[0].bs
	if p.cfg.MaxModelLen == 0 {
		p.cfg.MaxModelLen = min(cfg.Devices*p.devs[0].cfg.MaxModelLen, MaxSeqLen)
	}
	return p, nil
}

// Devices returns the device managers, for their statistics and checks,
// in a new slice the caller may change. Change sequences only through the
// Placement.
func (p *Placement) Devices() []*Manager { return slices.Clone(p.devs) }

// BlockSize returns the number of token slots per block.
func (p *Placement) BlockSize() int { return p.bs }

// locate maps logical block k of s to its shard and local block.
func (p *Placement) locate(s *placed, k int) (shard, local int) {
	if p.cfg.Layout == RoundRobin {
		return k % len(s.devs), k / len(s.devs)
	}
	return k / s.shard, k % s.shard
}

// capacity is the most tokens s can hold under its layout.
func (p *Placement) capacity(s *placed) int {
	usable := p.devs[0].bp.pool.Usable()
	blocks := len(s.devs) * usable
	if p.cfg.Layout == Contiguous {
		blocks = len(s.devs) * s.shard
		if s.shard > usable {
			// The first shard fills its device before the next shard
			// takes a block.
			blocks = usable
		}
	}
	return min(p.cfg.MaxModelLen, blocks*p.bs)
}

func (p *Placement) get(id SeqID) (*placed, error) {
	idx, gen := id.parts()
	if gen == 0 || uint(idx) >= uint(len(p.seqs)) || p.seqs[idx].gen != gen || !p.seqs[idx].live {
		return nil, errorf(ErrUnknownSequence, "%v", id)
	}
	return &p.seqs[idx], nil
}

// Create places a new sequence for prompt across ways devices, those with
// the most available blocks (lowest index on ties), and allocates its
// blocks, all-or-nothing. ways larger than the number of devices is
// ErrInvalid; ErrNoSpace means later, ErrNever never.
func (p *Placement) Create(prompt []int32, ways int) (SeqID, error) {
	if ways < 1 || ways > len(p.devs) {
		return 0, errorf(ErrInvalid, "placement over %d devices: have %d", ways, len(p.devs))
	}
	if len(prompt) == 0 {
		return 0, errorf(ErrInvalid, "empty prompt")
	}
	if err := checkTokens("Create", prompt); err != nil {
		return 0, err
	}
	p.order = p.order[:0]
	for d := range p.devs {
		p.order = append(p.order, d)
	}
	// Insertion sort by available blocks, descending; stable on index.
	for i := 1; i < len(p.order); i++ {
		for j := i; j > 0 && p.devs[p.order[j]].available() > p.devs[p.order[j-1]].available(); j-- {
			p.order[j], p.order[j-1] = p.order[j-1], p.order[j]
		}
	}
	var idx uint32
	reused := len(p.free) > 0
	if reused {
		idx = p.free[len(p.free)-1]
	} else {
		idx = uint32(len(p.seqs))
		p.seqs = append(p.seqs, placed{})
	}
	s := &p.seqs[idx]
	s.devs = append(s.devs[:0], p.order[:ways]...)
	s.sub = s.sub[:0]
	for range ways {
		s.sub = append(s.sub, 0)
	}
	s.n = 0
	s.shard = p.cfg.ShardBlocks
	if s.shard == 0 {
		maxBlocks := (p.cfg.MaxModelLen + p.bs - 1) / p.bs
		s.shard = min((maxBlocks+ways-1)/ways, p.devs[0].bp.pool.Usable())
	}
	if err := p.grow(s, prompt); err != nil {
		if !reused {
			p.free = append(p.free, idx) // the slot stays for the next Create
		}
		return 0, err
	}
	if reused {
		p.free = p.free[:len(p.free)-1]
	}
	s.gen++
	if s.gen == 0 {
		s.gen = 1
	}
	s.live = true
	p.nlive++
	return makeSeqID(idx, s.gen), nil
}

// Append adds tokens to a placed sequence, allocating on the devices that
// store them, all-or-nothing.
func (p *Placement) Append(id SeqID, tokens ...int32) error {
	s, err := p.get(id)
	if err != nil {
		return err
	}
	if len(tokens) == 0 {
		return errorf(ErrInvalid, "Append to %v: no tokens", id)
	}
	if err := checkTokens("Append", tokens); err != nil {
		return err
	}
	return p.grow(s, tokens)
}

// grow appends tokens to s: a dry run counts the new blocks per device,
// then each run of tokens inside one logical block goes to its shard.
func (p *Placement) grow(s *placed, tokens []int32) error {
	n0, n1 := s.n, s.n+len(tokens)
	if n1 > p.capacity(s) {
		return errorf(ErrNever, "placed sequence of %d tokens over %d devices: at most %d", n1, len(s.devs), p.capacity(s))
	}
	clear(p.need)
	for k := (n0 + p.bs - 1) / p.bs; k < (n1+p.bs-1)/p.bs; k++ {
		shard, _ := p.locate(s, k)
		p.need[s.devs[shard]]++
	}
	for d, need := range p.need {
		if need > p.devs[d].available() {
			return errorf(ErrNoSpace, "device %d needs %d blocks, %d available", d, need, p.devs[d].available())
		}
	}
	for pos := n0; pos < n1; {
		k := pos / p.bs
		end := min(n1, (k+1)*p.bs)
		shard, _ := p.locate(s, k)
		run := tokens[pos-n0 : end-n0]
		dev := p.devs[s.devs[shard]]
		if s.sub[shard] == 0 {
			sub, _, err := dev.Create(run, nil)
			if err != nil {
				panic(fmt.Sprintf("paged: placement: device %d refused a counted allocation: %v", s.devs[shard], err))
			}
			s.sub[shard] = sub
		} else if err := dev.Append(s.sub[shard], run...); err != nil {
			panic(fmt.Sprintf("paged: placement: device %d refused a counted allocation: %v", s.devs[shard], err))
		}
		pos = end
	}
	s.n = n1
	return nil
}

// Free ends a placed sequence on all its devices.
func (p *Placement) Free(id SeqID) error {
	s, err := p.get(id)
	if err != nil {
		return err
	}
	for shard, sub := range s.sub {
		if sub != 0 {
			if err := p.devs[s.devs[shard]].Free(sub); err != nil {
				panic(fmt.Sprintf("paged: placement: shard %d: %v", shard, err))
			}
		}
	}
	s.live = false
	s.gen++
	p.nlive--
	if s.gen == 0 {
		// Spent generations: retire the slot (SeqID).
		*s = placed{}
		return nil
	}
	idx, _ := id.parts()
	p.free = append(p.free, idx)
	return nil
}

// Len returns the number of tokens of a placed sequence.
func (p *Placement) Len(id SeqID) (int, error) {
	s, err := p.get(id)
	if err != nil {
		return 0, err
	}
	return s.n, nil
}

// Shards returns the devices of a placed sequence, shard by shard. The
// slice is a view; do not modify it.
func (p *Placement) Shards(id SeqID) ([]int, error) {
	s, err := p.get(id)
	if err != nil {
		return nil, err
	}
	return s.devs, nil
}

// Table returns the block table of one shard of a placed sequence, in its
// device's block IDs; local block l of shard j holds logical block
// j*ShardBlocks+l (Contiguous) or l*D+j (RoundRobin). Empty for a shard
// that holds no token yet. The slice is a view valid until the next
// change; do not modify it.
func (p *Placement) Table(id SeqID, shard int) ([]allocator.BlockID, error) {
	s, err := p.get(id)
	if err != nil {
		return nil, err
	}
	if shard < 0 || shard >= len(s.devs) {
		return nil, errorf(ErrInvalid, "%v has %d shards, not %d", id, len(s.devs), shard+1)
	}
	if s.sub[shard] == 0 {
		return nil, nil
	}
	return p.devs[s.devs[shard]].Table(s.sub[shard])
}

// Slot returns the device and the KV slot on it of token pos.
func (p *Placement) Slot(id SeqID, pos int) (device int, slot int64, err error) {
	s, err := p.get(id)
	if err != nil {
		return 0, 0, err
	}
	if pos < 0 || pos >= s.n {
		return 0, 0, errorf(ErrInvalid, "Slot of %v: position %d outside [0, %d)", id, pos, s.n)
	}
	shard, local := p.locate(s, pos/p.bs)
	d := s.devs[shard]
	sl, err := p.devs[d].Slot(s.sub[shard], local*p.bs+pos%p.bs)
	return d, sl, err
}

// PlacementBatch is the kernel-ready metadata of one step of placed
// sequences: global lengths and query layout, and per device the shard
// tables of every scheduled sequence and the slots of the new tokens it
// stores. Reuse one across steps; its buffers are kept.
type PlacementBatch struct {
	// Seqs are the scheduled sequences, in scheduling order.
	Seqs []SeqID
	// SeqLens are the sequences' global lengths in tokens after this step.
	SeqLens []int32
	// QueryLens are the new tokens per sequence; QueryStart[i] is where
	// sequence i's new tokens begin in the step's concatenated new tokens
	// (len(Seqs)+1 entries).
	QueryLens, QueryStart []int32
	// Devices has one entry per device pool.
	Devices []ShardBatch
}

// ShardBatch is one device's part of a PlacementBatch.
type ShardBatch struct {
	// Stride is the row width: the longest shard table on this device in
	// this step, at least 1 (a device holding none of the step's shards
	// has one null entry per sequence).
	Stride int
	// Tables holds one row per scheduled sequence: its shard table on this
	// device (all null for a sequence not placed here), padded with 0.
	Tables []int32
	// SeqLens are the tokens each sequence keeps on this device.
	SeqLens []int32
	// Slots are the slots of this step's new tokens stored on this device,
	// in order.
	Slots []int64
	// Positions are the global token positions of those Slots.
	Positions []int32
}

// BuildBatch fills b for one step. NewTokens of each scheduled sequence
// are its last tokens, as for Manager.BuildBatch. On error (a nil b
// included) b is unchanged.
func (p *Placement) BuildBatch(b *PlacementBatch, sched []Scheduled) error {
	if b == nil {
		return errorf(ErrInvalid, "BuildBatch: nil *PlacementBatch")
	}
	// Marks find a repeated sequence in one pass.
	p.stamp++
	if p.stamp == 0 {
		p.stamp = 1
		for i := range p.seqs {
			p.seqs[i].mark = 0
		}
	}
	stamp := p.stamp
	for _, sc := range sched {
		s, err := p.get(sc.ID)
		if err != nil {
			return err
		}
		if sc.NewTokens < 1 || sc.NewTokens > s.n {
			return errorf(ErrInvalid, "BuildBatch: %v has %d new tokens of %d", sc.ID, sc.NewTokens, s.n)
		}
		if s.mark == stamp {
			return errorf(ErrInvalid, "BuildBatch: %v scheduled twice", sc.ID)
		}
		s.mark = stamp
	}
	for len(b.Devices) < len(p.devs) {
		b.Devices = append(b.Devices, ShardBatch{})
	}
	b.Devices = b.Devices[:len(p.devs)]
	b.Seqs, b.SeqLens, b.QueryLens = b.Seqs[:0], b.SeqLens[:0], b.QueryLens[:0]
	b.QueryStart = append(b.QueryStart[:0], 0)
	for d := range b.Devices {
		sb := &b.Devices[d]
		sb.Stride = 1
		sb.SeqLens, sb.Slots, sb.Positions = sb.SeqLens[:0], sb.Slots[:0], sb.Positions[:0]
	}
	for _, sc := range sched {
		s, _ := p.get(sc.ID)
		for shard, sub := range s.sub {
			if sub != 0 {
				sb := &b.Devices[s.devs[shard]]
				sb.Stride = max(sb.Stride, len(p.devs[s.devs[shard]].seqAt(sub).blocks))
			}
		}
	}
	for d := range b.Devices {
		sb := &b.Devices[d]
		need := len(sched) * sb.Stride
		if cap(sb.Tables) < need {
			sb.Tables = make([]int32, need)
		}
		sb.Tables = sb.Tables[:need]
		clear(sb.Tables)
		for range sched {
			sb.SeqLens = append(sb.SeqLens, 0)
		}
	}
	for i, sc := range sched {
		s, _ := p.get(sc.ID)
		for shard, sub := range s.sub {
			if sub == 0 {
				continue
			}
			d := s.devs[shard]
			sb := &b.Devices[d]
			ss := p.devs[d].seqAt(sub)
			row := sb.Tables[i*sb.Stride : (i+1)*sb.Stride]
			for k, blk := range ss.blocks {
				row[k] = int32(blk)
			}
			sb.SeqLens[i] = int32(len(ss.tokens))
		}
		for pos := s.n - sc.NewTokens; pos < s.n; pos++ {
			shard, local := p.locate(s, pos/p.bs)
			d := s.devs[shard]
			sb := &b.Devices[d]
			blk := p.devs[d].seqAt(s.sub[shard]).blocks[local]
			sb.Slots = append(sb.Slots, slot(blk, p.bs, pos))
			sb.Positions = append(sb.Positions, int32(pos))
		}
		b.Seqs = append(b.Seqs, sc.ID)
		b.SeqLens = append(b.SeqLens, int32(s.n))
		b.QueryLens = append(b.QueryLens, int32(sc.NewTokens))
		b.QueryStart = append(b.QueryStart, b.QueryStart[i]+int32(sc.NewTokens))
	}
	return nil
}

// Check verifies every device manager and that each placed sequence's
// shards hold exactly the tokens its layout deals them.
func (p *Placement) Check() error {
	for d, m := range p.devs {
		if err := m.Check(); err != nil {
			return fmt.Errorf("device %d: %w", d, err)
		}
	}
	live := 0
	subs := make([]int, len(p.devs))
	for i := range p.seqs {
		s := &p.seqs[i]
		if !s.live {
			continue
		}
		live++
		want := make([]int, len(s.devs))
		for k := 0; k*p.bs < s.n; k++ {
			shard, local := p.locate(s, k)
			want[shard] = max(want[shard], local*p.bs+min(p.bs, s.n-k*p.bs))
		}
		for shard, sub := range s.sub {
			got := 0
			if sub != 0 {
				n, err := p.devs[s.devs[shard]].Len(sub)
				if err != nil {
					return fmt.Errorf("paged: placed sequence %d shard %d: %w", i, shard, err)
				}
				got = n
				subs[s.devs[shard]]++
			}
			if got != want[shard] {
				return fmt.Errorf("paged: placed sequence %d shard %d holds %d tokens, layout says %d", i, shard, got, want[shard])
			}
		}
	}
	if live != p.nlive {
		return fmt.Errorf("paged: %d placed sequences live, counter says %d", live, p.nlive)
	}
	for d, m := range p.devs {
		if m.nlive != subs[d] {
			return fmt.Errorf("paged: device %d has %d sequences, placements name %d", d, m.nlive, subs[d])
		}
	}
	return nil
}
