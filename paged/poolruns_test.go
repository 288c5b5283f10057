package paged

import (
	"testing"

	"pgregory.net/rapid"

	"github.com/pagedkv/pagedkv/allocator"
)

// TestPoolRunsMatchSingleCalls: the pool's run forms (allocRun, commitRun
// and releaseTail's unrolled loop, which the vLLM-compatible
// configuration takes: UnifiedFreeQueue, the default LRU, no events, no
// host tier) leave a pool exactly as the single-block calls they unroll
// (alloc, commit, release, one block at a time in the same order) leave
// a twin: the same blocks handed out, the same evictions, the same
// content, groups and cached flags per block, the same index answers for
// every (hash, group) drawn, and the same LRU order (the twins' later
// allocations, drawn as the runs go, take the same victims). Hashes come
// from a small set, so duplicates of one content in one group and the
// same content in several groups occur; runs hold null entries, blocks
// committed before (as a fork's) and blocks released while cached.
func TestPoolRunsMatchSingleCalls(t *testing.T) {
	rapid.Check(t, func(rt *rapid.T) {
		const blocks = 24
		cfg := Config{BlockSize: 4, NumBlocks: blocks, UnifiedFreeQueue: true}
		a, err := New(cfg)
		if err != nil {
			rt.Fatal(err)
		}
		b, _ := New(cfg)
		pa, pb := &a.bp, &b.bp
		hashes := make([]Hash, 6)
		for i := range hashes {
			hashes[i][0], hashes[i][31] = byte(i+1), byte(7*i)
		}
		var held []allocator.BlockID // each held once, on both twins
		for step := range rapid.IntRange(1, 60).Draw(rt, "steps") {
			switch op := rapid.IntRange(0, 2).Draw(rt, "op"); {
			case op == 0 && len(held) < blocks-1:
				n := rapid.IntRange(1, blocks-1-len(held)).Draw(rt, "alloc")
				got := make([]allocator.BlockID, n)
				ev := pa.allocRun(got, 0)
				want := 0
				for i := range n {
					id, e := pb.alloc(0)
					if id != got[i] {
						rt.Fatalf("step %d: allocRun's block %d is %d, alloc's %d", step, i, got[i], id)
					}
					want += int(b2u(e))
				}
				if ev != want {
					rt.Fatalf("step %d: allocRun evicted %d, alloc %d", step, ev, want)
				}
				held = append(held, got...)
			case op == 1 && len(held) > 0:
				// A table: held blocks and null entries, committed in
				// one group under drawn hashes (a block that holds
				// content already keeps its own, as a fork's would).
				n := rapid.IntRange(1, len(held)).Draw(rt, "commit")
				g := rapid.IntRange(0, 2).Draw(rt, "group")
				table := make([]allocator.BlockID, n)
				hs := make([]Hash, n)
				for k := range table {
					if rapid.IntRange(0, 5).Draw(rt, "null") == 0 {
						table[k] = nullBlock
					} else {
						table[k] = held[rapid.IntRange(0, len(held)-1).Draw(rt, "block")]
					}
					hs[k] = hashes[rapid.IntRange(0, len(hashes)-1).Draw(rt, "hash")]
					if id := table[k]; id != nullBlock && pa.hasContent(id) {
						hs[k] = pa.hash[id]
					}
					for j := range k {
						if table[j] == table[k] && table[k] != nullBlock {
							hs[k] = hs[j] // committed just before in the run
						}
					}
				}
				from := rapid.IntRange(0, n-1).Draw(rt, "from")
				stored := pa.commitRun(table, hs, from, n, g)
				want := 0
				for k := from; k < n; k++ {
					if id := table[k]; id != nullBlock && !pb.hasContent(id) {
						pb.commit(id, &hs[k], g)
						want++
					}
				}
				if stored != want {
					rt.Fatalf("step %d: commitRun stored %d, commit %d", step, stored, want)
				}
			case op == 2 && len(held) > 0:
				// Release the held blocks' tail, a null entry among
				// them, tail first.
				from := rapid.IntRange(0, len(held)-1).Draw(rt, "release")
				run := append([]allocator.BlockID{nullBlock}, held[from:]...)
				pa.releaseTail(run, 0)
				for i := len(run) - 1; i >= 0; i-- {
					pb.release(run[i])
				}
				held = held[:from]
			}
			pa.index.settle()
			pb.index.settle()
			if a.bp.available() != b.bp.available() || pa.lru.Len() != pb.lru.Len() || pa.pool.Held() != pb.pool.Held() {
				rt.Fatalf("step %d: available %d / %d, LRU %d / %d, held %d / %d", step, pa.available(), pb.available(), pa.lru.Len(), pb.lru.Len(), pa.pool.Held(), pb.pool.Held())
			}
			for id := allocator.BlockID(1); id < blocks; id++ {
				if pa.hasContent(id) != pb.hasContent(id) || pa.pool.IsCached(id) != pb.pool.IsCached(id) ||
					pa.hasContent(id) && (pa.hash[id] != pb.hash[id] || pa.groupOf(id) != pb.groupOf(id)) {
					rt.Fatalf("step %d: block %d differs between the twins", step, id)
				}
			}
			for i := range hashes {
				for g := range 3 {
					ia, oka := pa.findIn(&hashes[i], g)
					ib, okb := pb.findIn(&hashes[i], g)
					if ia != ib || oka != okb {
						rt.Fatalf("step %d: hash %d group %d answers %d/%v and %d/%v", step, i, g, ia, oka, ib, okb)
					}
				}
			}
		}
	})
}
