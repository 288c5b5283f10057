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
	// out is Sum's destination (a local would escape through hash.Hash),
	// an array of one so that sha96.chain can write it as a slice.
	out [1]Hash
	// one96 hashes the commonest input, 96 bytes (a parent and sixteen
	// tokens, no extra keys), without the digest's buffering; nil until
	// the first Sum, and off (one96.ok false) where it cannot be used.
	one96 *sha96
}

// NewSHA256Hasher returns a SHA-256 hasher.
func NewSHA256Hasher() *SHA256Hasher { return &SHA256Hasher{d: sha256.New()} }

// sha96 computes SHA-256 of 96-byte messages with the standard library's
// digest, but without its per-call buffering: SHA-256 pads a 96-byte
// message to exactly two 64-byte blocks (the message, a 0x80 byte, zeros,
// and the length in bits, 768, in the last 8 bytes), so each hash writes
// its 96 bytes in front of that padding and gives the digest the two whole
// blocks in one Write; the digest's chaining value after them is the hash.
// It is read from the digest's binary state (encoding.BinaryAppender: a
// 4-byte magic, then the eight state words big-endian, which is the
// digest's byte order), appended in place at the start of buf, so that the
// hash lands on the message's first 32 bytes: the parent of the next block
// of a chain, with no copy. Compared with Write, Write, Sum it skips the
// copies into the digest's block buffer, the copy of the digest that Sum
// makes and the padding's Write. The construction is checked against
// sha256.Sum256 once (newSHA96), and each state read checks the magic and
// that the state was appended in place, so a standard library whose state
// encoding differs turns it off instead of hashing wrongly.
type sha96 struct {
	d   hash.Hash
	app encoding.BinaryAppender
	// buf is the magic's room (buf[:4]), then the message (buf[4:]): the
	// parent, the sixteen tokens as little-endian int32 and the padding.
	// The state append overwrites the message from buf[36] on (the
	// digest's empty block buffer and its length), so every hash writes
	// the tokens and the padding again.
	buf [len(sha96Magic) + 128]byte
	ok  bool
}

// sha96Magic is the prefix of a SHA-256 digest's binary state.
const sha96Magic = "sha\x03"

// sha96Pad is the last 32 bytes of a padded 96-byte message: 0x80, zeros,
// and the message length in bits (768) as a big-endian uint64.
var sha96Pad = [32]byte{0: 0x80, 30: 768 >> 8, 31: 768 & 0xff}

func newSHA96() *sha96 {
	d := sha256.New()
	x := &sha96{d: d}
	x.app, x.ok = d.(encoding.BinaryAppender)
	if !x.ok || sha96Off || !littleEndian {
		x.ok = false
		return x
	}
	// Known answer: the construction must agree with sha256.Sum256 on
	// a two-block chain.
	var parent Hash
	var tokens [32]int32
	for i := range tokens {
		tokens[i] = int32(i*0x01030507 + 1)
	}
	var want [2]Hash
	msg := make([]byte, 0, 96)
	prev := parent
	for k := range want {
		msg = append(msg[:0], prev[:]...)
		for _, t := range tokens[16*k : 16*k+16] {
			msg = binary.LittleEndian.AppendUint32(msg, uint32(t))
		}
		want[k] = sha256.Sum256(msg)
		prev = want[k]
	}
	var got [2]Hash
	x.ok = x.chain(got[:], &parent, tokens[:]) == len(got) && got == want
	return x
}

// chain sets dst[k] to the SHA-256 of its parent and block k of tokens
// (sixteen tokens each, len(tokens) >= 16*len(dst)), where block 0's
// parent is *parent and block k's is dst[k-1]. It returns how many blocks
// it hashed: all of them unless the digest's state is not encoded as
// expected, which turns x off. parent may point into dst before dst[0].
//
// Every 96-byte message of the package's hashes goes through here; the
// copies are fixed-size moves through locals (a move between two
// pointers that might overlap would be a memmove call).
func (x *sha96) chain(dst []Hash, parent *Hash, tokens []int32) int {
	if len(dst) == 0 {
		return 0
	}
	m := (*[128]byte)(x.buf[len(sha96Magic):])
	p := *parent
	*(*Hash)(m[:32]) = p
	// The blocks of tokens as arrays (one length check for all of them),
	// so that the loop indexes them like dst.
	blocks := unsafe.Slice((*[16]int32)(tokens[:16*len(dst)]), len(dst))
	for k := range blocks {
		t := (*[64]byte)(unsafe.Pointer(&blocks[k]))
		copy32((*[32]byte)(m[32:64]), (*[32]byte)(t[:32]))
		copy32((*[32]byte)(m[64:96]), (*[32]byte)(t[32:]))
		*(*[32]byte)(m[96:]) = sha96Pad
		x.d.Reset()
		x.d.Write(m[:])
		st, err := x.app.AppendBinary(x.buf[:0])
		if err != nil || len(st) < len(sha96Magic)+len(Hash{}) || &st[0] != &x.buf[0] || string(st[:len(sha96Magic)]) != sha96Magic {
			x.ok = false // the encoding changed under us: never again
			return k
		}
		copy32((*[32]byte)(&dst[k]), (*[32]byte)(m[:32]))
	}
	return len(dst)
}

// copy32 copies 32 bytes a word at a time: an array assignment between
// two pointers the compiler cannot tell apart is a memmove call, and
// through a local it is two copies. The words go out in the byte order
// they came in, so this is a plain copy on any machine.
func copy32(dst, src *[32]byte) {
	ne := binary.NativeEndian
	a, b, c, d := ne.Uint64(src[0:]), ne.Uint64(src[8:]), ne.Uint64(src[16:]), ne.Uint64(src[24:])
	ne.PutUint64(dst[0:], a)
	ne.PutUint64(dst[8:], b)
	ne.PutUint64(dst[16:], c)
	ne.PutUint64(dst[24:], d)
}

// littleEndian: int32 tokens in memory are already their little-endian
// encoding, so they are hashed in place rather than copied out.
var littleEndian = binary.NativeEndian.Uint16([]byte{1, 0}) == 1

// Sum implements Hasher.
func (h *SHA256Hasher) Sum(parent *Hash, tokens []int32, extra []byte) Hash {
	if parent == nil {
		parent = &zeroHash
	}
	if len(tokens) == 16 && len(extra) == 0 {
		if x := h.sha96(); x != nil && x.chain(h.out[:], parent, tokens) == 1 {
			return h.out[0]
		}
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
	d.Sum(h.out[0][:0])
	return h.out[0]
}

// sha96 returns h's sha96, made on first use, or nil where it cannot be
// used (see sha96).
func (h *SHA256Hasher) sha96() *sha96 {
	if h.one96 == nil {
		h.one96 = newSHA96()
	}
	if !h.one96.ok {
		return nil
	}
	return h.one96
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
// from > 0, dst must end with the hash of block from-1. It inlines into
// its callers, so the many calls with nothing to hash (a decode step's
// check for a newly full block) cost a comparison.
func (c *chain) extend(dst []Hash, tokens []int32, opts *SeqOptions, from, to int) []Hash {
	if to <= from {
		return dst
	}
	return c.extendMore(dst, tokens, opts, from, to)
}

// extendMore is extend with at least one block to hash. A SHA256Hasher's
// 16-token blocks without extra keys go straight into dst through its
// sha96, with no call through the Hasher interface and no copies of the
// result; extendEach takes the rest (all of it where sha96 cannot be
// used).
func (c *chain) extendMore(dst []Hash, tokens []int32, opts *SeqOptions, from, to int) []Hash {
	if c.bs == 16 && opts.LoRA == 0 && opts.Salt == "" && len(opts.MM) == 0 {
		if sh, ok := c.hasher.(*SHA256Hasher); ok && sh.sha96() != nil {
			n, add := len(dst), to-from
			dst = slices.Grow(dst, add)[:n+add]
			parent := &c.root
			if from > 0 {
				parent = &dst[n-1]
			}
			k := sh.one96.chain(dst[n:], parent, tokens[from*16:to*16])
			if k == add {
				return dst
			}
			dst, from = dst[:n+k], from+k
		}
	}
	return c.extendEach(dst, tokens, opts, from, to)
}

// extendEach is extend through the Hasher, one block at a time.
func (c *chain) extendEach(dst []Hash, tokens []int32, opts *SeqOptions, from, to int) []Hash {
	// Most sequences have no extra keys: skip building them per block.
	plain := opts.LoRA == 0 && opts.Salt == "" && len(opts.MM) == 0
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
// blocks are hashed. It uses the manager's hasher, and its hash memo
// (Config.HashMemo), so it must be called on the manager's goroutine;
// NewPromptHasher gives one for another goroutine.
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
	plain := o.LoRA == 0 && o.Salt == "" && len(o.MM) == 0
	dst, _ = m.promptHashes(dst, tokens, &o, plain, 0, len(tokens)/m.bs)
	return dst, nil
}

// PromptHasher computes the block hashes a manager would compute for a
// prompt, on a goroutine of its own: hashing a long prompt costs about a
// microsecond per block (SHA-256), so a server hashes on the request's
// goroutine and hands the hashes to AddHashed, leaving the scheduler
// goroutine only the lookup. A PromptHasher is not safe for concurrent
// use; give each goroutine its own (they are small). It always hashes:
// the manager's hash memo (Config.HashMemo) changes with every commit on
// the manager's goroutine, so another goroutine cannot read it.
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
// validated here; AddHashed validates it. A zero PromptHasher (not made
// by NewPromptHasher) knows no block size and appends nothing, so
// AddHashed refuses the short list with ErrInvalid.
func (p *PromptHasher) Hashes(dst []Hash, prompt []int32, opts *SeqOptions) []Hash {
	if p.c.bs == 0 {
		return dst
	}
	var o SeqOptions
	if opts != nil {
		o = *opts
	}
	return p.c.extend(dst, prompt, &o, 0, len(prompt)/p.c.bs)
}
