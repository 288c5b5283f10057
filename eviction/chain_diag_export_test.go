//go:build cachediag

package eviction

import (
	"math/bits"

	"github.com/pagedkv/pagedkv/allocator"
)

// DiagChain is Chain with its Victim calls reported (docs/cache.md, tenth
// round; built only with the cachediag tag): each call's candidates (each
// class's oldest block and, in another age bucket, its youngest release's
// deepest; none while an orphan is held), and the victim. With Choose set,
// Choose picks the victim among the candidates instead of Chain's scores.
type DiagChain struct {
	*Chain
	OnVictim func(cands []allocator.BlockID, young []bool, victim allocator.BlockID, orphan bool)
	Choose   func(cands []allocator.BlockID) allocator.BlockID
	cands    []allocator.BlockID
	young    []bool
}

// NewDiagChain returns a DiagChain for block IDs in [0, n).
func NewDiagChain(n int) *DiagChain { return &DiagChain{Chain: NewChain(n).(*Chain)} }

// Victim collects the candidates as Chain.Victim weighs them, then gives
// up Chain's victim or Choose's.
func (d *DiagChain) Victim() (allocator.BlockID, bool) {
	d.cands, d.young = d.cands[:0], d.young[:0]
	_, orphan := d.lists[chainClasses].front()
	if !orphan {
		for m := d.held; m != 0; m &= m - 1 {
			q := &d.lists[bits.TrailingZeros64(m)]
			f := allocator.BlockID(q.links[q.sentinel].next)
			d.cands, d.young = append(d.cands, f), append(d.young, false)
			y := d.first[q.links[q.sentinel].prev]
			if d.bucket(d.now-d.stamp[y]) != d.bucket(d.now-d.stamp[f]) {
				d.cands, d.young = append(d.cands, y), append(d.young, true)
			}
		}
	}
	var v allocator.BlockID
	var ok bool
	if d.Choose != nil && !orphan && len(d.cands) > 0 {
		v, ok = d.evict(d.Choose(d.cands))
	} else {
		v, ok = d.Chain.Victim()
	}
	if d.OnVictim != nil {
		d.OnVictim(d.cands, d.young, v, orphan)
	}
	return v, ok
}

// DiagClass returns held block id's class (chainClasses for an orphan).
func (d *DiagChain) DiagClass(id allocator.BlockID) int { return int(d.cls[id]) }

// DiagAge returns held block id's age in pool turnovers.
func (d *DiagChain) DiagAge(id allocator.BlockID) float64 {
	return float64(d.now-d.stamp[id]) / float64(d.capacity)
}

// DiagScore returns held block id's hit density as Victim reads it, -1
// for an orphan.
func (d *DiagChain) DiagScore(id allocator.BlockID) float64 {
	if d.cls[id] == chainClasses {
		return -1
	}
	return d.score[d.cls[id]][d.bucket(d.now-d.stamp[id])]
}
