package main

import (
	"testing"

	"github.com/stretchr/testify/require"
)

// TestAudit26QuantRowSpelling: a quant row's group (and width) has one
// spelling, decimal digits without a sign or a leading zero; strconv.Atoi
// alone read "int4-g+64" and "kivi-int4-g+32" as their canonical forms.
func TestAudit26QuantRowSpelling(t *testing.T) {
	for _, name := range []string{"int4-g+64", "int4-g064", "kivi-int4-g+32", "kivi-int4-g032", "kivi-int+4-g32", "int4-g64/int4-g+64"} {
		_, err := parseQuantRow(name, 16)
		require.Error(t, err, name)
	}
	for _, name := range []string{"int4-g64", "kivi-int4-g32", "fp8_e4m3/int4-g64"} {
		_, err := parseQuantRow(name, 16)
		require.NoError(t, err, name)
	}
}
