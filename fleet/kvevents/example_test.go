package kvevents_test

import (
	"errors"
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

// A hybrid server publishes its events with the spec of each group, as
// newer vLLM does, and the router learns its layout from the stream to
// score it with (fleet.Index.SetLayout).
func ExampleLayoutLearner() {
	cfg := paged.Config{BlockSize: 16, NumBlocks: 64, Events: 256, Groups: []paged.Group{
		{Kind: paged.FullAttention}, {Kind: paged.SlidingWindow, Window: 128}, {Kind: paged.State, Pages: 1},
	}}
	m, err := paged.New(cfg)
	if err != nil {
		panic(err)
	}
	enc, err := kvevents.NewEncoder(kvevents.EncoderConfig{Layout: kvevents.MapLayout, Specs: cfg.Groups})
	if err != nil {
		panic(err)
	}
	// Two requests sharing a prefix: the second takes a checkpoint, the
	// state group's first store event.
	prefix := make([]int32, 64)
	for i := range prefix {
		prefix[i] = int32(i)
	}
	var learner kvevents.LayoutLearner
	var batch kvevents.Batch
	for _, first := range []int32{1000, 2000} {
		prompt := append([]int32{}, prefix...)
		for i := range int32(20) { // a block of its own and 4 tokens
			prompt = append(prompt, first+i)
		}
		id, _ := m.Add(prompt, nil)
		if _, err := m.Admit(id); err != nil {
			panic(err)
		}
		m.TakeCheckpoints(nil)
		frame, err := enc.AppendBatch(nil, 1, m.DrainEvents(nil))
		if err != nil {
			panic(err)
		}
		if err := batch.Decode(frame); err != nil {
			panic(err)
		}
		learner.Learn(&batch)
		l, err := learner.Layout(len(cfg.Groups))
		if errors.Is(err, kvevents.ErrInvalid) {
			fmt.Println("not yet:", err)
			continue
		}
		fmt.Println("learned:", l)
	}
	// Output:
	// not yet: kvevents: invalid argument: no BlockStored with a spec for group 2 yet
	// learned: b16 full window:128 state
}
