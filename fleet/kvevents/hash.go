package kvevents

import (
	"crypto/sha256"
	"encoding/binary"

	"github.com/pagedkv/pagedkv/paged"
)

// HashFromInt maps a vLLM block hash sent as a msgpack integer (older
// vLLM, or a 64-bit hash function) to a paged.Hash: the value's 64-bit
// two's-complement pattern, big-endian, in the last 8 bytes, the first 24
// bytes zero. Signed and unsigned encodings of one bit pattern map alike.
func HashFromInt(v uint64) paged.Hash {
	var h paged.Hash
	binary.BigEndian.PutUint64(h[24:], v)
	return h
}

// HashFromBytes maps a vLLM block hash sent as msgpack bytes to a
// paged.Hash. A 32-byte value (SHA-256, vLLM's default since v0.10.2) is
// taken as is; any other length is hashed with SHA-256 under a fixed
// domain prefix, so every length maps deterministically and cannot alias
// an integer hash.
func HashFromBytes(b []byte) paged.Hash {
	if len(b) == len(paged.Hash{}) {
		return paged.Hash(b)
	}
	// Short hashes (vLLM's 64-bit ones sent as bytes, say) are hashed from
	// a stack buffer, so decoding them does not allocate.
	var buf [len(bytesDomain) + 64]byte
	if len(b) <= 64 {
		n := copy(buf[:], bytesDomain)
		n += copy(buf[n:], b)
		return sha256.Sum256(buf[:n])
	}
	d := sha256.New()
	d.Write([]byte(bytesDomain))
	d.Write(b)
	var h paged.Hash
	d.Sum(h[:0])
	return h
}

// bytesDomain prefixes the hashed bytes of a hash that is not 32 bytes.
const bytesDomain = "pagedkv vllm hash\x00"
