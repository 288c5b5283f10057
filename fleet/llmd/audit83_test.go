package llmd

import (
	"testing"

	"github.com/stretchr/testify/require"

	"github.com/pagedkv/pagedkv/paged"
)

// The Audit83 tests close the gaps the thirty-seventh mutation round found
// in llmd (docs/testing.md, "Mutation testing, thirty-seventh round").

// TestAudit83KeyOfChecksEveryLeadingByte (M1667, M1668): a hash holds an
// llm-d key only when all of its first 24 bytes are zero. One non-zero
// byte anywhere among them (the first, or one of bytes 16-23 just before
// the key) makes it no key, and the Hasher starts a chain at Root after
// it, not after the key its last 8 bytes spell.
func TestAudit83KeyOfChecksEveryLeadingByte(t *testing.T) {
	p, err := New(Config{BlockSize: 4, HashSeed: "s", Model: "m"})
	require.NoError(t, err)
	toks := []int32{1, 2, 3, 4}
	fromRoot := HashOf(reference(t, p.Root(), u32(toks), nil))
	fromKey := HashOf(reference(t, 77, u32(toks), nil))
	h := p.Hasher()
	for i := range 24 {
		parent := HashOf(77)
		parent[i] = 0x80
		_, ok := KeyOf(&parent)
		require.False(t, ok, "byte %d set", i)
		require.Equal(t, fromRoot, h.Sum(&parent, toks, nil), "byte %d set", i)
	}
	parent := HashOf(77)
	k, ok := KeyOf(&parent)
	require.True(t, ok)
	require.Equal(t, uint64(77), k)
	require.Equal(t, fromKey, h.Sum(&parent, toks, nil))
}

// TestAudit83HasherHashesExtraKeysAsAByteString (M1669, M1670): the
// Hasher encodes a block's extra-key bytes as a CBOR byte string, the
// key Sum gives for the same bytes as a []byte extra, computed here
// through fxamacker/cbor and FNV-64a by reference. One Hasher hashes many
// blocks, extras long and short and none among them: its scratch must
// start afresh for each.
func TestAudit83HasherHashesExtraKeysAsAByteString(t *testing.T) {
	p, err := New(Config{BlockSize: 4, HashSeed: "s", Model: "m"})
	require.NoError(t, err)
	h := p.Hasher()
	var parent paged.Hash // the zero hash: the chain starts at Root
	key := p.Root()
	toks := []int32{5, 6, 7, 300}
	for i, extra := range [][]byte{
		{1, 2, 3}, make([]byte, 40), nil, {9}, {0xff, 0, 0xff}, nil, []byte("lora-7"),
	} {
		var ref any
		if len(extra) > 0 {
			ref = extra
		}
		key = reference(t, key, u32(toks), ref)
		parent = h.Sum(&parent, toks, extra)
		require.Equal(t, HashOf(key), parent, "block %d, extra %x", i, extra)
	}
}

// TestAudit83OneByteExtrasAreNotFolded (M1680, M1681): SHA256CBOR.Sum
// folds only an empty array of extras to null, as llm-d does; every other
// extra that encodes in one byte (0, "", an empty byte string, an empty
// map, false, true) is hashed as itself, as llm-d's hashSHA256 hashes any
// extra it is given (here by reference through fxamacker/cbor and
// crypto/sha256).
func TestAudit83OneByteExtrasAreNotFolded(t *testing.T) {
	s, err := NewSHA256CBOR(Config{BlockSize: 4, HashSeed: "0"})
	require.NoError(t, err)
	root := s.Root()
	toks := []int32{1, 2, 3, 4}
	none, err := s.Sum(nil, toks, nil)
	require.NoError(t, err)
	empty, err := s.Sum(nil, toks, []any{})
	require.NoError(t, err)
	require.Equal(t, none, empty, "an empty array is none")
	for _, extra := range []any{0, "", []byte{}, map[string]any{}, false, true} {
		got, err := s.Sum(nil, toks, extra)
		require.NoError(t, err)
		require.Equal(t, referenceSHA256(t, root[:], u32(toks), extra), got, "extra %#v", extra)
		require.NotEqual(t, none, got, "extra %#v", extra)
	}
}

// TestAudit83HeadsAtEveryWidthBoundary (M1660): canonical CBOR writes
// each integer in the shortest head that holds it, so a parent key or a
// token on either side of each width's bound (23/24, 255/256,
// 65535/65536, 2^32-1/2^32) hashes as fxamacker/cbor encodes it for
// llm-d. Token -1 is 2^32-1 as llm-d's uint32 tokens; no test had it.
func TestAudit83HeadsAtEveryWidthBoundary(t *testing.T) {
	p, err := New(Config{BlockSize: 1, Model: "m"})
	require.NoError(t, err)
	bounds := []uint64{23, 24, 255, 256, 65535, 65536, 1<<32 - 1, 1 << 32, 1<<64 - 1}
	for _, v := range bounds {
		got, err := p.Sum(v, []int32{1}, nil)
		require.NoError(t, err)
		require.Equal(t, reference(t, v, []uint32{1}, nil), got, "parent %d", v)
		if v < 1<<32 {
			tok := int32(uint32(v))
			got := p.AppendKeys(nil, 9, []int32{tok})
			require.Equal(t, []uint64{reference(t, 9, []uint32{uint32(v)}, nil)}, got, "token %d", v)
		}
	}
}
