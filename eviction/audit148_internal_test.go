package eviction

import (
	"fmt"
	"math/rand/v2"
	"slices"
	"testing"

	"github.com/stretchr/testify/assert"
	"github.com/stretchr/testify/require"

	"github.com/pagedkv/pagedkv/allocator"
)

// Tests that kill the eviction mutants of the hundredth mutation round
// (docs/testing.md, "Mutation testing, hundredth round").

// TestAudit148ExpiryAgainstModel: the radix heap of expiry ticks lapses
// exactly the blocks whose tick is now or earlier at each expire, against
// a plain map, over random pushes, removals and advances by small and
// large steps (some blocks queued again from lapse, as Priority does).
// The lapses were seen only through Priority's tests, and a bucket
// misplaced by push (M4143) made drain spin until the test binary's
// timeout.
func TestAudit148ExpiryAgainstModel(t *testing.T) {
	const capacity = 32
	r := rand.New(rand.NewPCG(148, 1))
	for round := range 60 {
		e := newExpiry(capacity)
		model := map[allocator.BlockID]int64{}
		var now int64
		for step := range 60 {
			switch op := r.IntN(4); {
			case op <= 1:
				id := allocator.BlockID(r.IntN(capacity))
				if e.queued(id) {
					e.remove(id)
					delete(model, id)
					break
				}
				t := now + 1 + r.Int64N(1<<uint(r.IntN(12)))
				e.push(id, t)
				model[id] = t
			default:
				next := now + r.Int64N(1<<uint(r.IntN(11)))
				var got []allocator.BlockID
				// A broken heap can spin in drain: a deadline fails it at
				// once (see a92Within).
				a92Within(t, fmt.Sprintf("round %d step %d: expire(%d)", round, step, next), func() {
					e.expire(next, func(id allocator.BlockID) {
						got = append(got, id)
						if id%3 == 0 {
							// queued again at once, for a later tick
							e.push(id, next+1+int64(id))
						}
					})
				})
				var want []allocator.BlockID
				if next > now {
					for id, t := range model {
						if t <= next {
							want = append(want, id)
							delete(model, id)
						}
					}
					now = next
				}
				for _, id := range got {
					if id%3 == 0 {
						model[id] = next + 1 + int64(id)
					}
				}
				slices.Sort(got)
				slices.Sort(want)
				require.Equal(t, want, got, "round %d step %d: expire(%d)", round, step, next)
			}
			for id := range allocator.BlockID(capacity) {
				_, in := model[id]
				require.Equal(t, in, e.queued(id), "round %d step %d: block %d", round, step, id)
			}
		}
	}
}

// TestAudit148ExpiryTickInALowBucket: a tick that shares its high bits
// with the last one sits in the bucket of the highest bit in which they
// differ, so the advance to it drains that bucket: ticks 10 after 8 (bit
// 1) and 11 after 8 lapse at 10 and 11, not at the next power of two.
func TestAudit148ExpiryTickInALowBucket(t *testing.T) {
	e := newExpiry(4)
	var lapsed []allocator.BlockID
	lapse := func(id allocator.BlockID) { lapsed = append(lapsed, id) }
	e.expire(8, lapse)
	e.push(1, 10)
	e.push(2, 11)
	e.expire(9, lapse)
	assert.Empty(t, lapsed)
	e.expire(10, lapse)
	assert.Equal(t, []allocator.BlockID{1}, lapsed)
	e.expire(11, lapse)
	assert.Equal(t, []allocator.BlockID{1, 2}, lapsed)
	assert.False(t, e.queued(1))
	assert.False(t, e.queued(2))
}
