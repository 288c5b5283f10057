package llmd

import (
	"encoding/binary"
	"errors"
	"fmt"
	"hash/fnv"

	"github.com/fxamacker/cbor/v2"

	"github.com/pagedkv/pagedkv/paged"
)

// ErrInvalid: a configuration field is out of range. Errors returned by
// this package wrap it with context.
var ErrInvalid = errors.New("llmd: invalid argument")

// FNV-64a parameters (FNV's offset basis and prime for 64 bits).
const (
	fnvOffset = 14695981039346656037
	fnvPrime  = 1099511628211
)

// Config configures a Processor.
type Config struct {
	// BlockSize is the number of tokens per block (llm-d's blockSize; its
	// default, like vLLM's, is 16). Required.
	BlockSize int
	// HashSeed is llm-d's hashSeed, which it says to align with vLLM's
	// PYTHONHASHSEED; every router and server sharing keys must agree.
	HashSeed string
	// Model is the model name, hashed into the root of every chain as
	// llm-d does, so two models never share keys. SHA256CBOR ignores it,
	// as vLLM's chain does not hash it.
	Model string
}

// Processor computes block keys exactly as llm-d's token processor does
// with its default "cbor-fnv" algorithm (llm-d/llm-d-kv-cache,
// pkg/kvcache/kvblock/token_processor.go, commit 026424fd): the key of a
// block is FNV-64a over the canonical CBOR encoding of the array
// [parent key, token IDs, extra], chained from a root that is the same
// hash of [FNV-64a(seed), null, model name]. Only full blocks have keys.
//
// A Processor is immutable after New and safe for concurrent use, except
// through Hasher values, which keep scratch space and belong to one
// paged.Manager each.
type Processor struct {
	cfg  Config
	root uint64
	enc  cbor.EncMode
}

// New returns a Processor, or ErrInvalid for a block size below 1.
func New(cfg Config) (*Processor, error) {
	enc, err := checkConfig(cfg)
	if err != nil {
		return nil, err
	}
	p := &Processor{cfg: cfg, enc: enc}
	seed := fnv.New64a()
	seed.Write([]byte(cfg.HashSeed))
	if p.root, err = p.Sum(seed.Sum64(), nil, cfg.Model); err != nil {
		return nil, err
	}
	return p, nil
}

// checkConfig validates cfg and returns the canonical CBOR encoder both
// algorithms encode extra values with, as llm-d does.
func checkConfig(cfg Config) (cbor.EncMode, error) {
	if cfg.BlockSize < 1 {
		return nil, fmt.Errorf("%w: BlockSize %d must be at least 1", ErrInvalid, cfg.BlockSize)
	}
	enc, err := cbor.CanonicalEncOptions().EncMode()
	if err != nil {
		return nil, fmt.Errorf("llmd: cbor: %w", err)
	}
	return enc, nil
}

// Root returns the parent key of every chain's first block.
func (p *Processor) Root() uint64 { return p.root }

// AppendKeys appends the keys of the full blocks of tokens to dst,
// continuing the chain after parent (0 starts at Root, as llm-d's
// EmptyBlockHash does). Text-only blocks: extra is null. It does not
// allocate beyond growing dst.
func (p *Processor) AppendKeys(dst []uint64, parent uint64, tokens []int32) []uint64 {
	if parent == 0 {
		parent = p.root
	}
	var scratch [4096]byte // blocks up to 800 tokens hash without allocating
	bs := p.cfg.BlockSize
	mustBlockSize(bs, "Processor")
	for k := 0; (k+1)*bs <= len(tokens); k++ {
		parent = fnv64a(appendPayload(scratch[:0], parent, tokens[k*bs:(k+1)*bs], nil))
		dst = append(dst, parent)
	}
	return dst
}

// Sum returns the key of one block from its parent key, its token IDs
// (nil is CBOR null, as llm-d hashes the root) and an extra value, which
// llm-d sets for multimodal blocks (its per-block MMHashes); extra is
// encoded with canonical CBOR as llm-d does, so it must be a value llm-d
// would pass. At commit 026424fd an MMHash is a struct of Hash string and
// Offset int64 without CBOR tags, which encodes as a map with those two
// keys: pass a slice of such structs, or of map[string]any with the same
// keys and value types.
func (p *Processor) Sum(parent uint64, tokens []int32, extra any) (uint64, error) {
	var ext []byte
	if extra != nil {
		var err error
		if ext, err = p.enc.Marshal(extra); err != nil {
			return 0, fmt.Errorf("%w: extra: %v", ErrInvalid, err)
		}
	}
	return fnv64a(appendPayload(nil, parent, tokens, ext)), nil
}

// appendPayload writes the canonical CBOR of [parent, tokens, extra]:
// a three-element array, the parent as an unsigned integer, the tokens as
// an array of unsigned integers (null for nil), then extra's encoding
// (null when empty). Canonical CBOR is the shortest form of each head, so
// the bytes are fixed by the values.
func appendPayload(dst []byte, parent uint64, tokens []int32, extra []byte) []byte {
	dst = append(dst, 0x83)
	dst = appendHead(dst, 0, parent)
	return appendTail(dst, tokens, extra)
}

// appendTail writes the last two elements of a payload: the tokens as an
// array of unsigned integers (null for nil) and extra's encoding (null
// when empty).
func appendTail(dst []byte, tokens []int32, extra []byte) []byte {
	if tokens == nil {
		dst = append(dst, 0xf6)
	} else {
		dst = appendHead(dst, 4, uint64(len(tokens)))
		for _, t := range tokens {
			dst = appendHead(dst, 0, uint64(uint32(t)))
		}
	}
	if len(extra) == 0 {
		return append(dst, 0xf6)
	}
	return append(dst, extra...)
}

// appendHead writes a CBOR head of major type major and argument v in its
// shortest form.
func appendHead(dst []byte, major byte, v uint64) []byte {
	m := major << 5
	switch {
	case v < 24:
		return append(dst, m|byte(v))
	case v <= 0xff:
		return append(dst, m|24, byte(v))
	case v <= 0xffff:
		return binary.BigEndian.AppendUint16(append(dst, m|25), uint16(v))
	case v <= 0xffffffff:
		return binary.BigEndian.AppendUint32(append(dst, m|26), uint32(v))
	}
	return binary.BigEndian.AppendUint64(append(dst, m|27), v)
}

// mustBlockSize panics on the zero value of a key computer, whose block
// size of 0 would make the block loops run forever: a value not made by
// its constructor is a bug in the caller.
func mustBlockSize(bs int, what string) {
	if bs < 1 {
		panic("llmd: " + what + " not created with its constructor (block size 0)")
	}
}

func fnv64a(b []byte) uint64 {
	h := uint64(fnvOffset)
	for _, c := range b {
		h ^= uint64(c)
		h *= fnvPrime
	}
	return h
}

// HashOf returns the paged.Hash an llm-d key is stored as: the key
// big-endian in the last 8 bytes, the first 24 zero. It is the hash
// kvevents.HashFromInt gives the same integer on vLLM's wire, so keys
// published as integers (kvevents.HashInt) reach a fleet index unchanged.
func HashOf(key uint64) paged.Hash {
	var h paged.Hash
	binary.BigEndian.PutUint64(h[24:], key)
	return h
}

// KeyOf returns the llm-d key a paged.Hash holds, and whether it holds
// one (its first 24 bytes are zero). A nil h is the zero hash, as paged's
// hashers take a nil parent: its key is 0, which AppendKeys and the
// Hasher read as Root.
func KeyOf(h *paged.Hash) (uint64, bool) {
	if h == nil {
		return 0, true
	}
	for _, c := range h[:24] {
		if c != 0 {
			return 0, false
		}
	}
	return binary.BigEndian.Uint64(h[24:]), true
}

// Hasher returns a paged.Hasher that gives a manager's blocks their llm-d
// keys (as HashOf values), so its KV events, published with
// kvevents.HashInt, carry the keys an llm-d router computes from the same
// tokens. The manager's root hash is not an llm-d key, so a block whose
// parent is not one (or is nil, paged's zero hash) starts a chain at
// Root. Blocks with extra keys (LoRA, cache salt, multimodal content) get
// keys over those bytes as a CBOR byte string: they never alias a
// text-only block, but llm-d, which does not see paged's extra-key
// encoding, cannot compute them. The manager's BlockSize must equal
// Config.BlockSize.
func (p *Processor) Hasher() paged.Hasher {
	return &hasher{p: p}
}

type hasher struct {
	p   *Processor
	buf []byte
	ext []byte
}

// Sum implements paged.Hasher.
func (h *hasher) Sum(parent *paged.Hash, tokens []int32, extra []byte) paged.Hash {
	key, ok := KeyOf(parent)
	if !ok || key == 0 {
		key = h.p.root
	}
	var ext []byte
	if len(extra) > 0 {
		h.ext = append(appendHead(h.ext[:0], 2, uint64(len(extra))), extra...)
		ext = h.ext
	}
	h.buf = appendPayload(h.buf[:0], key, tokens, ext)
	return HashOf(fnv64a(h.buf))
}
