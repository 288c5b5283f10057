package kvevents

import (
	"bytes"
	"encoding/binary"
	"math/rand/v2"
	"testing"

	"github.com/stretchr/testify/assert"
	"github.com/stretchr/testify/require"

	"github.com/pagedkv/pagedkv/paged"
)

// TestEncoderWritesVLLMBytes pins the exact bytes of a small batch in both
// layouts, written out by hand from kv_events.py's declarations and
// msgspec's rules (smallest integer encodings, tag first, omit_defaults).
func TestEncoderWritesVLLMBytes(t *testing.T) {
	events := []paged.Event{{Kind: paged.BlockStored, Hashes: []paged.Hash{HashFromInt(1), HashFromInt(2)},
		Tokens: []int32{1, 2, 3, 4}, BlockSize: 2}}
	e, err := NewEncoder(EncoderConfig{Hashes: HashInt, Group: -1})
	require.NoError(t, err)
	got, err := e.AppendBatch(nil, 0, events)
	require.NoError(t, err)
	// [0.0, [["BlockStored", [1, 2], nil, [1, 2, 3, 4], 2, nil, "GPU", nil]], 0]
	want := []byte{0x93, 0xcb, 0, 0, 0, 0, 0, 0, 0, 0, 0x91, 0x98,
		0xab, 'B', 'l', 'o', 'c', 'k', 'S', 't', 'o', 'r', 'e', 'd',
		0x92, 0x01, 0x02, 0xc0, 0x94, 0x01, 0x02, 0x03, 0x04, 0x02, 0xc0,
		0xa3, 'G', 'P', 'U', 0xc0, 0x00}
	assert.Equal(t, want, got)

	e, err = NewEncoder(EncoderConfig{Layout: MapLayout, Hashes: HashInt, Rank: -1, Group: 3})
	require.NoError(t, err)
	got, err = e.AppendBatch(nil, 0, []paged.Event{{Kind: paged.BlockRemoved, Hashes: []paged.Hash{HashFromInt(7)}, Medium: paged.Host}})
	require.NoError(t, err)
	w := new(enc).mapH(2).str("ts").float(0).str("events").arr(1)
	w.mapH(4).str("type").str("BlockRemoved").str("block_hashes").arr(1).int(7).str("medium").str("CPU").str("group_idx").int(3)
	assert.Equal(t, w.b, got)
}

// randomEvents draws a batch of every kind, with parents, LoRA IDs and both
// media; int hashes when ints are what the encoding carries losslessly.
func randomEvents(r *rand.Rand, ints bool) []paged.Event {
	hash := func() paged.Hash {
		if ints {
			return HashFromInt(r.Uint64())
		}
		var h paged.Hash
		for i := range 4 {
			binary.LittleEndian.PutUint64(h[8*i:], r.Uint64())
		}
		return h
	}
	var evs []paged.Event
	for range r.IntN(6) {
		ev := paged.Event{Kind: paged.EventKind(1 + r.IntN(4)), Medium: paged.Medium(r.IntN(2))}
		switch ev.Kind {
		case paged.AllBlocksCleared:
			ev.Medium = paged.Device
		case paged.BlockStored:
			ev.BlockSize = 1 + r.IntN(4)
			ev.LoRA = int32(r.IntN(3)) - 1
			if ev.HasParent = r.IntN(2) == 0; ev.HasParent {
				ev.Parent = hash()
			}
			fallthrough
		default:
			for range 1 + r.IntN(3) {
				ev.Hashes = append(ev.Hashes, hash())
			}
			for range len(ev.Hashes) * ev.BlockSize {
				ev.Tokens = append(ev.Tokens, r.Int32()-1<<30)
			}
		}
		if ev.Kind == paged.BlockMoved {
			ev.From = 1 - ev.Medium
		}
		if ev.Kind != paged.AllBlocksCleared {
			ev.Group = r.IntN(3) // a hybrid manager's groups
		}
		evs = append(evs, ev)
	}
	return evs
}

// wire is what a consumer of vLLM's events learns from ev: a move is a
// removal from the tier the blocks left.
func wire(ev paged.Event) paged.Event {
	if ev.Kind == paged.BlockMoved {
		ev.Kind, ev.Medium = paged.BlockRemoved, ev.From
	}
	ev.From = 0
	if len(ev.Tokens) == 0 {
		ev.Tokens = nil
	}
	if len(ev.Hashes) == 0 {
		ev.Hashes = nil
	}
	return ev
}

func TestEncodeDecodeRoundTrip(t *testing.T) {
	r := rand.New(rand.NewPCG(1, 2))
	var dec Batch
	var buf []byte
	for _, layout := range []Layout{ArrayLayout, MapLayout} {
		for _, hashes := range []HashEncoding{HashBytes, HashInt} {
			for _, cfg := range []EncoderConfig{{Rank: 2, Group: 1}, {Rank: -1, Group: -1}, {Rank: 0, Group: 0}} {
				cfg.Layout, cfg.Hashes = layout, hashes
				e, err := NewEncoder(cfg)
				require.NoError(t, err)
				for range 200 {
					events := ungrouped(t, e, cfg, randomEvents(r, hashes == HashInt))
					ts := r.Float64() * 2e9
					buf, err = e.AppendBatch(buf[:0], ts, events)
					require.NoError(t, err)
					require.NoError(t, dec.Decode(buf), "%+v", cfg)
					assertRoundTrip(t, cfg, ts, events, &dec)
				}
			}
		}
	}
}

func assertRoundTrip(t *testing.T, cfg EncoderConfig, ts float64, events []paged.Event, dec *Batch) {
	t.Helper()
	var want []paged.Event
	for _, ev := range events {
		if len(ev.Hashes) > 0 || ev.Kind == paged.AllBlocksCleared {
			w := wire(ev)
			// group_idx is the encoder's Group plus the event's own.
			w.Group = 0
			if cfg.Group >= 0 && ev.Kind != paged.AllBlocksCleared {
				w.Group = cfg.Group + ev.Group
			}
			want = append(want, w)
		}
	}
	var got []paged.Event
	for _, ev := range dec.Events {
		got = append(got, wire(ev))
	}
	require.Equal(t, want, got, "%+v", cfg)
	if ts == ts { // a fuzzed NaN never equals itself
		assert.Equal(t, ts, dec.TS)
	}
	assert.Equal(t, cfg.Rank >= 0, dec.HasRank)
	if cfg.Rank >= 0 {
		assert.Equal(t, cfg.Rank, dec.DataParallelRank)
	}
	for i, m := range dec.Meta {
		hasGroup := cfg.Group >= 0 && dec.Events[i].Kind != paged.AllBlocksCleared
		assert.Equal(t, Meta{Group: dec.Events[i].Group, HasGroup: hasGroup}, m)
	}
}

func TestEncoderRejectsWhatVLLMCannotSay(t *testing.T) {
	_, err := NewEncoder(EncoderConfig{Layout: 7})
	require.ErrorIs(t, err, ErrInvalid)
	_, err = NewEncoder(EncoderConfig{Hashes: 9})
	require.ErrorIs(t, err, ErrInvalid)
	e, err := NewEncoder(EncoderConfig{})
	require.NoError(t, err)
	prefix := []byte("kept")
	for name, ev := range map[string]paged.Event{
		"unknown kind":     {Kind: 0, Hashes: make([]paged.Hash, 1)},
		"tokens per block": {Kind: paged.BlockStored, Hashes: make([]paged.Hash, 2), Tokens: make([]int32, 3), BlockSize: 2},
		"no block size":    {Kind: paged.BlockStored, Hashes: make([]paged.Hash, 1)},
		"unknown medium":   {Kind: paged.BlockRemoved, Hashes: make([]paged.Hash, 1), Medium: 5},
		"negative group":   {Kind: paged.BlockRemoved, Hashes: make([]paged.Hash, 1), Group: -1},
	} {
		out, err := e.AppendBatch(prefix, 0, []paged.Event{{Kind: paged.AllBlocksCleared}, ev})
		require.ErrorIs(t, err, ErrInvalid, name)
		assert.Equal(t, []byte("kept"), out, "%s: nothing appended", name)
	}
}

func TestCodecDoesNotAllocate(t *testing.T) {
	r := rand.New(rand.NewPCG(3, 4))
	var events []paged.Event
	for len(events) < 32 {
		events = append(events, randomEvents(r, false)...)
	}
	e, err := NewEncoder(EncoderConfig{Group: 0})
	require.NoError(t, err)
	buf, err := e.AppendBatch(nil, 1, events)
	require.NoError(t, err)
	var dec Batch
	require.NoError(t, dec.Decode(buf))
	var s Stream
	seq := uint64(0)
	allocs := testing.AllocsPerRun(100, func() {
		buf, _ = e.AppendBatch(buf[:0], 1, events)
		_ = dec.Decode(buf)
		_, _ = s.Decode(seq, buf)
		seq++
	})
	if allocs != 0 {
		t.Fatalf("encode+decode allocated %.1f times per batch", allocs)
	}
}

// FuzzEncoderRoundTrip: whatever events the fuzzer draws, a frame the encoder writes
// decodes to the same events, in every layout.
func FuzzEncoderRoundTrip(f *testing.F) {
	f.Add(uint64(1), uint64(2), uint8(0))
	f.Add(uint64(7), uint64(0), uint8(3))
	f.Fuzz(func(t *testing.T, s1, s2 uint64, mode uint8) {
		r := rand.New(rand.NewPCG(s1, s2))
		cfg := EncoderConfig{Layout: Layout(mode & 1), Hashes: HashEncoding(mode >> 1 & 1), Rank: int(mode>>2&3) - 1, Group: int(mode>>4&3) - 1}
		e, err := NewEncoder(cfg)
		if err != nil {
			t.Fatal(err)
		}
		events := ungrouped(t, e, cfg, randomEvents(r, cfg.Hashes == HashInt))
		buf, err := e.AppendBatch(nil, float64(s1), events)
		if err != nil {
			t.Fatal(err)
		}
		var dec Batch
		if err := dec.Decode(buf); err != nil {
			t.Fatalf("%+v: encoder output does not decode: %v", cfg, err)
		}
		assertRoundTrip(t, cfg, float64(s1), events, &dec)
		if again, _ := e.AppendBatch(nil, float64(s1), dec.Events); cfg.Group < 0 && !bytes.Equal(again, buf) && !hasMoves(events) {
			t.Fatalf("%+v: re-encoding decoded events changed the frame", cfg)
		}
	})
}

// ungrouped returns events as an encoder of cfg can write them: an
// encoder that omits group_idx refuses events of a group other than 0
// (checked here), so their groups are set to 0.
func ungrouped(t *testing.T, e *Encoder, cfg EncoderConfig, events []paged.Event) []paged.Event {
	t.Helper()
	if cfg.Group >= 0 {
		return events
	}
	for i := range events {
		if events[i].Group != 0 {
			_, err := e.AppendBatch(nil, 0, events[i:i+1])
			require.ErrorIs(t, err, ErrInvalid, "event of group %d without group_idx", events[i].Group)
			events[i].Group = 0
		}
	}
	return events
}

func hasMoves(evs []paged.Event) bool {
	for _, ev := range evs {
		if ev.Kind == paged.BlockMoved || (ev.Kind != paged.AllBlocksCleared && len(ev.Hashes) == 0) {
			return true
		}
	}
	return false
}

// A hybrid manager's events name their KV cache group; the frames carry
// it as group_idx and decode back to it. Before, every event was written
// with the encoder's one Group (0), so a consumer took a sliding-window
// group's removals for the full-attention group's.
func TestEncoderKeepsEventGroups(t *testing.T) {
	m, err := paged.New(paged.Config{BlockSize: 2, NumBlocks: 32, Events: 256,
		Groups: []paged.Group{{Kind: paged.FullAttention}, {Kind: paged.SlidingWindow, Window: 2}}})
	require.NoError(t, err)
	id, _, err := m.Create([]int32{1, 2, 3, 4, 5, 6, 7, 8, 9}, nil)
	require.NoError(t, err)
	require.NoError(t, m.Free(id))
	events := m.DrainEvents(nil)
	groups := map[int]int{}
	for _, ev := range events {
		groups[ev.Group]++
	}
	require.Positive(t, groups[1], "the manager reports events of group 1: %v", groups)
	e, err := NewEncoder(EncoderConfig{})
	require.NoError(t, err)
	buf, err := e.AppendBatch(nil, 1, events)
	require.NoError(t, err)
	var dec Batch
	require.NoError(t, dec.Decode(buf))
	require.Len(t, dec.Events, len(events))
	for i, ev := range events {
		assert.Equal(t, ev.Group, dec.Events[i].Group, "event %d (%v)", i, ev.Kind)
		assert.Equal(t, Meta{Group: ev.Group, HasGroup: ev.Kind != paged.AllBlocksCleared}, dec.Meta[i], "event %d", i)
	}
}
