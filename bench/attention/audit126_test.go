package attention_test

import (
	"testing"

	"github.com/stretchr/testify/assert"
	"github.com/stretchr/testify/require"

	"github.com/pagedkv/pagedkv/bench/attention"
)

// TestAudit126ParseCodecF32: "f32" is the alias of "fp32", plain float32,
// a nil codec.
func TestAudit126ParseCodecF32(t *testing.T) {
	c, err := attention.ParseCodec("f32")
	require.NoError(t, err)
	assert.Nil(t, c)
	assert.Equal(t, "fp32", attention.CodecName(c))
}

// TestAudit126ConstantGroupsWriteTheirCodes: a group whose values are all
// equal has a zero scale; its codes must still be written (0, within the
// codec's width), not left as a reused buffer held them (0xff here), and
// it decodes to its value exactly, through the per-token and per-channel
// decode loops and through their tables (groups of more values than code
// levels).
func TestAudit126ConstantGroupsWriteTheirCodes(t *testing.T) {
	const rows, dim = 16, 32
	src := make([]float32, rows*dim)
	for i := range src {
		src[i] = 1.5 // an FP16 value
	}
	for _, name := range []string{"int2-g32", "int4-g8", "int8-g32", "int2-ch", "int4-ch", "int8-ch"} {
		c, err := attention.ParseCodec(name)
		require.NoError(t, err)
		codes, params, got := make([]uint8, rows*dim), make([]float32, c.Params(rows, dim)), make([]float32, rows*dim)
		for i := range codes {
			codes[i] = 0xff
		}
		c.Encode(codes, params, src, rows, dim)
		bits := c.Storage().CodeBits
		for i, q := range codes {
			require.Less(t, int(q), 1<<bits, "%s: code %d of %d bits", name, i, bits)
		}
		c.Decode(got, codes, params, rows, dim)
		for i, x := range got {
			require.Equal(t, float32(1.5), x, "%s element %d", name, i)
		}
	}
}
