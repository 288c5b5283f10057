package zmq_test

import (
	"context"
	"testing"
	"time"

	"github.com/stretchr/testify/assert"
	"github.com/stretchr/testify/require"

	"github.com/pagedkv/pagedkv/fleet"
	"github.com/pagedkv/pagedkv/fleet/kvevents"
	"github.com/pagedkv/pagedkv/fleet/llmd"
	"github.com/pagedkv/pagedkv/fleet/zmq"
	"github.com/pagedkv/pagedkv/paged"
)

// TestIndexFollowsAPagedServer: a paged server hashing with llm-d keys
// publishes its cache; a fleet index following it answers a router that
// computes the same keys from the request's tokens, and turns a loss at
// the source into a partial server.
func TestIndexFollowsAPagedServer(t *testing.T) {
	ctx, cancel := context.WithTimeout(context.Background(), 10*time.Second)
	defer cancel()
	keys, err := llmd.New(llmd.Config{BlockSize: 4, HashSeed: "fleet", Model: "m"})
	require.NoError(t, err)
	m, err := paged.New(paged.Config{NumBlocks: 16, BlockSize: 4, Hasher: keys.Hasher(), Events: 4})
	require.NoError(t, err)
	pub, err := zmq.NewPublisher(zmq.PublisherConfig{Endpoint: "tcp://127.0.0.1:0", ReplayEndpoint: "tcp://127.0.0.1:0",
		Topic: "kv@pod-0@m", Encoder: kvevents.EncoderConfig{Hashes: kvevents.HashInt}})
	require.NoError(t, err)
	defer pub.Close()
	sub, err := zmq.NewSubscriber(zmq.SubscriberConfig{Endpoint: pub.Endpoint(), ReplayEndpoint: pub.ReplayEndpoint(), Topic: "kv@", CatchUp: true})
	require.NoError(t, err)
	defer sub.Close()
	index, err := fleet.New(fleet.Config{})
	require.NoError(t, err)

	applied := make(chan uint64, 16)
	done := make(chan error, 1)
	go func() {
		done <- zmq.Follow(ctx, sub, func(evs []paged.Event) error {
			if err := index.Apply("pod-0", evs); err != nil {
				return err
			}
			applied <- evs[len(evs)-1].Seq
			return nil
		})
	}()
	require.NoError(t, pub.AwaitSubscriber(ctx))

	prompt := []int32{1, 2, 3, 4, 5, 6, 7, 8, 9, 10, 11, 12, 13}
	if _, _, err := m.Create(prompt, nil); err != nil {
		t.Fatal(err)
	}
	_, err = pub.Publish(m.DrainEvents(nil))
	require.NoError(t, err)
	<-applied

	request := func(tokens []int32) []paged.Hash {
		var hs []paged.Hash
		for _, k := range keys.AppendKeys(nil, 0, tokens) {
			hs = append(hs, llmd.HashOf(k))
		}
		return hs
	}
	sc, err := index.Lookup(request(append(prompt[:12:12], 99, 98, 97, 96)), nil)
	require.NoError(t, err)
	require.Len(t, sc, 1)
	assert.Equal(t, "pod-0", sc[0].Name)
	assert.Equal(t, 3, sc[0].Blocks, "the router's llm-d keys find the server's three full blocks")
	assert.False(t, sc[0].Partial)

	// A burst overflows the manager's event buffer: two events are
	// dropped, the next batch after them shows the loss.
	for i := range 6 {
		if _, _, err := m.Create([]int32{int32(100 + i), 1, 2, 3}, nil); err != nil {
			t.Fatal(err)
		}
	}
	_, err = pub.Publish(m.DrainEvents(nil))
	require.NoError(t, err)
	<-applied
	if _, _, err := m.Create([]int32{200, 1, 2, 3}, nil); err != nil {
		t.Fatal(err)
	}
	require.Equal(t, uint64(2), m.Stats().EventsDropped)
	_, err = pub.Publish(m.DrainEvents(nil))
	require.NoError(t, err)
	<-applied
	sc, err = index.Lookup(request(prompt), sc[:0])
	require.NoError(t, err)
	assert.True(t, sc[0].Partial, "a loss at the source reaches the index as a gap")

	cancel()
	require.ErrorIs(t, <-done, context.Canceled)
}
