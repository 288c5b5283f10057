package kvevents

import (
	"testing"

	"github.com/stretchr/testify/assert"
	"github.com/stretchr/testify/require"
)

// TestAudit11MapBatchFieldsRequiredOnce: in the map layout, ts is
// required (kv_events.py gives it no default; msgspec refuses a batch
// without it) and each batch field comes once. The decoder used to take a
// batch without ts as ts 0, and a batch with two events lists as the
// events of both, twice the events vLLM sent.
func TestAudit11MapBatchFieldsRequiredOnce(t *testing.T) {
	removed := func(e *enc) *enc {
		return e.arr(1).mapH(2).str("type").str("BlockRemoved").str("block_hashes").arr(1).int(4)
	}
	for name, frame := range map[string][]byte{
		"no ts":        removed(new(enc).mapH(1).str("events")).b,
		"events twice": removed(removed(new(enc).mapH(3).str("ts").float(1).str("events")).str("events")).b,
		"ts twice":     removed(new(enc).mapH(3).str("ts").float(1).str("ts").float(2).str("events")).b,
		"rank twice":   removed(new(enc).mapH(4).str("ts").float(1).str("data_parallel_rank").int(1).str("data_parallel_rank").int(2).str("events")).b,
		"event type twice": new(enc).mapH(2).str("ts").float(1).str("events").arr(1).
			mapH(3).str("type").str("AllBlocksCleared").str("block_hashes").arr(1).int(4).str("type").str("BlockRemoved").b,
	} {
		var b Batch
		err := b.Decode(frame)
		require.ErrorIs(t, err, ErrMalformed, "%s: decoded %d events, ts %v", name, len(b.Events), b.TS)
		assert.Empty(t, b.Events, name)
	}
}
