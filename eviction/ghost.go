package eviction

import (
	"math/bits"

	"github.com/pagedkv/pagedkv/allocator"
)

// ghost remembers the content keys of blocks given up recently, without
// the blocks: ARC's B1 and B2, S3-FIFO's G. It holds up to a fixed number of
// keys in one or more LRU lists that share a pool of slots, and finds a key
// through an open-addressing index (linear probing, backward-shift
// deletion) over a slice, so nothing allocates after construction and every
// operation is O(1) expected.
//
// Ghosts are keyed by content, not block ID: the block that held the
// content has been reused by the time its ghost is consulted.
type ghost struct {
	keys  []uint64
	lists []list // over slots; list i has its sentinel at slots+i
	which []int8 // list of each slot, -1 when the slot is free
	free  []int32
	index []int32 // slot+1, 0 for an empty cell
	shift uint
}

func newGhost(slots, lists int) ghost {
	slots = max(slots, 1)
	ln := links(slots, lists)
	g := ghost{
		keys:  make([]uint64, slots),
		lists: make([]list, lists),
		which: make([]int8, slots),
		free:  make([]int32, 0, slots),
	}
	for i := range g.lists {
		g.lists[i] = newList(ln, slots, slots+i)
	}
	for s := slots - 1; s >= 0; s-- {
		g.which[s] = -1
		g.free = append(g.free, int32(s))
	}
	// Twice as many cells as slots keeps probe sequences short.
	cells := 1 << bits.Len(uint(2*slots-1))
	g.index = make([]int32, cells)
	g.shift = uint(64 - bits.Len(uint(cells-1)))
	return g
}

// home is the first cell probed for key; keys are hashes already, but
// tests and callers without hashes use small integers, so mix them.
func (g *ghost) home(key uint64) int {
	return int((key * 0x9e3779b97f4a7c15) >> g.shift)
}

func (g *ghost) len(l int) int { return g.lists[l].n }

// full reports whether the next add will push out an old key.
func (g *ghost) full() bool { return len(g.free) == 0 }

// find returns the list that holds key and its slot, or -1.
func (g *ghost) find(key uint64) (l int, slot int32) {
	mask := len(g.index) - 1
	for c := g.home(key); ; c = (c + 1) & mask {
		s := g.index[c] - 1
		if s < 0 {
			return -1, -1
		}
		if g.keys[s] == key {
			return int(g.which[s]), s
		}
	}
}

// add records key as the most recent entry of list l. When every slot is
// taken, the oldest entry of the longest list makes room, which keeps the
// total bounded as ARC's |B1|+|B2| <= c and S3-FIFO's fixed-size G are.
func (g *ghost) add(l int, key uint64) {
	if old, s := g.find(key); old >= 0 {
		g.remove(s)
	}
	if len(g.free) == 0 {
		longest := 0
		for i := range g.lists {
			if g.lists[i].n > g.lists[longest].n {
				longest = i
			}
		}
		g.dropOldest(longest)
	}
	s := g.free[len(g.free)-1]
	g.free = g.free[:len(g.free)-1]
	g.keys[s] = key
	g.which[s] = int8(l)
	g.lists[l].pushBack(allocator.BlockID(s))
	mask := len(g.index) - 1
	c := g.home(key)
	for g.index[c] != 0 {
		c = (c + 1) & mask
	}
	g.index[c] = s + 1
}

// dropOldest forgets the oldest key of list l, if any.
func (g *ghost) dropOldest(l int) {
	if s, ok := g.lists[l].front(); ok {
		g.remove(int32(s))
	}
}

// remove forgets the key in slot s.
func (g *ghost) remove(s int32) {
	g.lists[g.which[s]].remove(allocator.BlockID(s))
	g.which[s] = -1
	g.free = append(g.free, s)
	mask := len(g.index) - 1
	c := g.home(g.keys[s])
	for g.index[c] != s+1 {
		c = (c + 1) & mask
	}
	// Backward-shift deletion: pull later entries of the probe run into
	// the hole unless that would move one before its home cell.
	for {
		g.index[c] = 0
		n := c
		for {
			n = (n + 1) & mask
			t := g.index[n] - 1
			if t < 0 {
				return
			}
			h := g.home(g.keys[t])
			// t may move to c if its home is not cyclically in (c, n].
			if (n-h)&mask >= (n-c)&mask {
				g.index[c] = t + 1
				c = n
				break
			}
		}
	}
}
