package paged_test

import (
	"errors"
	"testing"

	"pgregory.net/rapid"

	"github.com/pagedkv/pagedkv/paged"
)

// chunkByChunk admits id in chunks of k tokens and appends the rest k at
// a time, a step each (TakeCheckpoints, TakeCopies after it, as a
// server), running m.Check after every step, and returns the most blocks
// in use after any step, or the first error. After the admission's step
// it counts no retention pin: they are released when the pool needs them
// (docs/hybrid.md), so a pool they would overflow serves the prompt.
func chunkByChunk(m *paged.Manager, id paged.SeqID, k int) (int, error) {
	_, rest, err := m.AdmitChunk(id, k, nil)
	if err != nil {
		return 0, err
	}
	if err := m.Check(); err != nil {
		return 0, err
	}
	peak := m.Stats().UsedBlocks
	for len(rest) > 0 {
		m.TakeCheckpoints(nil)
		m.TakeCopies(nil)
		c := min(k, len(rest))
		if err := m.Append(id, rest[:c]...); err != nil {
			return peak, err
		}
		rest = rest[c:]
		if err := m.Check(); err != nil {
			return peak, err
		}
		st := m.Stats()
		peak = max(peak, st.UsedBlocks-st.RetentionPins)
	}
	return peak, nil
}

// TestAdmitChunkHybridFitsByChunks: on a layout of a full-attention group
// and five window groups (Gemma 3's), a prompt whose whole admission
// needs 6 x 16 = 96 blocks of a pool of 40 is computed 8 tokens a step
// (peak: 16 full blocks and 3 to 4 per window group): AdmitChunk and
// CanAdmitChunk must not call it never, and the prefill completes, Check
// passing after every step. Before the fix AdmitChunk refused it with
// ErrNever.
func TestAdmitChunkHybridFitsByChunks(t *testing.T) {
	groups := []paged.Group{{Kind: paged.FullAttention}}
	for range 5 {
		groups = append(groups, paged.Group{Kind: paged.SlidingWindow, Window: 8})
	}
	for _, caching := range []bool{true, false} {
		m, err := paged.New(paged.Config{BlockSize: 4, NumBlocks: 41, Groups: groups, DisablePrefixCaching: !caching})
		if err != nil {
			t.Fatal(err)
		}
		id, err := m.Add(seqOf(1, 64), nil)
		if err != nil {
			t.Fatal(err)
		}
		if a, err := m.CanAdmit(id); err != nil || a != paged.AdmitNever {
			t.Fatalf("caching %v: CanAdmit of the whole prompt = %v, %v; want never", caching, a, err)
		}
		if a, err := m.CanAdmitChunk(id, 8); err != nil || a != paged.AdmitOK {
			t.Fatalf("caching %v: CanAdmitChunk(8) = %v, %v; want ok", caching, a, err)
		}
		peak, err := chunkByChunk(m, id, 8)
		if err != nil {
			t.Fatalf("caching %v: %v", caching, err)
		}
		if peak > 40 {
			t.Fatalf("caching %v: peak %d blocks in a pool of 40", caching, peak)
		}
		t.Logf("caching %v: peak %d blocks, the whole prompt at once 96", caching, peak)
		// Decoding on goes on too.
		if err := m.Append(id, 7); err != nil {
			t.Fatal(err)
		}
		if err := m.Check(); err != nil {
			t.Fatal(err)
		}
	}
}

// TestAdmitChunkHybridNever: when the full-attention group and the state
// cannot hold the prompt together (39 blocks of 4 tokens and 2 pages in a
// pool of 40), chunks do not help: ErrNever, and nothing changes; a chunk
// too large for the pool (its window groups' blocks of one step beside
// the full group's) is never at that chunk size even though smaller
// chunks fit.
func TestAdmitChunkHybridNever(t *testing.T) {
	groups := []paged.Group{{Kind: paged.FullAttention}, {Kind: paged.State, Pages: 2}}
	for range 5 {
		groups = append(groups, paged.Group{Kind: paged.SlidingWindow, Window: 8})
	}
	m, err := paged.New(paged.Config{BlockSize: 4, NumBlocks: 41, Groups: groups})
	if err != nil {
		t.Fatal(err)
	}
	id, err := m.Add(seqOf(1, 156), nil)
	if err != nil {
		t.Fatal(err)
	}
	wantNever(t, m, id, 1)
	wantNever(t, m, id, 4)
	if st := m.Stats(); st.UsedBlocks != 0 {
		t.Fatalf("a refused admission holds %d blocks", st.UsedBlocks)
	}
	// 64 tokens: 16 full blocks and 2 pages; chunks of 32 hold up to
	// 16 + 2 + 5 x 10, chunks of 8 up to 16 + 2 + 5 x 4.
	id2, err := m.Add(seqOf(1000, 64), nil)
	if err != nil {
		t.Fatal(err)
	}
	wantNever(t, m, id2, 32)
	if _, err := chunkByChunk(m, id2, 8); err != nil {
		t.Fatalf("chunks of 8: %v", err)
	}
}

// wantNever fails t unless CanAdmitChunk and AdmitChunk of id with chunks
// of k tokens both say never.
func wantNever(t *testing.T, m *paged.Manager, id paged.SeqID, k int) {
	t.Helper()
	if a, err := m.CanAdmitChunk(id, k); err != nil || a != paged.AdmitNever {
		t.Fatalf("CanAdmitChunk(%d) = %v, %v; want never", k, a, err)
	}
	if _, _, err := m.AdmitChunk(id, k, nil); !errors.Is(err, paged.ErrNever) {
		t.Fatalf("AdmitChunk(%d): %v, want ErrNever", k, err)
	}
}

// TestAdmitChunkNeverMatchesSimulation: for a drawn hybrid layout (or a
// single group, the sequence windowed or not), pool,
// cached prefix and chunk size, AdmitChunk says ErrNever exactly when
// computing the prompt chunk by chunk cannot be done in the pool: a twin
// manager with a pool large enough for anything, given the same history,
// computes it chunk by chunk (Check after every step) and its peak of
// blocks in use is compared with the small pool's usable blocks. Where
// the small pool admits, the prompt completes there chunk by chunk, alone
// in the pool, Check passing after every step. A prompt the small pool
// admits whole is never never in chunks (it asked for a checkpoint page
// an admission takes only where there is room: audit26).
func TestAdmitChunkNeverMatchesSimulation(t *testing.T) {
	rapid.Check(t, func(t *rapid.T) {
		bs := rapid.SampledFrom([]int{1, 2, 4}).Draw(t, "bs")
		groups := []paged.Group{{Kind: paged.FullAttention}}
		for range rapid.IntRange(1, 3).Draw(t, "extra") {
			switch rapid.IntRange(0, 3).Draw(t, "kind") {
			case 0, 1:
				groups = append(groups, paged.Group{Kind: paged.SlidingWindow, Window: rapid.IntRange(1, 4*bs+1).Draw(t, "window")})
			case 2:
				groups = append(groups, paged.Group{Kind: paged.ChunkedLocal, Chunk: rapid.IntRange(1, 4*bs+1).Draw(t, "chunk")})
			case 3:
				groups = append(groups, paged.Group{Kind: paged.State, Pages: rapid.IntRange(1, 2).Draw(t, "pages")})
			}
		}
		caching := rapid.Bool().Draw(t, "caching")
		compat := caching && rapid.Bool().Draw(t, "compat")
		n := rapid.IntRange(2, 24*bs).Draw(t, "n")
		k := rapid.IntRange(1, n).Draw(t, "k")
		prefix := rapid.IntRange(0, n-1).Draw(t, "prefix")
		blocks := rapid.IntRange(2, 8*n/bs+16).Draw(t, "blocks")
		cfg := paged.Config{BlockSize: bs, NumBlocks: blocks, Groups: groups, DisablePrefixCaching: !caching, UnifiedFreeQueue: compat, MaxModelLen: n}
		var opts *paged.SeqOptions
		if rapid.Bool().Draw(t, "plain") {
			// One group, the sequence's own window (SeqOptions.Window).
			cfg.Groups = nil
			opts = &paged.SeqOptions{Window: rapid.IntRange(0, min(n, 4*bs+1)).Draw(t, "seqWindow")}
		}
		big := cfg
		big.NumBlocks = 64*n + 64
		small, err := paged.New(cfg)
		if err != nil {
			t.Skip(err)
		}
		twin, err := paged.New(big)
		if err != nil {
			t.Fatal(err)
		}
		prompt := seqOf(100, n)
		// History: an earlier sequence computed the prefix and finished
		// (when it fits the small pool).
		if prefix > 0 {
			for _, m := range []*paged.Manager{small, twin} {
				id, _, err := m.Create(prompt[:prefix], opts)
				if err != nil {
					if m == twin {
						t.Fatal(err)
					}
					t.Skip("the prefix does not fit")
				}
				if err := m.Free(id); err != nil {
					t.Fatal(err)
				}
			}
		}
		base := twin.Stats().UsedBlocks
		tid, err := twin.Add(prompt, opts)
		if err != nil {
			t.Fatal(err)
		}
		peak, err := chunkByChunk(twin, tid, k)
		if err != nil {
			t.Fatalf("twin: %v", err)
		}
		peak -= base
		sid, err := small.Add(prompt, opts)
		if err != nil {
			t.Skip(err)
		}
		whole, err := small.CanAdmit(sid)
		if err != nil {
			t.Fatal(err)
		}
		a, err := small.CanAdmitChunk(sid, k)
		if err != nil {
			t.Fatal(err)
		}
		if whole != paged.AdmitNever && a == paged.AdmitNever {
			// Computed in chunks a prompt holds no more than admitted
			// whole, but for the checkpoint its admission asks only
			// where there is room (audit26).
			t.Fatalf("CanAdmit %v (whole), CanAdmitChunk(%d) never", whole, k)
		}
		usable := small.Stats().UsableBlocks
		_, err = chunkByChunk(small, sid, k)
		if (a == paged.AdmitNever) != errors.Is(err, paged.ErrNever) {
			t.Fatalf("CanAdmitChunk %v, AdmitChunk %v", a, err)
		}
		switch {
		case errors.Is(err, paged.ErrNever):
			if peak <= usable {
				t.Fatalf("never, but chunk by chunk the prompt peaks at %d of %d usable blocks", peak, usable)
			}
		case err != nil:
			t.Fatalf("admitted, then chunk by chunk alone in the pool: %v (twin's peak %d of %d usable)", err, peak, usable)
		}
	})
}
