package eviction

import (
	"math/rand/v2"
	"testing"

	"github.com/stretchr/testify/require"
)

// TestGhostAgainstModel checks the ghost lists and their index against
// plain slices: order, membership and the bound on slots.
func TestGhostAgainstModel(t *testing.T) {
	const slots = 24
	rng := rand.New(rand.NewPCG(5, 6))
	g := newGhost(slots, 2)
	model := [2][]uint64{}
	find := func(key uint64) (int, int) {
		for l := range model {
			for i, k := range model[l] {
				if k == key {
					return l, i
				}
			}
		}
		return -1, -1
	}
	del := func(l, i int) { model[l] = append(model[l][:i:i], model[l][i+1:]...) }
	for range 20000 {
		// Keys from a small range collide in the index and repeat.
		key := uint64(rng.IntN(3 * slots))
		if rng.IntN(2) == 0 {
			key <<= 40
		}
		switch rng.IntN(4) {
		case 0, 1:
			l := rng.IntN(2)
			if ml, i := find(key); ml >= 0 {
				del(ml, i)
			}
			if len(model[0])+len(model[1]) == slots {
				longest := 0
				if len(model[1]) > len(model[0]) {
					longest = 1
				}
				del(longest, 0)
			}
			model[l] = append(model[l], key)
			g.add(l, key)
		case 2:
			ml, i := find(key)
			l, s := g.find(key)
			require.Equal(t, ml, l, "key %d", key)
			if l >= 0 {
				require.Equal(t, key, g.keys[s])
				g.remove(s)
				del(ml, i)
			}
		case 3:
			l := rng.IntN(2)
			g.dropOldest(l)
			if len(model[l]) > 0 {
				del(l, 0)
			}
		}
		// Plain comparisons in the hot loop; require only reports.
		for l := range model {
			if len(model[l]) != g.len(l) {
				require.Equal(t, len(model[l]), g.len(l), "length of list %d", l)
			}
			for _, k := range model[l] {
				if fl, _ := g.find(k); fl != l {
					require.Equal(t, l, fl, "list of key %d", k)
				}
			}
			if f, ok := g.lists[l].front(); ok && model[l][0] != g.keys[f] {
				require.Equal(t, model[l][0], g.keys[f], "oldest of list %d", l)
			}
		}
	}
}
