package kvevents_test

import (
	"fmt"

	"github.com/pagedkv/pagedkv/fleet/kvevents"
	"github.com/pagedkv/pagedkv/paged"
)

// A paged manager's events, written as a vLLM engine would publish them
// and read back as a router would.
func Example() {
	m, err := paged.New(paged.Config{NumBlocks: 8, BlockSize: 2, Events: 16})
	if err != nil {
		panic(err)
	}
	if _, _, err := m.Create([]int32{1, 2, 3, 4, 5}, nil); err != nil {
		panic(err)
	}
	events := m.DrainEvents(nil)

	enc, err := kvevents.NewEncoder(kvevents.EncoderConfig{Layout: kvevents.MapLayout})
	if err != nil {
		panic(err)
	}
	frame, err := enc.AppendBatch(nil, 1700000000, events)
	if err != nil {
		panic(err)
	}
	var stream kvevents.Stream
	got, err := stream.Decode(0, frame)
	if err != nil {
		panic(err)
	}
	for _, ev := range got {
		fmt.Println(ev.Seq, ev.Kind, len(ev.Hashes), "blocks", ev.Tokens, ev.Medium)
	}
	fmt.Println("same hashes:", got[0].Hashes[1] == events[0].Hashes[1])
	// Output:
	// 1 BlockStored 2 blocks [1 2 3 4] GPU
	// same hashes: true
}

// A frame from a vLLM engine (the array layout: [ts, [event...], rank])
// read into paged events with integer hashes.
func ExampleBatch_Decode() {
	// [0.0, [["BlockStored", [1, 2], nil, [1, 2, 3, 4], 2, nil, "GPU"]], 0]
	frame := []byte{0x93, 0xcb, 0, 0, 0, 0, 0, 0, 0, 0, 0x91, 0x97,
		0xab, 'B', 'l', 'o', 'c', 'k', 'S', 't', 'o', 'r', 'e', 'd',
		0x92, 0x01, 0x02, 0xc0, 0x94, 0x01, 0x02, 0x03, 0x04, 0x02, 0xc0,
		0xa3, 'G', 'P', 'U', 0x00}
	var b kvevents.Batch
	if err := b.Decode(frame); err != nil {
		panic(err)
	}
	ev := b.Events[0]
	fmt.Println(ev.Kind, ev.Hashes[1] == kvevents.HashFromInt(2), ev.HasParent, ev.BlockSize, b.DataParallelRank)
	// Output:
	// BlockStored true false 2 0
}
