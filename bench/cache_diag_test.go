//go:build cachediag

package bench

import (
	"encoding/binary"
	"fmt"
	"math/bits"
	"os"
	"sort"
	"strconv"
	"testing"
	"time"

	"github.com/pagedkv/pagedkv/eviction"
	"github.com/pagedkv/pagedkv/paged"
)

// TestCacheDiagBelady compares LRU, Chain and the Belady oracle on the
// conversation half at 3M tokens (docs/cache.md, tenth round), request by
// request (each return by its gap since the conversation's previous
// request, in pool turnovers of released blocks, and by that request's
// turn and new blocks) and eviction by eviction (each victim's age since
// its release, and whether and how soon its content is asked for again).
// CACHEDIAG_TRACE and CACHEDIAG_CAP (tokens) change the trace and the
// capacity. Run with
//
//	go test -tags cachediag ./bench -run CacheDiagBelady -v
func TestCacheDiagBelady(t *testing.T) {
	path := "traces/mooncake_conversation_first_half.jsonl"
	if p := os.Getenv("CACHEDIAG_TRACE"); p != "" {
		path = p
	}
	reqs, err := ReadTraceFile(path, "mooncake")
	if err != nil {
		t.Fatal(err)
	}
	capTok := 3000000
	if s := os.Getenv("CACHEDIAG_CAP"); s != "" {
		capTok, _ = strconv.Atoi(s)
	}
	tr, err := CacheTraceFromHashes(reqs, MooncakeBlockSize)
	if err != nil {
		t.Fatal(err)
	}
	capacity := capTok / MooncakeBlockSize
	n := tr.Requests()
	conv := Conversations(reqs)
	prev := make([]int, n)
	turn := make([]int, n)
	lastOf := map[int]int{}
	for r := range n {
		prev[r] = -1
		if p, ok := lastOf[conv[r]]; ok {
			prev[r] = p
			turn[r] = turn[p] + 1
		}
		lastOf[conv[r]] = r
	}
	// infinite-cache hit prefix, new blocks per request
	ih := make([]int, n)
	seen := make([]bool, tr.distinct)
	for r := range n {
		lo, hi := tr.refs(r)
		for j := lo; j < hi && seen[tr.key[j]]; j++ {
			ih[r]++
		}
		for j := lo; j < hi; j++ {
			seen[tr.key[j]] = true
		}
	}
	// release clock: blocks released so far, at each request's start
	clk := make([]int64, n+1)
	for r := range n {
		lo, hi := tr.refs(r)
		clk[r+1] = clk[r] + int64(hi-lo)
	}
	// next request referencing each key after request r: via nextUses
	next := tr.nextUses(capacity)

	type run struct {
		hits []int
		// evictions: key, request index, age in releases, class-ish
		evKey  []int32
		evReq  []int32
		evAge  []int64
		evNext []int32 // next request referencing the key, or noNext
	}
	replay := func(name string) run {
		var rr run
		rr.hits = make([]int, n)
		var oracle *oracleFeed
		var f eviction.Factory
		switch name {
		case "belady":
			f = func(nb int) eviction.Policy {
				oracle = newOracleFeed(tr, nb, capacity)
				return oracle.p
			}
		default:
			f, _ = eviction.ByName(name)
		}
		m, err := paged.New(paged.Config{BlockSize: tr.BlockSize, NumBlocks: capacity + 1, Policy: f, Events: 1 << 16})
		if err != nil {
			t.Fatal(err)
		}
		dense := map[uint64]int32{}
		for j, h := range tr.hashes {
			dense[binary.LittleEndian.Uint64(h[:8])] = tr.key[j]
		}
		relAt := make([]int64, tr.distinct)
		nextAt := make([]int32, tr.distinct) // next use of the key after its last reference
		var evs []paged.Event
		opts := &paged.SeqOptions{AllowFullHit: true}
		for r := range n {
			lo, hi := tr.refs(r)
			id, cached, err := m.CreateFromHashes(tr.hashes[lo:hi], (hi-lo)*tr.BlockSize, opts)
			if err != nil {
				t.Fatal(err)
			}
			rr.hits[r] = cached / tr.BlockSize
			evs = m.DrainEvents(evs[:0])
			for _, e := range evs {
				if e.Kind != paged.BlockRemoved {
					continue
				}
				for _, h := range e.Hashes {
					k := dense[binary.LittleEndian.Uint64(h[:8])]
					rr.evKey = append(rr.evKey, k)
					rr.evReq = append(rr.evReq, int32(r))
					rr.evAge = append(rr.evAge, clk[r]-relAt[k])
					rr.evNext = append(rr.evNext, nextAt[k])
				}
			}
			if oracle != nil {
				table, _ := m.Table(id)
				oracle.passed(lo, hi, table)
			}
			if err := m.Free(id); err != nil {
				t.Fatal(err)
			}
			for j := lo; j < hi; j++ {
				relAt[tr.key[j]] = clk[r+1]
				nextAt[tr.key[j]] = next[j]
			}
		}
		return rr
	}
	pols := []string{"lru", "chain", "belady"}
	runs := map[string]run{}
	for _, p := range pols {
		runs[p] = replay(p)
	}
	tot := func(h []int) int {
		s := 0
		for _, x := range h {
			s += x
		}
		return s
	}
	refs := tr.References()
	for _, p := range pols {
		fmt.Printf("%s hits %d rate %.4f\n", p, tot(runs[p].hits), float64(tot(runs[p].hits))/float64(refs))
	}
	C := float64(capacity)
	gapB := func(g float64) int { // turnovers: <.25, .25-.5, .5-1, 1-2, 2-4, 4-8, 8+
		switch {
		case g < 0.25:
			return 0
		case g < 0.5:
			return 1
		case g < 1:
			return 2
		case g < 2:
			return 3
		case g < 4:
			return 4
		case g < 8:
			return 5
		}
		return 6
	}
	gapNames := []string{"<1/4", "1/4-1/2", "1/2-1", "1-2", "2-4", "4-8", "8+"}
	// A. hits of returns by gap (prev's release to r's start), prev turn, prev size
	type agg struct{ max, lru, chain, bel, cnt int }
	var byGap [7]agg
	var byTurn [3][4]agg // prev turn 0/1/2+, prev new size class: 1-3, 4-15, 16-63, 64+
	sizeB := func(x int) int {
		switch {
		case x < 4:
			return 0
		case x < 16:
			return 1
		case x < 64:
			return 2
		}
		return 3
	}
	other := agg{}
	for r := range n {
		a := agg{ih[r], runs["lru"].hits[r], runs["chain"].hits[r], runs["belady"].hits[r], 1}
		add := func(x *agg) {
			x.max += a.max
			x.lru += a.lru
			x.chain += a.chain
			x.bel += a.bel
			x.cnt++
		}
		if prev[r] < 0 {
			add(&other)
			continue
		}
		p := prev[r]
		g := float64(clk[r]-clk[p+1]) / C
		add(&byGap[gapB(g)])
		lo, hi := tr.refs(p)
		add(&byTurn[min(turn[p], 2)][sizeB(hi-lo-ih[p])])
	}
	fmt.Printf("A. returns by gap since the conversation's previous request, in pool turnovers: count max lru chain belady (chain/lru, belady-chain)\n")
	for i, x := range byGap {
		fmt.Printf("  %-8s %5d %6d %6d %6d %6d  %.2fx %+6d\n", gapNames[i], x.cnt, x.max, x.lru, x.chain, x.bel, float64(x.chain)/float64(max(x.lru, 1)), x.bel-x.chain)
	}
	fmt.Printf("  first turns %5d %6d %6d %6d %6d\n", other.cnt, other.max, other.lru, other.chain, other.bel)
	fmt.Printf("A2. returns by the previous request's turn (0 first, 1 second, 2 later) and new blocks (0: <4, 1: 4-15, 2: 16-63, 3: 64+): count max lru chain belady (belady-chain)\n")
	for i := range byTurn {
		for j := range byTurn[i] {
			x := byTurn[i][j]
			fmt.Printf("  turn %d size %d: %5d %6d %6d %6d %6d %+6d\n", i, j, x.cnt, x.max, x.lru, x.chain, x.bel, x.bel-x.chain)
		}
	}
	// B. evictions by age at eviction and whether content returns (and when)
	for _, p := range pols {
		rr := runs[p]
		var tab [12][3]int // age octave in 1/16 turnovers; never / later, returning within 1 turnover of eviction / later beyond
		for i := range rr.evKey {
			u := uint64(float64(rr.evAge[i]) * 16 / C)
			b := min(bits.Len64(u), 11)
			c := 0
			if nx := rr.evNext[i]; nx != noNext {
				if float64(clk[nx]-clk[rr.evReq[i]])/C < 1 {
					c = 1
				} else {
					c = 2
				}
			}
			tab[b][c]++
		}
		fmt.Printf("B. %s evictions by age since release, in pool turnovers (age<X: from X/2 to X): content never asked for again / again within 1 turnover of the eviction / again later\n", p)
		for b, x := range tab {
			if x[0]+x[1]+x[2] == 0 {
				continue
			}
			fmt.Printf("  age<%5.3f: %7d %7d %7d\n", float64(uint64(1)<<b)/16, x[0], x[1], x[2])
		}
	}
}

// TestCacheDiagFeatures measures, on the conversation half, how often a
// request's conversation comes back by what a server knows at its release
// that the study's replay does not pass to the policy (docs/cache.md,
// tenth round): its output length and its total length, each against the
// turn (first or later); requests within 10 minutes of the trace's end,
// whose next turn could not be seen, are left out. Then the gap to the
// next turn by the earlier request's turn and new blocks. Run with
//
//	go test -tags cachediag ./bench -run CacheDiagFeatures -v
func TestCacheDiagFeatures(t *testing.T) {
	reqs, err := ReadTraceFile("traces/mooncake_conversation_first_half.jsonl", "mooncake")
	if err != nil {
		t.Fatal(err)
	}
	n := len(reqs)
	conv := Conversations(reqs)
	prev, turn, back := make([]int, n), make([]int, n), make([]bool, n)
	lastOf := map[int]int{}
	for r := range n {
		prev[r] = -1
		if p, ok := lastOf[conv[r]]; ok {
			prev[r], turn[r], back[p] = p, turn[p]+1, true
		}
		lastOf[conv[r]] = r
	}
	newBlocks := make([]int, n)
	seen := map[int64]bool{}
	for r, q := range reqs {
		k := 0
		for k < len(q.HashIDs) && seen[q.HashIDs[k]] {
			k++
		}
		newBlocks[r] = len(q.HashIDs) - k
		for _, h := range q.HashIDs {
			seen[h] = true
		}
	}
	end := reqs[n-1].Arrival - 10*time.Minute
	parts := []struct {
		name string
		in   func(r int) bool
	}{
		{"half", func(int) bool { return true }},
		{"q1", func(r int) bool { return r < 3007 }},
		{"q2", func(r int) bool { return r >= 3007 }},
		{"conv0/2", func(r int) bool { return conv[r]%2 == 0 }},
		{"conv1/2", func(r int) bool { return conv[r]%2 == 1 }},
	}
	table := func(what string, key func(r int) int, label func(k int) string) {
		fmt.Printf("returns by %s (first turns | later turns): requests, share that comes back\n", what)
		for _, p := range parts {
			var cnt, ret [2][16]int
			for r := range n {
				if !p.in(r) || reqs[r].Arrival > end {
					continue
				}
				tt, k := min(turn[r], 1), key(r)
				cnt[tt][k]++
				if back[r] {
					ret[tt][k]++
				}
			}
			fmt.Printf("  %s\n", p.name)
			for tt := range cnt {
				for k := range cnt[tt] {
					if cnt[tt][k] >= 20 {
						fmt.Printf("    %s %-12s %5d %.2f\n", []string{"first", "later"}[tt], label(k), cnt[tt][k], float64(ret[tt][k])/float64(cnt[tt][k]))
					}
				}
			}
		}
	}
	table("output tokens", func(r int) int { return min(bits.Len(uint(reqs[r].OutputTokens))/2, 15) },
		func(k int) string { return fmt.Sprintf("< %d", 1<<(2*k+2)) })
	table("total blocks", func(r int) int { return min(bits.Len(uint(len(reqs[r].HashIDs))), 9) },
		func(k int) string { return fmt.Sprintf("< %d", 1<<k) })
	fmt.Println("gap to the next turn by the earlier request's turn and new blocks: returns, seconds at the 10th, 50th, 90th percentile")
	gaps := map[[2]int][]float64{}
	for r := range n {
		if p := prev[r]; p >= 0 {
			s := 0
			for x := newBlocks[p]; x >= 4 && s < 3; x /= 4 {
				s++
			}
			k := [2]int{min(turn[p], 2), s}
			gaps[k] = append(gaps[k], (reqs[r].Arrival - reqs[p].Arrival).Seconds())
		}
	}
	for tt := range 3 {
		for s := range 4 {
			g := gaps[[2]int{tt, s}]
			if len(g) < 20 {
				continue
			}
			sort.Float64s(g)
			q := func(f float64) float64 { return g[int(f*float64(len(g)-1))] }
			fmt.Printf("  turn %d, new blocks %-6s %4d  %4.0f %4.0f %4.0f\n", tt, []string{"<4", "4-15", "16-63", "64+"}[s], len(g), q(0.1), q(0.5), q(0.9))
		}
	}
}
