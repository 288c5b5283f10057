package kvevents

import (
	"testing"

	"github.com/stretchr/testify/assert"
	"github.com/stretchr/testify/require"

	"github.com/pagedkv/pagedkv/paged"
)

// An onboard (a BlockMoved with tokens) is written as a BlockStored too,
// so an Encoder with Specs must check its group as it checks a
// BlockStored's: a group outside Specs panicked (index out of range),
// and a Shared group wrote a frame whose header counted a
// kv_cache_spec_kind field it did not write, so a decoder misread it.
func TestEncoderSpecsCheckOnboards(t *testing.T) {
	specs := []paged.Group{{Kind: paged.FullAttention}, {Kind: paged.Shared, Target: 0}}
	onboard := func(group int) paged.Event {
		return paged.Event{Kind: paged.BlockMoved, Hashes: []paged.Hash{{1}}, Tokens: make([]int32, 4), BlockSize: 4,
			Group: group, From: paged.Host, Medium: paged.Device}
	}
	for _, layout := range []Layout{ArrayLayout, MapLayout} {
		e, err := NewEncoder(EncoderConfig{Layout: layout, Specs: specs})
		require.NoError(t, err)
		frame, err := e.AppendBatch(nil, 1, []paged.Event{onboard(0)})
		require.NoError(t, err)
		var b Batch
		require.NoError(t, b.Decode(frame))
		require.Len(t, b.Meta, 2)
		assert.Equal(t, SpecFullAttention, b.Meta[1].Spec, "layout %d: the onboard's store carries its spec", layout)
		for _, g := range []int{1, 2} {
			var out []byte
			assert.NotPanics(t, func() { out, err = e.AppendBatch(nil, 1, []paged.Event{onboard(g)}) }, "layout %d group %d", layout, g)
			assert.ErrorIs(t, err, ErrInvalid, "layout %d: an onboard of group %d", layout, g)
			assert.Empty(t, out, "nothing written")
		}
	}
}
