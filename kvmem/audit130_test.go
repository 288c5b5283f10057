package kvmem_test

import (
	"testing"

	"github.com/stretchr/testify/assert"
	"github.com/stretchr/testify/require"

	"github.com/pagedkv/pagedkv/kvmem"
)

// The eighty-third mutation round (docs/testing.md): kvmem's formats.
// Each test closes a mutation that survived it.

// pastMXFP4 is the first Format past the table (mxfp4 is the last entry).
const pastMXFP4 = kvmem.FormatMXFP4 + 1

// TestAudit130FormatPastTheTable: the first format past mxfp4 is unknown:
// it is named by its number, fails Validate, and has no bits and no
// group. M3470 and M3479 looked it up one past the table (a panic).
func TestAudit130FormatPastTheTable(t *testing.T) {
	assert.Equal(t, "mxfp4", kvmem.FormatMXFP4.String())
	assert.Equal(t, "Format(13)", pastMXFP4.String())
	typ := kvmem.Type{Format: pastMXFP4}
	assert.ErrorIs(t, typ.Validate(), kvmem.ErrInvalid)
	assert.Equal(t, 0, typ.ValueBits())
	assert.Equal(t, 0, typ.GroupSize())
	_, err := typ.RowBytes(32)
	assert.ErrorIs(t, err, kvmem.ErrInvalid)
}

// TestAudit130ParseTypeSpacesAndNines: ParseType trims the spaces around
// a name and reads every digit of a group, 9 included. M3474 kept the
// spaces; M3475 refused the digit 9.
func TestAudit130ParseTypeSpacesAndNines(t *testing.T) {
	for s, want := range map[string]kvmem.Type{
		" fp16\t":   kvmem.FP16,
		"\nint4 ":   kvmem.INT4(64),
		"int4-g96":  kvmem.INT4(96),
		"int2-g96":  kvmem.INT2(96),
		"int4-g998": kvmem.INT4(998),
	} {
		got, err := kvmem.ParseType(s)
		require.NoError(t, err, "%q", s)
		assert.Equal(t, want, got, "%q", s)
	}
}

// TestAudit130IsZeroOnlyForTheZeroType: a Type with a Group but no
// format is invalid but not the unset type. M3478 called it unset.
func TestAudit130IsZeroOnlyForTheZeroType(t *testing.T) {
	assert.True(t, kvmem.Type{}.IsZero())
	assert.False(t, kvmem.Type{Group: 64}.IsZero())
	assert.False(t, kvmem.INT4(64).IsZero())
}

// TestAudit130InvalidGroups: an int4 or int2 group of 0, or one that
// does not end on a byte, is invalid, and an invalid type has no bits
// and no group size. M3481 took a group of 0; M3482 and M3483 gave an
// invalid type's bits and group.
func TestAudit130InvalidGroups(t *testing.T) {
	for _, typ := range []kvmem.Type{kvmem.INT4(0), kvmem.INT2(0), kvmem.INT4(3), kvmem.INT2(6), kvmem.INT4(-2),
		{Format: kvmem.FormatFP16, Group: 2}} {
		assert.ErrorIs(t, typ.Validate(), kvmem.ErrInvalid, "%v", typ)
		assert.Equal(t, 0, typ.ValueBits(), "%v", typ)
		assert.Equal(t, 0, typ.GroupSize(), "%v", typ)
	}
}

// TestAudit130ParamBytesSmallGroups: groups of 16 or fewer values count
// their scales like larger ones: 16 nvfp4 values are a 9-byte block,
// 16 int4-g16 values 8 + 4 bytes, 8 int2-g8 values 2 + 4, and a partial
// last group counts whole. M3487 counted them as bare values.
func TestAudit130ParamBytesSmallGroups(t *testing.T) {
	for _, tc := range []struct {
		typ  kvmem.Type
		n    int64
		want int64
	}{
		{kvmem.NVFP4, 16, 9},
		{kvmem.NVFP4, 33, 27},
		{kvmem.INT4(16), 16, 12},
		{kvmem.INT2(8), 8, 6},
		{kvmem.INT2(4), 5, 10},
	} {
		got, err := tc.typ.ParamBytes(tc.n)
		require.NoError(t, err, "%v", tc.typ)
		assert.Equal(t, tc.want, got, "%d params of %v", tc.n, tc.typ)
	}
}

// TestAudit130ParseTypeRefusesALongGroup: a group too long for an int is
// not a number, and the error quotes it as written. M3476 took it as
// Atoi's clamped value, 2^63-1, which Validate then refused as a group
// past 2^20 under a number the input never had.
func TestAudit130ParseTypeRefusesALongGroup(t *testing.T) {
	const long = "99999999999999999999"
	_, err := kvmem.ParseType("int4-g" + long)
	require.ErrorIs(t, err, kvmem.ErrInvalid)
	assert.Contains(t, err.Error(), `group "`+long+`" is not a number`)
}
