package kvmem_test

import (
	"testing"

	"github.com/stretchr/testify/assert"
	"github.com/stretchr/testify/require"

	"github.com/pagedkv/pagedkv/kvmem"
)

// Tests that kill the kvmem mutants of the hundredth mutation round
// (docs/testing.md, "Mutation testing, hundredth round").

// TestAudit148GroupLimitsHoldAtTheirValue: each limit of a group holds at
// its value and refuses one past it, naming the field. TestGroupValidate
// asked only for values far past a bound (a window of 2^31, state bytes
// of 2^41, an Of of 5 among two groups), so a bound moved by one went
// unseen, and neither a chunk past 2^30 nor negative StateHeads was
// asked at all.
func TestAudit148GroupLimitsHoldAtTheirValue(t *testing.T) {
	base := func(groups ...kvmem.Group) kvmem.Spec {
		return kvmem.Spec{KVHeads: 8, HeadDim: 128, Key: kvmem.BF16, Groups: groups}
	}
	full := kvmem.Group{Kind: kvmem.Full, Layers: 1}
	chunked := kvmem.Group{Kind: kvmem.Chunked, Layers: 1, Chunk: 8192}
	ok := map[string]kvmem.Spec{
		"4096 layers in one group": base(kvmem.Group{Kind: kvmem.Full, Layers: 1 << 12}),
		"a window of 2^30":         base(full, kvmem.Group{Kind: kvmem.Window, Layers: 1, Window: 1 << 30}),
		"a chunk of 2^30":          base(full, kvmem.Group{Kind: kvmem.Chunked, Layers: 1, Chunk: 1 << 30}),
		"state of 2^40 bytes over 2^16 heads": base(full,
			kvmem.Group{Kind: kvmem.State, Layers: 1, StateBytes: 1 << 40, StateHeads: 1 << 16}),
		"shared layers reading a chunked group": base(full, chunked, kvmem.Group{Kind: kvmem.Shared, Layers: 1, Of: 1}),
		"shared layers reading the last group":  base(chunked, kvmem.Group{Kind: kvmem.Shared, Layers: 1}, full, kvmem.Group{Kind: kvmem.Shared, Layers: 1, Of: 2}),
	}
	for name, s := range ok {
		require.NoError(t, s.Validate(), name)
	}
	bad := []struct {
		name string
		spec kvmem.Spec
		msg  string
	}{
		{"4097 layers in one group", base(kvmem.Group{Kind: kvmem.Full, Layers: 1<<12 + 1}), "Spec.Groups[0].Layers 4097 must be in [1, 4096]"},
		{"a window of 2^30+1", base(full, kvmem.Group{Kind: kvmem.Window, Layers: 1, Window: 1<<30 + 1}), "Spec.Groups[1].Window 1073741825 must be in [1, 2^30]"},
		{"a chunk of 2^30+1", base(full, kvmem.Group{Kind: kvmem.Chunked, Layers: 1, Chunk: 1<<30 + 1}), "Spec.Groups[1].Chunk 1073741825 must be in [1, 2^30]"},
		{"a negative chunk", base(full, kvmem.Group{Kind: kvmem.Chunked, Layers: 1, Chunk: -8}), "Spec.Groups[1].Chunk -8 must be in [1, 2^30]"},
		{"state of 2^40+1 bytes", base(full, kvmem.Group{Kind: kvmem.State, Layers: 1, StateBytes: 1<<40 + 1}), "Spec.Groups[1].StateBytes 1099511627777 must be in [1, 2^40]"},
		{"negative state heads", base(full, kvmem.Group{Kind: kvmem.State, Layers: 1, StateBytes: 64, StateHeads: -2}), "Spec.Groups[1].StateHeads -2 must be in [0, 65536]"},
		{"2^16+1 state heads", base(full, kvmem.Group{Kind: kvmem.State, Layers: 1, StateBytes: 1 << 20, StateHeads: 1<<16 + 1}), "Spec.Groups[1].StateHeads 65537 must be in [0, 65536]"},
		{"shared layers reading one past the last group", base(full, kvmem.Group{Kind: kvmem.Shared, Layers: 1, Of: 2}), "Spec.Groups[1].Of 2 must name another group in [0, 2)"},
		{"shared layers reading group -1", base(full, kvmem.Group{Kind: kvmem.Shared, Layers: 1, Of: -1}), "Spec.Groups[1].Of -1 must name another group in [0, 2)"},
	}
	for _, tt := range bad {
		var err error
		require.NotPanics(t, func() { err = tt.spec.Validate() }, tt.name)
		require.ErrorIs(t, err, kvmem.ErrInvalid, tt.name)
		assert.Contains(t, err.Error(), tt.msg, tt.name)
	}
}
