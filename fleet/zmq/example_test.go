package zmq_test

import (
	"context"
	"fmt"

	"github.com/pagedkv/pagedkv/fleet/zmq"
	"github.com/pagedkv/pagedkv/paged"
)

// A paged manager publishes its cache events over loopback; a follower
// (as fleet's index would) receives them numbered.
func Example() {
	ctx := context.Background()
	pub, err := zmq.NewPublisher(zmq.PublisherConfig{Endpoint: "tcp://127.0.0.1:0", ReplayEndpoint: "tcp://127.0.0.1:0", Topic: "kv@gpu-a"})
	if err != nil {
		panic(err)
	}
	defer pub.Close()
	sub, err := zmq.NewSubscriber(zmq.SubscriberConfig{Endpoint: pub.Endpoint(), ReplayEndpoint: pub.ReplayEndpoint(), CatchUp: true})
	if err != nil {
		panic(err)
	}
	defer sub.Close()

	m, err := paged.New(paged.Config{NumBlocks: 8, BlockSize: 2, Events: 16})
	if err != nil {
		panic(err)
	}
	if _, _, err := m.Create([]int32{1, 2, 3, 4, 5}, nil); err != nil {
		panic(err)
	}
	if err := pub.AwaitSubscriber(ctx); err != nil {
		panic(err)
	}
	if _, err := pub.Publish(m.DrainEvents(nil)); err != nil {
		panic(err)
	}

	ctx, stop := context.WithCancel(ctx)
	err = zmq.Follow(ctx, sub, func(events []paged.Event) error {
		for _, ev := range events {
			fmt.Println(ev.Seq, ev.Kind, len(ev.Hashes), "blocks on", ev.Medium)
		}
		stop()
		return nil
	})
	fmt.Println(err)
	// Output:
	// 1 BlockStored 2 blocks on GPU
	// context canceled
}
