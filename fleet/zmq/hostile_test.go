package zmq

import (
	"context"
	"math"
	"testing"
	"time"

	"github.com/stretchr/testify/assert"
	"github.com/stretchr/testify/require"

	"github.com/pagedkv/pagedkv/paged"
)

// TestBadInputPublisherBuffer: a huge Buffer costs nothing up front (it
// used to be allocated whole, and 1<<40 batches crashed the process out of
// memory); the ring still keeps the last Buffer batches, no more, for
// replay.
func TestBadInputPublisherBuffer(t *testing.T) {
	noLeaks(t)
	p, err := NewPublisher(PublisherConfig{Endpoint: loopback, Buffer: min(1<<40, math.MaxInt)})
	require.NoError(t, err)
	require.NoError(t, p.Close())

	p, s := pair(t, PublisherConfig{Buffer: 2}, SubscriberConfig{})
	p.mu.Lock()
	p.drop = func(seq uint64) bool { return seq == 1 || seq == 2 }
	p.mu.Unlock()
	for i := range 4 {
		_, err := p.Publish(stored(uint64(1+i), 10*i, 1))
		require.NoError(t, err)
	}
	p.mu.Lock()
	assert.Len(t, p.ring, 2)
	p.mu.Unlock()
	// Batch 1 left the ring before the gap was seen: 2 is replayed, 0
	// and 3 came live.
	for _, want := range []uint64{0, 2, 3} {
		assert.Equal(t, want, next(t, s).Seq)
	}
	assert.Equal(t, uint64(1), s.Stats().Gaps)
}

// TestBadInputAfterClose: a closed publisher's AwaitSubscriber returns
// ErrClosed at once (it used to wait for ctx), and Follow refuses a nil
// subscriber or apply function with ErrInvalid instead of panicking.
func TestBadInputAfterClose(t *testing.T) {
	noLeaks(t)
	p, err := NewPublisher(PublisherConfig{Endpoint: loopback})
	require.NoError(t, err)
	require.NoError(t, p.Close())
	ctx, cancel := context.WithTimeout(context.Background(), 5*time.Second)
	defer cancel()
	require.ErrorIs(t, p.AwaitSubscriber(ctx), ErrClosed)
	require.NoError(t, ctx.Err(), "returned before the context ended")

	require.ErrorIs(t, Follow(ctx, nil, func([]paged.Event) error { return nil }), ErrInvalid)
	require.ErrorIs(t, Follow(ctx, &Subscriber{}, nil), ErrInvalid)
}
