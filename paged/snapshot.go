package paged

import (
	"fmt"

	"github.com/pagedkv/pagedkv/allocator"
)

// Snapshot describes a manager's whole prefix cache at one point of its
// event stream, so a consumer that lost events (or its own state, as a
// fleet index whose Redis restarted) can rebuild its view exactly and
// then follow the events after Seq.
type Snapshot struct {
	// Seq is the number of the last event the manager had emitted (or
	// dropped) when the snapshot was taken: the snapshot includes the
	// effect of every event up to Seq and of none after.
	Seq uint64
	// BlockSize is the manager's block size in tokens.
	BlockSize int
	// Blocks lists every cached block: each device block holding
	// committed content (two blocks with one content are listed twice, as
	// they were stored by two events) and each offloaded host block. A
	// block comes after its parent when the parent is listed too.
	Blocks []CachedBlock
}

// CachedBlock is one cached block of a Snapshot.
type CachedBlock struct {
	// Hash names the block's content; Parent is the hash of the block
	// before it in its chain, valid when HasParent (false for a chain's
	// first block).
	Hash, Parent Hash
	// HasParent reports whether Parent is valid.
	HasParent bool
	// Medium is the tier holding the block.
	Medium Medium
	// Group is the KV cache group of the block (Config.Groups), as vLLM
	// numbers the groups of a hybrid model; 0 for a model of one kind.
	Group int
}

// Snapshot fills snap with the manager's cached blocks and the sequence
// number of its event stream, reusing snap.Blocks' storage. It costs
// O(blocks) time and allocates a map for the ordering; it is meant for
// recovery, not for every step. Parents are known only to a manager with
// events on (Config.Events > 0), which keeps them per block; without
// events every block is listed with HasParent false. Every change made
// after it takes an event numbered after snap.Seq: the queued events
// merge consecutive removals, moves and onboards into one, but never
// into one numbered up to a snapshot's Seq. A nil snap is ErrInvalid.
func (m *Manager) Snapshot(snap *Snapshot) error {
	if snap == nil {
		return errorf(ErrInvalid, "Snapshot: nil *Snapshot")
	}
	snap.Seq = m.bp.events.seq
	m.bp.events.sealed = snap.Seq // later changes take later numbers
	snap.BlockSize = m.bs
	blocks := snap.Blocks[:0]
	add := func(h *Hash, parents []Hash, id allocator.BlockID, medium Medium, g int) {
		b := CachedBlock{Hash: *h, Medium: medium, Group: g}
		if parents != nil {
			b.Parent = parents[id]
			b.HasParent = b.Parent != m.chain.root
		}
		blocks = append(blocks, b)
	}
	for id := allocator.BlockID(1); int(id) < len(m.bp.hash); id++ {
		if m.bp.hasContent(id) && !m.isCheckpoint(id) { // checkpoint pages are not events (see eachCheckpoint)
			add(&m.bp.hash[id], m.bp.parent, id, Device, m.bp.groupOf(id))
		}
	}
	if t := m.tier; t != nil {
		var parents []Hash
		if m.bp.parent != nil {
			parents = t.parent
		}
		t.eachReported(func(h *Hash, id allocator.BlockID, g int) { add(h, parents, id, Host, g) })
	}
	// A whole state checkpoint is one block of its group (checkpoint.go).
	m.eachCheckpoint(func(h *Hash, g int, medium Medium) {
		blocks = append(blocks, CachedBlock{Hash: *h, Medium: medium, Group: g})
	})
	snap.Blocks = chainOrder(blocks)
	return nil
}

// chainOrder sorts blocks so that every block whose parent is listed
// comes after it (and after the parent's run), keeping the order
// otherwise: roots first, then their children, breadth first.
func chainOrder(blocks []CachedBlock) []CachedBlock {
	children := make(map[Hash][]int, len(blocks))
	listed := make(map[Hash]bool, len(blocks))
	for _, b := range blocks {
		listed[b.Hash] = true
	}
	out := make([]CachedBlock, 0, len(blocks))
	for i, b := range blocks {
		if b.HasParent && listed[b.Parent] {
			children[b.Parent] = append(children[b.Parent], i)
		} else {
			out = append(out, b)
		}
	}
	done := make(map[Hash]bool, len(blocks))
	for k := 0; k < len(out); k++ {
		h := out[k].Hash
		if done[h] { // copies share their children
			continue
		}
		done[h] = true
		for _, i := range children[h] {
			out = append(out, blocks[i])
		}
	}
	// A cycle of parents cannot come from chained hashes; blocks left out
	// by one (hash collisions) go last.
	if len(out) < len(blocks) {
		in := make(map[CachedBlock]int, len(out))
		for _, b := range out {
			in[b]++
		}
		for _, b := range blocks {
			if in[b] > 0 {
				in[b]--
				continue
			}
			out = append(out, b)
		}
	}
	return append(blocks[:0], out...)
}

// Validate reports a snapshot that cannot describe a cache: a block size
// below 1, an unknown medium, a negative group; a nil snapshot too.
func (s *Snapshot) Validate() error {
	if s == nil {
		return fmt.Errorf("%w: nil *Snapshot", ErrInvalid)
	}
	if s.BlockSize < 1 {
		return fmt.Errorf("%w: snapshot block size %d", ErrInvalid, s.BlockSize)
	}
	for i := range s.Blocks {
		b := &s.Blocks[i]
		if b.Medium > Host {
			return fmt.Errorf("%w: snapshot block %d has medium %d", ErrInvalid, i, b.Medium)
		}
		if b.Group < 0 {
			return fmt.Errorf("%w: snapshot block %d has group %d", ErrInvalid, i, b.Group)
		}
	}
	return nil
}

// Events appends the snapshot as BlockStored events to dst: one event per
// run of blocks in which each is the parent of the next, on one medium, of
// one group.
// Their Seq is 0 (they are not part of the stream; Snapshot.Seq places
// them in it) and they carry no tokens. The events' hashes share one new
// slice. A nil snapshot has no events: dst is returned unchanged.
func (s *Snapshot) Events(dst []Event) []Event {
	if s == nil {
		return dst
	}
	hashes := make([]Hash, len(s.Blocks))
	for i := range s.Blocks {
		b := &s.Blocks[i]
		hashes[i] = b.Hash
		if n := len(dst); n > 0 && i > 0 {
			last := &dst[n-1]
			prev := &s.Blocks[i-1]
			if last.Kind == BlockStored && b.HasParent && b.Parent == prev.Hash && b.Medium == prev.Medium && b.Group == prev.Group &&
				&last.Hashes[len(last.Hashes)-1] == &hashes[i-1] {
				last.Hashes = hashes[i-len(last.Hashes) : i+1]
				continue
			}
		}
		dst = append(dst, Event{Kind: BlockStored, Hashes: hashes[i : i+1], Parent: b.Parent, HasParent: b.HasParent, BlockSize: s.BlockSize, Medium: b.Medium, Group: b.Group})
	}
	return dst
}
