package zmq

import (
	"math"
	"testing"

	"github.com/stretchr/testify/assert"
	"github.com/stretchr/testify/require"

	"github.com/pagedkv/pagedkv/fleet/kvevents"
)

// TestAudit53NilCloseAndNonFiniteTimestamps: closing a nil Publisher or
// Subscriber is an ErrInvalid, not a nil dereference, and a batch stamped
// NaN or an infinity is refused without taking a batch number.
func TestAudit53NilCloseAndNonFiniteTimestamps(t *testing.T) {
	noLeaks(t)
	var p *Publisher
	var s *Subscriber
	require.NotPanics(t, func() { assert.ErrorIs(t, p.Close(), ErrInvalid) })
	require.NotPanics(t, func() { assert.ErrorIs(t, s.Close(), ErrInvalid) })

	p, err := NewPublisher(PublisherConfig{Endpoint: loopback})
	require.NoError(t, err)
	defer p.Close()
	for _, ts := range []float64{math.NaN(), math.Inf(1), math.Inf(-1)} {
		_, err := p.PublishAt(ts, stored(1, 1, 1))
		assert.ErrorIs(t, err, kvevents.ErrInvalid, "timestamp %v", ts)
	}
	seq, err := p.PublishAt(1, stored(1, 1, 1))
	require.NoError(t, err)
	assert.Equal(t, uint64(0), seq, "a refused batch took a batch number")
	require.NoError(t, p.Close())
	assert.NoError(t, p.Close(), "a second Close")
}
