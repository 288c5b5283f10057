package kvevents

import (
	"bytes"
	"crypto/sha256"
	"math/rand/v2"
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

func TestDecodeArrayLayout(t *testing.T) {
	var b Batch
	require.NoError(t, b.Decode(arrayFrame()))
	assert.Equal(t, 1700000000.25, b.TS)
	assert.True(t, b.HasRank)
	assert.Equal(t, 3, b.DataParallelRank)
	require.Len(t, b.Events, 3)

	st := b.Events[0]
	assert.Equal(t, paged.BlockStored, st.Kind)
	assert.Equal(t, []paged.Hash{HashFromInt(11), HashFromInt(1<<63 + 5)}, st.Hashes)
	assert.False(t, st.HasParent)
	assert.Equal(t, []int32{100, 101, 102, 70000}, st.Tokens)
	assert.Equal(t, 2, st.BlockSize)
	assert.Equal(t, int32(0), st.LoRA)
	assert.Equal(t, paged.Device, st.Medium)

	rm := b.Events[1]
	assert.Equal(t, paged.BlockRemoved, rm.Kind)
	assert.Equal(t, []paged.Hash{HashFromInt(^uint64(6))}, rm.Hashes, "int64 -7 is the bit pattern ^6")
	assert.Equal(t, paged.Host, rm.Medium)

	assert.Equal(t, paged.AllBlocksCleared, b.Events[2].Kind)
	assert.Equal(t, []Meta{{Group: 0, HasGroup: true}, {}, {}}, b.Meta, "group_idx 0 is sent, not omitted")
}

// TestDecodeMixedLayout: a positional batch of map events, as TensorRT-LLM
// publishes and newer vLLM may.
func TestDecodeMixedLayout(t *testing.T) {
	e := new(enc).arr(2).float(5).arr(1)
	e.mapH(5).str("type").str("BlockRemoved").str("block_hashes").arr(1).int(3).str("medium").str("GPU").
		str("group_idx").int(2).str("locality").str("LOCAL")
	var b Batch
	require.NoError(t, b.Decode(e.b))
	require.Len(t, b.Events, 1)
	assert.Equal(t, []paged.Hash{HashFromInt(3)}, b.Events[0].Hashes)
	assert.Equal(t, Meta{Group: 2, HasGroup: true}, b.Meta[0])
	assert.False(t, b.HasRank)
}

func TestDecodeMapLayout(t *testing.T) {
	h1 := sha256.Sum256([]byte("block one"))
	h0 := sha256.Sum256([]byte("parent"))
	e := new(enc).mapH(3).str("ts").float(2.0).str("events").arr(2)
	e.mapH(9).str("type").str("BlockStored").str("block_hashes").arr(1).bin(h1[:]).
		str("parent_block_hash").bin(h0[:]).str("token_ids").arr(2).int(5).int(6).
		str("block_size").int(2).str("lora_id").int(9).str("medium").str("CPU").
		str("lora_name").str("adapter").str("extra_keys").arr(1).nil()
	e.mapH(3).str("block_hashes").arr(1).bin([]byte{1, 2, 3}).str("medium").nil().str("type").str("BlockRemoved")
	e.str("data_parallel_rank").nil()
	var b Batch
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
	assert.Equal(t, []paged.Hash{HashFromBytes([]byte{1, 2, 3})}, rm.Hashes)
	assert.Equal(t, paged.Device, rm.Medium, "nil medium is the GPU")
}

func TestLegacyBlockStoredWithoutMedium(t *testing.T) {
	// vLLM v0.9: BlockStored had five fields and the batch no rank.
	e := new(enc).arr(2).float(0).arr(1)
	e.arr(6).str("BlockStored").arr(1).int(42).int(41).arr(1).int(1).int(1).nil()
	var b Batch
	require.NoError(t, b.Decode(e.b))
	require.Len(t, b.Events, 1)
	assert.Equal(t, paged.Device, b.Events[0].Medium)
	assert.Equal(t, HashFromInt(41), b.Events[0].Parent)
}

func TestHashMapping(t *testing.T) {
	assert.Equal(t, HashFromInt(1), HashFromInt(1))
	assert.NotEqual(t, HashFromInt(1), HashFromInt(2))
	short := HashFromBytes([]byte{0, 0, 0, 0, 0, 0, 0, 1})
	assert.NotEqual(t, HashFromInt(1), short, "an 8-byte bin does not alias the int with the same bytes")
	assert.Equal(t, short, HashFromBytes([]byte{0, 0, 0, 0, 0, 0, 0, 1}))
	var full paged.Hash
	full[0] = 9
	assert.Equal(t, full, HashFromBytes(full[:]))
	long := bytes.Repeat([]byte{7}, 100)
	assert.Equal(t, paged.Hash(sha256.Sum256(append([]byte("pagedkv vllm hash\x00"), long...))), HashFromBytes(long),
		"long and short byte hashes map the same way")
	assert.Equal(t, paged.Hash(sha256.Sum256(append([]byte("pagedkv vllm hash\x00"), 1, 2))), HashFromBytes([]byte{1, 2}))
	allocs := testing.AllocsPerRun(10, func() { _ = HashFromBytes([]byte{1, 2, 3, 4, 5, 6, 7, 8}) })
	assert.Zero(t, allocs)
}

func TestRejectsMalformedFramesWhole(t *testing.T) {
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
		"duplicate field":    new(enc).arr(2).float(0).arr(1).mapH(3).str("type").str("BlockRemoved").str("block_hashes").arr(0).str("block_hashes").arr(0).b,
		"negative group":     new(enc).arr(2).float(0).arr(1).arr(4).str("BlockRemoved").arr(0).nil().int(-1).b,
	}
	// "second event bad": a good first event, then garbage as a second one.
	g := new(enc).arr(2).float(0).arr(2).arr(3).str("BlockRemoved").arr(1).int(1).nil().arr(2).str("BlockRemoved").str("x")
	cases["second event bad"] = g.b
	for name, frame := range cases {
		var b Batch
		err := b.Decode(frame)
		require.ErrorIs(t, err, ErrMalformed, name)
		assert.Empty(t, b.Events, "%s: nothing of a bad frame survives", name)
	}
	// Every strict prefix of a good frame is truncated, and trailing bytes
	// after one are rejected.
	frame := arrayFrame()
	for n := range len(frame) {
		var b Batch
		require.ErrorIs(t, b.Decode(frame[:n]), ErrMalformed, "prefix of %d bytes", n)
	}
	var b Batch
	require.ErrorIs(t, b.Decode(append(bytes.Clone(frame), 0xc0)), ErrMalformed)
	require.NoError(t, b.Decode(good().b))
}

func TestStreamNumbersEventsAndShowsLostBatches(t *testing.T) {
	var s Stream
	stored := func(hs ...int64) []byte {
		e := new(enc).arr(2).float(0).arr(len(hs))
		for _, h := range hs {
			e.arr(7).str("BlockStored").arr(1).int(h).nil().arr(1).int(1).int(1).nil().str("GPU")
		}
		return e.b
	}
	seqs := func(evs []paged.Event) []uint64 {
		var out []uint64
		for _, ev := range evs {
			out = append(out, ev.Seq)
		}
		return out
	}
	evs, err := s.Decode(0, stored(1, 2))
	require.NoError(t, err)
	assert.Equal(t, []uint64{1, 2}, seqs(evs), "events are numbered from 1 without gaps")

	evs, err = s.Decode(0, stored(99))
	require.NoError(t, err)
	assert.Empty(t, evs, "a replayed batch yields nothing")

	_, err = s.Decode(1, []byte{0x92, 0xc1})
	require.ErrorIs(t, err, ErrMalformed)
	evs, err = s.Decode(2, stored(3))
	require.NoError(t, err)
	assert.Equal(t, []uint64{4}, seqs(evs), "the malformed batch's events are lost: a gap")

	evs, err = s.Decode(4, stored(4))
	require.NoError(t, err)
	assert.Equal(t, []uint64{6}, seqs(evs), "skipping batch 3 is a gap too")
	evs, err = s.Decode(5, stored(5))
	require.NoError(t, err)
	assert.Equal(t, []uint64{7}, seqs(evs))
	assert.Equal(t, []paged.Hash{HashFromInt(5)}, s.Batch().Events[0].Hashes)

	var late Stream
	evs, err = late.Decode(3, stored(1))
	require.NoError(t, err)
	assert.Equal(t, []uint64{2}, seqs(evs), "a stream joined late starts after a gap")
}

func FuzzBatchDecode(f *testing.F) {
	f.Add(arrayFrame())
	f.Add(new(enc).mapH(2).str("ts").float(1).str("events").arr(1).mapH(1).str("type").str("AllBlocksCleared").b)
	e, _ := NewEncoder(EncoderConfig{Layout: MapLayout, Group: 2})
	frame, _ := e.AppendBatch(nil, 3, randomEvents(rand.New(rand.NewPCG(5, 6)), false))
	f.Add(frame)
	f.Fuzz(func(t *testing.T, frame []byte) {
		var b Batch
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
		// What decodes and the encoder can write survives a second trip.
		again, err := e.AppendBatch(nil, b.TS, b.Events)
		if err != nil {
			return
		}
		var b2 Batch
		if err := b2.Decode(again); err != nil {
			t.Fatalf("re-encoded frame does not decode: %v", err)
		}
		assertRoundTrip(t, EncoderConfig{Layout: MapLayout, Group: 2}, b.TS, b.Events, &b2)
	})
}
