//go:build cachediag

package eviction_test

import (
	"encoding/binary"
	"fmt"
	"os"
	"sort"
	"testing"

	"github.com/pagedkv/pagedkv/allocator"
	"github.com/pagedkv/pagedkv/bench"
	"github.com/pagedkv/pagedkv/eviction"
	"github.com/pagedkv/pagedkv/paged"
)

// TestChainDiagDecisions replays the conversation half at 3M tokens under
// Chain and judges every Victim call by the trace's future (docs/cache.md,
// tenth round): was the victim's content asked for again, and if so, was
// a candidate whose content never is, or a held block whose content never
// is? CACHEDIAG_CHOOSE=oracle picks, among Chain's candidates, the one used
// farthest in the future; =whether the lowest-scored one never used again
// (Chain's choice when every candidate is). Run with
//
//	go test -tags cachediag ./eviction -run ChainDiagDecisions -v
func TestChainDiagDecisions(t *testing.T) {
	reqs, err := bench.ReadTraceFile("../bench/traces/mooncake_conversation_first_half.jsonl", "mooncake")
	if err != nil {
		t.Fatal(err)
	}
	const blockSize = 512
	capacity := 3000000 / blockSize
	uses := map[int64][]int32{} // requests referencing each hash ID
	for r, q := range reqs {
		for _, h := range q.HashIDs {
			if u := uses[h]; len(u) == 0 || u[len(u)-1] != int32(r) {
				uses[h] = append(u, int32(r))
			}
		}
	}
	const never = int32(1 << 30)
	cur := 0 // the request being created
	nextUse := func(h int64) int32 {
		u := uses[h]
		i := sort.Search(len(u), func(i int) bool { return u[i] > int32(cur) })
		if i == len(u) {
			return never
		}
		return u[i]
	}
	content := make([]int64, capacity+1) // hash ID each block last held
	d := eviction.NewDiagChain(capacity + 1)
	octave := func(turnovers float64) int { // <1/16, <1/8, ..., <16, more
		k := 0
		for x := turnovers * 16; x >= 1 && k < 8; x /= 2 {
			k++
		}
		return k
	}
	// Victims: never used again, used again though a candidate never is
	// (the ranking's error), used again though a held block never is (the
	// candidates'), every held block used again, orphans.
	var kinds, early [5]int
	var errAge [9][9]int
	var errYoung int
	var byCls [48][4]float64 // victims, of them used again; candidacies, of them used again
	d.OnVictim = func(c []allocator.BlockID, young []bool, v allocator.BlockID, orphan bool) {
		k := 0
		switch {
		case orphan:
			k = 4
		case nextUse(content[v]) == never:
		default:
			low, lowScore := allocator.NoBlock, 0.0
			for _, x := range c {
				if s := d.DiagScore(x); nextUse(content[x]) == never && s >= 0 && (low < 0 || s < lowScore) {
					low, lowScore = x, s
				}
			}
			if low >= 0 {
				k = 1
				errAge[octave(d.DiagAge(v))][octave(d.DiagAge(low))]++
				for i, x := range c {
					if x == v && young[i] {
						errYoung++
					}
				}
				break
			}
			k = 3
			for b := 1; b <= capacity; b++ {
				if d.Contains(allocator.BlockID(b)) && nextUse(content[b]) == never {
					k = 2
					break
				}
			}
		}
		kinds[k]++
		if cur < 1000 {
			early[k]++
		}
		if orphan {
			return
		}
		if vc := d.DiagClass(v); vc < len(byCls) {
			byCls[vc][0]++
			if k != 0 {
				byCls[vc][1]++
			}
		}
		for _, x := range c {
			if xc := d.DiagClass(x); xc < len(byCls) {
				byCls[xc][2]++
				if nextUse(content[x]) != never {
					byCls[xc][3]++
				}
			}
		}
	}
	switch os.Getenv("CACHEDIAG_CHOOSE") {
	case "oracle":
		d.Choose = func(c []allocator.BlockID) allocator.BlockID {
			best, far := c[0], int32(-1)
			for _, x := range c {
				if n := nextUse(content[x]); n > far {
					best, far = x, n
				}
			}
			return best
		}
	case "whether":
		d.Choose = func(c []allocator.BlockID) allocator.BlockID {
			best, bestNever, low := allocator.NoBlock, false, 0.0
			for _, x := range c {
				s, nv := d.DiagScore(x), nextUse(content[x]) == never
				if best < 0 || (nv && !bestNever) || (nv == bestNever && s < low) {
					best, bestNever, low = x, nv, s
				}
			}
			return best
		}
	}
	m, err := paged.New(paged.Config{BlockSize: blockSize, NumBlocks: capacity + 1, Policy: func(int) eviction.Policy { return d }})
	if err != nil {
		t.Fatal(err)
	}
	opts := &paged.SeqOptions{AllowFullHit: true}
	hits, refs := 0, 0
	var hs []paged.Hash
	for r, q := range reqs {
		cur = r
		hs = hs[:0]
		for _, x := range q.HashIDs {
			var h paged.Hash
			binary.LittleEndian.PutUint64(h[:8], uint64(x))
			hs = append(hs, h)
		}
		id, cached, err := m.CreateFromHashes(hs, len(hs)*blockSize, opts)
		if err != nil {
			t.Fatal(err)
		}
		hits += cached / blockSize
		refs += len(hs)
		tab, err := m.Table(id)
		if err != nil {
			t.Fatal(err)
		}
		for i, b := range tab {
			content[b] = q.HashIDs[i]
		}
		if err := m.Free(id); err != nil {
			t.Fatal(err)
		}
	}
	fmt.Printf("hits %d of %d references: %.4f\n", hits, refs, float64(hits)/float64(refs))
	fmt.Printf("victims: never used again %d; used again with a candidate never used again %d; with a held block never used again %d; every held block used again %d; orphans %d\n", kinds[0], kinds[1], kinds[2], kinds[3], kinds[4])
	fmt.Printf("  in the first 1,000 requests: %v\n", early)
	fmt.Printf("ranking errors where the victim was a youngest release's deepest block: %d\n", errYoung)
	fmt.Println("ranking errors by the victim's age (rows) and the age of the lowest-scored candidate never used again (columns), octaves of a pool turnover: <1/16, <1/8, <1/4, <1/2, <1, <2, <4, <8, more")
	for i, row := range errAge {
		fmt.Println(" ", i, row)
	}
	for c, x := range byCls {
		if x[0] >= 500 {
			fmt.Printf("class %2d (turn class %d, size class %d, last %d): victims %6.0f, used again %.3f; candidacies %7.0f, used again %.3f\n", c, c/16, c%16/2, c%2, x[0], x[1]/x[0], x[2], x[3]/x[2])
		}
	}
}
