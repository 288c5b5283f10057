package eviction

import (
	"fmt"
	"testing"

	"github.com/stretchr/testify/assert"
	"github.com/stretchr/testify/require"

	"github.com/pagedkv/pagedkv/allocator"
)

// Tests that kill the eviction mutants of the fifty-eighth mutation round
// (docs/testing.md, "Mutation testing, fifty-eighth round").

// TestAudit104MisuseSaysWhich: the panic of a protocol misuse says which
// misuse it was, in every policy: a second Insert reads "already in the
// policy", a Remove of an absent block "not in the policy".
// TestConformanceMisusePanics built its expected text from the same
// constants the policies use, so a double Insert that read "not in the
// policy" (M2499) passed it.
func TestAudit104MisuseSaysWhich(t *testing.T) {
	forEachPolicy(t, func(t *testing.T, f Factory) {
		p := f(4)
		p.Insert(1)
		name := fmt.Sprintf("%T", p)[len("*eviction."):]
		assert.PanicsWithValue(t, "eviction: "+name+".Insert of block 1: already in the policy", func() { p.Insert(1) })
		assert.PanicsWithValue(t, "eviction: "+name+".Remove of block 2: not in the policy", func() { p.Remove(2) })
	})
}

// TestAudit104DefaultPriorityIs35: a block no Hint gave a level is at
// DefaultPriority, 35 as in TensorRT-LLM: it ties with a block hinted at
// 35 (then the least recently released goes first) and goes before one
// at 36. The policy tests hinted DefaultPriority by name, so a default
// of 36 (M2500) moved every level with it.
func TestAudit104DefaultPriorityIs35(t *testing.T) {
	p := NewPriority(4)
	h := p.(Hinter)
	h.Hint(1, Hint{Key: 1, Parent: allocator.NoBlock, Priority: 35})
	h.Hint(2, Hint{Key: 2, Parent: allocator.NoBlock, Priority: 36})
	for id := range allocator.BlockID(3) {
		p.Insert(id)
	}
	var order []allocator.BlockID
	for {
		id, ok := p.Victim()
		if !ok {
			break
		}
		order = append(order, id)
	}
	assert.Equal(t, []allocator.BlockID{0, 1, 2}, order)
}

// TestAudit104MaxCapacityTaken: a policy for the largest pool
// allocator.New creates, allocator.MaxBlocks blocks, is built and works
// at its last block; one more panics. The tests asked only for the panic
// past MaxCapacity, so a bound one block short (M2501) refused the
// largest pool's policy unseen. FIFO is the smallest policy (8 bytes a
// block, 128 MiB here).
func TestAudit104MaxCapacityTaken(t *testing.T) {
	var p Policy
	require.NotPanics(t, func() { p = NewFIFO(allocator.MaxBlocks) })
	last := allocator.BlockID(allocator.MaxBlocks - 1)
	p.Insert(last)
	p.Insert(0)
	id, ok := p.Victim()
	assert.True(t, ok)
	assert.Equal(t, last, id)
	assert.Panics(t, func() { NewFIFO(allocator.MaxBlocks + 1) })
}
