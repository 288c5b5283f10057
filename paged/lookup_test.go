package paged

import (
	"testing"

	"github.com/pagedkv/pagedkv/allocator"
)

// TestSamePrefix: samePrefix finds the first difference wherever it is,
// inside or across its chunks, in any byte of a hash, and the whole length
// when there is none.
func TestSamePrefix(t *testing.T) {
	for _, n := range []int{0, 1, 7, samePrefixChunk - 1, samePrefixChunk, samePrefixChunk + 1, 3*samePrefixChunk + 5} {
		a := make([]Hash, n)
		for i := range a {
			for j := range a[i] {
				a[i][j] = byte(i*31 + j)
			}
		}
		b := make([]Hash, n)
		copy(b, a)
		if got := samePrefix(a, b); got != n {
			t.Fatalf("n=%d: equal slices: samePrefix = %d", n, got)
		}
		for k := range n {
			for _, byt := range []int{0, 7, 8, 16, 31} {
				b[k][byt] ^= 0x40
				if got := samePrefix(a, b); got != k {
					t.Fatalf("n=%d: first difference in hash %d byte %d: samePrefix = %d", n, k, byt, got)
				}
				b[k][byt] ^= 0x40
			}
		}
	}
}

// BenchmarkLookupWarm: the device lookup of a 131,072-token prompt whose
// every block is cached (8,191 hits, the most a prompt of 8,192 blocks
// may hit), without hashing: the work a warm prompt adds to a cold one's.
func BenchmarkLookupWarm(b *testing.B) {
	const tokens = 131072
	prompt := make([]int32, tokens)
	for i := range prompt {
		prompt[i] = int32(i + 1)
	}
	m := cachedPrompt(b, Config{NumBlocks: 2*tokens/16 + 1}, prompt)
	hashes, err := m.BlockHashes(nil, prompt, nil)
	if err != nil {
		b.Fatal(err)
	}
	max := len(hashes) - 1
	var hits []allocator.BlockID
	b.ReportAllocs()
	for b.Loop() {
		var ev int
		hits, ev, _ = m.lookup(hits[:0], hashes, max)
		if len(hits) != max || ev != max {
			b.Fatalf("%d hits, %d evictable, want %d", len(hits), ev, max)
		}
	}
	b.ReportMetric(float64(b.Elapsed().Nanoseconds())/float64(b.N)/float64(max), "ns/hit")
}

// TestRunMatchesGuess: blockPool.run, which checks a run of blocks a
// stage at a time (hashes, then heads, then groups, then the evictable
// count), answers as guessing block by block does (blockPool.guess, and
// the allocator's IsCached for the count), whichever block of a long run
// breaks it and however: another hash, a block that does not head its
// holders (a duplicate inserted after another block of its content), one
// whose content was dropped, one holding another group's content; with
// the blocks of a shorter prompt held (not evictable), and from every
// offset in the run.
func TestRunMatchesGuess(t *testing.T) {
	const bs, blocks = 4, 70
	prompt := make([]int32, bs*blocks+1)
	for i := range prompt {
		prompt[i] = int32(i + 1)
	}
	breaks := []string{"none", "hash", "not head", "uncached", "group"}
	checked := 0
	for _, brk := range breaks {
		for at := range blocks - 1 {
			m := cachedPrompt(t, Config{BlockSize: bs, NumBlocks: 3 * blocks}, prompt)
			// A sequence holding the first blocks keeps them from being
			// evictable.
			if _, _, err := m.Create(prompt[:bs*(at%23)+1], nil); err != nil {
				t.Fatal(err)
			}
			hashes, _ := m.BlockHashes(nil, prompt, nil)
			p := &m.bp
			first, ok := p.index.get(&hashes[0])
			if !ok {
				t.Fatal("the prompt's first block is not cached")
			}
			b := first + allocator.BlockID(at)
			if !p.hasContent(b) || p.hash[b] != hashes[at] {
				t.Fatalf("block %d does not hold the prompt's block %d: the prompt's blocks are not consecutive", b, at)
			}
			switch brk {
			case "hash":
				hashes[at][17] ^= 1
			case "not head":
				// Drop b's content, commit it to a spare block, then to b
				// again: b is now the second holder.
				spare := allocator.BlockID(3*blocks - 1)
				h := p.hash[b]
				p.uncache(b, false)
				p.commit(spare, &h, 0)
				p.commit(b, &h, 0)
			case "uncached":
				p.uncache(b, false)
			case "group":
				p.grouped = true
				p.index.meta[b].group = 1
			}
			for from := range blocks - 1 {
				want, wantEv := 0, 0
				for k := from; k < len(hashes); k++ {
					id := first + allocator.BlockID(k)
					if _, ok := p.guess(id, &hashes[k], 0); !ok {
						break
					}
					want++
					if p.pool.IsCached(id) {
						wantEv++
					}
				}
				got, gotEv := p.run(first+allocator.BlockID(from), hashes[from:])
				if got != want || gotEv != wantEv {
					t.Fatalf("break %q at %d, run from %d: %d hits, %d evictable; guessing gives %d and %d", brk, at, from, got, gotEv, want, wantEv)
				}
				checked += want
			}
		}
	}
	if checked < 50000 {
		t.Fatalf("only %d hits checked", checked)
	}
}

// TestWarmLookupAllocatesNothing: adding a prompt whose blocks are all
// cached, asking whether it can be admitted (the lookup walks its 255
// hits) and freeing it allocates nothing once the buffers have grown.
func TestWarmLookupAllocatesNothing(t *testing.T) {
	prompt := make([]int32, 16*256)
	for i := range prompt {
		prompt[i] = int32(i + 1)
	}
	m, err := New(Config{NumBlocks: 600})
	if err != nil {
		t.Fatal(err)
	}
	id, _, err := m.Create(prompt, nil)
	if err != nil {
		t.Fatal(err)
	}
	if err := m.Free(id); err != nil {
		t.Fatal(err)
	}
	hits := 0
	cycle := func() {
		id, err := m.Add(prompt, nil)
		if err != nil {
			t.Fatal(err)
		}
		if a, err := m.CanAdmit(id); err != nil || a != AdmitOK {
			t.Fatalf("CanAdmit = %v, %v", a, err)
		}
		hits = len(m.hits)
		if err := m.Free(id); err != nil {
			t.Fatal(err)
		}
	}
	cycle()
	if allocs := testing.AllocsPerRun(50, cycle); allocs != 0 {
		t.Fatalf("%v allocations a warm Add + CanAdmit + Free", allocs)
	}
	if hits != 255 {
		t.Fatalf("the lookup found %d hits, want 255", hits)
	}
}

// cachedPrompt returns a manager made with cfg whose cache holds prompt's
// full blocks, unreferenced: the prompt was admitted and freed.
func cachedPrompt(tb testing.TB, cfg Config, prompt []int32) *Manager {
	tb.Helper()
	m, err := New(cfg)
	if err != nil {
		tb.Fatal(err)
	}
	id, _, err := m.Create(prompt, nil)
	if err != nil {
		tb.Fatal(err)
	}
	if err := m.Free(id); err != nil {
		tb.Fatal(err)
	}
	return m
}
