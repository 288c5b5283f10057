package kvevents

import (
	"fmt"
	"math"

	"github.com/pagedkv/pagedkv/paged"
)

// MaxFrameHashes and MaxFrameTokens bound the block hashes
// (block_hashes) and token IDs one frame may list, over all its events;
// a frame over either is ErrMalformed. A hash
// takes 32 bytes decoded but may take one on the wire, so without a bound
// a frame could cost 32 times its size (kept by the Batch for reuse). The
// bounds hold 32 MiB of hashes and 64 MiB of tokens, far beyond one engine
// step of vLLM (a step of 8,192 new tokens stores 512 16-token blocks).
const (
	MaxFrameHashes = 1 << 20
	MaxFrameTokens = 1 << 24
)

// Batch is one decoded vLLM KVEventBatch. Decode reuses its storage:
// the events' Hashes and Tokens slices stay valid until the next Decode.
type Batch struct {
	// TS is the batch's timestamp (seconds since the epoch at the engine).
	TS float64
	// DataParallelRank is the engine's data-parallel rank when HasRank.
	DataParallelRank int
	// HasRank reports whether the batch carried a data_parallel_rank.
	HasRank bool
	// Events are the batch's events in order. Seq is left 0; Stream
	// numbers them.
	Events []paged.Event
	// Meta holds what each event carries beyond paged.Event, index for
	// index with Events.
	Meta []Meta

	hashes []paged.Hash
	tokens []int32
	spans  []span
}

// Meta is what a vLLM event carries that paged.Event has no field for.
type Meta struct {
	// Group is the event's KV cache group (group_idx) when HasGroup; the
	// event's paged.Event.Group holds it too (0 without group_idx).
	Group int
	// HasGroup reports whether the event carried a group_idx.
	HasGroup bool
	// Spec is the KV cache spec kind of the event's group
	// (kv_cache_spec_kind, on BlockStored of newer vLLM), SpecNone when
	// absent, and SlidingWindow its kv_cache_spec_sliding_window in
	// tokens (0 when absent). vLLM sends a window only for a
	// sliding-window spec and leaves the field out (nil) for every other
	// kind; a window of 0 reads as none on a kind without a window, and
	// breaks the schema on a sliding-window kind (vLLM's windows are
	// positive). Meta.LayoutGroup and LayoutLearner turn them into the
	// group's paged.Group.
	Spec          SpecKind
	SlidingWindow int
}

// span records where an event's hashes and tokens sit in the arenas while
// they may still move.
type span struct{ h0, h1, t0, t1 int }

// Decode parses one msgpack KVEventBatch frame (the payload part of vLLM's
// ZMQ message). Both layouts msgspec produces are accepted: the batch as an
// array [ts, events, data_parallel_rank?] or a map with those keys, and
// each event as a tagged array ["BlockStored", block_hashes,
// parent_block_hash, token_ids, block_size, lora_id, medium?, ...] or a map
// with a "type" tag. group_idx and the cache-spec fields go to Meta;
// fields this package does not use (lora_name, extra_keys, later ones)
// are skipped. Medium nil or "GPU"
// is paged.Device; any other medium ("CPU", a connector's tier) is
// paged.Host.
//
// A frame that breaks the schema (a required field missing, a field or tag
// given twice, a value of the wrong type) is rejected whole with
// ErrMalformed and the batch is left empty: nothing of a bad frame is applied, because a reader
// cannot trust the events of a frame it could not fully read.
func (b *Batch) Decode(frame []byte) error {
	b.TS, b.DataParallelRank, b.HasRank = 0, 0, false
	b.reset()
	if err := b.decode(&msgReader{b: frame}); err != nil {
		b.TS, b.DataParallelRank, b.HasRank = 0, 0, false
		b.reset()
		return err
	}
	for i, s := range b.spans {
		b.Events[i].Hashes = b.hashes[s.h0:s.h1:s.h1]
		b.Events[i].Tokens = b.tokens[s.t0:s.t1:s.t1]
	}
	return nil
}

func (b *Batch) reset() {
	b.Events, b.Meta = b.Events[:0], b.Meta[:0]
	b.hashes, b.tokens, b.spans = b.hashes[:0], b.tokens[:0], b.spans[:0]
}

func (b *Batch) decode(r *msgReader) error {
	// msgspec structs are arrays with array_like=True (vLLM's published
	// KVEventBatch) and maps otherwise; accept both so a change of layout
	// in vLLM does not silently stop the index.
	c, err := r.peek()
	if err != nil {
		return err
	}
	if c&0xf0 == 0x80 || c == 0xde || c == 0xdf {
		n, err := r.mapLen()
		if err != nil {
			return err
		}
		// ts and events are required (kv_events.py gives them no
		// default), and no field may come twice: two events lists would
		// be read as the events of both.
		var seen [3]bool
		for range n {
			k, err := r.str()
			if err != nil {
				return err
			}
			f := -1
			switch string(k) {
			case "ts":
				f = 0
			case "events":
				f = 1
			case "data_parallel_rank":
				f = 2
			}
			if f >= 0 && seen[f] {
				return r.fail("duplicate batch field " + string(k))
			}
			switch f {
			case 0:
				err = b.decodeTS(r)
			case 1:
				err = b.decodeEvents(r)
			case 2:
				err = b.decodeRank(r)
			default:
				err = r.skip(0)
			}
			if err != nil {
				return err
			}
			if f >= 0 {
				seen[f] = true
			}
		}
		if !seen[0] || !seen[1] {
			return r.fail("batch without ts or events")
		}
		return r.end()
	}
	n, err := r.arrayLen()
	if err != nil {
		return err
	}
	if n < 2 {
		return r.fail("batch array shorter than [ts, events]")
	}
	if err := b.decodeTS(r); err != nil {
		return err
	}
	if err := b.decodeEvents(r); err != nil {
		return err
	}
	if n >= 3 {
		if err := b.decodeRank(r); err != nil {
			return err
		}
	}
	for range n - 3 {
		if err := r.skip(0); err != nil {
			return err
		}
	}
	return r.end()
}

// end rejects trailing bytes: a frame is exactly one batch.
func (r *msgReader) end() error {
	if r.off != len(r.b) {
		return r.fail("trailing bytes after batch")
	}
	return nil
}

func (b *Batch) decodeTS(r *msgReader) error {
	v, err := r.float()
	b.TS = v
	return err
}

func (b *Batch) decodeRank(r *msgReader) error {
	if null, err := r.isNil(); null || err != nil {
		return err
	}
	v, err := r.int()
	if err != nil {
		return err
	}
	if int64(v) < 0 || v > math.MaxInt32 {
		return r.fail("data_parallel_rank out of range")
	}
	b.DataParallelRank, b.HasRank = int(v), true
	return nil
}

func (b *Batch) decodeEvents(r *msgReader) error {
	n, err := r.arrayLen()
	if err != nil {
		return err
	}
	for range n {
		if err := b.decodeEvent(r); err != nil {
			return err
		}
	}
	return nil
}

// fieldID names the event fields the decoder reads; every other field is
// skipped.
type fieldID uint8

const (
	fOther fieldID = iota
	fBlockHashes
	fParent
	fTokens
	fBlockSize
	fLoRAID
	fMedium
	fGroup
	fSpecKind
	fSpecWindow
	numFields
)

var fieldNames = [numFields]string{"", "block_hashes", "parent_block_hash", "token_ids", "block_size", "lora_id", "medium", "group_idx",
	"kv_cache_spec_kind", "kv_cache_spec_sliding_window"}

// Field positions of the array layout, after the tag, as kv_events.py
// declares them; positions past these (locality, ...) are skipped.
var (
	storedFields = [...]fieldID{fBlockHashes, fParent, fTokens, fBlockSize, fLoRAID,
		fMedium, fOther /* lora_name */, fOther /* extra_keys */, fGroup, fSpecKind, fSpecWindow}
	removedFields = [...]fieldID{fBlockHashes, fMedium, fGroup}
)

// storedRequired is how many BlockStored fields every vLLM version sends
// (early ones had no medium): storedFields[:storedRequired] must all be
// present.
const storedRequired = 5

func fieldByName(k []byte) fieldID {
	for id, name := range fieldNames[1:] {
		if string(k) == name {
			return fieldID(id + 1)
		}
	}
	return fOther
}

// eventState is one event while it is read.
type eventState struct {
	ev   paged.Event
	meta Meta
	s    span
	have [numFields]bool
	// zeroWindow records a kv_cache_spec_sliding_window of 0, checked
	// against the kind once the whole event is read (a map may name the
	// window before the kind).
	zeroWindow bool
}

func (b *Batch) decodeEvent(r *msgReader) error {
	e := eventState{ev: paged.Event{Medium: paged.Device}}
	e.s = span{h0: len(b.hashes), h1: len(b.hashes), t0: len(b.tokens), t1: len(b.tokens)}
	c, err := r.peek()
	if err != nil {
		return err
	}
	if c&0xf0 == 0x80 || c == 0xde || c == 0xdf {
		n, err := r.mapLen()
		if err != nil {
			return err
		}
		for range n {
			k, err := r.str()
			if err != nil {
				return err
			}
			if string(k) == "type" {
				if e.ev.Kind != 0 {
					return r.fail(`duplicate "type" tag`)
				}
				t, err := r.str()
				if err != nil {
					return err
				}
				if e.ev.Kind, err = eventKind(r, t); err != nil {
					return err
				}
				continue
			}
			if err := b.field(r, &e, fieldByName(k)); err != nil {
				return err
			}
		}
		if e.ev.Kind == 0 {
			return r.fail(`event map without "type" tag`)
		}
	} else {
		n, err := r.arrayLen()
		if err != nil {
			return err
		}
		if n < 1 {
			return r.fail("empty event array")
		}
		t, err := r.str()
		if err != nil {
			return err
		}
		if e.ev.Kind, err = eventKind(r, t); err != nil {
			return err
		}
		var fields []fieldID
		switch e.ev.Kind {
		case paged.BlockStored:
			fields = storedFields[:]
		case paged.BlockRemoved:
			fields = removedFields[:]
		}
		for i := 1; i < n; i++ {
			id := fOther
			if i-1 < len(fields) {
				id = fields[i-1]
			}
			if err := b.field(r, &e, id); err != nil {
				return err
			}
		}
	}
	if e.zeroWindow && (e.meta.Spec == SpecSlidingWindow || e.meta.Spec == SpecSlidingWindowMLA) {
		return r.fail("kv_cache_spec_sliding_window 0 on a " + e.meta.Spec.String() + " spec")
	}
	switch e.ev.Kind {
	case paged.BlockStored:
		for _, id := range storedFields[:storedRequired] {
			if !e.have[id] {
				return r.fail("BlockStored without " + fieldNames[id])
			}
		}
	case paged.BlockRemoved:
		if !e.have[fBlockHashes] {
			return r.fail("BlockRemoved without block_hashes")
		}
	}
	b.Events = append(b.Events, e.ev)
	b.Meta = append(b.Meta, e.meta)
	b.spans = append(b.spans, e.s)
	return nil
}

// field decodes one field of an event; both layouts end up here, the
// array layout naming fields by position.
func (b *Batch) field(r *msgReader, e *eventState, id fieldID) error {
	if id == fOther {
		return r.skip(0)
	}
	if e.have[id] {
		return r.fail("duplicate " + fieldNames[id])
	}
	e.have[id] = true
	switch id {
	case fBlockHashes:
		err := b.decodeHashes(r)
		e.s.h1 = len(b.hashes)
		return err
	case fParent:
		var err error
		e.ev.Parent, e.ev.HasParent, err = decodeHash(r, true)
		return err
	case fTokens:
		err := b.decodeTokens(r)
		e.s.t1 = len(b.tokens)
		return err
	case fBlockSize:
		v, err := r.int()
		if err == nil && (int64(v) < 1 || v > 1<<20) {
			err = r.fail("block_size out of range")
		}
		e.ev.BlockSize = int(v)
		return err
	case fLoRAID:
		if null, err := r.isNil(); null || err != nil {
			return err
		}
		v, err := r.int()
		if err == nil && (int64(v) < math.MinInt32 || int64(v) > math.MaxInt32) {
			err = r.fail("lora_id out of range")
		}
		e.ev.LoRA = int32(int64(v))
		return err
	case fMedium:
		// Only the GPU is the device tier; CPU and any connector's tier
		// are slower to reach, so they score as host blocks.
		if null, err := r.isNil(); null || err != nil {
			return err
		}
		m, err := r.str()
		if err == nil && string(m) != "GPU" {
			e.ev.Medium = paged.Host
		}
		return err
	case fGroup:
		v, ok, err := optInt(r, 0, id)
		if ok {
			e.meta.Group, e.meta.HasGroup = v, true
			e.ev.Group = v
		}
		return err
	case fSpecKind:
		if null, err := r.isNil(); null || err != nil {
			return err
		}
		k, err := r.str()
		e.meta.Spec = specKindOf(k)
		return err
	case fSpecWindow:
		// 0 is no window, unless the kind has one (checked at the end of
		// the event).
		v, ok, err := optInt(r, 0, id)
		e.meta.SlidingWindow = v
		e.zeroWindow = ok && v == 0
		return err
	}
	panic("kvevents: unknown field id")
}

// optInt reads field id, an int in [lo, MaxInt32] or nil (ok false).
func optInt(r *msgReader, lo int64, id fieldID) (v int, ok bool, err error) {
	if null, err := r.isNil(); null || err != nil {
		return 0, false, err
	}
	u, err := r.int()
	if err == nil && (int64(u) < lo || u > math.MaxInt32) {
		err = r.fail(fieldNames[id] + " out of range")
	}
	return int(u), true, err
}

func eventKind(r *msgReader, tag []byte) (paged.EventKind, error) {
	switch string(tag) {
	case "BlockStored":
		return paged.BlockStored, nil
	case "BlockRemoved":
		return paged.BlockRemoved, nil
	case "AllBlocksCleared":
		return paged.AllBlocksCleared, nil
	}
	return 0, r.fail(fmt.Sprintf("unknown event tag %q", tag))
}

func decodeHash(r *msgReader, nullable bool) (paged.Hash, bool, error) {
	// Only parent_block_hash may be nil (a chain's first block).
	if nullable {
		if null, err := r.isNil(); null || err != nil {
			return paged.Hash{}, false, err
		}
	}
	if r.isInt() {
		v, err := r.int()
		return HashFromInt(v), true, err
	}
	v, isStr, err := r.raw()
	if err != nil {
		return paged.Hash{}, false, err
	}
	if isStr {
		return paged.Hash{}, false, r.fail("block hash is a str, want int or bin")
	}
	return HashFromBytes(v), true, nil
}

func (b *Batch) decodeHashes(r *msgReader) error {
	n, err := r.arrayLen()
	if err != nil {
		return err
	}
	if len(b.hashes)+n > MaxFrameHashes {
		return r.fail(fmt.Sprintf("frame lists more than MaxFrameHashes=%d block hashes", MaxFrameHashes))
	}
	for range n {
		h, _, err := decodeHash(r, false)
		if err != nil {
			return err
		}
		b.hashes = append(b.hashes, h)
	}
	return nil
}

func (b *Batch) decodeTokens(r *msgReader) error {
	n, err := r.arrayLen()
	if err != nil {
		return err
	}
	if len(b.tokens)+n > MaxFrameTokens {
		return r.fail(fmt.Sprintf("frame lists more than MaxFrameTokens=%d token IDs", MaxFrameTokens))
	}
	for range n {
		v, err := r.int()
		if err != nil {
			return err
		}
		if int64(v) < math.MinInt32 || int64(v) > math.MaxInt32 {
			return r.fail("token id out of int32 range")
		}
		b.tokens = append(b.tokens, int32(int64(v)))
	}
	return nil
}

// Stream turns one vLLM engine's ZMQ stream into sequence-numbered
// events, as fleet's Index.Apply takes them. vLLM numbers batches (from 0), not events;
// the stream numbers events from 1 and lets a lost batch show as a gap in
// the event numbers, so the index drops that server's entries and marks it
// partial rather than answer from a state that missed events.
//
// One Stream per engine (per data-parallel rank); not safe for
// concurrent use.
type Stream struct {
	batch     Batch
	seq       uint64
	lastBatch uint64
	started   bool
}

// Decode decodes the batch numbered batchSeq (the 8-byte big-endian
// sequence frame of vLLM's message) and returns its events, numbered. The
// events stay valid until the next call. A batch at or below the last one
// seen is a replay and yields no events. A malformed frame yields
// ErrMalformed and counts as lost: the next batch's events start after a
// gap.
func (s *Stream) Decode(batchSeq uint64, frame []byte) ([]paged.Event, error) {
	if s.started && batchSeq <= s.lastBatch {
		return nil, nil
	}
	// A batch number that skips ahead (or a first batch other than 0) means
	// lost batches: skip one event number so the index sees the gap.
	if (!s.started && batchSeq != 0) || (s.started && batchSeq != s.lastBatch+1) {
		s.seq++
	}
	s.started, s.lastBatch = true, batchSeq
	if err := s.batch.Decode(frame); err != nil {
		s.seq++
		return nil, fmt.Errorf("kvevents: batch %d: %w", batchSeq, err)
	}
	for i := range s.batch.Events {
		s.seq++
		s.batch.Events[i].Seq = s.seq
	}
	return s.batch.Events, nil
}

// Restart tells the stream its engine started over: batch numbers begin
// again at 0 and the old cache is gone. Event numbers keep rising, after a
// gap, so an index drops what it knew of the engine instead of taking the
// new batches for replays.
func (s *Stream) Restart() {
	s.started = false
	s.seq++
}

// Batch returns the batch the last successful Decode read (its timestamp,
// rank and per-event Meta), valid until the next Decode.
func (s *Stream) Batch() *Batch { return &s.batch }
