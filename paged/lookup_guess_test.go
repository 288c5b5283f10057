package paged

import (
	"math/rand/v2"
	"slices"
	"testing"

	"github.com/pagedkv/pagedkv/allocator"
)

// TestLookupGuessesMatchIndex: blockPool.lookup reads its buffer's spare
// capacity as guesses (the last answer), and answers exactly as it does
// with no guesses whatever they hold: the right blocks, blocks holding the
// same hash that do not head its holders (duplicates), blocks whose
// content was dropped, blocks of another position, the null block, IDs
// out of range and host references; for every limit, with part of the
// prompt held (not evictable), and with the prompt's chain broken by a
// block whose content was dropped.
func TestLookupGuessesMatchIndex(t *testing.T) {
	const bs, blocks = 4, 40
	prompt := make([]int32, bs*blocks+1)
	for i := range prompt {
		prompt[i] = int32(i + 1)
	}
	rng := rand.New(rand.NewPCG(16, 12))
	checked, guessed := 0, 0
	for round := range 24 {
		m := cachedPrompt(t, Config{BlockSize: bs, NumBlocks: 4 * blocks}, prompt)
		p := &m.bp
		hashes, _ := m.BlockHashes(nil, prompt, nil)
		first, ok := p.index.get(&hashes[0])
		if !ok {
			t.Fatal("the prompt's first block is not cached")
		}
		if round%2 == 1 {
			// A sequence holding the first blocks keeps them from being
			// evictable.
			if _, _, err := m.Create(prompt[:bs*rng.IntN(blocks)+1], nil); err != nil {
				t.Fatal(err)
			}
		}
		// Duplicates: a few of the prompt's blocks give their content up
		// and commit it again after a spare block does, so the spare block
		// heads the holders and the prompt's block is a second holder
		// (what the index names is the spare one, out of the run).
		var dups []allocator.BlockID
		for j := range 3 {
			b := first + allocator.BlockID(rng.IntN(blocks))
			spare := allocator.BlockID(4*blocks - 1 - j)
			if !p.hasContent(b) || p.hasContent(spare) {
				continue
			}
			h := p.hash[b]
			p.uncache(b, false)
			p.commit(spare, &h, 0)
			p.commit(b, &h, 0)
			dups = append(dups, b)
		}
		if round%3 == 1 {
			// A block whose content was dropped ends the chain there.
			p.uncache(first+allocator.BlockID(rng.IntN(blocks)), false)
		}
		want, _, _ := p.lookup(nil, hashes, len(hashes))
		for trial := range 60 {
			limit := len(hashes)
			if trial%4 == 3 {
				limit = rng.IntN(len(hashes) + 1)
			}
			wantHits, wantEv, wantHost := p.lookup(nil, hashes, limit)
			buf := make([]allocator.BlockID, len(hashes)+8)
			for i := range buf {
				switch r := rng.IntN(10); {
				case r < 5 && i < len(want):
					buf[i] = want[i]
				case r < 6 && len(dups) > 0:
					buf[i] = dups[rng.IntN(len(dups))]
				case r < 7:
					buf[i] = first + allocator.BlockID(rng.IntN(blocks))
				case r < 8:
					buf[i] = []allocator.BlockID{nullBlock, allocator.NoBlock, 4 * blocks, 1 << 30, -5}[rng.IntN(5)]
				default:
					buf[i] = allocator.BlockID(rng.IntN(4 * blocks))
				}
			}
			if trial%5 == 0 || trial == 7 {
				copy(buf, want) // the last answer, whole
			}
			if trial == 7 && len(want) > 0 {
				// A deferred removal of the last answer's first block,
				// not yet applied when the lookup reads the guesses.
				b := want[0]
				if b > nullBlock && p.hasContent(b) {
					p.uncache(b, false)
				}
				wantHits, wantEv, wantHost = p.lookup(nil, hashes, limit)
				p.commit(b, &p.hash[b], 0) // its content again, deferred
				p.index.settle()
				p.uncache(b, false)
				if p.index.nlog == 0 {
					t.Fatal("the removal was not deferred")
				}
			}
			hits, ev, host := p.lookup(buf[:0], hashes, limit)
			if !slices.Equal(hits, wantHits) || ev != wantEv || host != wantHost {
				t.Fatalf("round %d trial %d limit %d: with guesses %v: hits %v (%d evictable, %d host), want %v (%d, %d)",
					round, trial, limit, buf, hits, ev, host, wantHits, wantEv, wantHost)
			}
			checked++
			if trial%5 == 0 && len(wantHits) > 0 {
				guessed++
			}
		}
	}
	if checked == 0 || guessed == 0 {
		t.Fatalf("%d lookups checked, %d with the last answer as guesses", checked, guessed)
	}
}
