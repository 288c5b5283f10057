package kvmem_test

import (
	"testing"

	"github.com/stretchr/testify/assert"
	"github.com/stretchr/testify/require"

	"github.com/pagedkv/pagedkv/kvmem"
)

// The twenty-fifth mutation round (docs/testing.md): kvmem's formats.
// Each test closes a mutation that survived it.

// TestAudit72FormatNames: a format outside the table, the zero one
// included, is named by its number, and the zero Type is "unset". M1200
// named Format(0) by its empty table entry, "".
func TestAudit72FormatNames(t *testing.T) {
	assert.Equal(t, "Format(0)", kvmem.Format(0).String())
	assert.Equal(t, "Format(200)", kvmem.Format(200).String())
	assert.Equal(t, "fp16", kvmem.FormatFP16.String())
	assert.Equal(t, "unset", kvmem.Type{}.String())
}

// TestAudit72ParseTypeNames: ParseType takes the documented aliases of
// fp8_e4m3, "fp8" and "e4m3", in any case, and refuses an int4 or int2
// name whose suffix is not "-g" and a group: "int4-x64" is not int4-g64.
// M1203 dropped the "e4m3" alias (which kvmem's spec test already
// accepted, undocumented until this round); M1202 took any suffix
// starting with "-" for a group.
func TestAudit72ParseTypeNames(t *testing.T) {
	for _, s := range []string{"fp8", "e4m3", "E4M3", "fp8_e4m3", "FP8-E4M3"} {
		typ, err := kvmem.ParseType(s)
		require.NoError(t, err, s)
		assert.Equal(t, kvmem.FP8E4M3, typ, s)
	}
	for _, s := range []string{"int4-x64", "int2-h32", "int4-64", "int4g64", "int4-"} {
		_, err := kvmem.ParseType(s)
		assert.ErrorIs(t, err, kvmem.ErrInvalid, s)
	}
	typ, err := kvmem.ParseType("INT4-G128")
	require.NoError(t, err)
	assert.Equal(t, kvmem.INT4(128), typ)
}

// TestAudit72GroupBounds: an int4 or int2 group must lie in [align,
// 2^20] (the largest group passes, the next multiple fails), and a
// format without groups takes no Group, negative ones included. M1207
// let groups past 2^20 through; M1208 let a negative Group through.
func TestAudit72GroupBounds(t *testing.T) {
	const maxGroup = 1 << 20
	require.NoError(t, kvmem.INT4(maxGroup).Validate())
	require.NoError(t, kvmem.INT2(maxGroup).Validate())
	assert.ErrorIs(t, kvmem.INT4(maxGroup+2).Validate(), kvmem.ErrInvalid)
	assert.ErrorIs(t, kvmem.INT2(maxGroup+4).Validate(), kvmem.ErrInvalid)
	for _, g := range []int{-1, 1, 32} {
		assert.ErrorIs(t, kvmem.Type{Format: kvmem.FormatFP16, Group: g}.Validate(), kvmem.ErrInvalid, "fp16 with Group %d", g)
	}
}

// TestAudit72ParamBytesCounts: ParamBytes refuses a count of no
// parameters, as RowBytes refuses a row of none, and counts a billion
// fp8 parameters as a billion bytes; a count whose bits pass 2^64 is
// refused as an overflow. M1214 took a count of zero.
func TestAudit72ParamBytesCounts(t *testing.T) {
	for _, typ := range []kvmem.Type{kvmem.FP8E4M3, kvmem.Q4_0} {
		_, err := typ.ParamBytes(0)
		assert.ErrorIs(t, err, kvmem.ErrInvalid, "%v", typ)
	}
	b, err := kvmem.FP8E4M3.ParamBytes(1e9)
	require.NoError(t, err)
	assert.EqualValues(t, 1e9, b)
	_, err = kvmem.FP32.ParamBytes(1 << 59)
	assert.ErrorIs(t, err, kvmem.ErrInvalid, "2^59 fp32 parameters are 2^64 bits")
	b, err = kvmem.FP32.ParamBytes(1<<59 - 1)
	require.NoError(t, err)
	assert.EqualValues(t, int64(1<<61-4), b)
}
