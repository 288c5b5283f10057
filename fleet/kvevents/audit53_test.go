package kvevents

import (
	"math"
	"testing"

	"github.com/stretchr/testify/assert"
	"github.com/stretchr/testify/require"

	"github.com/pagedkv/pagedkv/paged"
)

// TestAudit53NonFiniteTimestampRefused: a batch stamped NaN or an infinity
// is ErrInvalid and leaves dst as it was, in both layouts (vLLM stamps
// batches with time.time(), always finite).
func TestAudit53NonFiniteTimestampRefused(t *testing.T) {
	for _, layout := range []Layout{ArrayLayout, MapLayout} {
		e, err := NewEncoder(EncoderConfig{Layout: layout})
		require.NoError(t, err)
		events := []paged.Event{{Kind: paged.AllBlocksCleared}}
		for _, ts := range []float64{math.NaN(), math.Inf(1), math.Inf(-1)} {
			out, err := e.AppendBatch([]byte("kept"), ts, events)
			assert.ErrorIs(t, err, ErrInvalid, "layout %v, timestamp %v", layout, ts)
			assert.Equal(t, "kept", string(out), "layout %v, timestamp %v", layout, ts)
		}
		_, err = e.AppendBatch(nil, -1.5, events)
		assert.NoError(t, err, "a finite timestamp, even a negative one")
	}
}
