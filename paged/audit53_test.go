package paged

import (
	"testing"

	"github.com/stretchr/testify/assert"
	"github.com/stretchr/testify/require"
)

// The Audit53 tests close the gaps the eighth mutation round found in the
// event queue and snapshots (docs/testing.md, "Mutation testing, eighth
// round").

// onboardEvents returns the events of a queue that onboarded block {1}
// (tokens 1 and 2, LoRA 1) as a chain's first block, then called next.
func onboardEvents(next func(b *eventBuffer, h1 *Hash)) []Event {
	var b eventBuffer
	b.init(16)
	// Arenas with room, as in a steady state (drains reuse them).
	b.hashes[0], b.tokens[0] = make([]Hash, 0, 16), make([]int32, 0, 64)
	h1 := Hash{1}
	b.onboarded(&h1, nil, []int32{1, 2}, 2, 1, 0)
	next(&b, &h1)
	return b.queue
}

// TestAudit53OnboardingsMergeOnlyAlongOneChain (M590-M592): consecutive
// onboardings merge into one BlockMoved only when each block's parent is
// the last one's and they share LoRA, block size and group; a move
// without tokens (a sequence whose tokens are unknown) never merges into
// one that carries tokens, so an event's tokens stay BlockSize per hash.
func TestAudit53OnboardingsMergeOnlyAlongOneChain(t *testing.T) {
	for _, c := range []struct {
		name string
		next func(b *eventBuffer, h1 *Hash)
		want int // events
	}{
		{"its child, same adapter", func(b *eventBuffer, h1 *Hash) { b.onboarded(&Hash{2}, h1, []int32{3, 4}, 2, 1, 0) }, 1},
		{"its child, unknown tokens", func(b *eventBuffer, h1 *Hash) { b.onboarded(&Hash{2}, h1, nil, 2, 1, 0) }, 2},
		{"its child, another adapter", func(b *eventBuffer, h1 *Hash) { b.onboarded(&Hash{2}, h1, []int32{3, 4}, 2, 2, 0) }, 2},
		{"another block's child", func(b *eventBuffer, h1 *Hash) { b.onboarded(&Hash{2}, &Hash{9}, []int32{3, 4}, 2, 1, 0) }, 2},
		{"a chain's first block", func(b *eventBuffer, h1 *Hash) { b.onboarded(&Hash{2}, nil, []int32{3, 4}, 2, 1, 0) }, 2},
	} {
		evs := onboardEvents(c.next)
		require.Len(t, evs, c.want, c.name)
		for _, ev := range evs {
			assert.Equal(t, BlockMoved, ev.Kind, c.name)
			if len(ev.Tokens) > 0 {
				assert.Len(t, ev.Tokens, len(ev.Hashes)*ev.BlockSize, "%s: tokens per hash", c.name)
			}
		}
		if c.want == 2 {
			assert.Equal(t, []Hash{{1}}, evs[0].Hashes, c.name)
			assert.Equal(t, []Hash{{2}}, evs[1].Hashes, c.name)
		}
	}
}

// TestAudit53ClearedNamesTheDevice (M594): AllBlocksCleared is reported on
// the device medium (the reset empties every tier; vLLM's event names
// none), as Event.Medium documents.
func TestAudit53ClearedNamesTheDevice(t *testing.T) {
	m, err := New(Config{BlockSize: 2, NumBlocks: 8, HostBlocks: 4, Events: 16})
	require.NoError(t, err)
	run(t, m, []int32{1, 2, 3}, nil)
	m.DrainEvents(nil)
	require.NoError(t, m.ResetCache())
	evs := m.DrainEvents(nil)
	require.Len(t, evs, 1)
	assert.Equal(t, AllBlocksCleared, evs[0].Kind)
	assert.Equal(t, Device, evs[0].Medium)
}

// TestAudit53ChainOrderKeepsEveryBlock (M599): blocks whose parents form a
// cycle (only colliding hashes can make one) are not dropped: they come
// last, in their order, after the blocks the chain order places.
func TestAudit53ChainOrderKeepsEveryBlock(t *testing.T) {
	a, b, r, c := Hash{1}, Hash{2}, Hash{3}, Hash{4}
	blocks := []CachedBlock{
		{Hash: a, Parent: b, HasParent: true},
		{Hash: c, Parent: r, HasParent: true},
		{Hash: b, Parent: a, HasParent: true},
		{Hash: r},
	}
	got := chainOrder(append([]CachedBlock(nil), blocks...))
	want := []CachedBlock{blocks[3], blocks[1], blocks[0], blocks[2]}
	assert.Equal(t, want, got)
}

// TestAudit53SnapshotMediaAndRuns (M600, M603): Validate refuses the first
// medium past Host, and Events starts a new BlockStored where a chain
// crosses from one medium to the other.
func TestAudit53SnapshotMediaAndRuns(t *testing.T) {
	require.ErrorIs(t, (&Snapshot{BlockSize: 2, Blocks: []CachedBlock{{Medium: Host + 1}}}).Validate(), ErrInvalid)
	require.NoError(t, (&Snapshot{BlockSize: 2, Blocks: []CachedBlock{{Medium: Host}}}).Validate())
	a, b, c := Hash{1}, Hash{2}, Hash{3}
	snap := &Snapshot{BlockSize: 2, Blocks: []CachedBlock{
		{Hash: a, Medium: Device},
		{Hash: b, Parent: a, HasParent: true, Medium: Host},
		{Hash: c, Parent: b, HasParent: true, Medium: Host},
	}}
	evs := snap.Events(nil)
	require.Len(t, evs, 2)
	assert.Equal(t, Device, evs[0].Medium)
	assert.Equal(t, []Hash{a}, evs[0].Hashes)
	assert.Equal(t, Host, evs[1].Medium)
	assert.Equal(t, []Hash{b, c}, evs[1].Hashes)
	assert.Equal(t, a, evs[1].Parent)
}
