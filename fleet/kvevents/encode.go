package kvevents

import (
	"encoding/binary"
	"fmt"
	"math"
	"slices"

	"github.com/pagedkv/pagedkv/paged"
)

// Layout selects how msgspec structs appear on the wire.
type Layout uint8

const (
	// ArrayLayout writes the batch and every event as positional arrays,
	// each event led by its tag: vLLM's structs with array_like=True
	// (kv_events.py at vllm-project/vllm commit b4e69e0a, for one), the
	// layout llm-d's vLLM adapter decodes.
	ArrayLayout Layout = iota
	// MapLayout writes the batch and every event as maps, each event with
	// a "type" key first: msgspec's default, which newer vLLM uses (the
	// kv_events.py this package was checked against, vllm-project/vllm
	// commit 0181ea31, dropped array_like).
	MapLayout
)

// HashEncoding selects how block hashes appear on the wire.
type HashEncoding uint8

const (
	// HashBytes writes each paged.Hash as 32 bytes of msgpack bin, as vLLM
	// sends SHA-256 block hashes (its default since v0.10.2).
	HashBytes HashEncoding = iota
	// HashInt writes the last 8 bytes of each hash as a big-endian unsigned
	// integer, as vLLM sends 64-bit hashes and as llm-d derives an engine
	// key from a SHA-256 digest. It is lossless for hashes made by
	// HashFromInt (and llm-d keys, see package llmd); for other hashes it
	// keeps 64 bits.
	HashInt
)

// EncoderConfig configures an Encoder. The zero value writes vLLM's array
// layout, 32-byte hashes, rank 0 and group 0.
type EncoderConfig struct {
	// Layout is the wire layout of structs.
	Layout Layout
	// Hashes is the encoding of block hashes.
	Hashes HashEncoding
	// Rank is the batch's data_parallel_rank; negative omits the field
	// (vLLM before data parallelism).
	Rank int
	// Group is added to each event's own paged.Event.Group to give the
	// group_idx of every BlockStored and BlockRemoved: 0 for a manager
	// whose events name their groups (a hybrid model's Config.Groups), or
	// the group a manager of one group serves in a larger model. Negative
	// omits the field (vLLM before hybrid KV cache groups); an event of a
	// group other than 0 then yields ErrInvalid, since a consumer would
	// take it for group 0.
	Group int
	// Specs, when set, are the engine's KV cache groups by group_idx (a
	// paged manager's Config.Groups): every BlockStored then carries
	// kv_cache_spec_kind and, for a window, kv_cache_spec_sliding_window
	// of its group, as vLLM 0181ea31 does, so that a consumer learns the
	// layout from the stream (LayoutLearner). FullAttention is written
	// "full_attention", SlidingWindow "sliding_window" with its Window,
	// ChunkedLocal "chunked_local_attention" (vLLM sends no chunk size),
	// State "mamba" (vLLM's spec of linear-attention states). Needs
	// group_idx (Group >= 0); a BlockStored of a group outside Specs or
	// of a Shared group (which holds no blocks) yields ErrInvalid.
	Specs []paged.Group
}

// Encoder writes paged events as vLLM KVEventBatch frames: the msgpack
// payload of vLLM's ZMQ messages, with exactly the fields
// vllm/distributed/kv_events.py declares (vllm-project/vllm commit
// 0181ea31): BlockStored {block_hashes, parent_block_hash, token_ids,
// block_size, lora_id, medium, lora_name, extra_keys, group_idx, ...},
// BlockRemoved {block_hashes, medium, group_idx}, AllBlocksCleared {}.
// Fields with defaults are omitted when at their default, as msgspec's
// omit_defaults does; lora_name is nil (paged knows adapters by ID) and
// extra_keys is omitted.
//
// vLLM has no event for a block moving between tiers: a paged.BlockMoved
// is written as a BlockRemoved on the tier the blocks left, followed, when
// the move carries the blocks' tokens (a paged manager's onboards do, see
// paged.BlockMoved), by a BlockStored on the tier they went to. A consumer
// then under-reports the host tier (an offload carries no tokens) but never
// reports a block where it is not, and sees onboarded blocks on the device
// again.
//
// An Encoder holds no state between calls and is safe for concurrent use.
type Encoder struct {
	cfg EncoderConfig
}

// NewEncoder returns an Encoder, or ErrInvalid for an unknown layout or
// hash encoding.
func NewEncoder(cfg EncoderConfig) (*Encoder, error) {
	if cfg.Layout > MapLayout {
		return nil, fmt.Errorf("%w: layout %d", ErrInvalid, cfg.Layout)
	}
	if cfg.Hashes > HashInt {
		return nil, fmt.Errorf("%w: hash encoding %d", ErrInvalid, cfg.Hashes)
	}
	if cfg.Rank > math.MaxInt32 || cfg.Group > math.MaxInt32 {
		return nil, fmt.Errorf("%w: rank %d or group %d out of range", ErrInvalid, cfg.Rank, cfg.Group)
	}
	if len(cfg.Specs) > 0 && cfg.Group < 0 {
		return nil, fmt.Errorf("%w: specs need group_idx (Group %d)", ErrInvalid, cfg.Group)
	}
	for i, g := range cfg.Specs {
		switch {
		case g.Kind == paged.SlidingWindow && (g.Window < 1 || g.Window > math.MaxInt32):
			return nil, fmt.Errorf("%w: spec %d: window %d", ErrInvalid, i, g.Window)
		case g.Kind > paged.Shared:
			return nil, fmt.Errorf("%w: spec %d: kind %v", ErrInvalid, i, g.Kind)
		}
	}
	cfg.Specs = slices.Clone(cfg.Specs)
	return &Encoder{cfg: cfg}, nil
}

// specOf returns the kv_cache_spec fields of group g: the kind's name
// ("" for none) and the window (0 for none).
func specOf(g paged.Group) (string, int) {
	switch g.Kind {
	case paged.FullAttention:
		return SpecFullAttention.String(), 0
	case paged.SlidingWindow:
		return SpecSlidingWindow.String(), g.Window
	case paged.ChunkedLocal:
		return SpecChunkedLocalAttention.String(), 0
	case paged.State:
		return SpecMamba.String(), 0
	}
	return "", 0
}

// AppendBatch appends to dst one KVEventBatch holding events, stamped ts
// (seconds since the epoch), and returns the extended buffer. An event
// that cannot be written (an unknown kind, a BlockStored whose tokens are
// not BlockSize per hash) or a timestamp that is not a finite number
// (NaN, an infinity) yields ErrInvalid and dst unextended. Events naming
// no block (other than AllBlocksCleared) are left out, as vLLM sends none.
// Appending to a reused buffer does not allocate.
func (e *Encoder) AppendBatch(dst []byte, ts float64, events []paged.Event) ([]byte, error) {
	if math.IsNaN(ts) || math.IsInf(ts, 0) {
		return dst, fmt.Errorf("kvevents: %w: batch timestamp %v is not a finite number of seconds", ErrInvalid, ts)
	}
	for i := range events {
		if err := check(&events[i], e.cfg.Group); err != nil {
			return dst, fmt.Errorf("kvevents: event %d: %w", i, err)
		}
		// A BlockStored is written with its group's spec, and so is an
		// onboard's (restores).
		if ev := &events[i]; len(e.cfg.Specs) > 0 && ((ev.Kind == paged.BlockStored && len(ev.Hashes) > 0) || restores(ev)) {
			if g := e.cfg.Group + ev.Group; g >= len(e.cfg.Specs) || e.cfg.Specs[g].Kind == paged.Shared {
				return dst, fmt.Errorf("kvevents: event %d: %w: %v of group %d, which the encoder's %d specs do not describe as a group holding blocks", i, ErrInvalid, ev.Kind, g, len(e.cfg.Specs))
			}
		}
	}
	n := 0 // events on the wire: a move is a removal, and a store when it has tokens
	for i := range events {
		if len(events[i].Hashes) > 0 || events[i].Kind == paged.AllBlocksCleared {
			n++
		}
		if restores(&events[i]) {
			n++
		}
	}
	rank := e.cfg.Rank >= 0
	if e.cfg.Layout == MapLayout {
		dst = appendMapHeader(dst, 2+b2i(rank))
		dst = appendStr(dst, "ts")
		dst = appendFloat(dst, ts)
		dst = appendStr(dst, "events")
	} else {
		dst = appendArrayHeader(dst, 2+b2i(rank))
		dst = appendFloat(dst, ts)
	}
	dst = appendArrayHeader(dst, n)
	for i := range events {
		if len(events[i].Hashes) > 0 || events[i].Kind == paged.AllBlocksCleared {
			dst = e.appendEvent(dst, &events[i])
		}
	}
	if rank {
		if e.cfg.Layout == MapLayout {
			dst = appendStr(dst, "data_parallel_rank")
		}
		dst = appendInt(dst, int64(e.cfg.Rank))
	}
	return dst, nil
}

// check reports whether ev can be written with the encoder's group.
func check(ev *paged.Event, group int) error {
	switch ev.Kind {
	case paged.BlockStored:
		if ev.BlockSize < 1 || len(ev.Tokens) != len(ev.Hashes)*ev.BlockSize {
			return fmt.Errorf("%w: BlockStored with %d tokens for %d blocks of %d", ErrInvalid, len(ev.Tokens), len(ev.Hashes), ev.BlockSize)
		}
	case paged.BlockMoved:
		if len(ev.Tokens) > 0 && (ev.BlockSize < 1 || len(ev.Tokens) != len(ev.Hashes)*ev.BlockSize) {
			return fmt.Errorf("%w: BlockMoved with %d tokens for %d blocks of %d", ErrInvalid, len(ev.Tokens), len(ev.Hashes), ev.BlockSize)
		}
	case paged.BlockRemoved, paged.AllBlocksCleared:
	default:
		return fmt.Errorf("%w: event kind %d", ErrInvalid, ev.Kind)
	}
	if ev.Medium > paged.Host || ev.From > paged.Host {
		return fmt.Errorf("%w: medium %d", ErrInvalid, ev.Medium)
	}
	if ev.Group < 0 || ev.Group > math.MaxInt32-max(group, 0) {
		return fmt.Errorf("%w: group %d (encoder group %d)", ErrInvalid, ev.Group, group)
	}
	// Without group_idx a consumer takes every event for group 0.
	if group < 0 && ev.Group != 0 && ev.Kind != paged.AllBlocksCleared {
		return fmt.Errorf("%w: event of group %d on an encoder that omits group_idx", ErrInvalid, ev.Group)
	}
	return nil
}

func (e *Encoder) appendEvent(dst []byte, ev *paged.Event) []byte {
	maps := e.cfg.Layout == MapLayout
	group := e.cfg.Group >= 0
	// key writes a field name in the map layout; the array layout names
	// fields by position.
	key := func(name string) {
		if maps {
			dst = appendStr(dst, name)
		}
	}
	switch ev.Kind {
	case paged.AllBlocksCleared:
		if maps {
			dst = appendMapHeader(dst, 1)
			key("type")
		} else {
			dst = appendArrayHeader(dst, 1)
		}
		return appendStr(dst, "AllBlocksCleared")
	case paged.BlockRemoved, paged.BlockMoved:
		medium := ev.Medium
		if ev.Kind == paged.BlockMoved {
			medium = ev.From
		}
		if maps {
			dst = appendMapHeader(dst, 3+b2i(group))
			key("type")
		} else {
			dst = appendArrayHeader(dst, 3+b2i(group))
		}
		dst = appendStr(dst, "BlockRemoved")
		key("block_hashes")
		dst = e.appendHashes(dst, ev.Hashes)
		key("medium")
		dst = appendStr(dst, medium.String())
		if group {
			key("group_idx")
			dst = appendInt(dst, int64(e.cfg.Group+ev.Group))
		}
		if !restores(ev) {
			return dst
		}
	}
	// BlockStored: tag and seven fields without defaults, then extra_keys
	// (always nil here) and group_idx. The map layout omits a nil
	// extra_keys; the array layout must hold its place before group_idx.
	fields := 8
	if group {
		fields += 1 + b2i(!maps)
	}
	var kind string
	var window int
	if len(e.cfg.Specs) > 0 {
		kind, window = specOf(e.cfg.Specs[e.cfg.Group+ev.Group])
	}
	if kind != "" {
		fields += 1 + b2i(window > 0)
	}
	if maps {
		dst = appendMapHeader(dst, fields)
		key("type")
	} else {
		dst = appendArrayHeader(dst, fields)
	}
	dst = appendStr(dst, "BlockStored")
	key("block_hashes")
	dst = e.appendHashes(dst, ev.Hashes)
	key("parent_block_hash")
	if ev.HasParent {
		dst = e.appendHash(dst, &ev.Parent)
	} else {
		dst = appendNil(dst)
	}
	key("token_ids")
	dst = appendArrayHeader(dst, len(ev.Tokens))
	for _, t := range ev.Tokens {
		dst = appendInt(dst, int64(t))
	}
	key("block_size")
	dst = appendInt(dst, int64(ev.BlockSize))
	key("lora_id")
	if ev.LoRA != 0 {
		dst = appendInt(dst, int64(ev.LoRA))
	} else {
		dst = appendNil(dst)
	}
	key("medium")
	dst = appendStr(dst, ev.Medium.String())
	key("lora_name")
	dst = appendNil(dst)
	if group {
		if !maps {
			dst = appendNil(dst) // extra_keys
		}
		key("group_idx")
		dst = appendInt(dst, int64(e.cfg.Group+ev.Group))
	}
	if kind != "" {
		key("kv_cache_spec_kind")
		dst = appendStr(dst, kind)
		if window > 0 {
			key("kv_cache_spec_sliding_window")
			dst = appendInt(dst, int64(window))
		}
	}
	return dst
}

// restores reports whether ev is a move that carries its blocks' tokens,
// written as a removal from the tier left and a store on the tier reached.
func restores(ev *paged.Event) bool {
	return ev.Kind == paged.BlockMoved && len(ev.Hashes) > 0 && len(ev.Tokens) > 0
}

func (e *Encoder) appendHashes(dst []byte, hs []paged.Hash) []byte {
	dst = appendArrayHeader(dst, len(hs))
	for i := range hs {
		dst = e.appendHash(dst, &hs[i])
	}
	return dst
}

func (e *Encoder) appendHash(dst []byte, h *paged.Hash) []byte {
	if e.cfg.Hashes == HashInt {
		return appendUint(dst, binary.BigEndian.Uint64(h[24:]))
	}
	dst = append(dst, 0xc4, byte(len(h)))
	return append(dst, h[:]...)
}

func b2i(b bool) int {
	if b {
		return 1
	}
	return 0
}
