package fleet

import (
	"bytes"
	"crypto/sha256"
	"encoding/binary"
	"fmt"
	"math"

	"github.com/pagedkv/pagedkv/paged"
)

// HashFromVLLMInt maps a vLLM block hash sent as a msgpack integer (older
// vLLM, or a 64-bit hash function) to a paged.Hash: the value's 64-bit
// two's-complement pattern, big-endian, in the last 8 bytes, the first 24
// bytes zero. Signed and unsigned encodings of one bit pattern map alike.
func HashFromVLLMInt(v uint64) paged.Hash {
	var h paged.Hash
	binary.BigEndian.PutUint64(h[24:], v)
	return h
}

// HashFromVLLMBytes maps a vLLM block hash sent as msgpack bytes to a
// paged.Hash. A 32-byte value (SHA-256, vLLM's default since v0.10.2) is
// taken as is; any other length is hashed with SHA-256 under a fixed
// domain prefix, so every length maps deterministically and cannot alias
// an integer hash.
func HashFromVLLMBytes(b []byte) paged.Hash {
	if len(b) == len(paged.Hash{}) {
		return paged.Hash(b)
	}
	d := sha256.New()
	d.Write([]byte("pagedkv vllm hash\x00"))
	d.Write(b)
	var h paged.Hash
	d.Sum(h[:0])
	return h
}

// VLLMBatch is one decoded vLLM KVEventBatch. Decode reuses its storage:
// the events' Hashes and Tokens slices stay valid until the next Decode.
type VLLMBatch struct {
	// TS is the batch's timestamp (seconds since the epoch at the engine).
	TS float64
	// DataParallelRank is the engine's data-parallel rank when HasRank.
	DataParallelRank int
	// HasRank reports whether the batch carried a data_parallel_rank.
	HasRank bool
	// Events are the batch's events in order. Seq is left 0; VLLMStream
	// numbers them.
	Events []paged.Event

	hashes []paged.Hash
	tokens []int32
	spans  []span
}

// span records where an event's hashes and tokens sit in the arenas while
// they may still move.
type span struct{ h0, h1, t0, t1 int }

// Decode parses one msgpack KVEventBatch frame (the payload part of vLLM's
// ZMQ message). Both layouts msgspec produces are accepted: the batch as an
// array [ts, events, data_parallel_rank?] or a map with those keys, and
// each event as a tagged array ["BlockStored", block_hashes,
// parent_block_hash, token_ids, block_size, lora_id, medium?, ...] or a map
// with a "type" tag. Trailing fields this package does not use (lora_name,
// extra_keys, group_idx, cache-spec fields) are skipped. Medium nil or "GPU"
// is paged.Device; any other medium ("CPU", a connector's tier) is
// paged.Host.
//
// A frame that breaks the schema is rejected whole with ErrMalformed and the
// batch is left empty: nothing of a bad frame is applied, because a reader
// cannot trust the events of a frame it could not fully read.
func (b *VLLMBatch) Decode(frame []byte) error {
	b.TS, b.DataParallelRank, b.HasRank = 0, 0, false
	b.Events, b.hashes, b.tokens, b.spans = b.Events[:0], b.hashes[:0], b.tokens[:0], b.spans[:0]
	if err := b.decode(&msgReader{b: frame}); err != nil {
		b.TS, b.DataParallelRank, b.HasRank = 0, 0, false
		b.Events, b.hashes, b.tokens, b.spans = b.Events[:0], b.hashes[:0], b.tokens[:0], b.spans[:0]
		return err
	}
	for i, s := range b.spans {
		b.Events[i].Hashes = b.hashes[s.h0:s.h1:s.h1]
		b.Events[i].Tokens = b.tokens[s.t0:s.t1:s.t1]
	}
	return nil
}

func (b *VLLMBatch) decode(r *msgReader) error {
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
		seen := false
		for range n {
			k, err := r.str()
			if err != nil {
				return err
			}
			switch string(k) {
			case "ts":
				err = b.decodeTS(r)
			case "events":
				err, seen = b.decodeEvents(r), true
			case "data_parallel_rank":
				err = b.decodeRank(r)
			default:
				err = r.skip(0)
			}
			if err != nil {
				return err
			}
		}
		if !seen {
			return r.fail("batch without events")
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

func (b *VLLMBatch) decodeTS(r *msgReader) error {
	v, err := r.float()
	b.TS = v
	return err
}

func (b *VLLMBatch) decodeRank(r *msgReader) error {
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

func (b *VLLMBatch) decodeEvents(r *msgReader) error {
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

// Field positions of the array layout, after the tag.
var (
	storedFields  = []string{"block_hashes", "parent_block_hash", "token_ids", "block_size", "lora_id", "medium"}
	removedFields = []string{"block_hashes", "medium"}
)

// storedRequired is how many BlockStored fields every vLLM version sends
// (v0.9 had no medium).
const storedRequired = 5

func (b *VLLMBatch) decodeEvent(r *msgReader) error {
	ev := paged.Event{Medium: paged.Device}
	s := span{h0: len(b.hashes), h1: len(b.hashes), t0: len(b.tokens), t1: len(b.tokens)}
	c, err := r.peek()
	if err != nil {
		return err
	}
	// have records which storedFields were present, so a BlockStored
	// missing a required field is rejected rather than half-applied.
	var have [6]bool
	// field decodes one named field into ev; both layouts end up here, the
	// array layout naming fields by position.
	field := func(name string) error {
		switch name {
		case "block_hashes":
			err = b.decodeHashes(r)
			s.h1 = len(b.hashes)
		case "parent_block_hash":
			ev.Parent, ev.HasParent, err = decodeHash(r, true)
		case "token_ids":
			err = b.decodeTokens(r)
			s.t1 = len(b.tokens)
		case "block_size":
			var v uint64
			if v, err = r.int(); err == nil && (int64(v) < 1 || v > 1<<20) {
				err = r.fail("block_size out of range")
			}
			ev.BlockSize = int(v)
		case "lora_id":
			var null bool
			if null, err = r.isNil(); !null && err == nil {
				var v uint64
				if v, err = r.int(); err == nil && (int64(v) < math.MinInt32 || int64(v) > math.MaxInt32) {
					err = r.fail("lora_id out of range")
				}
				ev.LoRA = int32(int64(v))
			}
		case "medium":
			// Only the GPU is the device tier; CPU and any connector's
			// tier are slower to reach, so they score as host blocks.
			var null bool
			if null, err = r.isNil(); !null && err == nil {
				var m []byte
				if m, err = r.str(); err == nil && !bytes.Equal(m, []byte("GPU")) {
					ev.Medium = paged.Host
				}
			}
		default:
			return r.skip(0)
		}
		for i, f := range storedFields {
			if f == name {
				have[i] = true
			}
		}
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
				t, err := r.str()
				if err != nil {
					return err
				}
				if ev.Kind, err = eventKind(r, t); err != nil {
					return err
				}
				continue
			}
			if err := field(string(k)); err != nil {
				return err
			}
		}
		if ev.Kind == 0 {
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
		if ev.Kind, err = eventKind(r, t); err != nil {
			return err
		}
		names := storedFields
		switch ev.Kind {
		case paged.BlockRemoved:
			names = removedFields
		case paged.AllBlocksCleared:
			names = nil
		}
		for i := 1; i < n; i++ {
			name := ""
			if i-1 < len(names) {
				name = names[i-1]
			}
			if err := field(name); err != nil {
				return err
			}
		}
	}
	switch ev.Kind {
	case paged.BlockStored:
		for i := range storedRequired {
			if !have[i] {
				return r.fail("BlockStored without " + storedFields[i])
			}
		}
	case paged.BlockRemoved:
		if !have[0] {
			return r.fail("BlockRemoved without block_hashes")
		}
	}
	b.Events = append(b.Events, ev)
	b.spans = append(b.spans, s)
	return nil
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
		return HashFromVLLMInt(v), true, err
	}
	v, isStr, err := r.raw()
	if err != nil {
		return paged.Hash{}, false, err
	}
	if isStr {
		return paged.Hash{}, false, r.fail("block hash is a str, want int or bin")
	}
	return HashFromVLLMBytes(v), true, nil
}

func (b *VLLMBatch) decodeHashes(r *msgReader) error {
	n, err := r.arrayLen()
	if err != nil {
		return err
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

func (b *VLLMBatch) decodeTokens(r *msgReader) error {
	n, err := r.arrayLen()
	if err != nil {
		return err
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

// VLLMStream turns one vLLM engine's ZMQ stream into sequence-numbered
// events for Index.Apply. vLLM numbers batches (from 0), not events;
// the stream numbers events from 1 and lets a lost batch show as a gap in
// the event numbers, so the index drops that server's entries and marks it
// partial rather than answer from a state that missed events.
//
// One VLLMStream per engine (per data-parallel rank); not safe for
// concurrent use.
type VLLMStream struct {
	batch     VLLMBatch
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
func (s *VLLMStream) Decode(batchSeq uint64, frame []byte) ([]paged.Event, error) {
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
		return nil, fmt.Errorf("fleet: vllm batch %d: %w", batchSeq, err)
	}
	for i := range s.batch.Events {
		s.seq++
		s.batch.Events[i].Seq = s.seq
	}
	return s.batch.Events, nil
}
