package eviction

import (
	"fmt"

	"github.com/pagedkv/pagedkv/allocator"
)

// audit10Check verifies the internal bookkeeping of the policies whose
// documentation states bounds on it (ARC, S3-FIFO, SLRU, LFU) and the
// structure of LeafLRU's heaps; nil for the others.
func audit10Check(p Policy) error {
	switch p := p.(type) {
	case *ARC:
		n1, n2 := 0, 0
		for _, t := range p.tag {
			switch t {
			case arcT1:
				n1++
			case arcT2:
				n2++
			}
		}
		ghosts := p.g.len(ghostB1) + p.g.len(ghostB2)
		switch {
		case n1 != p.n1 || n2 != p.n2:
			return fmt.Errorf("ARC counts T1=%d T2=%d, tags say %d %d", p.n1, p.n2, n1, n2)
		case p.p < 0 || p.p > p.c:
			return fmt.Errorf("ARC target p=%d outside [0, %d]", p.p, p.c)
		case p.t1.n > n1 || p.t2.n > n2:
			return fmt.Errorf("ARC lists hold %d, %d blocks of %d, %d", p.t1.n, p.t2.n, n1, n2)
		case ghosts > max(p.c, 1):
			return fmt.Errorf("ARC holds %d ghosts, capacity %d", ghosts, p.c)
		}
	case *S3FIFO:
		for id := range allocator.BlockID(len(p.queue)) {
			onMain := p.main.holds(id) && p.queue[id] == queueMain
			onSmall := p.small.holds(id) && p.queue[id] != queueMain
			if p.small.holds(id) && !onMain && !onSmall {
				return fmt.Errorf("S3FIFO block %d is queued in the wrong list", id)
			}
			if p.evictable[id] && !p.small.holds(id) {
				return fmt.Errorf("S3FIFO block %d is evictable but in no queue", id)
			}
			if p.freq[id] > s3MaxFreq {
				return fmt.Errorf("S3FIFO block %d has frequency %d", id, p.freq[id])
			}
		}
		if g := p.g.len(0); g > max(len(p.queue)-p.smallMax, 1) {
			return fmt.Errorf("S3FIFO holds %d ghosts", g)
		}
	case *SLRU:
		n := 0
		for _, t := range p.tag {
			if t == queueMain {
				n++
			}
		}
		if n != p.nprot {
			return fmt.Errorf("SLRU counts %d protected, tags say %d", p.nprot, n)
		}
	case *LFU:
		for b := range p.buckets {
			if occ := p.occ[b/64]>>(b%64)&1 == 1; occ != (p.buckets[b].n > 0) {
				return fmt.Errorf("LFU bucket %d holds %d blocks, occupancy bit %v", b, p.buckets[b].n, occ)
			}
		}
		for w := range p.occ {
			if (p.summary>>w&1 == 1) != (p.occ[w] != 0) {
				return fmt.Errorf("LFU summary bit %d disagrees with its word", w)
			}
		}
	case *LeafLRU:
		for _, q := range []*stampQueue{&p.bare, &p.late} {
			if err := q.h.check(); err != nil {
				return err
			}
			prev := uint64(0)
			ln, s := q.l.links, q.l.sentinel
			for id := ln[s].next; id != s; id = ln[id].next {
				if p.stamp[id] <= prev {
					return fmt.Errorf("LeafLRU queue list out of stamp order at block %d", id)
				}
				prev = p.stamp[id]
			}
		}
	}
	return nil
}

// check verifies the heap property and the positions.
func (h *stampHeap) check() error {
	for i, e := range h.e {
		if h.pos[e.id] != int32(i) || e.stamp != h.stamp[e.id] {
			return fmt.Errorf("heap entry %d (block %d) has position %d, stamp %d of %d", i, e.id, h.pos[e.id], e.stamp, h.stamp[e.id])
		}
		if i > 0 && h.e[(i-1)/2].stamp > e.stamp {
			return fmt.Errorf("heap entry %d is less than its parent", i)
		}
	}
	n := 0
	for _, x := range h.pos {
		if x >= 0 {
			n++
		}
	}
	if n != len(h.e) {
		return fmt.Errorf("heap holds %d entries, %d positions", len(h.e), n)
	}
	return nil
}
