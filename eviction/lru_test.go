package eviction

import (
	"testing"

	"github.com/stretchr/testify/assert"

	"github.com/pagedkv/pagedkv/allocator"
)

func TestLRUEvictsLeastRecentlyReleased(t *testing.T) {
	c := newCache(t, NewLRU, 4)
	c.fill(4)
	c.hit(0) // released again: now the most recent
	assert.Equal(t, []allocator.BlockID{1, 2, 3, 0}, c.victims(4))
}

func TestFIFOIgnoresHits(t *testing.T) {
	c := newCache(t, NewFIFO, 4)
	c.fill(4)
	c.hit(0, 0)
	// Content keeps its creation order; only new content joins the back.
	assert.Equal(t, []allocator.BlockID{0, 1}, c.victims(2))
	c.scan(1) // block 2 goes; new content in it joins the back
	assert.Equal(t, []allocator.BlockID{3, 2}, c.victims(2))
}

// TestLRUTryMatchesChecked drives TryInsert and TryRemove with valid and
// misused IDs: where Insert or Remove would panic they report false and
// change nothing, elsewhere they act as Insert and Remove on a twin LRU.
func TestLRUTryMatchesChecked(t *testing.T) {
	const n = 6
	fast, checked := NewLRU(n).(*LRU), NewLRU(n).(*LRU)
	ids := []allocator.BlockID{-1, n, n + 1, 0, 3, 5, 3, 0, 2, 5, 1, 4, 2}
	for step, id := range ids {
		for _, insert := range []bool{true, false, true} {
			var ok bool
			if insert {
				ok = fast.TryInsert(id)
			} else {
				ok = fast.TryRemove(id)
			}
			inRange := id >= 0 && id < n
			want := inRange && checked.Contains(id) != insert
			assert.Equal(t, want, ok, "step %d: insert %v of %d", step, insert, id)
			if ok {
				if insert {
					checked.Insert(id)
				} else {
					checked.Remove(id)
				}
			} else if insert {
				assert.Panics(t, func() { fast.Insert(id) }, "Insert(%d)", id)
			} else {
				assert.Panics(t, func() { fast.Remove(id) }, "Remove(%d)", id)
			}
			assert.Equal(t, checked.Len(), fast.Len())
		}
	}
	for {
		a, aok := fast.Victim()
		b, bok := checked.Victim()
		assert.Equal(t, b, a)
		assert.Equal(t, bok, aok)
		if !aok {
			break
		}
	}
}
