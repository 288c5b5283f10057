package attention

import (
	"errors"
	"testing"

	"github.com/stretchr/testify/assert"
	"github.com/stretchr/testify/require"
)

// Tests that kill the bench/attention mutants of the hundred-and-seventh
// mutation round (docs/testing.md, "Mutation testing, hundred-and-seventh
// round").

// TestAudit155BlockSizeLimit: a shape's block may hold 2^28 values per
// part (BlockSize*KVHeads*HeadDim), no more. Only validate is asked, so
// neither side allocates; the tests had tried no shape near the bound.
func TestAudit155BlockSizeLimit(t *testing.T) {
	for _, c := range []struct {
		sh Shape
		ok bool
	}{
		{Shape{BlockSize: 1 << 20, KVHeads: 2, QueryHeads: 2, HeadDim: 128}, true},
		{Shape{BlockSize: 1<<20 + 1, KVHeads: 2, QueryHeads: 2, HeadDim: 128}, false},
		{Shape{BlockSize: 1 << 28, KVHeads: 1, QueryHeads: 1, HeadDim: 1}, true},
		{Shape{BlockSize: 1<<28 + 1, KVHeads: 1, QueryHeads: 1, HeadDim: 1}, false},
		{Shape{BlockSize: 1 << 27, KVHeads: 2, QueryHeads: 4, HeadDim: 2}, false},
	} {
		err := c.sh.validate()
		if c.ok {
			assert.NoError(t, err, "%+v", c.sh)
		} else {
			assert.True(t, errors.Is(err, ErrInvalid), "%+v: %v", c.sh, err)
		}
	}
}

// TestAudit155PerTokenKeepsNoFloats: a store keeps the float32 values of a
// part only where it reads them again, without a codec or under a
// per-channel one (the residual of a partial block); a per-token codec
// encodes each token as it comes, and keeping the floats too would take
// four bytes a value beside its one-byte code.
func TestAudit155PerTokenKeepsNoFloats(t *testing.T) {
	sh := Shape{BlockSize: 4, KVHeads: 2, QueryHeads: 2, HeadDim: 32}
	for _, c := range []struct {
		key, value string
		kf, vf     bool
	}{
		{"fp8_e4m3", "q8_0", false, false},
		{"int4-ch", "int4-g32", true, false},
		{"f32", "fp16", true, false},
	} {
		kc, err := ParseCodec(c.key)
		require.NoError(t, err)
		vc, err := ParseCodec(c.value)
		require.NoError(t, err)
		s, err := NewStore(sh, 3, kc, vc)
		require.NoError(t, err)
		assert.Equal(t, c.kf, s.key.f != nil, "%s keys keep floats", c.key)
		assert.Equal(t, c.vf, s.value.f != nil, "%s values keep floats", c.value)
	}
}
