package kvevents

import (
	"encoding/binary"
	"math"
	"testing"

	"github.com/stretchr/testify/assert"
	"github.com/stretchr/testify/require"
)

// enc builds msgpack frames for tests from the writer's pieces, so a test
// can shape a frame the Encoder would never write.
type enc struct{ b []byte }

func (e *enc) arr(n int) *enc    { e.b = appendArrayHeader(e.b, n); return e }
func (e *enc) mapH(n int) *enc   { e.b = appendMapHeader(e.b, n); return e }
func (e *enc) str(s string) *enc { e.b = appendStr(e.b, s); return e }
func (e *enc) nil() *enc         { e.b = appendNil(e.b); return e }
func (e *enc) float(f float64) *enc {
	e.b = appendFloat(e.b, f)
	return e
}

// int writes v in the smallest encoding msgpack (and msgspec) would use.
func (e *enc) int(v int64) *enc { e.b = appendInt(e.b, v); return e }

func (e *enc) bin(b []byte) *enc {
	e.b = append(e.b, 0xc4, byte(len(b)))
	e.b = append(e.b, b...)
	return e
}

// uint64 writes v in the widest encoding, which msgspec never picks for
// small values but a reader must accept.
func (e *enc) uint64(v uint64) *enc {
	e.b = binary.BigEndian.AppendUint64(append(e.b, 0xcf), v)
	return e
}

func TestMsgReaderIntegers(t *testing.T) {
	for _, v := range []int64{0, 1, 127, 128, 255, 256, 65535, 65536, 1 << 40, -1, -32, -33, -128, -129, -32768, -32769, -1 << 31, -1<<31 - 1, math.MinInt64, math.MaxInt64} {
		r := msgReader{b: new(enc).int(v).b}
		got, err := r.int()
		require.NoError(t, err, "value %d", v)
		assert.Equal(t, uint64(v), got, "value %d", v)
		assert.Equal(t, len(r.b), r.off, "value %d consumed whole", v)
	}
	r := msgReader{b: new(enc).uint64(math.MaxUint64).b}
	got, err := r.int()
	require.NoError(t, err)
	assert.Equal(t, uint64(math.MaxUint64), got)
}

func TestMsgReaderSkipsEveryType(t *testing.T) {
	e := new(enc).arr(10).nil().int(-5).int(1 << 33).float(2.5).str("hello").bin([]byte{1, 2, 3})
	e.mapH(1).str("k").arr(2).int(1).int(2)
	e.b = append(e.b, 0xc3)                         // true
	e.b = append(e.b, 0xd6, 0x01, 1, 2, 3, 4)       // fixext 4
	e.b = append(e.b, 0xc7, 0x02, 0x05, 0x0a, 0x0b) // ext 8 with 2 bytes
	r := msgReader{b: e.b}
	require.NoError(t, r.skip(0))
	assert.Equal(t, len(e.b), r.off)
}

func TestMsgReaderRejectsLies(t *testing.T) {
	cases := map[string][]byte{
		"truncated uint32":   {0xce, 0, 0},
		"array count > data": {0xdd, 0xff, 0xff, 0xff, 0xff},
		"str past end":       {0xa5, 'a'},
		"reserved byte":      {0xc1},
		"ext past end":       {0xc9, 0xff, 0xff, 0xff, 0xff, 1},
	}
	for name, b := range cases {
		r := msgReader{b: b}
		assert.ErrorIs(t, r.skip(0), ErrMalformed, name)
	}
	deep := make([]byte, 0, 64)
	for range 40 {
		deep = append(deep, 0x91)
	}
	deep = append(deep, 0xc0)
	r := msgReader{b: deep}
	assert.ErrorIs(t, r.skip(0), ErrMalformed, "nesting beyond the bound")
}
