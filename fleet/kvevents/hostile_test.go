package kvevents

import (
	"math"
	"strings"
	"testing"

	"github.com/stretchr/testify/assert"
	"github.com/stretchr/testify/require"
)

// The hostile-input test of the decoder: malformed vLLM frames of every
// kind are refused whole with ErrMalformed and leave nothing behind, and
// replays and lost batches of a stream keep its numbering honest.

func TestHostileVLLMFrames(t *testing.T) {
	n := 0
	defer func() { t.Logf("%d cases", n) }()
	frame := func(events ...func(e *enc)) []byte {
		e := new(enc).arr(2).float(1).arr(len(events))
		for _, ev := range events {
			ev(e)
		}
		return e.b
	}
	// stored writes a BlockStored event in the array layout with the given
	// field writers (hashes, parent, tokens, block size, lora, medium).
	storedEv := func(fields ...func(e *enc)) func(e *enc) {
		return func(e *enc) {
			e.arr(1 + len(fields)).str("BlockStored")
			for _, f := range fields {
				f(e)
			}
		}
	}
	hashes := func(e *enc) { e.arr(1).int(5) }
	null := func(e *enc) { e.nil() }
	tokens := func(e *enc) { e.arr(2).int(1).int(2) }
	two := func(e *enc) { e.int(2) }
	raw := func(b ...byte) func(e *enc) { return func(e *enc) { e.b = append(e.b, b...) } }
	nested := func(depth int) func(e *enc) {
		return func(e *enc) {
			for range depth {
				e.arr(1)
			}
			e.nil()
		}
	}
	cases := map[string][]byte{
		"nil frame":                    nil,
		"empty frame":                  {},
		"reserved type byte":           {0xc1},
		"array32 claiming 2^32-1":      {0xdd, 0xff, 0xff, 0xff, 0xff, 0xc0},
		"map32 claiming 2^32-1":        {0xdf, 0xff, 0xff, 0xff, 0xff, 0xa2, 't', 's', 0x01},
		"batch of nil":                 {0xc0},
		"ts is a str":                  new(enc).arr(2).str("now").arr(0).b,
		"ts is nil":                    new(enc).arr(2).nil().arr(0).b,
		"events is a map":              new(enc).arr(2).float(1).mapH(0).b,
		"events is an int":             new(enc).arr(2).float(1).int(3).b,
		"event is an int":              frame(func(e *enc) { e.int(7) }),
		"event tag is an int":          frame(func(e *enc) { e.arr(1).int(1) }),
		"event tag is a bin":           frame(func(e *enc) { e.arr(1).bin([]byte("BlockStored")) }),
		"event tag is empty":           frame(func(e *enc) { e.arr(1).str("") }),
		"event array is empty":         frame(func(e *enc) { e.arr(0) }),
		"removed without hashes":       frame(func(e *enc) { e.arr(1).str("BlockRemoved") }),
		"block_hashes is a map":        frame(storedEv(func(e *enc) { e.mapH(0) }, null, tokens, two, null)),
		"hash is true":                 frame(storedEv(func(e *enc) { e.arr(1).b = append(e.b, 0xc3) }, null, tokens, two, null)),
		"hash is a float":              frame(storedEv(func(e *enc) { e.arr(1).float(1.5) }, null, tokens, two, null)),
		"hash is nil":                  frame(storedEv(func(e *enc) { e.arr(1).nil() }, null, tokens, two, null)),
		"hash is an array":             frame(storedEv(func(e *enc) { e.arr(1).arr(1).int(1) }, null, tokens, two, null)),
		"parent is a str":              frame(storedEv(hashes, func(e *enc) { e.str("p") }, tokens, two, null)),
		"token is a str":               frame(storedEv(hashes, null, func(e *enc) { e.arr(1).str("x") }, two, null)),
		"token below int32":            frame(storedEv(hashes, null, func(e *enc) { e.arr(1).int(math.MinInt32 - 1) }, two, null)),
		"token is MaxUint64":           frame(storedEv(hashes, null, func(e *enc) { e.arr(1).uint64(math.MaxUint64 - 1<<40) }, two, null)),
		"tokens is nil":                frame(storedEv(hashes, null, null, two, null)),
		"block_size -1":                frame(storedEv(hashes, null, tokens, func(e *enc) { e.int(-1) }, null)),
		"block_size 2^20+1":            frame(storedEv(hashes, null, tokens, func(e *enc) { e.int(1<<20 + 1) }, null)),
		"block_size is a str":          frame(storedEv(hashes, null, tokens, func(e *enc) { e.str("16") }, null)),
		"block_size is nil":            frame(storedEv(hashes, null, tokens, null, null)),
		"lora_id 2^40":                 frame(storedEv(hashes, null, tokens, two, func(e *enc) { e.int(1 << 40) })),
		"lora_id -2^40":                frame(storedEv(hashes, null, tokens, two, func(e *enc) { e.int(-1 << 40) })),
		"lora_id is a str":             frame(storedEv(hashes, null, tokens, two, func(e *enc) { e.str("a") })),
		"medium is an int":             frame(storedEv(hashes, null, tokens, two, null, func(e *enc) { e.int(0) })),
		"medium is a bin":              frame(storedEv(hashes, null, tokens, two, null, func(e *enc) { e.bin([]byte("GPU")) })),
		"stored with four fields":      frame(storedEv(hashes, null, tokens, two)),
		"extra field nested too deep":  frame(storedEv(hashes, null, tokens, two, null, null, nested(40))),
		"extra field ext past the end": frame(storedEv(hashes, null, tokens, two, null, null, raw(0xc8, 0xff, 0xff, 1))),
		"extra field fixext cut short": frame(storedEv(hashes, null, tokens, two, null, null, raw(0xd8, 1, 2))),
		"extra field unknown type":     frame(storedEv(hashes, null, tokens, two, null, null, raw(0xc1))),
		"rank -1":                      new(enc).arr(3).float(1).arr(0).int(-1).b,
		"rank 2^32":                    new(enc).arr(3).float(1).arr(0).int(1 << 32).b,
		"rank is a str":                new(enc).arr(3).float(1).arr(0).str("0").b,
		"map key is an int":            new(enc).mapH(1).int(1).arr(0).b,
		"map ts is a str":              new(enc).mapH(2).str("ts").str("x").str("events").arr(0).b,
		"map events twice, bad second": new(enc).mapH(2).str("events").arr(0).str("events").int(1).b,
		"map trailing bytes":           append(new(enc).mapH(1).str("events").arr(0).b, 0xc0),
		"map event type is an int":     frame(func(e *enc) { e.mapH(1).str("type").int(1) }),
		"map event unknown type":       frame(func(e *enc) { e.mapH(1).str("type").str("BlockMoved") }),
		"map stored without tokens": frame(func(e *enc) {
			e.mapH(4).str("type").str("BlockStored").str("block_hashes").arr(0).str("parent_block_hash").nil().str("block_size").int(1)
		}),
		"map event key is a bin":        frame(func(e *enc) { e.mapH(1).bin([]byte("type")).str("AllBlocksCleared") }),
		"str8 key past the end":         {0x81, 0xd9, 0xff, 'e'},
		"second batch in one frame":     append(frame(), frame()...),
		"negative fixint as the batch":  {0xff},
		"float32 ts cut short":          {0x92, 0xca, 0, 0},
		"events array lies about count": {0x92, 0x01, 0xdc, 0xff, 0xff, 0xc0},
	}
	var b Batch
	for name, f := range cases {
		t.Run(name, func(t *testing.T) {
			n++
			// The batch first holds a good frame, so leftovers would show.
			require.NoError(t, b.Decode(arrayFrame()))
			err := b.Decode(f)
			require.ErrorIs(t, err, ErrMalformed)
			assert.True(t, strings.HasPrefix(err.Error(), "kvevents: "), "%q lacks the package prefix", err)
			assert.Empty(t, b.Events, "nothing of a bad frame survives")
			assert.Zero(t, b.TS)
			assert.False(t, b.HasRank)
			// The batch decodes the next good frame as a fresh one would.
			var fresh Batch
			require.NoError(t, fresh.Decode(arrayFrame()))
			require.NoError(t, b.Decode(arrayFrame()))
			assert.Equal(t, fresh.Events, b.Events)
		})
	}
}

func TestHostileStream(t *testing.T) {
	n := 0
	defer func() { t.Logf("%d cases", n) }()
	good := new(enc).arr(2).float(0).arr(1).arr(3).str("BlockRemoved").arr(1).int(1).nil().b
	var s Stream
	evs, err := s.Decode(0, good)
	require.NoError(t, err)
	require.Equal(t, uint64(1), evs[0].Seq)
	for _, tc := range []struct {
		name  string
		batch uint64
		frame []byte
	}{
		{"replay of batch 0 with garbage", 0, []byte{0xc1}},
		{"replay of batch 0 with nil", 0, nil},
		{"replay of batch 0 with a good frame", 0, good},
	} {
		n++
		evs, err := s.Decode(tc.batch, tc.frame)
		require.NoError(t, err, tc.name)
		assert.Empty(t, evs, tc.name)
	}
	// Replays changed nothing: batch 1 follows batch 0 without a gap.
	evs, err = s.Decode(1, good)
	require.NoError(t, err)
	assert.Equal(t, uint64(2), evs[0].Seq)
	// A malformed batch is refused and, as documented, counts as lost.
	n++
	_, err = s.Decode(2, []byte{0x92})
	require.ErrorIs(t, err, ErrMalformed)
	evs, err = s.Decode(3, good)
	require.NoError(t, err)
	assert.Equal(t, uint64(4), evs[0].Seq, "the lost batch shows as a gap")
	// Batch numbers at the top of the range do not wrap into replays of
	// everything after.
	n++
	evs, err = s.Decode(math.MaxUint64, good)
	require.NoError(t, err)
	assert.Equal(t, uint64(6), evs[0].Seq)
}
