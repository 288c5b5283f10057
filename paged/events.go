package paged

// eventBuffer is a bounded queue of events. Hashes and tokens of queued
// events live in an arena; DrainEvents hands the arena to the caller and
// switches to a second one, so drained slices stay valid until the next
// drain and a steady state allocates nothing.
type eventBuffer struct {
	cap int
	seq uint64
	// sealed is the last sequence number a Snapshot reported: the events
	// up to it are in that snapshot, so none of them takes in a later
	// change (a merge would give the change a number a consumer that
	// resynced from the snapshot skips).
	sealed  uint64
	dropped uint64
	queue   []Event
	hashes  [2][]Hash
	tokens  [2][]int32
	cur     int
}

func (b *eventBuffer) init(capacity int) {
	b.cap = capacity
	if capacity > 0 {
		// Grown with use: a large capacity costs nothing until events
		// pile up undrained.
		b.queue = make([]Event, 0, min(capacity, 1024))
	}
}

func (b *eventBuffer) on() bool { return b.cap > 0 }

// push numbers e and queues it, or counts it as dropped when full. The
// sequence number is spent either way, so consumers see the gap.
func (b *eventBuffer) push(e Event) {
	b.seq++
	if len(b.queue) >= b.cap {
		b.dropped++
		return
	}
	e.Seq = b.seq
	b.queue = append(b.queue, e)
}

func (b *eventBuffer) full() bool { return len(b.queue) >= b.cap }

func (b *eventBuffer) stored(hashes []Hash, parent *Hash, tokens []int32, blockSize int, lora int32, medium Medium, group int) {
	if !b.on() {
		return
	}
	if b.full() {
		b.push(Event{})
		return
	}
	h0, t0 := len(b.hashes[b.cur]), len(b.tokens[b.cur])
	b.hashes[b.cur] = append(b.hashes[b.cur], hashes...)
	b.tokens[b.cur] = append(b.tokens[b.cur], tokens...)
	e := Event{
		Kind:      BlockStored,
		Hashes:    b.hashes[b.cur][h0:len(b.hashes[b.cur]):len(b.hashes[b.cur])],
		Tokens:    b.tokens[b.cur][t0:len(b.tokens[b.cur]):len(b.tokens[b.cur])],
		BlockSize: blockSize,
		LoRA:      lora,
		Medium:    medium,
		Group:     group,
	}
	if parent != nil {
		e.Parent, e.HasParent = *parent, true
	}
	b.push(e)
}

func (b *eventBuffer) removed(h *Hash, medium Medium, group int) {
	b.simple(BlockRemoved, h, medium, medium, group)
}

func (b *eventBuffer) moved(h *Hash, from, to Medium, group int) {
	b.simple(BlockMoved, h, to, from, group)
}

// onboarded reports content h of group g moved from the host back to the
// device with what a BlockStored of it carries: its parent (nil for a
// chain's first block), its tokens (nil when unknown: moved then reports
// the move alone), block size and LoRA, so that a consumer that cannot
// follow moves (vLLM's schema, fleet/kvevents) can store it again. Blocks
// onboarded one after another along a chain merge into one event.
func (b *eventBuffer) onboarded(h, parent *Hash, tokens []int32, blockSize int, lora int32, group int) {
	if tokens == nil {
		b.moved(h, Host, Device, group)
		return
	}
	if !b.on() {
		return
	}
	if b.full() {
		b.push(Event{})
		return
	}
	hs, ts := b.hashes[b.cur], b.tokens[b.cur]
	if n := len(b.queue); n > 0 && parent != nil {
		last := &b.queue[n-1]
		if last.Seq > b.sealed && last.Kind == BlockMoved && last.Medium == Device && last.From == Host && last.Group == group &&
			last.LoRA == lora && last.BlockSize == blockSize && len(last.Tokens) > 0 &&
			&last.Hashes[len(last.Hashes)-1] == &hs[len(hs)-1] && &last.Tokens[len(last.Tokens)-1] == &ts[len(ts)-1] &&
			last.Hashes[len(last.Hashes)-1] == *parent {
			b.hashes[b.cur], b.tokens[b.cur] = append(hs, *h), append(ts, tokens...)
			nh, nt := len(last.Hashes)+1, len(last.Tokens)+len(tokens)
			last.Hashes = b.hashes[b.cur][len(hs)+1-nh : len(hs)+1 : len(hs)+1]
			last.Tokens = b.tokens[b.cur][len(ts)+len(tokens)-nt : len(ts)+len(tokens) : len(ts)+len(tokens)]
			return
		}
	}
	b.hashes[b.cur], b.tokens[b.cur] = append(hs, *h), append(ts, tokens...)
	e := Event{
		Kind:      BlockMoved,
		Hashes:    b.hashes[b.cur][len(hs) : len(hs)+1 : len(hs)+1],
		Tokens:    b.tokens[b.cur][len(ts) : len(ts)+len(tokens) : len(ts)+len(tokens)],
		BlockSize: blockSize,
		LoRA:      lora,
		Medium:    Device,
		From:      Host,
		Group:     group,
	}
	if parent != nil {
		e.Parent, e.HasParent = *parent, true
	}
	b.push(e)
}

func (b *eventBuffer) simple(kind EventKind, h *Hash, medium, from Medium, group int) {
	if !b.on() {
		return
	}
	if b.full() {
		b.push(Event{})
		return
	}
	// Consecutive single-block events of one kind merge into one event
	// (never into one that carries tokens, which name one block each, nor
	// into one a Snapshot has reported).
	if n := len(b.queue); n > 0 {
		last := &b.queue[n-1]
		hs := b.hashes[b.cur]
		if last.Seq > b.sealed && last.Kind == kind && last.Medium == medium && last.From == from && last.Group == group && len(last.Hashes) > 0 && len(last.Tokens) == 0 &&
			len(hs) > 0 && &last.Hashes[len(last.Hashes)-1] == &hs[len(hs)-1] && cap(hs) > len(hs) {
			b.hashes[b.cur] = append(hs, *h)
			last.Hashes = b.hashes[b.cur][len(hs)-len(last.Hashes) : len(hs)+1 : len(hs)+1]
			return
		}
	}
	h0 := len(b.hashes[b.cur])
	b.hashes[b.cur] = append(b.hashes[b.cur], *h)
	b.push(Event{Kind: kind, Hashes: b.hashes[b.cur][h0 : h0+1 : h0+1], Medium: medium, From: from, Group: group})
}

func (b *eventBuffer) cleared() {
	if b.on() {
		b.push(Event{Kind: AllBlocksCleared, Medium: Device})
	}
}

// DrainEvents appends the queued KV events to dst in order and empties the
// queue. The events' slices stay valid until the next DrainEvents call.
// Events that did not fit in Config.Events were dropped; their sequence
// numbers are missing, and Stats().EventsDropped counts them.
func (m *Manager) DrainEvents(dst []Event) []Event {
	b := &m.bp.events
	dst = append(dst, b.queue...)
	b.queue = b.queue[:0]
	b.cur ^= 1
	b.hashes[b.cur] = b.hashes[b.cur][:0]
	b.tokens[b.cur] = b.tokens[b.cur][:0]
	return dst
}
