package sched

import (
	"testing"

	"github.com/pagedkv/pagedkv/paged"
)

// TestAudit44DeadMatchesManagersRelease: localGroup.dead, which the fork
// set-aside (chunkBlocks) and the last-token-alone retry
// (releasesAtLast) read for the blocks a sliding-window or chunked-local
// group has released once its next chunk starts at c, is what the
// manager releases: after every chunk of a prompt computed alone, the
// group holds the blocks of its tokens less dead(c) for the chunk's first
// position c (chunked-local groups, both prefix caching modes), or at
// most that (sliding windows: dead is a lower bound). With prefix caching
// a chunked-local group keeps the block before c's, its last cached one
// (paged's chunkedKind.dead); counted released, the set-aside of a
// forking prompt whose last chunk starts at a chunk boundary inside a
// block is a block short per local group (mutation M203).
func TestAudit44DeadMatchesManagersRelease(t *testing.T) {
	checks := 0
	for _, bs := range []int{1, 2, 4, 8} {
		for _, span := range []int{1, 2, 3, 4, 5, 8, 12, 16, 24} {
			for _, kind := range []paged.GroupKind{paged.ChunkedLocal, paged.SlidingWindow} {
				for _, noCache := range []bool{false, true} {
					for _, step := range []int{1, 2, 3, 4, 5, 7, 8} {
						g := paged.Group{Kind: kind, Chunk: span}
						if kind == paged.SlidingWindow {
							g = paged.Group{Kind: kind, Window: span}
						}
						m, err := paged.New(paged.Config{BlockSize: bs, NumBlocks: 400, MaxModelLen: 1024, DisableOffload: true,
							DisablePrefixCaching: noCache, Groups: []paged.Group{{Kind: paged.FullAttention}, g}})
						if err != nil {
							t.Fatal(err)
						}
						lg := localGroup{g: 1, kind: kind, span: span, keep: !noCache}
						prompt := make([]int32, 40)
						for k := range prompt {
							prompt[k] = int32(1000*bs + 100*span + k)
						}
						id, err := m.Add(prompt, nil)
						if err != nil {
							t.Fatal(err)
						}
						cached, rest, err := m.AdmitChunk(id, step, nil)
						if err != nil || cached != 0 {
							t.Fatalf("AdmitChunk: cached %d, %v", cached, err)
						}
						for c := 0; ; {
							end := len(prompt) - len(rest)
							tab, err := m.TableGroup(id, 1)
							if err != nil {
								t.Fatal(err)
							}
							held := 0
							for k := len(tab) - 1; k >= 0 && tab[k] != 0; k-- {
								held++
							}
							want := (end+bs-1)/bs - lg.dead(c, bs)
							if held != want && (kind == paged.ChunkedLocal || held > want) {
								t.Fatalf("bs %d, %v %d, noCache %v, chunks of %d: chunk [%d,%d) holds %d blocks of group 1, dead(%d) gives %d",
									bs, kind, span, noCache, step, c, end, held, c, want)
							}
							checks++
							if len(rest) == 0 {
								break
							}
							k := min(step, len(rest))
							if err := m.Append(id, rest[:k]...); err != nil {
								t.Fatal(err)
							}
							c, rest = end, rest[k:]
						}
					}
				}
			}
		}
	}
	t.Logf("%d checks", checks)
}
