package fleet

import (
	"bytes"
	"crypto/sha256"
	"testing"

	"github.com/stretchr/testify/assert"
	"github.com/stretchr/testify/require"

	"github.com/pagedkv/pagedkv/paged"
)

// arrayFrame is a KVEventBatch in the array_like layout of vLLM's
// kv_events.py: [ts, [events...], data_parallel_rank], each event
// [tag, fields in declaration order...].
func arrayFrame() []byte {
	e := new(enc).arr(3).float(1700000000.25).arr(3)
	// BlockStored: block_hashes, parent_block_hash, token_ids, block_size,
	// lora_id, medium, lora_name, extra_keys, group_idx.
	e.arr(10).str("BlockStored").arr(2).int(11).uint64(1<<63 + 5).nil()
	e.arr(4).int(100).int(101).int(102).int(70000).int(2).nil().str("GPU").nil().arr(2).nil().nil().int(0)
	e.arr(3).str("BlockRemoved").arr(1).int(-7).str("CPU")
	e.arr(1).str("AllBlocksCleared")
	e.int(3)
	return e.b
}

func TestVLLMDecodeArrayLayout(t *testing.T) {
	var b VLLMBatch
	require.NoError(t, b.Decode(arrayFrame()))
	assert.Equal(t, 1700000000.25, b.TS)
	assert.True(t, b.HasRank)
	assert.Equal(t, 3, b.DataParallelRank)
	require.Len(t, b.Events, 3)

	st := b.Events[0]
	assert.Equal(t, paged.BlockStored, st.Kind)
	assert.Equal(t, []paged.Hash{HashFromVLLMInt(11), HashFromVLLMInt(1<<63 + 5)}, st.Hashes)
	assert.False(t, st.HasParent)
	assert.Equal(t, []int32{100, 101, 102, 70000}, st.Tokens)
	assert.Equal(t, 2, st.BlockSize)
	assert.Equal(t, int32(0), st.LoRA)
	assert.Equal(t, paged.Device, st.Medium)

	rm := b.Events[1]
	assert.Equal(t, paged.BlockRemoved, rm.Kind)
	assert.Equal(t, []paged.Hash{HashFromVLLMInt(^uint64(6))}, rm.Hashes, "int64 -7 is the bit pattern ^6")
	assert.Equal(t, paged.Host, rm.Medium)

	assert.Equal(t, paged.AllBlocksCleared, b.Events[2].Kind)
}

func TestVLLMDecodeMapLayout(t *testing.T) {
	h1 := sha256.Sum256([]byte("block one"))
	h0 := sha256.Sum256([]byte("parent"))
	e := new(enc).mapH(3).str("ts").float(2.0).str("events").arr(2)
	e.mapH(9).str("type").str("BlockStored").str("block_hashes").arr(1).bin(h1[:]).
		str("parent_block_hash").bin(h0[:]).str("token_ids").arr(2).int(5).int(6).
		str("block_size").int(2).str("lora_id").int(9).str("medium").str("CPU").
		str("lora_name").str("adapter").str("extra_keys").arr(1).nil()
	e.mapH(3).str("block_hashes").arr(1).bin([]byte{1, 2, 3}).str("medium").nil().str("type").str("BlockRemoved")
	e.str("data_parallel_rank").nil()
	var b VLLMBatch
	require.NoError(t, b.Decode(e.b))
	assert.False(t, b.HasRank)
	require.Len(t, b.Events, 2)
	st := b.Events[0]
	assert.Equal(t, paged.BlockStored, st.Kind)
	assert.Equal(t, []paged.Hash{h1}, st.Hashes, "32-byte hashes are taken as is")
	assert.True(t, st.HasParent)
	assert.Equal(t, paged.Hash(h0), st.Parent)
	assert.Equal(t, int32(9), st.LoRA)
	assert.Equal(t, paged.Host, st.Medium)
	assert.Equal(t, []int32{5, 6}, st.Tokens)
	rm := b.Events[1]
	assert.Equal(t, paged.BlockRemoved, rm.Kind, "the tag may come after the fields")
	assert.Equal(t, []paged.Hash{HashFromVLLMBytes([]byte{1, 2, 3})}, rm.Hashes)
	assert.Equal(t, paged.Device, rm.Medium, "nil medium is the GPU")
}

func TestVLLMLegacyBlockStoredWithoutMedium(t *testing.T) {
	// vLLM v0.9: BlockStored had five fields and the batch no rank.
	e := new(enc).arr(2).float(0).arr(1)
	e.arr(6).str("BlockStored").arr(1).int(42).int(41).arr(1).int(1).int(1).nil()
	var b VLLMBatch
	require.NoError(t, b.Decode(e.b))
	require.Len(t, b.Events, 1)
	assert.Equal(t, paged.Device, b.Events[0].Medium)
	assert.Equal(t, HashFromVLLMInt(41), b.Events[0].Parent)
}

func TestVLLMHashMapping(t *testing.T) {
	assert.Equal(t, HashFromVLLMInt(1), HashFromVLLMInt(1))
	assert.NotEqual(t, HashFromVLLMInt(1), HashFromVLLMInt(2))
	short := HashFromVLLMBytes([]byte{0, 0, 0, 0, 0, 0, 0, 1})
	assert.NotEqual(t, HashFromVLLMInt(1), short, "an 8-byte bin does not alias the int with the same bytes")
	assert.Equal(t, short, HashFromVLLMBytes([]byte{0, 0, 0, 0, 0, 0, 0, 1}))
	var full paged.Hash
	full[0] = 9
	assert.Equal(t, full, HashFromVLLMBytes(full[:]))
}

func TestVLLMRejectsMalformedFramesWhole(t *testing.T) {
	good := func() *enc { return new(enc).arr(2).float(0).arr(1).arr(3).str("BlockRemoved").arr(1).int(1).nil() }
	cases := map[string][]byte{
		"unknown tag":        new(enc).arr(2).float(0).arr(1).arr(1).str("BlockExploded").b,
		"stored too short":   new(enc).arr(2).float(0).arr(1).arr(4).str("BlockStored").arr(0).nil().arr(0).b,
		"str hash":           new(enc).arr(2).float(0).arr(1).arr(3).str("BlockRemoved").arr(1).str("ab").nil().b,
		"batch not array":    new(enc).str("hello").b,
		"batch too short":    new(enc).arr(1).float(0).b,
		"event map no tag":   new(enc).arr(2).float(0).arr(1).mapH(1).str("block_hashes").arr(0).b,
		"bad block size":     new(enc).arr(2).float(0).arr(1).arr(6).str("BlockStored").arr(0).nil().arr(0).int(0).nil().b,
		"token out of range": new(enc).arr(2).float(0).arr(1).arr(6).str("BlockStored").arr(0).nil().arr(1).int(1 << 40).int(1).nil().b,
		"map without events": new(enc).mapH(1).str("ts").float(1).b,
	}
	// "second event bad": a good first event, then garbage as a second one.
	g := new(enc).arr(2).float(0).arr(2).arr(3).str("BlockRemoved").arr(1).int(1).nil().arr(2).str("BlockRemoved").str("x")
	cases["second event bad"] = g.b
	for name, frame := range cases {
		var b VLLMBatch
		err := b.Decode(frame)
		require.ErrorIs(t, err, ErrMalformed, name)
		assert.Empty(t, b.Events, "%s: nothing of a bad frame survives", name)
	}
	// Every strict prefix of a good frame is truncated, and trailing bytes
	// after one are rejected.
	frame := arrayFrame()
	for n := range len(frame) {
		var b VLLMBatch
		require.ErrorIs(t, b.Decode(frame[:n]), ErrMalformed, "prefix of %d bytes", n)
	}
	var b VLLMBatch
	require.ErrorIs(t, b.Decode(append(bytes.Clone(frame), 0xc0)), ErrMalformed)
	require.NoError(t, b.Decode(good().b))
}

func TestVLLMStreamNumbersEventsAndShowsLostBatches(t *testing.T) {
	x, err := New(Config{})
	require.NoError(t, err)
	var s VLLMStream
	stored := func(h int64) []byte {
		return new(enc).arr(2).float(0).arr(1).arr(7).str("BlockStored").arr(1).int(h).nil().arr(1).int(1).int(1).nil().str("GPU").b
	}
	apply := func(batch uint64, frame []byte) error {
		evs, err := s.Decode(batch, frame)
		if err != nil {
			return err
		}
		return x.Apply("vllm-0", evs)
	}
	request := []paged.Hash{HashFromVLLMInt(1)}
	require.NoError(t, apply(0, stored(1)))
	sc, err := x.Lookup(request, nil)
	require.NoError(t, err)
	assert.Equal(t, Score{Server: 0, Name: "vllm-0", Blocks: 1, Device: 1, Value: 1}, sc[0])

	evs, err := s.Decode(0, stored(99))
	require.NoError(t, err)
	assert.Empty(t, evs, "a replayed batch yields nothing")

	_, err = s.Decode(1, []byte{0x92, 0xc1})
	require.ErrorIs(t, err, ErrMalformed)
	require.NoError(t, apply(2, stored(2)))
	sc, err = x.Lookup(request, sc[:0])
	require.NoError(t, err)
	assert.True(t, sc[0].Partial, "the malformed batch's events are lost: the server is partial")
	assert.Zero(t, sc[0].Blocks, "and its entries from before the loss are dropped")
	sc, err = x.Lookup([]paged.Hash{HashFromVLLMInt(2)}, sc[:0])
	require.NoError(t, err)
	assert.Equal(t, 1, sc[0].Blocks, "events after the loss are applied")

	// Skipping batch 3 is a gap too.
	require.NoError(t, apply(4, stored(3)))
	assert.Equal(t, uint64(2), x.Stats().Gaps)

	cleared := new(enc).arr(2).float(0).arr(1).arr(1).str("AllBlocksCleared").b
	require.NoError(t, apply(5, cleared))
	sc, err = x.Lookup([]paged.Hash{HashFromVLLMInt(3)}, sc[:0])
	require.NoError(t, err)
	assert.False(t, sc[0].Partial, "a cleared cache is known exactly")
	assert.Zero(t, sc[0].Blocks)
}

func FuzzVLLMDecode(f *testing.F) {
	f.Add(arrayFrame())
	f.Add(new(enc).mapH(2).str("ts").float(1).str("events").arr(1).mapH(1).str("type").str("AllBlocksCleared").b)
	f.Fuzz(func(t *testing.T, frame []byte) {
		var b VLLMBatch
		if err := b.Decode(frame); err != nil {
			if len(b.Events) != 0 {
				t.Fatalf("failed decode left %d events", len(b.Events))
			}
			return
		}
		for _, ev := range b.Events {
			if ev.Kind < paged.BlockStored || ev.Kind > paged.AllBlocksCleared {
				t.Fatalf("decoded kind %v", ev.Kind)
			}
		}
	})
}
