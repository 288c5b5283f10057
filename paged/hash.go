package paged

import (
	"crypto/sha256"
	"encoding"
	"encoding/binary"
	"hash"
	"math/bits"
	"slices"
	"unsafe"
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
//
// The zero value is ready to use.
type SHA256Hasher struct {
	d   hash.Hash
	buf []byte
	out Hash // Sum's destination: a local would escape through hash.Hash
	// one96 hashes the commonest input, 96 bytes (a parent and sixteen
	// tokens, no extra keys), without the digest's buffering; nil until
	// the first Sum, and off (one96.ok false) where it cannot be used.
	one96 *sha96
}

// NewSHA256Hasher returns a SHA-256 hasher.
func NewSHA256Hasher() *SHA256Hasher { return &SHA256Hasher{d: sha256.New()} }

// sha96 computes SHA-256 of a 96-byte message with the standard library's
// digest, but without its per-call buffering: SHA-256 pads a 96-byte
// message to exactly two 64-byte blocks (the message, a 0x80 byte, zeros,
// and the length in bits, 768, in the last 8 bytes), so msg holds that
// padding once and each hash writes its 96 bytes in front of it and gives
// the digest the two whole blocks in one Write; the digest's chaining
// value after them is the hash. It is read from the digest's binary state
// (encoding.BinaryAppender: a 4-byte magic, then the eight state words
// big-endian, which is the digest's byte order), and the construction is
// checked against sha256.Sum256 once, so a standard library whose state
// encoding differs turns it off instead of hashing wrongly. Compared with
// Write, Write, Sum it skips the copies into the digest's block buffer,
// the copy of the digest that Sum makes, and the padding's Write.
type sha96 struct {
	d   hash.Hash
	app encoding.BinaryAppender
	msg [128]byte
	st  []byte // the digest's state, appended into a reused buffer
	ok  bool
}

// sha96Magic is the prefix of a SHA-256 digest's binary state.
const sha96Magic = "sha\x03"

func newSHA96() *sha96 {
	d := sha256.New()
	x := &sha96{d: d}
	x.app, x.ok = d.(encoding.BinaryAppender)
	if !x.ok || sha96Off {
		x.ok = false
		return x
	}
	x.msg[96] = 0x80
	binary.BigEndian.PutUint64(x.msg[120:], 96*8)
	x.st = make([]byte, 0, 128)
	// Known answer: the construction must agree with sha256.Sum256.
	var in [96]byte
	for i := range in {
		in[i] = byte(i*7 + 1)
	}
	want := sha256.Sum256(in[:])
	copy(x.msg[:96], in[:])
	got, ok := x.sum()
	x.ok = ok && got == want
	return x
}

// sum returns the hash of msg[:96], and false if the digest's state does
// not have the expected encoding.
func (x *sha96) sum() (Hash, bool) {
	x.d.Reset()
	x.d.Write(x.msg[:])
	st, err := x.app.AppendBinary(x.st[:0])
	if err != nil || len(st) < len(sha96Magic)+len(Hash{}) || string(st[:len(sha96Magic)]) != sha96Magic {
		return Hash{}, false
	}
	return Hash(st[len(sha96Magic):]), true
}

// littleEndian: int32 tokens in memory are already their little-endian
// encoding, so they are hashed in place rather than copied out.
var littleEndian = binary.NativeEndian.Uint16([]byte{1, 0}) == 1

// Sum implements Hasher.
func (h *SHA256Hasher) Sum(parent *Hash, tokens []int32, extra []byte) Hash {
	if parent == nil {
		parent = &zeroHash
	}
	if len(tokens) == 16 && len(extra) == 0 && h.sum96(parent, (*[16]int32)(tokens), &h.out) {
		return h.out
	}
	if h.d == nil {
		h.d = sha256.New()
	}
	d := h.d
	d.Reset()
	d.Write(parent[:])
	if littleEndian && len(tokens) > 0 {
		d.Write(unsafe.Slice((*byte)(unsafe.Pointer(&tokens[0])), 4*len(tokens)))
	} else {
		b := h.buf[:0]
		for _, t := range tokens {
			b = binary.LittleEndian.AppendUint32(b, uint32(t))
		}
		h.buf = b
		d.Write(b)
	}
	if len(extra) > 0 {
		d.Write(extra)
	}
	d.Sum(h.out[:0])
	return h.out
}

// sum96 sets *out to the hash of a parent and sixteen tokens with no
// extra keys, through sha96, and reports whether it could (see sha96).
func (h *SHA256Hasher) sum96(parent *Hash, tokens *[16]int32, out *Hash) bool {
	if !littleEndian {
		return false
	}
	if h.one96 == nil {
		h.one96 = newSHA96()
	}
	x := h.one96
	if !x.ok {
		return false
	}
	// Array assignments: fixed-size moves, not memmove calls.
	*(*Hash)(x.msg[:32]) = *parent
	*(*[64]byte)(x.msg[32:96]) = *(*[64]byte)(unsafe.Pointer(tokens))
	sum, ok := x.sum()
	if !ok {
		x.ok = false // the encoding changed under us: never again
		return false
	}
	*out = sum
	return true
}

// extend96 is chain.extend for a SHA256Hasher, 16-token blocks and no
// extra keys: each hash goes straight into dst, with no call through the
// Hasher interface and no copies of the result. It stops early, leaving
// the rest to the general loop, only if sha96 cannot be used.
func (h *SHA256Hasher) extend96(dst []Hash, tokens []int32, root *Hash, from, to int) ([]Hash, int) {
	if to <= from {
		return dst, from
	}
	n := len(dst)
	dst = slices.Grow(dst, to-from)[:n+to-from]
	for k := from; k < to; k++ {
		parent := root
		if k > 0 {
			parent = &dst[n+k-from-1]
		}
		if !h.sum96(parent, (*[16]int32)(tokens[k*16:]), &dst[n+k-from]) {
			return dst[:n+k-from], k
		}
	}
	return dst, to
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

// chain computes chained block hashes under one configuration: hasher,
// root (from Config.HashSeed) and block size.
type chain struct {
	hasher Hasher
	root   Hash
	bs     int
	extra  []byte // scratch for the extra keys of one block
}

// extend appends to dst the hashes of blocks [from, to) of tokens; when
// from > 0, dst must end with the hash of block from-1.
func (c *chain) extend(dst []Hash, tokens []int32, opts *SeqOptions, from, to int) []Hash {
	// Most sequences have no extra keys: skip building them per block.
	plain := opts.LoRA == 0 && opts.Salt == "" && len(opts.MM) == 0
	if sh, ok := c.hasher.(*SHA256Hasher); ok && plain && c.bs == 16 {
		dst, from = sh.extend96(dst, tokens, &c.root, from, to)
	}
	for k := from; k < to; k++ {
		parent := &c.root
		if k > 0 {
			parent = &dst[len(dst)-1]
		}
		var extra []byte
		if !plain {
			c.extra = appendExtraKeys(c.extra[:0], opts, k, c.bs)
			extra = c.extra
		}
		dst = append(dst, c.hasher.Sum(parent, tokens[k*c.bs:(k+1)*c.bs], extra))
	}
	return dst
}

// appendExtraKeys appends the extra hash keys of block k to b: the LoRA ID
// on every block, the cache salt on the first block only, and the content
// hashes of multimodal inputs overlapping the block.
func appendExtraKeys(b []byte, opts *SeqOptions, k, bs int) []byte {
	if opts.LoRA != 0 {
		b = append(b, 'L')
		b = binary.LittleEndian.AppendUint32(b, uint32(opts.LoRA))
	}
	if k == 0 && opts.Salt != "" {
		b = append(b, 'S')
		b = binary.AppendUvarint(b, uint64(len(opts.Salt)))
		b = append(b, opts.Salt...)
	}
	lo, hi := k*bs, (k+1)*bs
	for _, r := range opts.MM {
		if r.Start < hi && r.End > lo {
			b = append(b, 'M')
			b = binary.AppendUvarint(b, uint64(len(r.Hash)))
			b = append(b, r.Hash...)
		}
	}
	return b
}

// BlockHashes appends to dst the chained hashes of the full blocks of
// tokens, exactly as a manager with this configuration computes them
// (same hasher, seed, block size and extra keys). A router uses it to score
// servers by the prefix they hold without owning a manager. Only full
// blocks are hashed. It uses the manager's hasher, so it must be called on
// the manager's goroutine; NewPromptHasher gives one for another goroutine.
func (m *Manager) BlockHashes(dst []Hash, tokens []int32, opts *SeqOptions) ([]Hash, error) {
	if err := checkTokens("BlockHashes", tokens); err != nil {
		return dst, err
	}
	if err := m.checkOptions(opts, len(tokens)); err != nil {
		return dst, err
	}
	var o SeqOptions
	if opts != nil {
		o = *opts
	}
	return m.chain.extend(dst, tokens, &o, 0, len(tokens)/m.bs), nil
}

// PromptHasher computes the block hashes a manager would compute for a
// prompt, on a goroutine of its own: hashing a long prompt costs about a
// microsecond per block (SHA-256), so a server hashes on the request's
// goroutine and hands the hashes to AddHashed, leaving the scheduler
// goroutine only the lookup. A PromptHasher is not safe for concurrent
// use; give each goroutine its own (they are small).
type PromptHasher struct {
	c chain
}

// NewPromptHasher returns a PromptHasher that computes exactly the hashes
// m does. h must compute the same function as m's Config.Hasher but be a
// separate value, since hashers keep scratch state; nil picks a new
// SHA256Hasher or FastHasher when m uses one of those, and is an error
// for any other hasher. It may be called on any goroutine only while m is
// not being reconfigured (a Manager's configuration never changes).
func (m *Manager) NewPromptHasher(h Hasher) (*PromptHasher, error) {
	if h == nil {
		switch m.cfg.Hasher.(type) {
		case *SHA256Hasher:
			h = NewSHA256Hasher()
		case FastHasher:
			h = FastHasher{}
		default:
			return nil, errorf(ErrInvalid, "NewPromptHasher: Config.Hasher is a %T; pass a separate instance of it", m.cfg.Hasher)
		}
	}
	return &PromptHasher{c: chain{hasher: h, root: m.chain.root, bs: m.bs}}, nil
}

// Hashes appends to dst the chained hashes of the full blocks of prompt
// under opts, as the manager's Add would compute them. opts is not
// validated here; AddHashed validates it.
func (p *PromptHasher) Hashes(dst []Hash, prompt []int32, opts *SeqOptions) []Hash {
	var o SeqOptions
	if opts != nil {
		o = *opts
	}
	return p.c.extend(dst, prompt, &o, 0, len(prompt)/p.c.bs)
}
