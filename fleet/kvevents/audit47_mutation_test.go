package kvevents

import (
	"math"
	"testing"

	"github.com/stretchr/testify/assert"
	"github.com/stretchr/testify/require"

	"github.com/pagedkv/pagedkv/paged"
)

// The Audit47 tests close the gaps the fifth mutation round found in
// kvevents (docs/testing.md, "Mutation testing, fifth round, part B").

// TestAudit47MoveFromAnUnknownMediumIsRefused (M344): a BlockMoved whose
// From is no tier is bad input like an unknown Medium: ErrInvalid and the
// buffer unextended, not a BlockRemoved that names whatever
// Medium.String says.
func TestAudit47MoveFromAnUnknownMediumIsRefused(t *testing.T) {
	e, err := NewEncoder(EncoderConfig{})
	require.NoError(t, err)
	dst := []byte{0xaa}
	for _, from := range []paged.Medium{paged.Host + 1, 200} {
		ev := paged.Event{Kind: paged.BlockMoved, Hashes: []paged.Hash{HashFromInt(1)}, From: from, Medium: paged.Device}
		got, err := e.AppendBatch(dst, 0, []paged.Event{ev})
		require.ErrorIs(t, err, ErrInvalid, "From %d", from)
		assert.Equal(t, []byte{0xaa}, got, "nothing written")
	}
	// The same move from the host tier is written.
	ev := paged.Event{Kind: paged.BlockMoved, Hashes: []paged.Hash{HashFromInt(1)}, From: paged.Host, Medium: paged.Device}
	_, err = e.AppendBatch(nil, 0, []paged.Event{ev})
	require.NoError(t, err)
}

// TestAudit47WindowOfOneTokenRoundTrips (M348): a sliding window of one
// token is a window (NewEncoder takes windows from 1): its BlockStored
// carries kv_cache_spec_sliding_window 1 in both layouts, and the header
// counts the field, so the frame decodes with the window.
func TestAudit47WindowOfOneTokenRoundTrips(t *testing.T) {
	for _, layout := range []Layout{ArrayLayout, MapLayout} {
		e, err := NewEncoder(EncoderConfig{Layout: layout, Specs: []paged.Group{{Kind: paged.SlidingWindow, Window: 1}}})
		require.NoError(t, err)
		frame, err := e.AppendBatch(nil, 1, []paged.Event{{Kind: paged.BlockStored, Hashes: []paged.Hash{HashFromInt(5)},
			Tokens: []int32{9, 9}, BlockSize: 2}})
		require.NoError(t, err)
		var b Batch
		require.NoError(t, b.Decode(frame), "layout %d", layout)
		require.Len(t, b.Meta, 1)
		assert.Equal(t, Meta{HasGroup: true, Spec: SpecSlidingWindow, SlidingWindow: 1}, b.Meta[0], "layout %d", layout)
	}
}

// TestAudit47BatchArrayFieldsPastTheRankAreSkipped (M354): a batch array
// longer than [ts, events, data_parallel_rank] (a field a newer vLLM
// adds) decodes: the fields past the rank are skipped, as unknown event
// fields are.
func TestAudit47BatchArrayFieldsPastTheRankAreSkipped(t *testing.T) {
	var b Batch
	for extra := 1; extra <= 3; extra++ {
		e := new(enc).arr(3 + extra).float(2).arr(1).arr(2).str("BlockRemoved").arr(1).int(7).int(4)
		for range extra {
			e.str("later")
		}
		require.NoError(t, b.Decode(e.b), "%d fields past the rank", extra)
		assert.Equal(t, 4, b.DataParallelRank)
		assert.True(t, b.HasRank)
		require.Len(t, b.Events, 1)
		assert.Equal(t, []paged.Hash{HashFromInt(7)}, b.Events[0].Hashes)
	}
}

// TestAudit47ConnectorTiersAreHost (M359): only "GPU" (or nil) is the
// device tier; "CPU" and any connector's tier ("LMCache", "disk") score as
// host blocks, as Decode documents.
func TestAudit47ConnectorTiersAreHost(t *testing.T) {
	frame := func(medium string) []byte {
		e := new(enc).arr(2).float(0).arr(1).arr(3).str("BlockRemoved").arr(1).int(1)
		if medium == "" {
			return e.nil().b
		}
		return e.str(medium).b
	}
	var b Batch
	for medium, want := range map[string]paged.Medium{"": paged.Device, "GPU": paged.Device, "CPU": paged.Host, "LMCache": paged.Host, "disk": paged.Host} {
		require.NoError(t, b.Decode(frame(medium)), "medium %q", medium)
		assert.Equal(t, want, b.Events[0].Medium, "medium %q", medium)
	}
}

// TestAudit47IntFieldsPastInt32AreRefused (M360): group_idx and
// kv_cache_spec_sliding_window are int32 in [0, MaxInt32]; 2^31 and 2^32-1
// break the schema (ErrMalformed, the batch left empty) like a negative
// value, and MaxInt32 itself decodes.
func TestAudit47IntFieldsPastInt32AreRefused(t *testing.T) {
	removed := func(group int64) []byte {
		return new(enc).arr(2).float(0).arr(1).arr(4).str("BlockRemoved").arr(1).int(1).str("GPU").int(group).b
	}
	window := func(w int64) []byte {
		return specFrame(func(e *enc) {
			e.mapH(9).str("type").str("BlockStored").str("block_hashes").arr(1).int(1).
				str("parent_block_hash").nil().str("token_ids").arr(0).str("block_size").int(16).
				str("lora_id").nil().str("group_idx").int(0).str("kv_cache_spec_kind").str("sliding_window").
				str("kv_cache_spec_sliding_window").int(w)
		}, 1)
	}
	var b Batch
	require.NoError(t, b.Decode(removed(math.MaxInt32)))
	assert.Equal(t, math.MaxInt32, b.Meta[0].Group)
	require.NoError(t, b.Decode(window(math.MaxInt32)))
	assert.Equal(t, math.MaxInt32, b.Meta[0].SlidingWindow)
	for _, v := range []int64{-1, 1 << 31, 1<<32 - 1, 1 << 32} {
		require.ErrorIs(t, b.Decode(removed(v)), ErrMalformed, "group_idx %d", v)
		assert.Empty(t, b.Events)
		require.ErrorIs(t, b.Decode(window(v)), ErrMalformed, "window %d", v)
		assert.Empty(t, b.Events)
	}
}

// TestAudit47SignedIntegerTimestamps (M367): a ts sent as a signed
// integer of any width (int8 to int64) reads as its value, not as the
// unsigned number of its bit pattern; unsigned and fixint ones too.
func TestAudit47SignedIntegerTimestamps(t *testing.T) {
	var b Batch
	for _, ts := range []int64{-1, -32, -33, -100, -1000, -1 << 20, -1 << 40, 0, 5, 200, 1 << 20, 1 << 40} {
		frame := new(enc).arr(2).int(ts).arr(0).b
		require.NoError(t, b.Decode(frame), "ts %d", ts)
		assert.Equal(t, float64(ts), b.TS, "ts %d", ts)
	}
}
