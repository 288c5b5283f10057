package eviction

import "testing"

// The thirty-third mutation round (docs/testing.md): the small policies
// and the queues under LeafLRU and Priority. Each test closes a mutation
// that survived it.

// TestAudit79LFUHitsPastOneWordAgainstModel: LFU against the slice model
// of audit 10 with hits that come in bursts of up to 4096, so blocks sit
// in buckets of every occupancy word, the saturated one included. The
// model test of audit 10 hits a block once a step, and a block reached
// bucket 64 (the second word) in no run of it; only audit 10's
// saturation test left the first word, without emptying a bucket there
// while another block stayed in the word. audit10Check runs after every
// step: M1500 cleared an emptied bucket's bit in the first word and left
// a stale bit in the bucket's own.
func TestAudit79LFUHitsPastOneWordAgainstModel(t *testing.T) {
	againstModelWith(t, NewLFU, func(n int) refModel { return newModel("lfu", n) }, modelRun{
		hints:  true,
		bursts: []int{1, 2, 63, 64, 65, 127, 128, 200, 4094, 4095, 4100},
		check:  audit10Check,
	})
}
