package attention_test

import (
	"errors"
	"testing"

	"github.com/stretchr/testify/assert"
	"github.com/stretchr/testify/require"

	"github.com/pagedkv/pagedkv/bench/attention"
	"github.com/pagedkv/pagedkv/paged"
)

// Tests that kill the bench/attention mutants of the hundred-and-seventh
// mutation round (docs/testing.md, "Mutation testing, hundred-and-seventh
// round"); the internal ones are in audit155_internal_test.go.

// TestAudit155StoreSizeLimit: a store may hold 2^34 values per part, no
// more: one block past it is refused before anything is allocated. The
// codec is a per-token one of one-byte codes and no parameters, so a
// store accepted past the bound (as under a looser bound) maps 16 GiB a
// part that it never touches (fresh pages are zero), or fails to, and the
// test fails either way without using the memory; at the bound itself
// the store would take 32 GiB of address space, so that side is not
// built.
func TestAudit155StoreSizeLimit(t *testing.T) {
	c, err := attention.ParseCodec("fp8_e4m3")
	require.NoError(t, err)
	sh := attention.Shape{BlockSize: 1 << 16, KVHeads: 1, QueryHeads: 1, HeadDim: 32} // 2^21 values a block
	_, err = attention.NewStore(sh, 1<<13+1, c, c)
	assert.True(t, errors.Is(err, attention.ErrInvalid), "%v", err)
	sh.KVHeads, sh.QueryHeads = 2, 2 // 2^22 values a block
	_, err = attention.NewStore(sh, 1<<12+1, c, c)
	assert.True(t, errors.Is(err, attention.ErrInvalid), "%v", err)
}

// TestAudit155NegativeRefusals: NewStore refuses a head dimension of 0,
// Write a negative slot and Copy a negative block on either side, each
// with ErrInvalid and never a panic; the refusal tests had tried only
// indices one past the end and sizes of 0 for the block and the store.
func TestAudit155NegativeRefusals(t *testing.T) {
	sh := testShape
	sh.HeadDim = 0
	_, err := attention.NewStore(sh, 4, nil, nil)
	assert.True(t, errors.Is(err, attention.ErrInvalid), "a head dimension of 0: %v", err)

	store, err := attention.NewStore(testShape, 4, nil, nil)
	require.NoError(t, err)
	kv := make([]float32, testShape.KVHeads*testShape.HeadDim)
	for _, slot := range []int64{-1, -int64(testShape.BlockSize), -1 << 40} {
		assert.NotPanics(t, func() {
			assert.True(t, errors.Is(store.Write(slot, kv, kv), attention.ErrInvalid), "slot %d", slot)
		})
	}
	for _, c := range []paged.Copy{{Src: 1, Dst: -1}, {Src: -1, Dst: 1}, {Src: 0, Dst: -4}} {
		assert.NotPanics(t, func() {
			assert.True(t, errors.Is(store.Copy([]paged.Copy{c}), attention.ErrInvalid), "copy %d -> %d", c.Src, c.Dst)
		})
	}
}
