package llmd

import (
	"crypto/sha256"
	"encoding/binary"
	"fmt"

	"github.com/fxamacker/cbor/v2"

	"github.com/pagedkv/pagedkv/paged"
)

// SHA256CBOR computes block keys with llm-d's other token-processor
// algorithm, "sha256_cbor" (llm-d/llm-d-kv-cache,
// pkg/kvcache/kvblock/token_processor.go at commit 8e22575e,
// HashAlgorithmSHA256CBOR), which is vLLM's own "sha256_cbor" prefix-cache
// hash: the digest of a block is SHA-256 over the canonical CBOR encoding
// of the array [parent digest as a 32-byte string, token IDs, extra],
// chained from NONE_HASH = SHA-256 of the CBOR text string of the hash
// seed (vLLM's PYTHONHASHSEED), and the block's key is the digest's last
// 8 bytes read big-endian, the integer vLLM publishes in its KV events
// with integer block hashes. The model name is not hashed.
//
// The chain carries 32-byte digests, so a 64-bit key cannot continue it:
// AppendKeys always starts at NONE_HASH, and a chain is continued from a
// digest with AppendDigests. It is immutable and safe for concurrent use.
type SHA256CBOR struct {
	bs   int
	none paged.Hash
	enc  cbor.EncMode
}

// NewSHA256CBOR returns the sha256_cbor key computer for cfg's block size
// and hash seed (cfg.Model is ignored: this chain does not hash it), or
// ErrInvalid for a block size below 1.
func NewSHA256CBOR(cfg Config) (*SHA256CBOR, error) {
	enc, err := checkConfig(cfg)
	if err != nil {
		return nil, err
	}
	seed := appendHead(nil, 3, uint64(len(cfg.HashSeed)))
	return &SHA256CBOR{
		bs:   cfg.BlockSize,
		none: sha256.Sum256(append(seed, cfg.HashSeed...)),
		enc:  enc,
	}, nil
}

// Root returns NONE_HASH, the parent digest of every chain's first block.
func (s *SHA256CBOR) Root() paged.Hash { return s.none }

// DigestKey returns the key of a digest: its last 8 bytes, big-endian,
// as vLLM truncates a block hash for its integer KV events. A nil digest
// is the zero hash, as paged's hashers take a nil parent: its key is 0.
func DigestKey(digest *paged.Hash) uint64 {
	if digest == nil {
		return 0
	}
	return binary.BigEndian.Uint64(digest[24:])
}

// AppendKeys appends the keys of the full blocks of tokens, from the
// start of a chain, to dst. Text-only blocks: extra is null. It does not
// allocate beyond growing dst.
func (s *SHA256CBOR) AppendKeys(dst []uint64, tokens []int32) []uint64 {
	var scratch [4096]byte // blocks up to 800 tokens hash without allocating
	mustBlockSize(s.bs, "SHA256CBOR")
	d := s.none
	for k := 0; (k+1)*s.bs <= len(tokens); k++ {
		d = sha256.Sum256(appendDigestPayload(scratch[:0], &d, tokens[k*s.bs:(k+1)*s.bs], nil))
		dst = append(dst, DigestKey(&d))
	}
	return dst
}

// AppendDigests appends the digests of the full blocks of tokens to dst,
// continuing the chain after parent (nil starts at Root). Text-only
// blocks: extra is null. It does not allocate beyond growing dst.
func (s *SHA256CBOR) AppendDigests(dst []paged.Hash, parent *paged.Hash, tokens []int32) []paged.Hash {
	var scratch [4096]byte
	d := s.none
	if parent != nil {
		d = *parent
	}
	mustBlockSize(s.bs, "SHA256CBOR")
	for k := 0; (k+1)*s.bs <= len(tokens); k++ {
		d = sha256.Sum256(appendDigestPayload(scratch[:0], &d, tokens[k*s.bs:(k+1)*s.bs], nil))
		dst = append(dst, d)
	}
	return dst
}

// Sum returns the digest of one block from its parent digest (nil is
// Root), its token IDs and an extra value: vLLM's extra keys of the block
// as a slice in vLLM's order (LoRA name, multimodal identifiers, cache
// salt, prompt-embeddings hash; llm-d's BlockExtraFeatures.CborExtras), or
// nil for none; an empty array counts as none, as llm-d folds it to null.
// extra is encoded with canonical CBOR, so it must be a value llm-d would
// pass.
func (s *SHA256CBOR) Sum(parent *paged.Hash, tokens []int32, extra any) (paged.Hash, error) {
	var ext []byte
	if extra != nil {
		var err error
		if ext, err = s.enc.Marshal(extra); err != nil {
			return paged.Hash{}, fmt.Errorf("%w: extra: %v", ErrInvalid, err)
		}
		if len(ext) == 1 && ext[0] == 0x80 {
			ext = nil // llm-d folds empty extras to null, as vLLM sends None
		}
	}
	if parent == nil {
		parent = &s.none
	}
	return sha256.Sum256(appendDigestPayload(nil, parent, tokens, ext)), nil
}

// appendDigestPayload writes the canonical CBOR of [parent, tokens,
// extra] with the parent as a 32-byte byte string, vLLM's encoding of a
// bytes block hash.
func appendDigestPayload(dst []byte, parent *paged.Hash, tokens []int32, extra []byte) []byte {
	dst = append(dst, 0x83)
	dst = appendHead(dst, 2, uint64(len(parent)))
	dst = append(dst, parent[:]...)
	return appendTail(dst, tokens, extra)
}
