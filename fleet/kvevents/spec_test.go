package kvevents

import (
	"testing"

	"github.com/stretchr/testify/assert"
	"github.com/stretchr/testify/require"

	"github.com/pagedkv/pagedkv/paged"
)

// storedSpec is a map-layout BlockStored of one block with the spec
// fields of vllm/distributed/kv_events.py at commit 0181ea31: group_idx,
// kv_cache_spec_kind and, when window > 0, kv_cache_spec_sliding_window.
func storedSpec(e *enc, group int, kind string, window, blockSize int) {
	n := 8
	if window > 0 {
		n++
	}
	e.mapH(n).str("type").str("BlockStored").str("block_hashes").arr(1).int(int64(100 + group)).
		str("parent_block_hash").nil().str("token_ids").arr(0).str("block_size").int(int64(blockSize)).
		str("lora_id").nil().str("group_idx").int(int64(group)).str("kv_cache_spec_kind").str(kind)
	if window > 0 {
		e.str("kv_cache_spec_sliding_window").int(int64(window))
	}
}

func specFrame(events func(e *enc), n int) []byte {
	e := &enc{}
	e.mapH(2).str("ts").float(1).str("events").arr(n)
	events(e)
	return e.b
}

// A gpt-oss-like engine's store events name each group's kind and its
// window; once every group has been seen, the learner gives the layout
// the index scores it with. The array layout carries the same fields
// positionally.
func TestLayoutLearnedFromSpecFields(t *testing.T) {
	var b Batch
	require.NoError(t, b.Decode(specFrame(func(e *enc) {
		storedSpec(e, 0, "full_attention", 0, 16)
		storedSpec(e, 1, "sliding_window", 128, 16)
	}, 2)))
	assert.Equal(t, Meta{Group: 1, HasGroup: true, Spec: SpecSlidingWindow, SlidingWindow: 128}, b.Meta[1])
	var l LayoutLearner
	l.Learn(&b)
	_, err := l.Layout(3)
	require.ErrorIs(t, err, ErrInvalid, "group 2 not seen yet")

	// Group 2 (mamba) in the array layout: [tag, hashes, parent, tokens,
	// block_size, lora_id, medium, lora_name, extra_keys, group_idx,
	// kind, window].
	e := &enc{}
	e.arr(2).float(2).arr(1).arr(12).str("BlockStored").arr(1).int(7).nil().arr(0).int(16).nil().str("GPU").nil().nil().int(2).str("mamba").nil()
	require.NoError(t, b.Decode(e.b))
	assert.Equal(t, Meta{Group: 2, HasGroup: true, Spec: SpecMamba}, b.Meta[0])
	l.Learn(&b)
	got, err := l.Layout(3)
	require.NoError(t, err)
	assert.Equal(t, "b16 full window:128 state", got.String())
	_, err = l.Layout(2)
	require.ErrorIs(t, err, ErrInvalid, "the events described a third group")
}

// What the events cannot describe is refused, not guessed: a chunked
// group (no chunk size on the wire), an unknown kind, a window without
// its size, groups of different block sizes, and a group described two
// ways.
func TestLayoutLearnerRefusesWhatTheEventsDoNotSay(t *testing.T) {
	for name, tc := range map[string]struct {
		events func(e *enc)
		n      int
	}{
		"chunked": {func(e *enc) { storedSpec(e, 0, "chunked_local_attention", 0, 16) }, 1},
		"unknown": {func(e *enc) { storedSpec(e, 0, "a_kind_from_the_future", 0, 16) }, 1},
		"window without size": {func(e *enc) {
			storedSpec(e, 0, "full_attention", 0, 16)
			storedSpec(e, 1, "sliding_window", 0, 16)
		}, 2},
		"block sizes": {func(e *enc) {
			storedSpec(e, 0, "full_attention", 0, 16)
			storedSpec(e, 1, "mamba", 0, 64)
		}, 2},
		"contradiction": {func(e *enc) {
			storedSpec(e, 0, "full_attention", 0, 16)
			storedSpec(e, 0, "sliding_window", 64, 16)
		}, 2},
	} {
		var b Batch
		require.NoError(t, b.Decode(specFrame(tc.events, tc.n)), name)
		var l LayoutLearner
		l.Learn(&b)
		groups := 1
		if name == "window without size" || name == "block sizes" {
			groups = 2
		}
		_, err := l.Layout(groups)
		assert.ErrorIs(t, err, ErrInvalid, name)
	}
	var l LayoutLearner
	_, err := l.Layout(0)
	assert.ErrorIs(t, err, ErrInvalid)

	// A negative window on the wire breaks the schema (0 on a sliding-window
	// kind too: TestDecodeZeroWindow).
	e := &enc{}
	e.mapH(2).str("ts").float(1).str("events").arr(1)
	e.mapH(3).str("type").str("BlockStored").str("kv_cache_spec_sliding_window").int(-1).str("block_hashes").arr(0)
	var b Batch
	assert.ErrorIs(t, b.Decode(e.b), ErrMalformed)
	assert.Equal(t, SpecKind(200).String(), "SpecKind(200)")
	assert.Equal(t, "mla_attention", SpecMLAAttention.String())
	g, ok := Meta{Spec: SpecSinkFullAttention}.LayoutGroup()
	assert.True(t, ok)
	assert.Equal(t, paged.FullAttention, g.Kind)
}

// An Encoder with Specs writes each BlockStored's group spec in both
// layouts, and the decoder and learner read back the layout; specs it
// cannot write are refused.
func TestEncoderWritesSpecs(t *testing.T) {
	specs := []paged.Group{{Kind: paged.FullAttention}, {Kind: paged.SlidingWindow, Window: 64}, {Kind: paged.State}, {Kind: paged.Shared, Target: 0}}
	events := []paged.Event{
		{Kind: paged.BlockStored, Hashes: []paged.Hash{{1}}, Tokens: make([]int32, 4), BlockSize: 4},
		{Kind: paged.BlockStored, Hashes: []paged.Hash{{1}}, Tokens: make([]int32, 4), BlockSize: 4, Group: 1},
		{Kind: paged.BlockRemoved, Hashes: []paged.Hash{{1}}, Group: 1},
		{Kind: paged.BlockStored, Hashes: []paged.Hash{{1}}, Tokens: make([]int32, 4), BlockSize: 4, Group: 2},
	}
	for _, layout := range []Layout{ArrayLayout, MapLayout} {
		e, err := NewEncoder(EncoderConfig{Layout: layout, Specs: specs})
		require.NoError(t, err)
		frame, err := e.AppendBatch(nil, 1, events)
		require.NoError(t, err)
		var b Batch
		require.NoError(t, b.Decode(frame))
		assert.Equal(t, Meta{Group: 1, HasGroup: true, Spec: SpecSlidingWindow, SlidingWindow: 64}, b.Meta[1], "layout %d", layout)
		assert.Equal(t, Meta{Group: 1, HasGroup: true}, b.Meta[2], "removals carry no spec")
		var l LayoutLearner
		l.Learn(&b)
		got, err := l.Layout(3)
		require.NoError(t, err)
		assert.Equal(t, "b4 full window:64 state", got.String())

		_, err = e.AppendBatch(nil, 1, []paged.Event{{Kind: paged.BlockStored, Hashes: []paged.Hash{{1}}, Tokens: make([]int32, 4), BlockSize: 4, Group: 3}})
		assert.ErrorIs(t, err, ErrInvalid, "a shared group holds no blocks")
		_, err = e.AppendBatch(nil, 1, []paged.Event{{Kind: paged.BlockStored, Hashes: []paged.Hash{{1}}, Tokens: make([]int32, 4), BlockSize: 4, Group: 4}})
		assert.ErrorIs(t, err, ErrInvalid, "a group the specs do not have")
	}
	for _, cfg := range []EncoderConfig{
		{Group: -1, Specs: specs},
		{Specs: []paged.Group{{Kind: paged.SlidingWindow}}},
		{Specs: []paged.Group{{Kind: paged.GroupKind(77)}}},
	} {
		_, err := NewEncoder(cfg)
		assert.ErrorIs(t, err, ErrInvalid, "%+v", cfg)
	}
}
