//go:build !(386 || arm || mips || mipsle)

// Tests whose sizes need a 64-bit int (a token count past 2^31); the
// build constraint leaves out the 32-bit GOARCHes.

package kvmem_test

import (
	"testing"

	"github.com/stretchr/testify/assert"
	"github.com/stretchr/testify/require"

	"github.com/pagedkv/pagedkv/kvmem"
)

// TestSequenceBlocksOverflow: two groups each just under the limit must
// not wrap around to a negative total.
func TestSequenceBlocksOverflow(t *testing.T) {
	s := kvmem.Spec{KVHeads: 1, HeadDim: 8, Key: kvmem.FP16, Groups: []kvmem.Group{
		{Kind: kvmem.Full, Layers: 1}, {Kind: kvmem.Full, Layers: 1}}}
	n, err := s.SequenceBlocks(1<<61, 1)
	require.NoError(t, err)
	assert.Equal(t, int64(1<<62), n)
	_, err = s.SequenceBlocks(1<<62, 1)
	require.ErrorIs(t, err, kvmem.ErrInvalid)
	_, err = s.SequenceBlocks(1<<61+1, 1)
	require.ErrorIs(t, err, kvmem.ErrInvalid)
}
