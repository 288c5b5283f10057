package llmd

import (
	"testing"

	"github.com/stretchr/testify/assert"
	"github.com/stretchr/testify/require"

	"github.com/pagedkv/pagedkv/paged"
)

// The Audit47 tests close the gaps the fifth mutation round found in llmd
// (docs/testing.md, "Mutation testing, fifth round, part B").

// TestAudit47SumTellsNoTokensFromNil (M372): Sum hashes nil tokens as CBOR
// null (llm-d's root) and an empty, non-nil token list as an empty array,
// as fxamacker/cbor does for llm-d; the two keys differ.
func TestAudit47SumTellsNoTokensFromNil(t *testing.T) {
	p, err := New(Config{BlockSize: 16, HashSeed: "s", Model: "m"})
	require.NoError(t, err)
	for _, parent := range []uint64{0, 7, p.Root(), 1 << 40} {
		null, err := p.Sum(parent, nil, nil)
		require.NoError(t, err)
		assert.Equal(t, reference(t, parent, nil, nil), null, "parent %d, nil tokens", parent)
		empty, err := p.Sum(parent, []int32{}, nil)
		require.NoError(t, err)
		assert.Equal(t, reference(t, parent, []uint32{}, nil), empty, "parent %d, no tokens", parent)
		assert.NotEqual(t, null, empty, "parent %d", parent)
	}
}

// TestAudit47HasherTakesTheZeroParentForTheRoot (M375): the all-zero hash
// (HashOf(0), what paged's hashers read a nil parent as) is key 0, which
// starts a chain at Root as AppendKeys' parent 0 does, and as a parent
// that is no llm-d key (the manager's root hash) does.
func TestAudit47HasherTakesTheZeroParentForTheRoot(t *testing.T) {
	p, err := New(Config{BlockSize: 4, HashSeed: "s", Model: "m"})
	require.NoError(t, err)
	toks := []int32{1, 2, 3, 4}
	keys := p.AppendKeys(nil, 0, toks)
	require.Len(t, keys, 1)
	want := HashOf(keys[0])
	h := p.Hasher()
	var zero paged.Hash
	assert.Equal(t, want, h.Sum(&zero, toks, nil), "the all-zero parent")
	notAKey := paged.Hash{1}
	assert.Equal(t, want, h.Sum(&notAKey, toks, nil), "a parent that is no llm-d key")
	five := HashOf(5)
	assert.NotEqual(t, want, h.Sum(&five, toks, nil), "a parent key other than 0")
}
