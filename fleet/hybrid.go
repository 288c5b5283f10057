package fleet

import (
	"fmt"
	"slices"
	"strconv"

	"github.com/pagedkv/pagedkv/paged"
)

// SetLayout records the KV cache group layout of the server called name,
// registering it when new: from then on its Score is the prefix it can
// actually hit under paged's rule for each group (see the package
// documentation, "Hybrid models"), and its events are checked against
// the layout (a group it does not have, a Shared group, another block
// size: ErrInvalid, nothing applied). The layout is kept in the backend,
// so every router sharing it scores the server the same way; it may be
// set before or after the server's first events (entries are kept per
// group either way). Setting the layout a server has is a no-op; a
// different one is ErrInvalid and changes nothing: a server changes its
// model only under a new life (Unregister it first). An invalid layout
// is ErrInvalid.
func (x *Index) SetLayout(name string, l Layout) error {
	if err := l.Validate(); err != nil {
		return fmt.Errorf("fleet: layout of %q: %w", name, err)
	}
	sc := newScorer(l)
	x.mu.Lock()
	defer x.mu.Unlock()
	x.clock()
	return x.retry(func(bool) error { return x.setLayout(name, sc) })
}

func (x *Index) setLayout(name string, sc *scorer) error {
	if err := x.ready(); err != nil {
		return err
	}
	id, s, err := x.register(name, false)
	if err != nil {
		return err
	}
	if s.st.HasLayout && s.layout == nil {
		// Another router recorded it since this one read the registry.
		if err := x.reload(); err != nil {
			return err
		}
		var ok bool
		if id, ok = x.byName[name]; !ok {
			return fmt.Errorf("fleet: set layout of %q: %w", name, errOwnerChanged)
		}
		s = &x.servers[id]
	}
	if s.layout != nil {
		if s.layout.text == sc.text {
			return nil
		}
		return fmt.Errorf("%w: server %q has layout %q, not %q (a server changes its layout only after Unregister)", ErrInvalid, name, s.layout.text, sc.text)
	}
	next := s.st
	next.Gen, next.tag, next.HasLayout = s.st.Gen+1, "", true
	cur, err := x.cfg.Backend.SetLayout(id, s.st, sc.text, next)
	if err != nil {
		return x.registryWriteFailed(s, cur, err, "set layout of "+strconv.Quote(name))
	}
	s.st, s.layout = next, sc
	x.layouts++
	return nil
}

// Layout returns the layout recorded for the server called name, as this
// Index last read the registry, and whether there is one this version
// reads. A record it cannot read (a newer router's kind) leaves that
// server scored nothing and partial, its text in ServerStatus.Layout.
func (x *Index) Layout(name string) (Layout, bool) {
	x.mu.Lock()
	defer x.mu.Unlock()
	id, ok := x.byName[name]
	if !ok || x.servers[id].layout == nil || x.servers[id].unreadable() {
		return Layout{}, false
	}
	l, err := ParseLayout(x.servers[id].layout.text)
	if err != nil {
		panic(fmt.Sprintf("fleet: layout %q no longer parses: %v", x.servers[id].layout.text, err))
	}
	return l, true
}

// keyed returns events with the hashes of groups other than 0 replaced
// by their keys (GroupKey), in scratch valid until the next call; events
// of group 0 alone are returned as they are.
func (x *Index) keyed(events []paged.Event) []paged.Event {
	total, other := 0, false
	for i := range events {
		total += len(events[i].Hashes)
		other = other || (events[i].Group != 0 && len(events[i].Hashes) > 0)
	}
	if !other {
		return events
	}
	x.evs = append(x.evs[:0], events...)
	x.evHash = slices.Grow(x.evHash[:0], total)
	for i := range x.evs {
		ev := &x.evs[i]
		if ev.Group == 0 {
			continue
		}
		start := len(x.evHash)
		for j := range ev.Hashes {
			x.evHash = append(x.evHash, GroupKey(&ev.Hashes[j], ev.Group))
		}
		ev.Hashes = x.evHash[start:len(x.evHash):len(x.evHash)]
	}
	return x.evs
}

// lookupKeys returns the keys a lookup asks for: the request's hashes
// (group 0), then, when some server has a layout, each further group any
// layout reads, the request's hashes keyed by that group (x.rows, x.rowOf).
func (x *Index) lookupKeys(hashes []paged.Hash) []paged.Hash {
	x.rows = x.rows[:0]
	if x.layouts == 0 {
		return hashes
	}
	if x.rowOf == nil {
		x.rowOf = make([]int, maxLayoutGroups)
	}
	for i := range x.rowOf {
		x.rowOf[i] = -1
	}
	for i := range x.servers {
		if sc := x.servers[i].layout; sc != nil {
			for _, g := range sc.uses {
				if g != 0 && x.rowOf[g] < 0 {
					x.rows = append(x.rows, g)
					x.rowOf[g] = len(x.rows)
				}
			}
		}
	}
	x.keys = append(x.keys[:0], hashes...)
	for _, g := range x.rows {
		for i := range hashes {
			x.keys = append(x.keys, GroupKey(&hashes[i], g))
		}
	}
	return x.keys
}

// scoreLayouts scores the servers with a layout that the lookup's
// holder sets cover (masks: rows of n keys, from lookupKeys; out's
// Blocks: group 0's runs), skipping those whose bit is in skip: each gets the longest prefix it can hit
// and its device part. A server whose layout reads a group the lookup
// did not ask for (another router recorded its layout during the lookup)
// is scored zero; markUncovered then marks it partial.
func (x *Index) scoreLayouts(masks []uint64, n int, out []Score, skip []uint64) {
	v := view{masks: masks, rowOf: x.rowOf, n: n, w: x.words}
	for i := range out {
		sc := x.servers[i].layout
		if sc == nil {
			continue
		}
		run0 := out[i].Blocks // group 0's run (runs)
		out[i].Blocks, out[i].Device = 0, 0
		if !sc.unreadable && sc.affinity == 0 {
			out[i].Affinity = run0
		}
		if skip[i/64]&(1<<(uint(i)%64)) != 0 || n == 0 || sc.unreadable || !x.covers(sc, masks, n) {
			continue
		}
		v.word, v.bit = i/64, 1<<(uint(i)%64)
		L := sc.hit(n, run0, &v)
		out[i].Blocks, out[i].Device = L, sc.device(L, &v)
		if g := sc.affinity; g > 0 {
			// The full-attention group comes after group 0 (a vLLM
			// engine's layer order): its run, which the hit is within.
			a := 0
			for a < n && v.held(g, a, false) {
				a++
			}
			out[i].Affinity = a
		}
	}
}

// covers reports whether a lookup's holder sets hold every group sc
// reads.
func (x *Index) covers(sc *scorer, masks []uint64, n int) bool {
	if len(masks) < (len(x.rows)+1)*n*2*x.words {
		return false
	}
	for _, g := range sc.uses {
		if g != 0 && (x.rowOf == nil || x.rowOf[g] < 0) {
			return false
		}
	}
	return true
}

// coversAll reports whether a lookup's holder sets cover every server
// with a layout.
func (x *Index) coversAll(masks []uint64, n int) bool {
	for i := range x.servers {
		if sc := x.servers[i].layout; sc != nil && !x.covers(sc, masks, n) {
			return false
		}
	}
	return true
}

// markUncovered marks partial the servers scoreLayouts could not score.
func (x *Index) markUncovered(masks []uint64, n int, out []Score) {
	for i := range out {
		if sc := x.servers[i].layout; sc != nil && n > 0 && !x.covers(sc, masks, n) {
			out[i].Partial = true
		}
	}
}
