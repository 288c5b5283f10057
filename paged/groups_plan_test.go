package paged

import (
	"testing"

	"github.com/pagedkv/pagedkv/allocator"
	"pgregory.net/rapid"
)

// TestPlanGroupsCountsRows checks planGroups' counts against a count of
// the lookup rows entry by entry. planGroups takes the evictable and host
// hits of group 0 from blockPool.lookup, made before the other groups cut
// the hit, and counts only the shorter of the kept and the cut part, so a
// sign or an end wrong there changes what admission allocates. Prompts
// share beginnings so that hits are long, the pool is small so that
// window blocks are evicted and cut them, and a host tier (where drawn)
// puts host hits in the rows. A sequence decodes several blocks before
// it is freed, so that its window releases the blocks behind it, the
// latest first, and a later lookup of its prompt finds the window's run
// broken past the middle of the full-attention hit: the subtracted part
// (about 5 of 100 runs; a sign dropped there fails at the default
// checks).
func TestPlanGroupsCountsRows(t *testing.T) {
	rapid.Check(t, func(t *rapid.T) {
		bs := rapid.SampledFrom([]int{1, 2, 4}).Draw(t, "bs")
		cfg := Config{
			BlockSize:        bs,
			NumBlocks:        rapid.IntRange(12, 64).Draw(t, "blocks"),
			UnifiedFreeQueue: rapid.Bool().Draw(t, "unified"),
			Groups:           []Group{{Kind: FullAttention}, {Kind: SlidingWindow, Window: rapid.IntRange(1, 3*bs).Draw(t, "window")}},
		}
		if rapid.Bool().Draw(t, "host") {
			cfg.HostBlocks = rapid.IntRange(4, 32).Draw(t, "hostBlocks")
		}
		m, err := New(cfg)
		if err != nil {
			t.Fatal(err)
		}
		var live []SeqID
		for range rapid.IntRange(1, 80).Draw(t, "steps") {
			switch rapid.IntRange(0, 3).Draw(t, "op") {
			case 0, 1: // a prompt from one of three stems, then a plan and an Admit
				stem := int32(rapid.IntRange(0, 1).Draw(t, "stem"))
				n := rapid.IntRange(1, min(12*bs, (cfg.NumBlocks-1)*bs/2)).Draw(t, "len")
				prompt := make([]int32, n)
				for i := range prompt {
					prompt[i] = stem*1000 + int32(i)
				}
				if k := rapid.IntRange(0, n).Draw(t, "diverge"); k < n {
					prompt[k] = 50000 + int32(k) // the stem's chain ends here
				}
				id, err := m.Add(prompt, nil)
				if err != nil {
					t.Fatal(err)
				}
				s, _ := m.seq(id)
				p, _ := m.planGroups(s)
				var nulls, host, ev int
				for _, row := range append([][]allocator.BlockID{m.hits}, m.ghits...) {
					for _, b := range row {
						switch {
						case b == nullBlock:
							nulls++
						case b < 0:
							host++
						case m.bp.pool.IsCached(b):
							ev++
						}
					}
				}
				var hostFull int
				for _, b := range m.hits {
					if b < 0 {
						hostFull++
					}
				}
				if p.evictableHits != ev || p.onboard != hostFull {
					t.Fatalf("planGroups counts %d evictable hits and %d host hits of group 0, the rows hold %d and %d (hit %d of %d)", p.evictableHits, p.onboard, ev, hostFull, len(m.hits), m.ret.lastFull)
				}
				if total := m.groupNeed(0, n) + m.groupNeed(1, n); p.held != total-nulls {
					t.Fatalf("planGroups holds %d blocks, the rows %d", p.held, total-nulls)
				}
				if _, err := m.Admit(id); err == nil {
					live = append(live, id)
				}
			case 2: // decode a few tokens
				if len(live) == 0 {
					continue
				}
				id := live[rapid.IntRange(0, len(live)-1).Draw(t, "seq")]
				for range rapid.IntRange(1, 8*bs).Draw(t, "tokens") {
					if m.Append(id, 5) != nil {
						break
					}
				}
			case 3: // free one
				if len(live) == 0 {
					continue
				}
				k := rapid.IntRange(0, len(live)-1).Draw(t, "free")
				if err := m.Free(live[k]); err != nil {
					t.Fatal(err)
				}
				live = append(live[:k], live[k+1:]...)
			}
			if err := m.Check(); err != nil {
				t.Fatal(err)
			}
		}
	})
}
