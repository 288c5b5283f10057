package kvevents

import (
	"encoding/hex"
	"strconv"
	"testing"

	"github.com/stretchr/testify/assert"
	"github.com/stretchr/testify/require"

	"github.com/pagedkv/pagedkv/paged"
)

// The Audit94 tests close the gaps the forty-eighth mutation round found
// in the vLLM decoder and encoder (docs/testing.md, "Mutation testing,
// forty-eighth round"). Frames and expected bytes are written from
// msgpack's type bytes (hexFrame), not by this package's writer.

// hexTS1 is the float 64 1.0, as msgspec writes a batch's ts.
const hexTS1 = "cb 3ff0000000000000"

// hexStr is s as a msgpack fixstr (s shorter than 32 bytes).
func hexStr(s string) string {
	return hex.EncodeToString([]byte{0xa0 | byte(len(s))}) + hex.EncodeToString([]byte(s))
}

// TestAudit94BatchMapWithAMap16Header (M2070): msgpack lets a writer use
// the map 16 header (0xde) for a map of any size; a batch map written so
// is still the map layout, never an array to be refused.
func TestAudit94BatchMapWithAMap16Header(t *testing.T) {
	// {"ts": 1.0, "events": [["AllBlocksCleared"]]} under a map 16 header.
	frame := hexFrame(t, "de 0002", hexStr("ts"), hexTS1, hexStr("events"), "91 91", hexStr("AllBlocksCleared"))
	var b Batch
	require.NoError(t, b.Decode(frame))
	assert.Equal(t, 1.0, b.TS)
	require.Len(t, b.Events, 1)
	assert.Equal(t, paged.AllBlocksCleared, b.Events[0].Kind)
}

// TestAudit94EventSchemaHoles (M2075, M2077, M2082): an event array
// without even its tag is refused, and not read with the next event's tag
// (the frame below then reads as two AllBlocksCleared); a BlockStored map
// without block_hashes is refused; a lora_id of 2^31 is past int32 and
// refused, not wrapped to a negative adapter, while both int32 ends pass.
func TestAudit94EventSchemaHoles(t *testing.T) {
	abc := hexStr("AllBlocksCleared")
	stored := func(lora string) []byte {
		// ["BlockStored", [7], nil, [1], 1, lora, "GPU"]
		return hexFrame(t, "92", hexTS1, "91 97", hexStr("BlockStored"), "91 07 c0 91 01 01", lora, hexStr("GPU"))
	}
	for name, frame := range map[string][]byte{
		// [ts, 2 events: [], "AllBlocksCleared", ["AllBlocksCleared"]]
		"empty event array": hexFrame(t, "92", hexTS1, "92 90", abc, "91", abc),
		// [ts, [{"type": "BlockStored", "parent_block_hash": nil,
		//        "token_ids": [], "block_size": 4, "lora_id": nil}]]
		"BlockStored without block_hashes": hexFrame(t, "92", hexTS1, "91 85", hexStr("type"), hexStr("BlockStored"),
			hexStr("parent_block_hash"), "c0", hexStr("token_ids"), "90", hexStr("block_size"), "04", hexStr("lora_id"), "c0"),
		"lora_id 2^31": stored("ce 80000000"),
	} {
		var b Batch
		require.ErrorIs(t, b.Decode(frame), ErrMalformed, "%s: decoded %v", name, b.Events)
		assert.Empty(t, b.Events, name)
	}
	for lora, want := range map[string]int32{"ce 7fffffff": 1<<31 - 1, "d2 80000000": -1 << 31} {
		var b Batch
		require.NoError(t, b.Decode(stored(lora)), lora)
		require.Len(t, b.Events, 1)
		assert.Equal(t, want, b.Events[0].LoRA, lora)
	}
}

// TestAudit94NilWindowIsNoWindow (M2083): kv_cache_spec_sliding_window is
// int | None in kv_events.py, so nil is in the schema on any kind; only a
// window of 0 breaks it on a sliding-window kind. A sliding-window store
// with a nil window decodes (with no window), and it is the layout, not
// the decoder, that finds it describes no group.
func TestAudit94NilWindowIsNoWindow(t *testing.T) {
	// [ts, [["BlockStored", [7], nil, [1], 1, nil, "GPU", nil, nil, 1,
	//        "sliding_window", nil]]]
	frame := hexFrame(t, "92", hexTS1, "91 9c", hexStr("BlockStored"), "91 07 c0 91 01 01 c0", hexStr("GPU"),
		"c0 c0 01", hexStr("sliding_window"), "c0")
	var b Batch
	require.NoError(t, b.Decode(frame))
	require.Len(t, b.Meta, 1)
	assert.Equal(t, Meta{Group: 1, HasGroup: true, Spec: SpecSlidingWindow}, b.Meta[0])
	_, ok := b.Meta[0].LayoutGroup()
	assert.False(t, ok, "a sliding-window spec without a window is no group")
	// With 0 in its place the frame breaks the schema.
	frame[len(frame)-1] = 0x00
	require.ErrorIs(t, b.Decode(frame), ErrMalformed)
}

// TestAudit94TokenBoundIsTheFrames (M2087): MaxFrameTokens bounds a
// frame's tokens over all its events, as MaxFrameHashes its hashes: one
// token in a first event and MaxFrameTokens in a second are one too many,
// though neither list is over alone.
func TestAudit94TokenBoundIsTheFrames(t *testing.T) {
	// [ts, [["BlockStored", [7], nil, [1], 1, nil, "GPU"],
	//       ["BlockStored", [8], nil, <2^24 tokens of 1>, 1, nil, "GPU"]]]
	e := hexFrame(t, "92", hexTS1, "92 97", hexStr("BlockStored"), "91 07 c0 91 01 01 c0", hexStr("GPU"),
		"97", hexStr("BlockStored"), "91 08 c0 dd 01000000")
	frame := make([]byte, len(e), len(e)+MaxFrameTokens+8)
	copy(frame, e)
	for range MaxFrameTokens {
		frame = append(frame, 1)
	}
	frame = append(frame, hexFrame(t, "01 c0", hexStr("GPU"))...)
	var b Batch
	require.ErrorIs(t, b.Decode(frame), ErrMalformed)
	assert.Empty(t, b.Events)
}

// TestAudit94RestartTakesBatchZeroAgain (M2090): after Restart the
// engine's batch numbers begin again at 0; its batch 0 is new events,
// numbered after a gap, not a replay of the old batch 0.
func TestAudit94RestartTakesBatchZeroAgain(t *testing.T) {
	frame := hexFrame(t, "92", hexTS1, "91 91", hexStr("AllBlocksCleared"))
	var s Stream
	for batch := range uint64(2) {
		evs, err := s.Decode(batch, frame)
		require.NoError(t, err)
		require.Len(t, evs, 1)
		assert.Equal(t, batch+1, evs[0].Seq)
	}
	s.Restart()
	evs, err := s.Decode(0, frame)
	require.NoError(t, err)
	require.Len(t, evs, 1, "batch 0 after a restart is no replay")
	assert.Equal(t, uint64(4), evs[0].Seq, "numbered after a gap")
}

// TestAudit94MalformedFrameLeavesNoRank (M2091): a frame refused after its
// data_parallel_rank was read (here for a trailing byte) leaves the batch
// empty, its rank included: nothing of a bad frame is kept.
func TestAudit94MalformedFrameLeavesNoRank(t *testing.T) {
	// [1.0, [], 5] followed by a nil.
	frame := hexFrame(t, "93", hexTS1, "90 05 c0")
	var b Batch
	require.ErrorIs(t, b.Decode(frame), ErrMalformed)
	assert.False(t, b.HasRank)
	assert.Zero(t, b.DataParallelRank)
	assert.Zero(t, b.TS)
	require.NoError(t, b.Decode(frame[:len(frame)-1]))
	assert.True(t, b.HasRank)
	assert.Equal(t, 5, b.DataParallelRank)
}

// TestAudit94DecodedListsDoNotShareCapacity (M2093, M2094): an event's
// Hashes and Tokens are capped at their own length, so appending to one
// event's list copies it and never writes over the next event's in the
// batch's arenas.
func TestAudit94DecodedListsDoNotShareCapacity(t *testing.T) {
	// Two BlockStored of one block of one token: hashes 7 and 8, tokens 1
	// and 2.
	frame := hexFrame(t, "92", hexTS1, "92",
		"97", hexStr("BlockStored"), "91 07 c0 91 01 01 c0", hexStr("GPU"),
		"97", hexStr("BlockStored"), "91 08 c0 91 02 01 c0", hexStr("GPU"))
	var b Batch
	require.NoError(t, b.Decode(frame))
	require.Len(t, b.Events, 2)
	h0 := append(b.Events[0].Hashes, HashFromInt(99))
	t0 := append(b.Events[0].Tokens, 99)
	assert.Equal(t, []paged.Hash{HashFromInt(7), HashFromInt(99)}, h0)
	assert.Equal(t, []int32{1, 99}, t0)
	assert.Equal(t, []paged.Hash{HashFromInt(8)}, b.Events[1].Hashes)
	assert.Equal(t, []int32{2}, b.Events[1].Tokens)
}

// TestAudit94NewEncoderRefusesWhatItCannotWrite (M2095-M2097): a layout
// or hash encoding past the known ones, and a Group past int32 (vLLM's
// group_idx is an int32 on the consumer's side, as the decoder holds it),
// are ErrInvalid; the last ones of each pass.
func TestAudit94NewEncoderRefusesWhatItCannotWrite(t *testing.T) {
	cfgs := []EncoderConfig{{Layout: MapLayout + 1}, {Hashes: HashInt + 1}}
	if strconv.IntSize == 64 { // a 32-bit int holds no Group past int32
		past := int64(1) << 31
		cfgs = append(cfgs, EncoderConfig{Group: int(past)})
	}
	for _, cfg := range cfgs {
		_, err := NewEncoder(cfg)
		assert.ErrorIs(t, err, ErrInvalid, "%+v", cfg)
	}
	_, err := NewEncoder(EncoderConfig{Layout: MapLayout, Hashes: HashInt, Group: 1<<31 - 1})
	assert.NoError(t, err)
}

// TestAudit94EncoderSpecs (M2100, M2101): the encoder keeps its own copy
// of Specs (a caller's later change to its slice changes no frame), and a
// chunked-local group is written with its kind alone: vLLM sends no chunk
// size, and a kv_cache_spec_sliding_window would read as a window.
func TestAudit94EncoderSpecs(t *testing.T) {
	specs := []paged.Group{{Kind: paged.ChunkedLocal, Chunk: 8}}
	e, err := NewEncoder(EncoderConfig{Hashes: HashInt, Specs: specs})
	require.NoError(t, err)
	specs[0] = paged.Group{Kind: paged.SlidingWindow, Window: 5}
	got, err := e.AppendBatch(nil, 1, []paged.Event{{Kind: paged.BlockStored, Hashes: []paged.Hash{HashFromInt(7)},
		Tokens: []int32{1}, BlockSize: 1}})
	require.NoError(t, err)
	// [1.0, [["BlockStored", [7], nil, [1], 1, nil, "GPU", nil, nil, 0,
	//         "chunked_local_attention"]], 0]
	want := hexFrame(t, "93", hexTS1, "91 9b", hexStr("BlockStored"), "91 07 c0 91 01 01 c0", hexStr("GPU"),
		"c0 c0 00", hexStr("chunked_local_attention"), "00")
	assert.Equal(t, want, got)
}

// TestAudit94MoveTokensMustFitItsBlocks (M2105): a move that carries
// tokens carries BlockSize per block, one token as much as many: a move of
// two one-token blocks with one token is ErrInvalid, dst unextended, and
// never a BlockStored whose tokens do not cover its hashes.
func TestAudit94MoveTokensMustFitItsBlocks(t *testing.T) {
	e, err := NewEncoder(EncoderConfig{})
	require.NoError(t, err)
	dst := []byte{0xc0}
	got, err := e.AppendBatch(dst, 1, []paged.Event{{Kind: paged.BlockMoved, From: paged.Host, Medium: paged.Device,
		Hashes: []paged.Hash{HashFromInt(1), HashFromInt(2)}, Tokens: []int32{5}, BlockSize: 1}})
	require.ErrorIs(t, err, ErrInvalid)
	assert.Equal(t, dst, got)
}

// TestAudit94GroupIdxStaysInInt32 (M2107): group_idx is the encoder's
// Group plus the event's; an event group that would take the sum past
// MaxInt32 is ErrInvalid, though the event's group alone is in range, and
// the largest that fits is written as it is.
func TestAudit94GroupIdxStaysInInt32(t *testing.T) {
	e, err := NewEncoder(EncoderConfig{Hashes: HashInt, Group: 5})
	require.NoError(t, err)
	removed := func(g int) []paged.Event {
		return []paged.Event{{Kind: paged.BlockRemoved, Hashes: []paged.Hash{HashFromInt(7)}, Group: g}}
	}
	_, err = e.AppendBatch(nil, 1, removed(1<<31-5))
	require.ErrorIs(t, err, ErrInvalid)
	got, err := e.AppendBatch(nil, 1, removed(1<<31-6))
	require.NoError(t, err)
	// [1.0, [["BlockRemoved", [7], "GPU", 2^31-1]], 0]
	want := hexFrame(t, "93", hexTS1, "91 94", hexStr("BlockRemoved"), "91 07", hexStr("GPU"), "ce 7fffffff 00")
	assert.Equal(t, want, got)
}

// TestAudit94OneTokenMoveIsRestored (M2109): a move that carries its
// blocks' tokens is a removal from the tier left and a store on the tier
// reached, a move of one one-token block as much as a longer one.
func TestAudit94OneTokenMoveIsRestored(t *testing.T) {
	e, err := NewEncoder(EncoderConfig{Hashes: HashInt, Group: -1})
	require.NoError(t, err)
	got, err := e.AppendBatch(nil, 1, []paged.Event{{Kind: paged.BlockMoved, From: paged.Host, Medium: paged.Device,
		Hashes: []paged.Hash{HashFromInt(7)}, Tokens: []int32{5}, BlockSize: 1}})
	require.NoError(t, err)
	// [1.0, [["BlockRemoved", [7], "CPU"],
	//        ["BlockStored", [7], nil, [5], 1, nil, "GPU", nil]], 0]
	want := hexFrame(t, "93", hexTS1, "92", "93", hexStr("BlockRemoved"), "91 07", hexStr("CPU"),
		"98", hexStr("BlockStored"), "91 07 c0 91 05 01 c0", hexStr("GPU"), "c0", "00")
	assert.Equal(t, want, got)
}
