package main

import (
	"bytes"
	"testing"

	"github.com/stretchr/testify/assert"
	"github.com/stretchr/testify/require"
)

// TestAudit24QuantBadShape: a shape kvmem refuses is a usage error (exit
// status 2), as every other bad flag of kvbench quant is; it used to fail
// with status 1. A shape kvmem takes but whose keys at the asked length
// would take a terabyte (4,096 KV heads of 65,536 values at 1,024
// tokens: 2^38 float32 values) is refused before anything is allocated;
// the process used to die of an out-of-memory fatal error. Nothing is
// printed on stdout either way.
func TestAudit24QuantBadShape(t *testing.T) {
	for _, args := range [][]string{
		{"-layers", "5000"},
		{"-head-dim", "2000000"},
		{"-kv-heads", "4096", "-q-heads", "4096", "-head-dim", "65536", "-lengths", "1024", "-types", "fp16", "-seqs", "1", "-queries", "1"},
		{"-kv-heads", "1", "-q-heads", "65536", "-head-dim", "1048576", "-lengths", "1", "-types", "fp16"},
	} {
		var out, errOut bytes.Buffer
		err := runQuant(args, &out, &errOut)
		var ue *usageError
		require.ErrorAs(t, err, &ue, "%v", args)
		assert.Empty(t, out.String(), "%v", args)
	}
}
