package kvmem_test

import (
	"testing"

	"github.com/stretchr/testify/assert"
	"github.com/stretchr/testify/require"

	"github.com/pagedkv/pagedkv/kvmem"
)

// TestAudit105ValidateBounds: each limit of Validate holds at its value and
// refuses one past it, and an error gives the reason, not only the field:
// an unset Key is "unset" (not an unknown format), a HeadDim of 0 is out of
// its range (not an unpackable row).
func TestAudit105ValidateBounds(t *testing.T) {
	good := kvmem.Spec{Layers: 32, KVHeads: 8, HeadDim: 128, Key: kvmem.FP16}
	ok := []func(*kvmem.Spec){
		func(s *kvmem.Spec) { s.Layers = 1 << 12 },
		func(s *kvmem.Spec) { s.KVHeads = 1 << 16 },
	}
	for i, edit := range ok {
		s := good
		edit(&s)
		require.NoError(t, s.Validate(), "case %d", i)
	}
	bad := []struct {
		edit func(*kvmem.Spec)
		msg  string
	}{
		{func(s *kvmem.Spec) { s.Layers = 1<<12 + 1 }, "Spec.Layers 4097 must be in [1, 4096]"},
		{func(s *kvmem.Spec) { s.KVHeads = 1<<16 + 1 }, "Spec.KVHeads 65537 must be in [1, 65536]"},
		{func(s *kvmem.Spec) { s.HeadDim = 0 }, "Spec.HeadDim 0 must be in [1, 1048576]"},
		{func(s *kvmem.Spec) { s.Key = kvmem.Type{} }, "Spec.Key is unset"},
		{func(s *kvmem.Spec) { s.Groups = []kvmem.Group{{Layers: 16}, {Kind: kvmem.Shared + 1, Layers: 16}} }, "Spec.Groups[1].Kind Kind(5) is not a known kind"},
	}
	for _, tt := range bad {
		s := good
		tt.edit(&s)
		err := s.Validate()
		require.ErrorIs(t, err, kvmem.ErrInvalid, tt.msg)
		assert.Contains(t, err.Error(), tt.msg)
	}
}

// TestAudit105HybridOfOneGroup: a spec of one group is hybrid unless that
// group is Full.
func TestAudit105HybridOfOneGroup(t *testing.T) {
	s := kvmem.Spec{KVHeads: 8, HeadDim: 128, Key: kvmem.FP16}
	s.Groups = []kvmem.Group{{Kind: kvmem.Full, Layers: 32}}
	assert.False(t, s.Hybrid())
	s.Groups = []kvmem.Group{{Kind: kvmem.Window, Layers: 32, Window: 4096}}
	assert.True(t, s.Hybrid())
	s.Groups = []kvmem.Group{{Kind: kvmem.Chunked, Layers: 32, Chunk: 8192}}
	assert.True(t, s.Hybrid())
	s.Groups = nil
	assert.False(t, s.Hybrid())
}

// TestAudit105StateBlocksArguments: StateBlocks refuses a block size of 0
// for a State group (it divides by it) and gives 0 for any other kind, even
// one that carries StateBytes, since the group need not be one of the
// spec's and so was never validated.
func TestAudit105StateBlocksArguments(t *testing.T) {
	s := kvmem.Spec{Layers: 32, KVHeads: 8, HeadDim: 128, Key: kvmem.FP16}
	state := kvmem.Group{Kind: kvmem.State, Layers: 8, StateBytes: 1 << 20}
	for _, bs := range []int{0, -16, 1<<20 + 1} {
		_, err := s.StateBlocks(state, bs)
		require.ErrorIs(t, err, kvmem.ErrInvalid, "block size %d", bs)
	}
	n, err := s.StateBlocks(state, 16)
	require.NoError(t, err)
	assert.Equal(t, int64(16), n) // 2^20 / (16 x 4,096 bytes)
	for _, k := range []kvmem.Kind{kvmem.Full, kvmem.Window, kvmem.Chunked, kvmem.Shared} {
		n, err := s.StateBlocks(kvmem.Group{Kind: k, Layers: 8, StateBytes: 1 << 20}, 16)
		require.NoError(t, err)
		assert.Zero(t, n, "%v", k)
	}
}

// TestAudit105BlockBytesAtTheLimit: byte counts may reach 2^62 and no
// more: the largest standard block (2^16 FP32 heads of 2^20, eight layers,
// 2^20 tokens) is exactly 2^62 bytes, and sixteen layers overflow.
func TestAudit105BlockBytesAtTheLimit(t *testing.T) {
	s := kvmem.Spec{Layers: 8, KVHeads: 1 << 16, HeadDim: 1 << 20, Key: kvmem.FP32}
	b, err := s.BlockBytes(1 << 20)
	require.NoError(t, err)
	assert.Equal(t, int64(1)<<62, b)
	s.Layers = 16
	_, err = s.BlockBytes(1 << 20)
	require.ErrorIs(t, err, kvmem.ErrInvalid)
	assert.Contains(t, err.Error(), "overflows")
}
