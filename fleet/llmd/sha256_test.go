package llmd

import (
	"crypto/sha256"
	"encoding/binary"
	"encoding/hex"
	"math/rand/v2"
	"testing"

	"github.com/fxamacker/cbor/v2"
	"github.com/stretchr/testify/assert"
	"github.com/stretchr/testify/require"

	"github.com/pagedkv/pagedkv/paged"
)

// vllmFixture is one case of the vLLM golden block hashes that an llm-d
// maintainer generated with vLLM's sha256_cbor formula (Python cbor2 and
// hashlib) for llm-d's token processor: vMaroon/llm-d-kv-cache at commit
// 1047ec4fde972137a557c7d5895bb57a8670650a,
// pkg/kvcache/kvblock/testdata/vllm_block_hashes.json (written by
// testdata/gen_fixtures.py there, checked by TestVLLMParity_NoneHash and
// TestVLLMParity_BlockHashes in vllm_parity_test.go). The values below are
// transcribed from that file; extras are vLLM's per-block extra-key tuples.
type vllmFixture struct {
	name   string
	seed   string
	bs     int
	tokens []int32
	extras [][]any // nil: text only; a nil entry: no extras for that block
	keys   []uint64
}

func span(from, to int32) []int32 { // from..to inclusive
	out := make([]int32, 0, to-from+1)
	for t := from; t <= to; t++ {
		out = append(out, t)
	}
	return out
}

func vllmFixtures() []vllmFixture {
	mixed := span(0, 15)
	mixed = append(mixed, 200, 256, 257, 65535, 65536, 100000)
	mixed = append(mixed, span(1, 10)...)
	mixed = append(mixed, 1234567, 999999, 50000, 60000, 70000, 80000, 90000)
	mixed = append(mixed, span(12, 20)...)
	return []vllmFixture{
		{"plain_one_block", "0", 16, span(1, 16), nil,
			[]uint64{3236607068019569386}},
		{"plain_three_blocks_mixed_ids", "0", 16, mixed, nil,
			[]uint64{12687895063098490012, 8218830730913895701, 12820846402319399186}},
		{"empty_seed", "", 16, span(100, 115), nil,
			[]uint64{3357532344224368072}},
		{"seed_42", "42", 16, span(1, 16), nil,
			[]uint64{16300212363532267629}},
		{"lora_only", "0", 16, span(1, 32), [][]any{{"my-lora"}, {"my-lora"}},
			[]uint64{15444946753610453501, 6571079245177515926}},
		{"cache_salt_first_block_only", "0", 16, span(1, 32), [][]any{{"salt-xyz"}, nil},
			[]uint64{167346055853118984, 4639219789579357712}},
		{"lora_mm_salt", "0", 16, span(1, 32),
			[][]any{{"my-lora", "mm_hash_a", "mm_hash_b", "salt-xyz"}, {"my-lora", "mm_hash_b"}},
			[]uint64{8999483952758763314, 16722838961267600271}},
		{"block_size_64", "0", 64, span(1, 128), nil,
			[]uint64{1420863557715554928, 6745615784909391096}},
		{"seed_long_chain", "vllm-prefix-cache-seed", 16, span(1000, 1079), nil,
			[]uint64{15592720513846201806, 15434378306215555928, 2695331780986121962,
				17463349875993406291, 7595627109321253472}},
	}
}

// TestSHA256CBORMatchesVLLMGoldens: every fixture's keys, through
// AppendKeys for text-only prompts and through Sum with each block's
// extras otherwise, and NONE_HASH for each seed, equal the values vLLM's
// formula gave.
func TestSHA256CBORMatchesVLLMGoldens(t *testing.T) {
	noneHash := map[string]string{
		"0":                      "4e1195df020de59e0d65a33a4279f1183e7ae4e5d980e309f8b55adff2e61c3e",
		"":                       "8d33f520a3c4cef80d2453aef81b612bfe1cb44c8b2025630ad38662763f13d3",
		"42":                     "9fa6eb003f14425eb9c8e6baacfbcaab26257357b829c7bfa74ffcc4f31c1780",
		"vllm-prefix-cache-seed": "45c0b5629303360ac88a16fe1187b133bde67938e2aaa959f3fac131d3cb9255",
	}
	for _, fx := range vllmFixtures() {
		t.Run(fx.name, func(t *testing.T) {
			s, err := NewSHA256CBOR(Config{BlockSize: fx.bs, HashSeed: fx.seed, Model: "ignored"})
			require.NoError(t, err)
			root := s.Root()
			assert.Equal(t, noneHash[fx.seed], hex.EncodeToString(root[:]))
			var got []uint64
			if fx.extras == nil {
				got = s.AppendKeys(nil, fx.tokens)
			} else {
				parent := s.Root()
				for i, ex := range fx.extras {
					var extra any
					if ex != nil {
						extra = ex
					}
					parent, err = s.Sum(&parent, fx.tokens[i*fx.bs:(i+1)*fx.bs], extra)
					require.NoError(t, err)
					got = append(got, DigestKey(&parent))
				}
			}
			assert.Equal(t, fx.keys, got)
		})
	}
	// Whole digests, not only their last 8 bytes.
	s, err := NewSHA256CBOR(Config{BlockSize: 16, HashSeed: "0"})
	require.NoError(t, err)
	ds := s.AppendDigests(nil, nil, vllmFixtures()[1].tokens)
	require.Len(t, ds, 3)
	for i, want := range []string{
		"d830de3d42c00f25a2949b5d12d98642664a44872c1614c5b0147556276afc9c",
		"800c6db6f4e8d28a50c5728e07d6d58bc4a1e3dfc0d2be6f720f2701292fd515",
		"dd6ac866e4ddefbb478b452e1482d98cc80075c6a917550db1eccbe00a17b912",
	} {
		assert.Equal(t, want, hex.EncodeToString(ds[i][:]), "block %d", i)
	}
}

// referenceSHA256 computes a digest the way llm-d's sha256_cbor path does
// (hashSHA256 at llm-d/llm-d-kv-cache commit 8e22575e: SHA-256 of
// cbor.CanonicalEncOptions() over []any{parent []byte, tokens []uint32,
// extra}), through fxamacker/cbor itself.
func referenceSHA256(t testing.TB, parent []byte, tokens []uint32, extra any) paged.Hash {
	enc, err := cbor.CanonicalEncOptions().EncMode()
	require.NoError(t, err)
	b, err := enc.Marshal([]any{parent, tokens, extra})
	require.NoError(t, err)
	return sha256.Sum256(b)
}

func TestSHA256CBORMatchesLLMDReference(t *testing.T) {
	r := rand.New(rand.NewPCG(3, 4))
	enc, err := cbor.CanonicalEncOptions().EncMode()
	require.NoError(t, err)
	for range 100 {
		bs := 1 + r.IntN(40)
		seed := string(rune('a' + r.IntN(26)))
		s, err := NewSHA256CBOR(Config{BlockSize: bs, HashSeed: seed})
		require.NoError(t, err)
		seedCBOR, err := enc.Marshal(seed)
		require.NoError(t, err)
		d := paged.Hash(sha256.Sum256(seedCBOR))
		require.Equal(t, d, s.Root())
		ts := make([]int32, bs*(1+r.IntN(3))+r.IntN(bs))
		for i := range ts {
			ts[i] = int32(r.Uint32() >> r.IntN(32))
		}
		keys := s.AppendKeys(nil, ts)
		digests := s.AppendDigests(nil, nil, ts)
		require.Len(t, keys, len(ts)/bs)
		require.Len(t, digests, len(ts)/bs)
		for i := range keys {
			d = referenceSHA256(t, d[:], u32(ts[i*bs:(i+1)*bs]), nil)
			require.Equal(t, d, digests[i])
			require.Equal(t, binary.BigEndian.Uint64(d[24:]), keys[i])
		}
		if len(digests) > 1 {
			assert.Equal(t, digests[1:], s.AppendDigests(nil, &digests[0], ts[bs:]), "a chain continues from a digest")
		}
	}
}

func TestSHA256CBORSumAndErrors(t *testing.T) {
	s, err := NewSHA256CBOR(Config{BlockSize: 4, HashSeed: "0"})
	require.NoError(t, err)
	root := s.Root()
	extra := []any{"lora-1", "mm_a", "salt"}
	got, err := s.Sum(nil, []int32{1, 2, 3, 4}, extra)
	require.NoError(t, err)
	assert.Equal(t, referenceSHA256(t, root[:], []uint32{1, 2, 3, 4}, extra), got)
	none, err := s.Sum(nil, []int32{1, 2, 3, 4}, nil)
	require.NoError(t, err)
	empty, err := s.Sum(&root, []int32{1, 2, 3, 4}, []any{})
	require.NoError(t, err)
	assert.Equal(t, none, empty, "llm-d folds empty extras to null")
	assert.Equal(t, s.AppendDigests(nil, nil, []int32{1, 2, 3, 4}), []paged.Hash{none})
	_, err = s.Sum(nil, nil, make(chan int))
	require.ErrorIs(t, err, ErrInvalid)
	_, err = NewSHA256CBOR(Config{BlockSize: 0})
	require.ErrorIs(t, err, ErrInvalid)
	assert.Empty(t, s.AppendKeys(nil, []int32{1, 2, 3}), "a partial block has no key")
}

func TestSHA256CBORDoesNotAllocate(t *testing.T) {
	s, err := NewSHA256CBOR(Config{BlockSize: 16, HashSeed: "0"})
	require.NoError(t, err)
	toks := tokens(256)
	keys := make([]uint64, 0, 16)
	ds := make([]paged.Hash, 0, 16)
	allocs := testing.AllocsPerRun(100, func() {
		keys = s.AppendKeys(keys[:0], toks)
		ds = s.AppendDigests(ds[:0], nil, toks)
	})
	assert.Zero(t, allocs)
}
