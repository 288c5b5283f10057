package eviction

import (
	"testing"
	"time"

	"github.com/pagedkv/pagedkv/allocator"
	"github.com/stretchr/testify/assert"
)

// a92Within runs f and fails the test if it has not returned after a
// second: the cases below spin for good when broken, and a deadline makes
// them fail at once instead of at the test binary's timeout.
func a92Within(t *testing.T, what string, f func()) {
	t.Helper()
	done := make(chan struct{})
	go func() {
		defer close(done)
		f()
	}()
	select {
	case <-done:
	case <-time.After(time.Second):
		t.Fatalf("%s did not return", what)
	}
}

// TestAudit92GhostFullOfPowerOfTwoSlots: a ghost whose slots are a power
// of two, every slot taken, still answers a lookup of a key it does not
// hold: its index keeps empty cells (twice the slots), which end every
// probe run. With as many cells as slots (M2034) the probe went round for
// good.
func TestAudit92GhostFullOfPowerOfTwoSlots(t *testing.T) {
	for _, slots := range []int{1, 4, 16} {
		g := newGhost(slots, 2)
		for k := range slots {
			g.add(k%2, uint64(k+1))
		}
		a92Within(t, "a lookup in a full ghost", func() {
			l, _ := g.find(uint64(slots + 7))
			assert.Equal(t, -1, l, "slots %d", slots)
			for k := range slots {
				l, s := g.find(uint64(k + 1))
				assert.Equal(t, k%2, l, "slots %d key %d", slots, k+1)
				if l >= 0 {
					assert.Equal(t, uint64(k+1), g.keys[s])
				}
			}
		})
	}
}

// TestAudit92CLOCKEveryBitSet: a CLOCK whose every block has its
// reference bit set gives each a second chance once and then evicts the
// oldest: the hand clears the bits it passes (M2027 kept them, and Victim
// went round for good).
func TestAudit92CLOCKEveryBitSet(t *testing.T) {
	p := NewCLOCK(4).(*CLOCK)
	for id := range allocator.BlockID(4) {
		p.Insert(id)
		p.Access(id)
	}
	a92Within(t, "Victim", func() {
		for want := range allocator.BlockID(4) {
			id, ok := p.Victim()
			assert.True(t, ok)
			assert.Equal(t, want, id)
		}
		_, ok := p.Victim()
		assert.False(t, ok)
	})
}

// TestAudit92GhostCollidingKeys: two keys with the same home cell are both
// found, and both removed: the second goes to the next free cell of the
// probe run. Written into its home cell over the first (M2040), the
// first was lost from the index and its removal searched for good.
func TestAudit92GhostCollidingKeys(t *testing.T) {
	g := newGhost(4, 1)
	k1 := uint64(1)
	k2 := k1 + 1
	for g.home(k2) != g.home(k1) {
		k2++
	}
	a92Within(t, "the colliding keys", func() {
		g.add(0, k1)
		g.add(0, k2)
		for _, k := range []uint64{k1, k2} {
			l, s := g.find(k)
			if assert.Equal(t, 0, l, "key %d", k) {
				g.remove(s)
			}
		}
		assert.Zero(t, g.len(0))
	})
}
