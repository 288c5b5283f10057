package kvevents

import (
	"testing"

	"github.com/stretchr/testify/assert"
	"github.com/stretchr/testify/require"

	"github.com/pagedkv/pagedkv/paged"
)

// vllmStored writes a BlockStored of one 4-token block as vLLM's msgspec
// encoder does at commit 0181ea31 (kv_events.py, omit_defaults): the
// fields without a default always (lora_id, medium and lora_name nil or
// set), extra_keys left out when None, then group_idx, kv_cache_spec_kind
// and kv_cache_spec_sliding_window, the window written only when the
// spec has one (get_kv_cache_spec_sliding_window is None otherwise). In
// the array layout (array_like) a None default is left out only at the
// end of the array.
func vllmStored(e *enc, array bool, hash int64, group int, kind string, window int) {
	if array {
		n := 11
		if window > 0 {
			n++
		}
		e.arr(n).str("BlockStored").arr(1).int(hash).nil().arr(4).int(1).int(2).int(3).int(4).int(4).
			nil().str("GPU").nil().nil().int(int64(group)).str(kind)
		if window > 0 {
			e.int(int64(window))
		}
		return
	}
	n := 10
	if window > 0 {
		n++
	}
	e.mapH(n).str("type").str("BlockStored").str("block_hashes").arr(1).int(hash).
		str("parent_block_hash").nil().str("token_ids").arr(4).int(1).int(2).int(3).int(4).
		str("block_size").int(4).str("lora_id").nil().str("medium").str("GPU").str("lora_name").nil().
		str("group_idx").int(int64(group)).str("kv_cache_spec_kind").str(kind)
	if window > 0 {
		e.str("kv_cache_spec_sliding_window").int(int64(window))
	}
}

// A frame shaped as a gpt-oss-like vLLM engine publishes it (a full
// attention group and a 128-token sliding-window group, then a removal
// from the window group), in both layouts: the full-attention store
// carries no window at all, the window store its positive window. The
// decoder reads both and the learner the layout.
func TestDecodeVLLMSpecFrame(t *testing.T) {
	for _, array := range []bool{false, true} {
		e := &enc{}
		if array {
			e.arr(3).float(1.5).arr(3)
		} else {
			e.mapH(3).str("ts").float(1.5).str("events").arr(3)
		}
		vllmStored(e, array, 11, 0, "full_attention", 0)
		vllmStored(e, array, 12, 1, "sliding_window", 128)
		if array {
			e.arr(4).str("BlockRemoved").arr(1).int(12).str("GPU").int(1)
			e.int(0)
		} else {
			e.mapH(4).str("type").str("BlockRemoved").str("block_hashes").arr(1).int(12).str("medium").str("GPU").str("group_idx").int(1)
			e.str("data_parallel_rank").int(0)
		}
		var b Batch
		require.NoError(t, b.Decode(e.b), "array %v", array)
		require.Len(t, b.Events, 3)
		assert.Equal(t, []Meta{
			{Group: 0, HasGroup: true, Spec: SpecFullAttention},
			{Group: 1, HasGroup: true, Spec: SpecSlidingWindow, SlidingWindow: 128},
			{Group: 1, HasGroup: true},
		}, b.Meta, "array %v", array)
		assert.Equal(t, paged.BlockRemoved, b.Events[2].Kind)
		var l LayoutLearner
		l.Learn(&b)
		got, err := l.Layout(2)
		require.NoError(t, err, "array %v", array)
		assert.Equal(t, "b4 full window:128", got.String())
	}
}

// kv_cache_spec_sliding_window 0: no window on a kind without one (a
// producer that writes 0 for None), read as the field left out; on a
// sliding-window kind, which vLLM only makes with a positive window, a
// contradiction that rejects the frame whole, wherever the map puts the
// window. A negative window is refused as before.
func TestDecodeZeroWindow(t *testing.T) {
	stored := func(kind string, window int64, windowFirst bool) []byte {
		e := &enc{}
		e.mapH(2).str("ts").float(1).str("events").arr(1)
		e.mapH(8).str("type").str("BlockStored").str("lora_id").nil()
		if windowFirst {
			e.str("kv_cache_spec_sliding_window").int(window)
		}
		e.str("block_hashes").arr(1).int(5).str("parent_block_hash").nil().str("token_ids").arr(0).
			str("block_size").int(16).str("kv_cache_spec_kind").str(kind)
		if !windowFirst {
			e.str("kv_cache_spec_sliding_window").int(window)
		}
		return e.b
	}
	for _, kind := range []string{"full_attention", "mla_attention", "sink_full_attention", "mamba", "chunked_local_attention", "a_kind_from_the_future"} {
		for _, first := range []bool{false, true} {
			var b Batch
			require.NoError(t, b.Decode(stored(kind, 0, first)), "%s, window first %v", kind, first)
			require.Len(t, b.Meta, 1)
			assert.Equal(t, Meta{Spec: specKindOf([]byte(kind))}, b.Meta[0], kind)
			want, wantOK := Meta{Spec: specKindOf([]byte(kind))}.LayoutGroup()
			g, ok := b.Meta[0].LayoutGroup()
			assert.Equal(t, wantOK, ok, kind)
			assert.Equal(t, want, g, "%s with window 0 scores as with none", kind)
		}
	}
	// Without any kind, 0 is no window either.
	e := &enc{}
	e.mapH(2).str("ts").float(1).str("events").arr(1)
	e.mapH(7).str("type").str("BlockStored").str("lora_id").nil().str("block_hashes").arr(1).int(5).str("parent_block_hash").nil().
		str("token_ids").arr(0).str("block_size").int(16).str("kv_cache_spec_sliding_window").int(0)
	var b Batch
	require.NoError(t, b.Decode(e.b))
	assert.Equal(t, []Meta{{}}, b.Meta)

	for _, kind := range []string{"sliding_window", "sliding_window_mla"} {
		for _, first := range []bool{false, true} {
			var b Batch
			require.NoError(t, b.Decode(stored(kind, 64, first)))
			err := b.Decode(stored(kind, 0, first))
			require.ErrorIs(t, err, ErrMalformed, "%s with window 0, window first %v", kind, first)
			assert.Contains(t, err.Error(), "kv_cache_spec_sliding_window 0 on a "+kind)
			assert.Empty(t, b.Events, "nothing of the refused frame is kept")
			assert.Empty(t, b.Meta)
		}
	}
	for _, kind := range []string{"full_attention", "sliding_window"} {
		var b Batch
		assert.ErrorIs(t, b.Decode(stored(kind, -1, false)), ErrMalformed, kind)
	}
}
