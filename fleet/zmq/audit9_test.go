package zmq

import (
	"errors"
	"sync"
	"testing"
	"time"

	"github.com/stretchr/testify/assert"
	"github.com/stretchr/testify/require"

	"github.com/pagedkv/pagedkv/fleet/kvevents"
	"github.com/pagedkv/pagedkv/paged"
)

// TestAudit9ConcurrentPublishAndClose checks the package's concurrency
// claims under -race: Publish from several goroutines numbers every batch
// once, without gaps, and a subscriber receives each; then Close, called
// twice at once while the publishers go on, ends every later Publish with
// ErrClosed (no panic, no send on a closed socket), and no goroutine of
// ours outlives the test.
func TestAudit9ConcurrentPublishAndClose(t *testing.T) {
	noLeaks(t)
	pcfg := PublisherConfig{Endpoint: loopback, ReplayEndpoint: loopback, Encoder: kvevents.EncoderConfig{Hashes: kvevents.HashInt}}
	p, err := NewPublisher(pcfg)
	require.NoError(t, err)
	s, err := NewSubscriber(SubscriberConfig{Endpoint: p.Endpoint()})
	require.NoError(t, err)
	require.NoError(t, p.AwaitSubscriber(ctxFor(t)))

	const workers, each = 4, 40
	batch := func(w, i int) []paged.Event {
		return []paged.Event{{Kind: paged.BlockRemoved, Hashes: []paged.Hash{kvevents.HashFromInt(uint64(w*1000 + i + 1))}}}
	}
	var wg sync.WaitGroup
	seqs := make([][]uint64, workers)
	for w := range workers {
		wg.Add(1)
		go func() {
			defer wg.Done()
			for i := range each {
				seq, err := p.Publish(batch(w, i))
				assert.NoError(t, err)
				seqs[w] = append(seqs[w], seq)
			}
		}()
	}
	wg.Wait()
	seen := make(map[uint64]bool)
	for _, ss := range seqs {
		for _, q := range ss {
			require.False(t, seen[q], "batch number %d given twice", q)
			seen[q] = true
		}
	}
	require.Len(t, seen, workers*each)
	var stream kvevents.Stream
	got := make(map[paged.Hash]bool)
	for i := range workers * each {
		m := next(t, s)
		require.Equal(t, uint64(i), m.Seq, "batches arrive in number order")
		evs, err := stream.Decode(m.Seq, m.Payload)
		require.NoError(t, err)
		require.Len(t, evs, 1)
		got[evs[0].Hashes[0]] = true
	}
	require.Len(t, got, workers*each, "every batch's own event arrived")
	// Closed before more batches come: a subscriber closed with more
	// unread batches than its buffers hold leaves a zmq4 v0.17.0 reader
	// goroutine blocked on its queue (msgio.go's listen sends without
	// watching its context), which noLeaks would count.
	require.NoError(t, s.Close())

	// Close twice at once while publishers keep going.
	stop := make(chan struct{})
	for w := range workers {
		wg.Add(1)
		go func() {
			defer wg.Done()
			for i := 0; ; i++ {
				_, err := p.Publish(batch(w, each+i))
				if errors.Is(err, ErrClosed) {
					return
				}
				select {
				case <-stop:
					return
				default:
				}
			}
		}()
	}
	var closers sync.WaitGroup
	for range 2 {
		closers.Add(1)
		go func() {
			defer closers.Done()
			assert.NoError(t, p.Close())
		}()
	}
	closers.Wait()
	wg.Wait()
	close(stop)
	_, err = p.Publish(batch(0, 0))
	require.ErrorIs(t, err, ErrClosed)
	require.NoError(t, p.Close(), "Close is idempotent")
}

// TestAudit9SubscriberCloseFromOtherGoroutines ends a Next blocked on an
// idle publisher by closing the subscriber from two goroutines at once:
// Next returns ErrClosed, both Closes return, and nothing leaks.
func TestAudit9SubscriberCloseFromOtherGoroutines(t *testing.T) {
	noLeaks(t)
	p, err := NewPublisher(PublisherConfig{Endpoint: loopback, ReplayEndpoint: loopback})
	require.NoError(t, err)
	defer func() { assert.NoError(t, p.Close()) }()
	s, err := NewSubscriber(SubscriberConfig{Endpoint: p.Endpoint(), ReplayEndpoint: p.ReplayEndpoint()})
	require.NoError(t, err)
	done := make(chan error, 1)
	go func() {
		_, err := s.Next(ctxFor(t))
		done <- err
	}()
	var wg sync.WaitGroup
	for range 2 {
		wg.Add(1)
		go func() {
			defer wg.Done()
			assert.NoError(t, s.Close())
		}()
	}
	wg.Wait()
	require.ErrorIs(t, <-done, ErrClosed)
	_, err = s.Next(ctxFor(t))
	require.ErrorIs(t, err, ErrClosed)
}

// TestAudit9ClosedSubscriberYieldsErrClosed: once Close has returned,
// Next yields ErrClosed, as its doc says, even with batches still
// buffered from before the Close (Next used to deliver them, or to fail
// with a send error when one of them showed a gap and it asked the closed
// socket for a replay).
func TestAudit9ClosedSubscriberYieldsErrClosed(t *testing.T) {
	noLeaks(t)
	for _, gap := range []bool{false, true} {
		p, s := pair(t, PublisherConfig{}, SubscriberConfig{})
		if gap {
			p.mu.Lock()
			p.drop = func(seq uint64) bool { return seq == 0 }
			p.mu.Unlock()
		}
		for i := range 4 {
			_, err := p.Publish(stored(uint64(1+i), 10*i, 1))
			require.NoError(t, err)
		}
		want := 4
		if gap {
			want = 3
		}
		ctx := ctxFor(t)
		for len(s.live) < want {
			require.NoError(t, ctx.Err(), "the batches reach the subscriber")
			time.Sleep(time.Millisecond)
		}
		require.NoError(t, s.Close())
		for range 4 {
			_, err := s.Next(ctx)
			require.ErrorIs(t, err, ErrClosed, "gap %v", gap)
		}
	}
}
