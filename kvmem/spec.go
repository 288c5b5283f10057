package kvmem

import (
	"fmt"
	"math/bits"
)

// Spec is the KV layout of a model: how many bytes each token's keys and
// values take, per layer and in total, and which layers keep them for how
// long.
//
// A standard (MHA, GQA or MQA) model stores, per layer and token, KVHeads
// key rows and KVHeads value rows of HeadDim values each; GQA and MQA have
// fewer KV heads than query heads, which is where their saving comes from.
// An MLA model (DeepSeek-V2/V3, Kimi K2) stores instead one shared row of
// MLALatent compressed values plus MLARope decoupled rotary key values per
// layer and token; keys and values are both recomputed from it, so the row
// is stored once, in the Key type.
//
// A model whose layers are all full attention needs only Layers. A hybrid
// model lists its layer groups in Groups instead (see Group and the
// package doc): every attention group shares the head shape and types
// above, and a state group gives its own bytes.
type Spec struct {
	// Layers is the number of layers that keep a per-sequence cache. With
	// Groups unset they are all full attention. With Groups set it may be
	// left 0; otherwise it must equal the groups' total.
	Layers int
	// KVHeads is the number of key/value heads (standard attention; 0 for
	// MLA).
	KVHeads int
	// HeadDim is the dimension of one key or value head (standard
	// attention; 0 for MLA).
	HeadDim int
	// MLALatent is the compressed KV dimension (kv_lora_rank) of an MLA
	// model; 0 for standard attention.
	MLALatent int
	// MLARope is the decoupled rotary key dimension (qk_rope_head_dim) of
	// an MLA model.
	MLARope int
	// Key is the element type of keys (and of the whole MLA row).
	// Required.
	Key Type
	// Value is the element type of values. Unset means the same as Key. An
	// MLA spec must leave it unset or equal to Key.
	Value Type
	// Groups lists the layer groups of a hybrid model; unset means one
	// Full group of Layers layers. It must hold at least one Full, Window
	// or Chunked group.
	Groups []Group
}

// Spec limits keep every product below int64's range: 2^12 layers x 2^16
// heads x 2^20 values x 4.25 bytes x 2 stays under 2^63.
const (
	maxLayers  = 1 << 12
	maxKVHeads = 1 << 16
	maxDim     = 1 << 20
)

// MLA reports whether s describes multi-head latent attention.
func (s Spec) MLA() bool { return s.MLALatent != 0 || s.MLARope != 0 }

// value returns the effective value type.
func (s Spec) value() Type {
	if s.Value.IsZero() {
		return s.Key
	}
	return s.Value
}

// groups returns s's layer groups: Groups, or one Full group of Layers.
func (s Spec) groups() []Group {
	if len(s.Groups) > 0 {
		return s.Groups
	}
	return []Group{{Kind: Full, Layers: s.Layers}}
}

// NumLayers returns the number of layers that keep a per-sequence cache:
// Layers, or the groups' total.
func (s Spec) NumLayers() int {
	if len(s.Groups) == 0 {
		return s.Layers
	}
	n := 0
	for _, g := range s.Groups {
		n += g.Layers
	}
	return n
}

// Hybrid reports whether s has more than one group or a group other than
// Full.
func (s Spec) Hybrid() bool {
	return len(s.Groups) > 1 || (len(s.Groups) == 1 && s.Groups[0].Kind != Full)
}

// Validate returns an error wrapping ErrInvalid that names the first bad
// field: a count out of range, an unset or unknown type, a head dimension or
// latent that the type cannot pack, a mix of MLA and standard fields, or a
// layer group that is malformed, names a missing group or has no attention
// group beside it.
func (s Spec) Validate() error {
	if len(s.Groups) == 0 {
		if s.Layers <= 0 || s.Layers > maxLayers {
			return fmt.Errorf("%w: Spec.Layers %d must be in [1, %d]", ErrInvalid, s.Layers, maxLayers)
		}
	} else {
		total, attention := 0, false
		for i, g := range s.Groups {
			if err := g.validate(i, s.Groups); err != nil {
				return err
			}
			total += g.Layers
			attention = attention || g.Kind.attention()
		}
		if total > maxLayers {
			return fmt.Errorf("%w: Spec.Groups hold %d layers, more than %d", ErrInvalid, total, maxLayers)
		}
		if s.Layers != 0 && s.Layers != total {
			return fmt.Errorf("%w: Spec.Layers %d differs from the %d layers of Spec.Groups (leave it 0)", ErrInvalid, s.Layers, total)
		}
		// Pages are sized by the attention layers (see the package doc),
		// so a model made only of state layers has no page to size.
		if !attention {
			return fmt.Errorf("%w: Spec.Groups has no full, window or chunked group; a state-only model is not supported", ErrInvalid)
		}
	}
	if s.Key.IsZero() {
		return fmt.Errorf("%w: Spec.Key is unset", ErrInvalid)
	}
	if err := s.Key.validate("Spec.Key"); err != nil {
		return err
	}
	if !s.Value.IsZero() {
		if err := s.Value.validate("Spec.Value"); err != nil {
			return err
		}
	}
	if s.MLA() {
		if s.KVHeads != 0 || s.HeadDim != 0 {
			return fmt.Errorf("%w: Spec.KVHeads and HeadDim must be 0 for MLA (one shared latent row)", ErrInvalid)
		}
		if s.MLALatent <= 0 || s.MLALatent > maxDim {
			return fmt.Errorf("%w: Spec.MLALatent %d must be in [1, %d]", ErrInvalid, s.MLALatent, maxDim)
		}
		if s.MLARope < 0 || s.MLARope > maxDim {
			return fmt.Errorf("%w: Spec.MLARope %d must be in [0, %d]", ErrInvalid, s.MLARope, maxDim)
		}
		if !s.Value.IsZero() && s.Value != s.Key {
			return fmt.Errorf("%w: Spec.Value %v differs from Key %v, but MLA stores one latent row in the Key type", ErrInvalid, s.Value, s.Key)
		}
		if _, err := s.Key.RowBytes(s.MLALatent + s.MLARope); err != nil {
			return fmt.Errorf("%w (the row of Spec.MLALatent+MLARope)", err)
		}
		return nil
	}
	if s.KVHeads <= 0 || s.KVHeads > maxKVHeads {
		return fmt.Errorf("%w: Spec.KVHeads %d must be in [1, %d]", ErrInvalid, s.KVHeads, maxKVHeads)
	}
	if s.HeadDim <= 0 || s.HeadDim > maxDim {
		return fmt.Errorf("%w: Spec.HeadDim %d must be in [1, %d]", ErrInvalid, s.HeadDim, maxDim)
	}
	if _, err := s.Key.RowBytes(s.HeadDim); err != nil {
		return fmt.Errorf("%w (the row of Spec.HeadDim)", err)
	}
	if _, err := s.value().RowBytes(s.HeadDim); err != nil {
		return fmt.Errorf("%w (the row of Spec.HeadDim)", err)
	}
	return nil
}

// LayerBytes returns the bytes of one token's KV in one attention layer.
func (s Spec) LayerBytes() (int64, error) {
	if err := s.Validate(); err != nil {
		return 0, err
	}
	return s.layerBytes(), nil
}

// layerBytes is LayerBytes for a valid s.
func (s Spec) layerBytes() int64 {
	if s.MLA() {
		b, _ := s.Key.RowBytes(s.MLALatent + s.MLARope)
		return b
	}
	k, _ := s.Key.RowBytes(s.HeadDim)
	v, _ := s.value().RowBytes(s.HeadDim)
	return int64(s.KVHeads) * (k + v)
}

// attentionLayers returns the layers that store KV of their own: those of
// the Full, Window and Chunked groups.
func (s Spec) attentionLayers() int {
	n := 0
	for _, g := range s.groups() {
		if g.Kind.attention() {
			n += g.Layers
		}
	}
	return n
}

// TokenBytes returns the bytes of one token's KV over all the layers that
// store KV of their own (Full, Window and Chunked groups): what a token
// costs while every window still holds it. Window and chunked layers give
// their share back later, and state layers cost a fixed amount per
// sequence instead; SequenceBytes counts both.
func (s Spec) TokenBytes() (int64, error) {
	if err := s.Validate(); err != nil {
		return 0, err
	}
	return s.layerBytes() * int64(s.attentionLayers()), nil
}

// LayersPerBlock returns how many layers one block spans: the greatest
// common divisor of the layer counts of the groups that keep memory of
// their own (all but Shared), so that every group divides into whole
// slices of that many layers and none is padded. For a spec that is all
// full attention it is Layers, and a block is the usual blockSize tokens
// of every layer.
func (s Spec) LayersPerBlock() (int, error) {
	if err := s.Validate(); err != nil {
		return 0, err
	}
	return s.layersPerBlock(), nil
}

// layersPerBlock is LayersPerBlock for a valid s.
func (s Spec) layersPerBlock() int {
	p := 0
	for _, g := range s.groups() {
		if g.Kind != Shared {
			p = gcd(p, g.Layers)
		}
	}
	return p
}

// BlockBytes returns the bytes of one block (page) of the pool: blockSize
// tokens of KV in LayersPerBlock layers. It is TokenBytes x blockSize when
// every layer is full attention.
func (s Spec) BlockBytes(blockSize int) (int64, error) {
	if blockSize <= 0 || blockSize > 1<<20 {
		return 0, fmt.Errorf("%w: block size %d must be in [1, 2^20]", ErrInvalid, blockSize)
	}
	if err := s.Validate(); err != nil {
		return 0, err
	}
	return mulBytes(s.layerBytes()*int64(s.layersPerBlock()), int64(blockSize))
}

// StateBlocks returns how many blocks of blockSize tokens one layer's
// state of group g takes, for a State group g of s: the state is laid out
// in the same per-layer block slots as attention KV (one layer's slot of a
// block holds blockSize x LayerBytes bytes), so it takes
// ceil(StateBytes / (blockSize x LayerBytes)) of them, the last one partly
// empty. A group of LayersPerBlock state layers then takes that many whole
// blocks per sequence. It returns 0 for other kinds, and ErrInvalid for a
// State group whose StateBytes is out of Validate's range.
func (s Spec) StateBlocks(g Group, blockSize int) (int64, error) {
	if blockSize <= 0 || blockSize > 1<<20 {
		return 0, fmt.Errorf("%w: block size %d must be in [1, 2^20]", ErrInvalid, blockSize)
	}
	if err := s.Validate(); err != nil {
		return 0, err
	}
	// g need not be one of s's groups, so it is checked here: a negative
	// StateBytes gave a negative count, not an error.
	if g.Kind == State && (g.StateBytes <= 0 || g.StateBytes > maxStateBytes) {
		return 0, fmt.Errorf("%w: StateBlocks: the group's StateBytes %d must be in [1, 2^40]", ErrInvalid, g.StateBytes)
	}
	return s.stateBlocks(g, blockSize), nil
}

// stateBlocks is StateBlocks for a valid s and block size.
func (s Spec) stateBlocks(g Group, blockSize int) int64 {
	if g.Kind != State {
		return 0
	}
	slot := s.layerBytes() * int64(blockSize)
	return (g.StateBytes + slot - 1) / slot
}

// SequenceBlocks returns the most blocks (of BlockBytes each) that one
// sequence holds while it grows to tokens tokens:
//
//	sum over groups of (layers / LayersPerBlock) x blocks
//
// where a group's blocks are ceil(tokens/bs) for Full, at most
// ceil((W-1)/bs)+1 for a Window of W (the blocks W consecutive positions
// can span), at most the blocks one chunk spans for Chunked (and at
// least 2: a manager with prefix caching keeps a chunked group's last
// full block while the next chunk's first one fills), StateBlocks
// for State (whatever the length), and none for Shared. In bytes: full
// layers x T + window layers x min(T, W) + chunked layers x min(T, C) +
// state bytes, each rounded up to the blocks actually allocated. This is
// the peak of a sequence that grows a token at a time (decoding); a
// prompt computed in larger steps holds more window and chunk blocks
// while a step is computed (see Deployment.PrefillChunk).
func (s Spec) SequenceBlocks(tokens, blockSize int) (int64, error) {
	if tokens < 0 {
		return 0, fmt.Errorf("%w: sequence of %d tokens must not be negative", ErrInvalid, tokens)
	}
	if blockSize <= 0 || blockSize > 1<<20 {
		return 0, fmt.Errorf("%w: block size %d must be in [1, 2^20]", ErrInvalid, blockSize)
	}
	if err := s.Validate(); err != nil {
		return 0, err
	}
	return s.sequenceBlocks(int64(tokens), blockSize, 1)
}

// sequenceBlocks is SequenceBlocks for valid arguments, the sequence
// growing step tokens at a time (see Deployment.PrefillChunk); it fails
// only on overflow. The count of tokens is an int64 so that a plan's
// longest context can pass 2^31 tokens where int has 32 bits.
func (s Spec) sequenceBlocks(tokens int64, blockSize, step int) (int64, error) {
	if tokens == 0 {
		return 0, nil
	}
	p := s.layersPerBlock()
	var total int64
	for _, g := range s.groups() {
		per := g.blocks(tokens, blockSize, step) + s.stateBlocks(g, blockSize)
		n, err := mulBytes(int64(g.Layers/p), per)
		if err != nil {
			return 0, err
		}
		if n > 1<<62-total {
			return 0, fmt.Errorf("%w: a sequence of %d tokens takes more than 2^62 blocks", ErrInvalid, tokens)
		}
		total += n
	}
	return total, nil
}

// SequenceBytes returns the most bytes a paged cache spends on one
// sequence while it grows to tokens tokens: SequenceBlocks x BlockBytes.
// For a spec that is all full attention that is ceil(tokens/blockSize)
// whole blocks.
func (s Spec) SequenceBytes(tokens, blockSize int) (int64, error) {
	n, err := s.SequenceBlocks(tokens, blockSize)
	if err != nil {
		return 0, err
	}
	b, _ := s.BlockBytes(blockSize)
	return mulBytes(n, b)
}

// Shard returns the part of s that one device holds under tensor
// parallelism of degree tp. KV heads split evenly across devices; with fewer
// KV heads than devices each head is replicated tp/KVHeads times, so every
// device holds one (vLLM's rule), which needs tp to divide or be divided by
// KVHeads. An MLA latent is shared by all query heads and cannot split, so
// every device holds all of it: MLA's saving shrinks as tp grows. A state
// group splits over its StateHeads by the same rule, and is held whole on
// every device when StateHeads is 0.
func (s Spec) Shard(tp int) (Spec, error) {
	if err := s.Validate(); err != nil {
		return Spec{}, err
	}
	if tp <= 0 {
		return Spec{}, fmt.Errorf("%w: tensor parallel degree %d must be positive", ErrInvalid, tp)
	}
	if !s.MLA() {
		heads, err := splitHeads(s.KVHeads, tp, "Spec.KVHeads")
		if err != nil {
			return Spec{}, err
		}
		s.KVHeads = heads
	}
	if len(s.Groups) > 0 {
		s.Groups = append([]Group(nil), s.Groups...) // the caller's slice stays as it was
		for i, g := range s.Groups {
			if g.Kind != State || g.StateHeads == 0 {
				continue
			}
			heads, err := splitHeads(g.StateHeads, tp, fmt.Sprintf("Spec.Groups[%d].StateHeads", i))
			if err != nil {
				return Spec{}, err
			}
			s.Groups[i].StateBytes = g.StateBytes / int64(g.StateHeads) * int64(heads)
			s.Groups[i].StateHeads = heads
		}
	}
	return s, nil
}

// splitHeads returns the heads of n that one of tp devices holds.
func splitHeads(n, tp int, field string) (int, error) {
	switch {
	case n%tp == 0:
		return n / tp, nil
	case tp%n == 0:
		return 1, nil
	}
	return 0, fmt.Errorf("%w: tensor parallel degree %d must divide or be a multiple of %s %d", ErrInvalid, tp, field, n)
}

// PoolBlocks returns the NumBlocks of one device's pool (paged.Config's
// field) for s as that device holds it (see Shard), budget bytes of KV
// memory on it, and blockSize tokens per block (0 for DefaultBlockSize):
// every whole block the budget holds, the null block 0 included, so
// NumBlocks-1 are usable; vLLM counts its GPU blocks the same way.
func (s Spec) PoolBlocks(budget int64, blockSize int) (int, error) {
	if blockSize == 0 {
		blockSize = DefaultBlockSize
	}
	b, err := s.BlockBytes(blockSize)
	if err != nil {
		return 0, err
	}
	n := budget / b
	if n < 2 {
		return 0, fmt.Errorf("%w: KV budget of %d bytes holds %d blocks of %d bytes; a pool needs 2 (block 0 is the null block)", ErrTooSmall, budget, max(n, 0), b)
	}
	if n > MaxBlocks {
		return 0, fmt.Errorf("%w: KV budget of %d bytes holds %d blocks, more than a pool's MaxBlocks=%d; use larger blocks", ErrInvalid, budget, n, MaxBlocks)
	}
	return int(n), nil
}

// mulBytes multiplies two non-negative byte counts, failing on overflow.
func mulBytes(a, b int64) (int64, error) {
	hi, lo := bits.Mul64(uint64(a), uint64(b))
	if hi != 0 || lo > 1<<62 {
		return 0, fmt.Errorf("%w: %d x %d bytes overflows", ErrInvalid, a, b)
	}
	return int64(lo), nil
}

// ceilDiv returns ceil(a/b) for a >= 0, b > 0, without overflowing near
// the top of the type's range.
func ceilDiv[T int | int64](a, b T) T {
	q := a / b
	if a%b != 0 {
		q++
	}
	return q
}
