package paged_test

import (
	"slices"
	"testing"

	"pgregory.net/rapid"

	"github.com/pagedkv/pagedkv/paged"
)

// TestChunkedAdmissionRetainsAsWhole: AdmitChunk gives retention the whole
// prompt's branch point (keep.branch), which may lie past the first chunk.
// Two managers serve the same requests, one admitting each prompt whole,
// the other in chunks (AdmitChunk, then Append chunk by chunk, taking the
// checkpoints every step): once a prompt is computed and a token decoded
// (the whole prompt's window slides then), they hold, pin and shelve the
// same number of blocks, find the same hits, and hand out checkpoints at
// the same points. The pool is roomy, so eviction order (which the
// chunks' earlier slides change) plays no part.
func TestChunkedAdmissionRetainsAsWhole(t *testing.T) {
	rapid.Check(t, func(t *rapid.T) {
		bs := rapid.SampledFrom([]int{1, 2, 4}).Draw(t, "bs")
		groups := []paged.Group{{Kind: paged.FullAttention},
			{Kind: paged.SlidingWindow, Window: rapid.IntRange(1, 6*bs).Draw(t, "window")}}
		if rapid.Bool().Draw(t, "state") {
			groups = append(groups, paged.Group{Kind: paged.State, Pages: rapid.IntRange(1, 2).Draw(t, "pages")})
		}
		if rapid.Bool().Draw(t, "chunked group") {
			groups = append(groups, paged.Group{Kind: paged.ChunkedLocal, Chunk: rapid.IntRange(1, 6*bs).Draw(t, "chunk")})
		}
		cfg := paged.Config{BlockSize: bs, NumBlocks: 2048, Groups: groups, MaxModelLen: 64 * bs}
		whole, err := paged.New(cfg)
		if err != nil {
			t.Fatal(err)
		}
		chunked, err := paged.New(cfg)
		if err != nil {
			t.Fatal(err)
		}
		var prefixes [][]int32
		for i := range 3 {
			prefixes = append(prefixes, seqOf(1000*(i+1), rapid.IntRange(1, 10*bs).Draw(t, "prefix")))
		}
		next := int32(1 << 20)
		type pair struct{ w, c paged.SeqID }
		var live []pair
		same := func(what string) {
			a, b := whole.Stats(), chunked.Stats()
			lw, hw := paged.Shelves(whole)
			lc, hc := paged.Shelves(chunked)
			if a.UsedBlocks != b.UsedBlocks || a.CachedBlocks != b.CachedBlocks || lw != lc || hw != hc {
				t.Fatalf("%s: whole holds %d blocks, caches %d, shelves low %d high %d; chunked %d, %d, %d, %d",
					what, a.UsedBlocks, a.CachedBlocks, lw, hw, b.UsedBlocks, b.CachedBlocks, lc, hc)
			}
		}
		for range rapid.IntRange(1, 12).Draw(t, "requests") {
			prompt := slices.Clone(rapid.SampledFrom(prefixes).Draw(t, "prefix"))
			for range rapid.IntRange(0, 6*bs).Draw(t, "tail") {
				next++
				prompt = append(prompt, next)
			}
			w, err := whole.Add(prompt, nil)
			if err != nil {
				t.Fatal(err)
			}
			c, err := chunked.Add(prompt, nil)
			if err != nil {
				t.Fatal(err)
			}
			hitW, err := whole.Admit(w)
			if err != nil {
				t.Fatal(err)
			}
			ckW := whole.TakeCheckpoints(nil)
			whole.TakeCopies(nil)
			step := rapid.IntRange(1, 4*bs).Draw(t, "step")
			hitC, rest, err := chunked.AdmitChunk(c, step, nil)
			if err != nil {
				t.Fatal(err)
			}
			if hitW != hitC {
				t.Fatalf("whole hit %d tokens, chunked %d", hitW, hitC)
			}
			ckC := chunked.TakeCheckpoints(nil)
			chunked.TakeCopies(nil)
			for len(rest) > 0 {
				n := min(step, len(rest))
				if err := chunked.Append(c, rest[:n]...); err != nil {
					t.Fatal(err)
				}
				rest = rest[n:]
				ckC = chunked.TakeCheckpoints(ckC)
				chunked.TakeCopies(nil)
			}
			if len(ckW) != len(ckC) || len(ckW) > 0 && (ckW[0].Tokens != ckC[0].Tokens || ckW[0].Group != ckC[0].Group) {
				t.Fatalf("whole hands out checkpoints %+v, chunked %+v", ckW, ckC)
			}
			// A decoded token: the whole prompt's window slides now.
			next++
			if err := whole.Append(w, next); err != nil {
				t.Fatal(err)
			}
			if err := chunked.Append(c, next); err != nil {
				t.Fatal(err)
			}
			whole.TakeCheckpoints(nil)
			chunked.TakeCheckpoints(nil)
			same("after the prefill and a token")
			live = append(live, pair{w, c})
			for len(live) > 0 && rapid.Bool().Draw(t, "free") {
				i := rapid.IntRange(0, len(live)-1).Draw(t, "which")
				if err := whole.Free(live[i].w); err != nil {
					t.Fatal(err)
				}
				if err := chunked.Free(live[i].c); err != nil {
					t.Fatal(err)
				}
				live = slices.Delete(live, i, i+1)
				same("after a free")
			}
			if err := whole.Check(); err != nil {
				t.Fatal(err)
			}
			if err := chunked.Check(); err != nil {
				t.Fatal(err)
			}
		}
	})
}
