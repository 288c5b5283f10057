package fleet

// Affinity: why a router for hybrid servers looks past the exact hit.
//
// A hybrid server's Score.Blocks is the hit it gives now; Score.Affinity
// is its run of group-0 (full-attention) blocks, the part of the
// request's prefix family it holds. They differ where the blocks a hit
// needs in the other groups are missing: window blocks evicted, no state
// checkpoint at the point. A request routed there rebuilds what is
// missing up to its branch point, which is its group-0 run there: paged
// takes a state checkpoint at that point and keeps the window before it
// (docs/hybrid.md), so the family's next request can hit Affinity blocks
// there. Routed to a server holding none of the family, it leaves
// nothing of the kind. A router that reads only Blocks sees zeros
// everywhere for such a family and spreads it by load, so that no
// server ever passes the point again (docs/fleet.md, "Hybrid models in
// the fleet study", measures it).
//
// The gain is a lookahead of one request: sending this request to server
// s gives Blocks(s) now, and the family's next request, which shares the
// prefix this one shares with the fleet, can then hit max(Affinity(s),
// the best Blocks elsewhere), against the best Blocks anywhere had this
// request not rebuilt anything. Their difference,
//
//	gain(s) = max(Affinity(s), max Blocks of the others) - max Blocks of all
//
// is what s adds to the family's next hit. It is 0 wherever Affinity
// equals Blocks (every server of one group, and any Score made without
// Affinity), so such a fleet is routed as before, and it never exceeds
// Affinity - Blocks. CostAware counts it as prefill the next request
// saves, PrefixAware as blocks of score; Score itself stays the exact
// hit.

// The leader's "max Blocks of the others" is the second highest Blocks,
// at most the highest, so for every server the gain reduces to
//
//	gain(s) = max(Affinity(s) - max Blocks of all, 0)
//
// (where Affinity(s) is below the highest Blocks, both forms give 0), and
// the highest Blocks among the candidates is all it needs.

// affinity holds what the gains of a set of candidates depend on: the
// highest Blocks among them.
type affinity struct {
	best int
}

// affinityOf scans cands for their highest Blocks, among those whose load
// is under loadCap when it is positive (PrefixAware.LoadCap: a server
// at the cap is no alternative for the family's next request either).
func affinityOf(cands []Candidate, loadCap float64) affinity {
	var a affinity
	for i := range cands {
		if loadCap > 0 && loadOf(&cands[i]) >= loadCap {
			continue
		}
		a.best = max(a.best, cands[i].Blocks)
	}
	return a
}

// gain returns candidate i's gain in blocks (see above), at least 0.
func (a affinity) gain(cands []Candidate, i int) int {
	return max(cands[i].Affinity-a.best, 0)
}
