package kvevents

import (
	"bytes"
	"encoding/hex"
	"strings"
	"testing"

	"github.com/stretchr/testify/assert"
	"github.com/stretchr/testify/require"

	"github.com/pagedkv/pagedkv/paged"
)

// hexFrame joins hex pieces (spaces ignored) into bytes.
func hexFrame(t *testing.T, parts ...string) []byte {
	t.Helper()
	b, err := hex.DecodeString(strings.ReplaceAll(strings.Join(parts, ""), " ", ""))
	require.NoError(t, err)
	return b
}

// TestAudit11HandBuiltVLLMFrames decodes frames written byte by byte as
// msgspec encodes vLLM's KVEventBatch, independently of this package's
// writer and of the test builder: the array_like layout of the
// kv_events.py the f20c3b0 block pool publishes through (BlockStored with
// medium, BlockRemoved with medium, a data_parallel_rank), and the map
// layout of vllm-project/vllm 0181ea31 (omit_defaults: extra_keys left
// out, group_idx and kv_cache_spec_kind present). Each must mean what
// vLLM means: 32-byte hashes as is, a nil parent is a chain's first
// block, a nil lora_id is no adapter, "GPU" is the device tier.
func TestAudit11HandBuiltVLLMFrames(t *testing.T) {
	h := strings.Repeat("01", 32)
	p := strings.Repeat("02", 32)
	var h1, h2 paged.Hash
	copy(h1[:], bytes.Repeat([]byte{1}, 32))
	copy(h2[:], bytes.Repeat([]byte{2}, 32))
	// KVEventBatch(ts=1.5, events=[
	//   BlockStored([h1], None, [1, 2, 3, 4], 4, None, "GPU"),
	//   BlockRemoved([h1], "GPU"), AllBlocksCleared()], data_parallel_rank=0)
	array := hexFrame(t,
		"93", "cb 3ff8000000000000", "93",
		"97", "ab"+hex.EncodeToString([]byte("BlockStored")), "91 c420"+h, "c0", "94 01 02 03 04", "04", "c0", "a3"+hex.EncodeToString([]byte("GPU")),
		"93", "ac"+hex.EncodeToString([]byte("BlockRemoved")), "91 c420"+h, "a3"+hex.EncodeToString([]byte("GPU")),
		"91", "b0"+hex.EncodeToString([]byte("AllBlocksCleared")),
		"00")
	var b Batch
	require.NoError(t, b.Decode(array))
	assert.Equal(t, 1.5, b.TS)
	assert.True(t, b.HasRank)
	assert.Equal(t, 0, b.DataParallelRank)
	require.Len(t, b.Events, 3)
	assert.Equal(t, paged.Event{Kind: paged.BlockStored, Hashes: []paged.Hash{h1}, Tokens: []int32{1, 2, 3, 4}, BlockSize: 4, Medium: paged.Device}, b.Events[0])
	assert.Equal(t, paged.Event{Kind: paged.BlockRemoved, Hashes: []paged.Hash{h1}, Medium: paged.Device}, wire(b.Events[1]))
	assert.Equal(t, paged.AllBlocksCleared, b.Events[2].Kind)
	assert.Equal(t, []Meta{{}, {}, {}}, b.Meta, "no group_idx in this layout")

	// {"ts": 2.0, "events": [{"type": "BlockStored", "block_hashes": [h1],
	//   "parent_block_hash": h2, "token_ids": [5, 6], "block_size": 2,
	//   "lora_id": 3, "medium": "CPU", "lora_name": "a", "group_idx": 1,
	//   "kv_cache_spec_kind": "sliding_window"}], "data_parallel_rank": 2}
	str := func(s string) string {
		return hex.EncodeToString(append([]byte{0xa0 | byte(len(s))}, s...))
	}
	maps := hexFrame(t,
		"83", str("ts"), "cb 4000000000000000", str("events"), "91",
		"8a", str("type"), str("BlockStored"), str("block_hashes"), "91 c420"+h, str("parent_block_hash"), "c420"+p,
		str("token_ids"), "92 05 06", str("block_size"), "02", str("lora_id"), "03", str("medium"), str("CPU"),
		str("lora_name"), str("a"), str("group_idx"), "01", str("kv_cache_spec_kind"), str("sliding_window"),
		str("data_parallel_rank"), "02")
	require.NoError(t, b.Decode(maps))
	assert.Equal(t, 2.0, b.TS)
	assert.Equal(t, 2, b.DataParallelRank)
	require.Len(t, b.Events, 1)
	assert.Equal(t, paged.Event{Kind: paged.BlockStored, Hashes: []paged.Hash{h1}, Parent: h2, HasParent: true,
		Tokens: []int32{5, 6}, BlockSize: 2, LoRA: 3, Medium: paged.Host, Group: 1}, b.Events[0])
	assert.Equal(t, []Meta{{Group: 1, HasGroup: true, Spec: SpecSlidingWindow}}, b.Meta)

	// The encoder writes the array frame above byte for byte (rank 0, no
	// group_idx, SHA-256 hashes), as msgspec would.
	e, err := NewEncoder(EncoderConfig{Group: -1})
	require.NoError(t, err)
	got, err := e.AppendBatch(nil, 1.5, []paged.Event{
		{Kind: paged.BlockStored, Hashes: []paged.Hash{h1}, Tokens: []int32{1, 2, 3, 4}, BlockSize: 4},
		{Kind: paged.BlockRemoved, Hashes: []paged.Hash{h1}},
		{Kind: paged.AllBlocksCleared},
	})
	require.NoError(t, err)
	// The encoder writes lora_name (nil) as the 0181ea31 schema has it:
	// one field more than the f20c3b0 frame.
	want := bytes.Replace(array, hexFrame(t, "97"), hexFrame(t, "98"), 1)
	want = bytes.Replace(want, hexFrame(t, "c0 a3"+hex.EncodeToString([]byte("GPU"))+"93"), hexFrame(t, "c0 a3"+hex.EncodeToString([]byte("GPU"))+"c0 93"), 1)
	assert.Equal(t, hex.EncodeToString(want), hex.EncodeToString(got))
}
