package kvevents

import (
	"encoding/binary"
	"testing"

	"github.com/stretchr/testify/assert"
	"github.com/stretchr/testify/require"

	"github.com/pagedkv/pagedkv/paged"
)

// The Audit80 tests close the gaps the thirty-fourth mutation round found
// in the msgpack reader (docs/testing.md, "Mutation testing, thirty-fourth
// round").

// TestAudit80ValuesCutByOneByte (M1548, M1552, M1559): a value whose last
// byte is missing (a fixed-width integer or float, a str or bin, an ext's
// data, a length) is ErrMalformed wherever the reader meets it, and never
// a read past the frame's end (a panic, or a skip that ends beyond it);
// the whole value reads.
func TestAudit80ValuesCutByOneByte(t *testing.T) {
	for name, whole := range map[string][]byte{
		"uint 8":   {0xcc, 0xff},
		"uint 16":  {0xcd, 1, 2},
		"uint 32":  {0xce, 1, 2, 3, 4},
		"uint 64":  {0xcf, 1, 2, 3, 4, 5, 6, 7, 8},
		"int 64":   {0xd3, 0xff, 2, 3, 4, 5, 6, 7, 8},
		"float 32": {0xca, 0x3f, 0xc0, 0, 0},
		"float 64": {0xcb, 0x3f, 0xf8, 0, 0, 0, 0, 0, 0},
		"fixstr":   {0xa2, 'h', 'i'},
		"str 8":    {0xd9, 2, 'h', 'i'},
		"str 16":   {0xda, 0, 2, 'h', 'i'},
		"bin 8":    {0xc4, 3, 1, 2, 3},
		"bin 32":   {0xc6, 0, 0, 0, 3, 1, 2, 3},
		"fixext 1": {0xd4, 5, 9},
		"fixext 4": {0xd6, 5, 1, 2, 3, 4},
		"ext 8":    {0xc7, 2, 5, 1, 2},
		"ext 16":   {0xc8, 0, 2, 5, 1, 2},
		"array 16": {0xdc, 0, 1, 0xc0},
		"map 16":   {0xde, 0, 1, 0xc0, 0xc0},
	} {
		r := msgReader{b: whole}
		require.NoError(t, r.skip(0), "%s whole", name)
		assert.Equal(t, len(whole), r.off, "%s whole", name)
		cut := whole[:len(whole)-1]
		r = msgReader{b: cut}
		require.NotPanics(t, func() {
			assert.ErrorIs(t, r.skip(0), ErrMalformed, "%s cut by one byte", name)
		}, name)
		assert.LessOrEqual(t, r.off, len(cut), "%s: the reader stays in the frame", name)
	}
	// The typed reads see the same cuts.
	for _, cut := range [][]byte{{0xcd, 1}, {0xce, 1, 2, 3}, {0xcf, 1, 2, 3, 4, 5, 6, 7}, {0xd2, 1, 2, 3}} {
		r := msgReader{b: cut}
		require.NotPanics(t, func() { _, err := r.int(); assert.ErrorIs(t, err, ErrMalformed, "% x", cut) })
	}
	for _, cut := range [][]byte{{0xca, 1, 2, 3}, {0xcb, 1, 2, 3, 4, 5, 6, 7}} {
		r := msgReader{b: cut}
		require.NotPanics(t, func() { _, err := r.float(); assert.ErrorIs(t, err, ErrMalformed, "% x", cut) })
	}
	for _, cut := range [][]byte{{0xa3, 'a', 'b'}, {0xd9, 3, 'a', 'b'}, {0xd9}, {0xda, 0}, {0xc4, 2, 1}, {0xc6, 0, 0, 0, 2, 1}} {
		r := msgReader{b: cut}
		require.NotPanics(t, func() { _, _, err := r.raw(); assert.ErrorIs(t, err, ErrMalformed, "% x", cut) })
	}
	// A batch whose last byte is missing, whatever the value it cuts.
	frame, err := func() ([]byte, error) {
		e, err := NewEncoder(EncoderConfig{Hashes: HashBytes})
		if err != nil {
			return nil, err
		}
		return e.AppendBatch(nil, 1.5, []paged.Event{{Kind: paged.BlockStored, Hashes: []paged.Hash{HashFromInt(3)}, Tokens: []int32{1, 1 << 20}, BlockSize: 2}})
	}()
	require.NoError(t, err)
	var b Batch
	require.NoError(t, b.Decode(frame))
	for n := range len(frame) {
		require.NotPanics(t, func() {
			assert.ErrorIs(t, b.Decode(frame[:n]), ErrMalformed, "the frame cut to %d bytes", n)
		})
	}
}

// TestAudit80HashArrayEndingEarly (M1553): a hash array whose count fits
// the bytes left but whose first hash takes them all ends the frame where
// the second hash should start: the reader asks whether the byte past the
// end is an integer, which is ErrMalformed, not an index out of range.
func TestAudit80HashArrayEndingEarly(t *testing.T) {
	frame := new(enc).arr(2).float(1).arr(1).arr(2).str("BlockRemoved").arr(2).uint64(7).b
	var b Batch
	require.NotPanics(t, func() { assert.ErrorIs(t, b.Decode(frame), ErrMalformed) })
	assert.Empty(t, b.Events)
	r := msgReader{b: []byte{0x01}, off: 1}
	assert.False(t, r.isInt(), "nothing is past the end")
}

// TestAudit80WideHeaders (M1549, M1550, M1551, M1554, M1555, M1558):
// msgspec writes the smallest header a value fits, but any writer may use
// the wider ones, and the reader takes them all: a map 32, a str 32 and a
// bin 32 (read, told apart and skipped), false, a float 32 and an ext 32.
func TestAudit80WideHeaders(t *testing.T) {
	map32 := []byte{0xdf, 0, 0, 0, 1, 0xa1, 'k', 0x07}
	r := msgReader{b: map32}
	n, err := r.mapLen()
	require.NoError(t, err)
	assert.Equal(t, 1, n)
	assert.Equal(t, 5, r.off)

	long := make([]byte, 300) // a length past one byte, so 2 and 4 bytes differ
	for i := range long {
		long[i] = byte('a' + i%26)
	}
	str32 := append(binary.BigEndian.AppendUint32([]byte{0xdb}, uint32(len(long))), long...)
	bin32 := append(binary.BigEndian.AppendUint32([]byte{0xc6}, uint32(len(long))), long...)
	r = msgReader{b: str32}
	v, isStr, err := r.raw()
	require.NoError(t, err)
	assert.True(t, isStr)
	assert.Equal(t, long, v)
	r = msgReader{b: bin32}
	v, isStr, err = r.raw()
	require.NoError(t, err)
	assert.False(t, isStr, "a bin 32 is a bin")
	assert.Equal(t, long, v)
	r = msgReader{b: bin32}
	_, err = r.str()
	assert.ErrorIs(t, err, ErrMalformed, "a bin 32 where a str is wanted")

	float32 := []byte{0xca, 0x3f, 0xc0, 0, 0} // 1.5
	r = msgReader{b: float32}
	f, err := r.float()
	require.NoError(t, err)
	assert.Equal(t, 1.5, f)

	ext32 := []byte{0xc9, 0, 0, 0, 3, 0x05, 1, 2, 3}
	// An array of each, then a positive fixint the skip must land on.
	e := new(enc).arr(7)
	e.b = append(e.b, map32...)
	e.b = append(e.b, str32...)
	e.b = append(e.b, bin32...)
	e.b = append(e.b, 0xc2) // false
	e.b = append(e.b, float32...)
	e.b = append(e.b, ext32...)
	e.b = append(e.b, 0x2a)
	r = msgReader{b: e.b}
	require.NoError(t, r.skip(0))
	assert.Equal(t, len(e.b), r.off)
	for _, one := range [][]byte{map32, str32, bin32, {0xc2}, float32, ext32} {
		r := msgReader{b: append(one, 0x2a)}
		require.NoError(t, r.skip(0), "% x", one[:1])
		c, err := r.int()
		require.NoError(t, err, "% x: the skip ends at the value's end", one[:1])
		assert.Equal(t, uint64(0x2a), c)
	}

	// A batch written with the wide headers decodes as the compact one:
	// a map 32 event with str 32 keys, a float 32 timestamp, an unknown
	// field holding false.
	key := func(s string) []byte {
		return append(binary.BigEndian.AppendUint32([]byte{0xdb}, uint32(len(s))), s...)
	}
	wide := new(enc).arr(2)
	wide.b = append(wide.b, float32...)
	wide.arr(1)
	wide.b = append(wide.b, 0xdf, 0, 0, 0, 3)
	wide.b = append(append(wide.b, key("type")...), key("BlockRemoved")...)
	wide.b = append(append(wide.b, key("block_hashes")...), 0x91, 0x09)
	wide.b = append(append(wide.b, key("later")...), 0xc2)
	var b Batch
	require.NoError(t, b.Decode(wide.b))
	assert.Equal(t, 1.5, b.TS)
	require.Len(t, b.Events, 1)
	assert.Equal(t, paged.BlockRemoved, b.Events[0].Kind)
	assert.Equal(t, []paged.Hash{HashFromInt(9)}, b.Events[0].Hashes)
}

// TestAudit80NestingBound (M1556, M1557): skip follows maxSkipDepth
// levels of nesting, of arrays, maps or both, and refuses one more.
func TestAudit80NestingBound(t *testing.T) {
	nest := func(levels int, array func(i int) bool) []byte {
		var b []byte
		for i := range levels {
			if array(i) {
				b = append(b, 0x91) // [x]
			} else {
				b = append(b, 0x81, 0xc0) // {nil: x}
			}
		}
		return append(b, 0xc0)
	}
	for name, array := range map[string]func(int) bool{
		"arrays": func(int) bool { return true },
		"maps":   func(int) bool { return false },
		"mixed":  func(i int) bool { return i%2 == 0 },
	} {
		r := msgReader{b: nest(maxSkipDepth, array)}
		require.NoError(t, r.skip(0), "%s: %d levels", name, maxSkipDepth)
		assert.Equal(t, len(r.b), r.off)
		for _, levels := range []int{maxSkipDepth + 1, maxSkipDepth + 2, 4 * maxSkipDepth} {
			r = msgReader{b: nest(levels, array)}
			assert.ErrorIs(t, r.skip(0), ErrMalformed, "%s: %d levels", name, levels)
		}
	}
	// Inside a frame, an unknown field nests below the event's own
	// levels (batch, events, event): the bound counts from the field.
	field := func(levels int) []byte {
		e := new(enc).arr(2).float(1).arr(1).mapH(3).str("type").str("BlockRemoved").str("block_hashes").arr(1).int(1).str("later")
		e.b = append(e.b, nest(levels, func(int) bool { return false })...)
		return e.b
	}
	var b Batch
	require.NoError(t, b.Decode(field(maxSkipDepth)))
	assert.ErrorIs(t, b.Decode(field(maxSkipDepth+1)), ErrMalformed)
}
