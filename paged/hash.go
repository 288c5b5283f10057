package paged

import (
	"crypto/sha256"
	"encoding/binary"
	"math"
	"math/bits"
)

// Hash identifies the content of one full block together with everything
// before it in its sequence: h[i] = H(h[i-1], tokens of block i, extra keys).
// Two blocks with the same Hash hold the same KV.
type Hash [32]byte

// Hasher computes chained block hashes. Implementations may keep scratch
// state, so a Hasher belongs to one Manager and is not safe for concurrent
// use.
type Hasher interface {
	// Sum returns the hash of a full block from its parent's hash, its
	// tokens and its encoded extra keys (LoRA ID, cache salt, multimodal
	// content hashes; empty when there are none). The manager never passes
	// a nil parent; the package's hashers read nil as the all-zero hash.
	Sum(parent *Hash, tokens []int32, extra []byte) Hash
}

// SHA256Hasher is the default Hasher: SHA-256 over the parent hash, the
// tokens as little-endian int32 and the extra keys. It is collision
// resistant, so tenants sharing a cache cannot craft a block that aliases
// another's; Go uses the CPU's SHA instructions where they exist.
type SHA256Hasher struct {
	buf []byte
}

// NewSHA256Hasher returns a SHA-256 hasher.
func NewSHA256Hasher() *SHA256Hasher { return &SHA256Hasher{buf: make([]byte, 0, 32+16*4+64)} }

// Sum implements Hasher.
func (h *SHA256Hasher) Sum(parent *Hash, tokens []int32, extra []byte) Hash {
	if parent == nil {
		parent = &zeroHash
	}
	b := append(h.buf[:0], parent[:]...)
	for _, t := range tokens {
		b = binary.LittleEndian.AppendUint32(b, uint32(t))
	}
	b = append(b, extra...)
	h.buf = b
	return sha256.Sum256(b)
}

// FastHasher is a 64-bit multiply-mix hash, several times faster than
// SHA-256 on short blocks. It is NOT collision resistant: a tenant who can
// choose tokens can construct a block whose hash equals another tenant's and
// read that tenant's KV through the prefix cache. Use it only when every
// request comes from one trusted party, or for simulations.
type FastHasher struct{}

// Sum implements Hasher. Only the first 16 bytes of the result vary.
func (FastHasher) Sum(parent *Hash, tokens []int32, extra []byte) Hash {
	if parent == nil {
		parent = &zeroHash
	}
	a := binary.LittleEndian.Uint64(parent[0:8]) ^ 0x9e3779b97f4a7c15
	b := binary.LittleEndian.Uint64(parent[8:16]) ^ 0xc2b2ae3d27d4eb4f
	for i := 0; i+1 < len(tokens); i += 2 {
		a = mix(a^uint64(uint32(tokens[i])), uint64(uint32(tokens[i+1]))^b)
		b = bits.RotateLeft64(b+a, 23) * 0x94d049bb133111eb
	}
	if len(tokens)%2 == 1 {
		a = mix(a^uint64(uint32(tokens[len(tokens)-1])), b^0xff51afd7ed558ccd)
	}
	for _, c := range extra {
		a = mix(a^uint64(c), b)
	}
	a = mix(a, uint64(len(tokens))^b)
	b = mix(b, a)
	var out Hash
	binary.LittleEndian.PutUint64(out[0:8], a)
	binary.LittleEndian.PutUint64(out[8:16], b)
	return out
}

func mix(x, y uint64) uint64 {
	hi, lo := bits.Mul64(x^0xa0761d6478bd642f, y^0xe7037ed1a0b428db)
	return hi ^ lo
}

// zeroHash stands for a nil parent.
var zeroHash Hash

// rootHash is the parent of every chain's first block.
func rootHash(seed []byte) Hash {
	return sha256.Sum256(append([]byte("pagedkv root\x00"), seed...))
}

// BlockHashes appends to dst the chained hashes of the full blocks of
// tokens, exactly as a manager with this configuration computes them
// (same hasher, seed, block size and extra keys). A router uses it to score
// servers by the prefix they hold without owning a manager. Only full
// blocks are hashed.
func (m *Manager) BlockHashes(dst []Hash, tokens []int32, opts *SeqOptions) ([]Hash, error) {
	if err := checkTokens("BlockHashes", tokens); err != nil {
		return dst, err
	}
	if err := m.checkOptions(opts, len(tokens)); err != nil {
		return dst, err
	}
	s := sequence{tokens: tokens, hashLimit: math.MaxInt}
	if opts != nil {
		s.opts = *opts
	}
	for k := 0; (k+1)*m.bs <= len(tokens); k++ {
		parent := &m.root
		if k > 0 {
			parent = &dst[len(dst)-1]
		}
		dst = append(dst, m.cfg.Hasher.Sum(parent, tokens[k*m.bs:(k+1)*m.bs], m.extraKeys(&s, k)))
	}
	return dst, nil
}
