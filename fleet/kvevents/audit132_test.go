package kvevents

import (
	"math"
	"strings"
	"testing"

	"github.com/stretchr/testify/assert"
	"github.com/stretchr/testify/require"
)

// The eighty-fifth mutation round (docs/testing.md): the decoder and the
// writer. Each test closes a mutation that survived it.

// TestAudit132WriterSmallestForms: the writer's forms at each boundary,
// byte for byte as the MessagePack spec (and msgspec) writes them. The
// reader reads a wider form back to the same value, so only the bytes
// tell a header one step too wide or one that overflows into another
// type's (a fixstr of 32 bytes is 0xc0, nil; a fixmap of 16 entries
// 0x90, an empty array).
func TestAudit132WriterSmallestForms(t *testing.T) {
	ints := []struct {
		v    int64
		want []byte
	}{
		{0, []byte{0x00}},
		{127, []byte{0x7f}},
		{128, []byte{0xcc, 0x80}},
		{255, []byte{0xcc, 0xff}},
		{256, []byte{0xcd, 0x01, 0x00}},
		{65535, []byte{0xcd, 0xff, 0xff}},
		{65536, []byte{0xce, 0x00, 0x01, 0x00, 0x00}},
		{1<<32 - 1, []byte{0xce, 0xff, 0xff, 0xff, 0xff}},
		{1 << 32, []byte{0xcf, 0, 0, 0, 1, 0, 0, 0, 0}},
		{-1, []byte{0xff}},
		{-32, []byte{0xe0}},
		{-33, []byte{0xd0, 0xdf}},
		{-128, []byte{0xd0, 0x80}},
		{-129, []byte{0xd1, 0xff, 0x7f}},
		{-32768, []byte{0xd1, 0x80, 0x00}},
		{-32769, []byte{0xd2, 0xff, 0xff, 0x7f, 0xff}},
		{math.MinInt32, []byte{0xd2, 0x80, 0, 0, 0}},
		{math.MinInt32 - 1, []byte{0xd3, 0xff, 0xff, 0xff, 0xff, 0x7f, 0xff, 0xff, 0xff}},
	}
	for _, c := range ints {
		assert.Equal(t, c.want, appendInt(nil, c.v), "int %d", c.v)
	}
	strs := []struct {
		n    int
		head []byte
	}{
		{0, []byte{0xa0}},
		{31, []byte{0xbf}},
		{32, []byte{0xd9, 32}},
		{255, []byte{0xd9, 0xff}},
		{256, []byte{0xda, 0x01, 0x00}},
		{65535, []byte{0xda, 0xff, 0xff}},
		{65536, []byte{0xdb, 0x00, 0x01, 0x00, 0x00}},
	}
	for _, c := range strs {
		s := strings.Repeat("x", c.n)
		assert.Equal(t, append(c.head, s...), appendStr(nil, s), "str of %d bytes", c.n)
	}
	headers := []struct {
		n       int
		arr, mp []byte
	}{
		{0, []byte{0x90}, []byte{0x80}},
		{15, []byte{0x9f}, []byte{0x8f}},
		{16, []byte{0xdc, 0x00, 0x10}, []byte{0xde, 0x00, 0x10}},
		{65535, []byte{0xdc, 0xff, 0xff}, []byte{0xde, 0xff, 0xff}},
		{65536, []byte{0xdd, 0x00, 0x01, 0x00, 0x00}, []byte{0xdf, 0x00, 0x01, 0x00, 0x00}},
	}
	for _, c := range headers {
		assert.Equal(t, c.arr, appendArrayHeader(nil, c.n), "array of %d", c.n)
		assert.Equal(t, c.mp, appendMapHeader(nil, c.n), "map of %d", c.n)
	}
}

// TestAudit132BatchArrayOfOneIsMalformed: a batch array must hold at
// least [ts, events]. [ts] alone is malformed even when the bytes after it
// would read as an events list: the frame is then a batch and trailing
// bytes, never a batch whose events sit outside its array.
func TestAudit132BatchArrayOfOneIsMalformed(t *testing.T) {
	var b Batch
	e := new(enc).arr(1).float(1.5).arr(0)
	require.ErrorIs(t, b.Decode(e.b), ErrMalformed)
	assert.Empty(t, b.Events)
	assert.Zero(t, b.TS)
	// The same content as a two-element array decodes.
	require.NoError(t, b.Decode(new(enc).arr(2).float(1.5).arr(0).b))
	assert.Equal(t, 1.5, b.TS)
}

// TestAudit132TokenIDsAtTheInt32Bounds: token ids are int32; both bounds
// decode as themselves and one past either is malformed.
func TestAudit132TokenIDsAtTheInt32Bounds(t *testing.T) {
	frame := func(tokens ...int64) []byte {
		e := new(enc).arr(2).float(1).arr(1)
		e.arr(6).str("BlockStored").arr(1).int(7).nil().arr(len(tokens))
		for _, v := range tokens {
			e.int(v)
		}
		return e.int(int64(len(tokens))).nil().b
	}
	var b Batch
	require.NoError(t, b.Decode(frame(math.MinInt32, 0, math.MaxInt32)))
	require.Len(t, b.Events, 1)
	assert.Equal(t, []int32{math.MinInt32, 0, math.MaxInt32}, b.Events[0].Tokens)
	require.ErrorIs(t, b.Decode(frame(math.MaxInt32+1)), ErrMalformed)
	require.ErrorIs(t, b.Decode(frame(math.MinInt32-1)), ErrMalformed)
}
