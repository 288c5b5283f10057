package paged_test

import (
	"crypto/sha256"
	"encoding/binary"
	"testing"

	"github.com/stretchr/testify/assert"
	"github.com/stretchr/testify/require"

	"github.com/pagedkv/pagedkv/allocator"
	"github.com/pagedkv/pagedkv/eviction"
	"github.com/pagedkv/pagedkv/paged"
)

// The sixty-ninth round of mutation testing (docs/testing.md): the prefix
// index's commits and retention (prefix.go) and the block hashes
// (hash.go).

// TestAudit116SHA256HashesShortExtraKeys: Sum is SHA-256 of the parent, the
// tokens and the extra keys for extra keys of one, two and three bytes
// too (the manager's own are two or more: a multimodal key with an empty
// hash is its tag and length; a Hasher's caller may pass any).
func TestAudit116SHA256HashesShortExtraKeys(t *testing.T) {
	parent := paged.Hash{1, 2, 3}
	for _, n := range []int{4, 16} {
		tokens := seqOf(7, n)
		for _, extra := range [][]byte{{'x'}, {'x', 'y'}, {'x', 'y', 'z'}} {
			msg := append([]byte(nil), parent[:]...)
			for _, tok := range tokens {
				msg = binary.LittleEndian.AppendUint32(msg, uint32(tok))
			}
			msg = append(msg, extra...)
			assert.Equal(t, paged.Hash(sha256.Sum256(msg)), paged.NewSHA256Hasher().Sum(&parent, tokens, extra), "%d tokens, %d extra bytes", n, len(extra))
		}
	}
}

// TestAudit116FastHasherReadsAnOddBlocksLastToken: blocks of an odd size
// that differ only in their last token hash differently, with FastHasher
// as the manager's hasher too.
func TestAudit116FastHasherReadsAnOddBlocksLastToken(t *testing.T) {
	var h paged.FastHasher
	assert.NotEqual(t, h.Sum(nil, []int32{1, 2, 3}, nil), h.Sum(nil, []int32{1, 2, 4}, nil))
	assert.NotEqual(t, h.Sum(nil, []int32{5}, nil), h.Sum(nil, []int32{6}, nil))
	m, err := paged.New(paged.Config{BlockSize: 3, NumBlocks: 8, Hasher: paged.FastHasher{}})
	require.NoError(t, err)
	a, err := m.BlockHashes(nil, []int32{1, 2, 3, 4, 5, 6}, nil)
	require.NoError(t, err)
	b, err := m.BlockHashes(nil, []int32{1, 2, 3, 4, 5, 7}, nil)
	require.NoError(t, err)
	assert.Equal(t, a[0], b[0])
	assert.NotEqual(t, a[1], b[1], "block 1's last token differs")
}

// TestAudit116MultimodalHashesDoNotAlias: a multimodal input's content
// hash enters its blocks with its length, so two inputs over one block
// whose hashes, run together, spell the same bytes ("aM" then "b", "a"
// then "Mb") give the block different hashes.
func TestAudit116MultimodalHashesDoNotAlias(t *testing.T) {
	m, err := paged.New(paged.Config{BlockSize: 4, NumBlocks: 8})
	require.NoError(t, err)
	prompt := seqOf(1, 8)
	a, err := m.BlockHashes(nil, prompt, &paged.SeqOptions{MM: []paged.MMRange{{Start: 0, End: 1, Hash: "aM"}, {Start: 1, End: 2, Hash: "b"}}})
	require.NoError(t, err)
	b, err := m.BlockHashes(nil, prompt, &paged.SeqOptions{MM: []paged.MMRange{{Start: 0, End: 1, Hash: "a"}, {Start: 1, End: 2, Hash: "Mb"}}})
	require.NoError(t, err)
	assert.NotEqual(t, a[0], b[0])
	assert.NotEqual(t, a[1], b[1], "and so every block after it")
}

// TestAudit116HintKeysTellGroupsApart: in a hybrid manager, the blocks of
// the groups holding one position of a sequence have the same chain hash,
// and the Key a hinting policy is given (eviction.Hint: ARC's and
// S3-FIFO's ghosts are keyed by it) differs between the groups, as the
// index's keys do, so that the ghost of one group's evicted block is not
// taken for the other group's content.
func TestAudit116HintKeysTellGroupsApart(t *testing.T) {
	spy := &spyPolicy{hints: map[allocator.BlockID]eviction.Hint{}}
	m, err := paged.New(paged.Config{
		BlockSize: 4,
		NumBlocks: 32,
		Groups:    []paged.Group{{Kind: paged.FullAttention}, {Kind: paged.SlidingWindow, Window: 64}},
		Policy: func(n int) eviction.Policy {
			spy.Policy = eviction.NewLRU(n)
			return spy
		},
	})
	require.NoError(t, err)
	id, _, err := m.Create(seqOf(1, 9), nil)
	require.NoError(t, err)
	t0, err := m.TableGroup(id, 0)
	require.NoError(t, err)
	t1, err := m.TableGroup(id, 1)
	require.NoError(t, err)
	for k := range 2 {
		h0, ok0 := spy.hints[t0[k]]
		h1, ok1 := spy.hints[t1[k]]
		require.True(t, ok0 && ok1, "block %d is hinted in both groups", k)
		assert.Equal(t, h0.Depth, h1.Depth)
		assert.NotEqual(t, h0.Key, h1.Key, "block %d: the groups' keys", k)
	}
}

// TestAudit116WindowHintParentAfterANullEntry: a windowed sequence's
// block committed when its previous entry is already null (out of the
// window: nothing holds the previous block of the chain) is hinted
// without a parent (allocator.NoBlock), never with the null block. A
// window of 2 over blocks of 4: 9 tokens computed, the append of 3 more
// slides blocks 0 and 1 out and fills block 2.
func TestAudit116WindowHintParentAfterANullEntry(t *testing.T) {
	m, spy := newSpyManager(t)
	id, _, err := m.Create(seqOf(1, 9), &paged.SeqOptions{Window: 2})
	require.NoError(t, err)
	stepDone(m)
	m.EndStep()
	require.NoError(t, m.Append(id, 10, 11, 12))
	tab, err := m.Table(id)
	require.NoError(t, err)
	require.Equal(t, []allocator.BlockID{0, 0}, tab[:2], "blocks 0 and 1 slid out")
	h, ok := spy.hints[tab[2]]
	require.True(t, ok, "block 2 is committed")
	assert.Equal(t, allocator.NoBlock, h.Parent)
	assert.Equal(t, int32(2), h.Depth)
}
