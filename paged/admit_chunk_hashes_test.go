package paged

import (
	"slices"
	"testing"

	"pgregory.net/rapid"
)

// chunkHashOpts are the sequence options the kept-hash tests run under:
// none, and every extra key (LoRA, salt, a multimodal range in the tail).
var chunkHashOpts = []*SeqOptions{
	nil,
	{LoRA: 3, Salt: "s", MM: []MMRange{{Start: 50, End: 70, Hash: "img"}}},
}

// seqHashes returns a copy of a sequence's block hashes.
func seqHashes(t *testing.T, m *Manager, id SeqID) []Hash {
	t.Helper()
	s, err := m.seq(id)
	mustOK(t, err)
	return slices.Clone(s.hashes)
}

// wantHashes are the hashes of tokens' full blocks, computed whole.
func wantHashes(t *testing.T, m *Manager, tokens []int32, opts *SeqOptions) []Hash {
	t.Helper()
	hs, err := m.BlockHashes(nil, tokens, opts)
	mustOK(t, err)
	return hs
}

// appendChunks gives rest back to id k tokens at a time.
func appendChunks(t *testing.T, m *Manager, id SeqID, rest []int32, k int) {
	t.Helper()
	for len(rest) > 0 {
		n := min(k, len(rest))
		mustOK(t, m.Append(id, rest[:n]...))
		rest = rest[n:]
	}
}

// TestAdmitChunkHashesOnce: a prompt admitted in a chunk that ends inside
// a block, its tail given back in chunks that end inside blocks, hashes
// each of its full blocks once (at Add), and ends with the hashes and the
// cached content of the prompt admitted whole.
func TestAdmitChunkHashesOnce(t *testing.T) {
	const bs = 4
	for _, opts := range chunkHashOpts {
		m, err := New(Config{BlockSize: bs, NumBlocks: 65})
		mustOK(t, err)
		prompt := chunkPrompt(1, 40*bs+2)
		id, err := m.Add(prompt, opts)
		mustOK(t, err)
		if h := m.Stats().BlocksHashed; h != 40 {
			t.Fatalf("Add hashed %d blocks, want 40", h)
		}
		_, rest, err := m.AdmitChunk(id, 5*bs+1, nil)
		mustOK(t, err)
		if len(rest) != len(prompt)-5*bs-1 {
			t.Fatalf("rest holds %d tokens, want %d", len(rest), len(prompt)-5*bs-1)
		}
		appendChunks(t, m, id, rest, 3*bs+1)
		if h := m.Stats().BlocksHashed; h != 40 {
			t.Errorf("opts %+v: %d blocks hashed after the tail came back, want 40 (each once)", opts, h)
		}
		if got, want := seqHashes(t, m, id), wantHashes(t, m, prompt, opts); !slices.Equal(got, want) {
			t.Fatalf("opts %+v: hashes differ from the prompt's hashed whole", opts)
		}
		// Decoding on hashes new blocks as usual.
		appendChunks(t, m, id, chunkPrompt(900000, 2*bs), 1)
		if h := m.Stats().BlocksHashed; h != 42 {
			t.Errorf("opts %+v: %d blocks hashed after decoding 2 blocks, want 42", opts, h)
		}
		full := append(slices.Clone(prompt), chunkPrompt(900000, 2*bs)...)
		if got, want := seqHashes(t, m, id), wantHashes(t, m, full, opts); !slices.Equal(got, want) {
			t.Fatalf("opts %+v: hashes differ after decoding", opts)
		}
		mustOK(t, m.Free(id))
		if opts == nil {
			if c := hitsOf(t, m, full); c != 42*bs {
				t.Fatalf("the sequence's content hits %d tokens, want %d", c, 42*bs)
			}
		}
		mustOK(t, m.Check())
	}
}

// TestAdmitChunkHashesMismatch: a tail that differs from the cut one from
// block 20 on reuses the kept hashes of blocks 5 to 19 only, hashes the
// rest, and commits the content of what was appended.
func TestAdmitChunkHashesMismatch(t *testing.T) {
	const bs = 4
	for _, opts := range chunkHashOpts {
		m, err := New(Config{BlockSize: bs, NumBlocks: 65})
		mustOK(t, err)
		prompt := chunkPrompt(1, 40*bs)
		id, err := m.Add(prompt, opts)
		mustOK(t, err)
		_, rest, err := m.AdmitChunk(id, 5*bs+1, nil)
		mustOK(t, err)
		rest[20*bs-5*bs-1+2]++ // a token of block 20
		appendChunks(t, m, id, rest, 7)
		if h := m.Stats().BlocksHashed; h != 40+20 {
			t.Errorf("opts %+v: %d blocks hashed, want 60", opts, h)
		}
		got := append(slices.Clone(prompt[:5*bs+1]), rest...)
		if want := wantHashes(t, m, got, opts); !slices.Equal(seqHashes(t, m, id), want) {
			t.Fatalf("opts %+v: hashes differ from the appended tokens' hashed whole", opts)
		}
		mustOK(t, m.Check())
		mustOK(t, m.Free(id))
		if opts == nil {
			if c := hitsOf(t, m, prompt); c != 20*bs {
				t.Fatalf("the cut prompt hits %d tokens, want %d (its first 20 blocks)", c, 20*bs)
			}
			if c := hitsOf(t, m, got); c != 40*bs-bs {
				// The probe's last block is never a hit (a full hit
				// keeps one token to compute).
				t.Fatalf("the appended tokens hit %d tokens, want %d", c, 39*bs)
			}
		}
	}
}

// TestAdmitChunkHashesDropped: Truncate, Preempt and Fork drop the kept
// hashes; a tail appended after a prefix was changed, with the same tokens
// as the cut ones, is hashed on its new prefix, never given the kept hashes.
func TestAdmitChunkHashesDropped(t *testing.T) {
	const bs = 4
	prompt := chunkPrompt(1, 20*bs)
	for _, op := range []string{"truncate", "preempt", "fork"} {
		m, err := New(Config{BlockSize: bs, NumBlocks: 129})
		mustOK(t, err)
		id, err := m.Add(prompt, nil)
		mustOK(t, err)
		_, rest, err := m.AdmitChunk(id, 6*bs, nil)
		mustOK(t, err)
		want := slices.Clone(prompt)
		switch op {
		case "truncate":
			// Change block 2, then give back the cut tokens unchanged.
			mustOK(t, m.Truncate(id, 2*bs))
			want[2*bs]++
			mustOK(t, m.Append(id, want[2*bs:6*bs]...))
		case "preempt":
			mustOK(t, m.Preempt(id))
			_, err = m.Admit(id)
			mustOK(t, err)
		case "fork":
			c, err := m.Fork(id)
			mustOK(t, err)
			appendChunks(t, m, c, rest, 5)
			if got := seqHashes(t, m, c); !slices.Equal(got, wantHashes(t, m, prompt, nil)) {
				t.Fatalf("fork: the child's hashes differ")
			}
		}
		h0 := m.Stats().BlocksHashed
		appendChunks(t, m, id, rest, 5)
		if h := m.Stats().BlocksHashed - h0; h != 14 {
			t.Errorf("%s: %d blocks hashed for the tail, want 14 (none kept)", op, h)
		}
		if got := seqHashes(t, m, id); !slices.Equal(got, wantHashes(t, m, want, nil)) {
			t.Fatalf("%s: hashes differ from the tokens' hashed whole", op)
		}
		mustOK(t, m.Check())
	}
}

// TestAdmitChunkHashesRapid: after a chunked admission, whatever mix of
// appends (the cut tokens, or others), truncations and preemptions
// follows, a sequence's hashes are those of its tokens hashed whole.
func TestAdmitChunkHashesRapid(t *testing.T) {
	rapid.Check(t, func(t *rapid.T) {
		bs := rapid.IntRange(1, 4).Draw(t, "bs")
		m, err := New(Config{BlockSize: bs, NumBlocks: 200})
		if err != nil {
			t.Fatal(err)
		}
		prompt := rapid.SliceOfN(rapid.Int32Range(0, 3), 2, 60).Draw(t, "prompt")
		var opts *SeqOptions
		if rapid.Bool().Draw(t, "extraKeys") {
			opts = &SeqOptions{LoRA: 3, Salt: "s", MM: []MMRange{{Start: len(prompt) / 2, End: len(prompt), Hash: "img"}}}
		}
		id, err := m.Add(prompt, opts)
		if err != nil {
			t.Fatal(err)
		}
		_, rest, err := m.AdmitChunk(id, rapid.IntRange(1, len(prompt)).Draw(t, "maxNew"), nil)
		if err != nil {
			t.Fatal(err)
		}
		running := true
		for range rapid.IntRange(0, 12).Draw(t, "ops") {
			s, _ := m.seq(id)
			switch op := rapid.IntRange(0, 4).Draw(t, "op"); {
			case op <= 1 && len(rest) > 0: // the cut tokens, maybe one changed
				k := rapid.IntRange(1, len(rest)).Draw(t, "k")
				toks := slices.Clone(rest[:k])
				if op == 1 {
					toks[rapid.IntRange(0, k-1).Draw(t, "at")]++
				}
				rest = rest[k:]
				if err := m.Append(id, toks...); err != nil {
					t.Fatal(err)
				}
			case op == 2:
				toks := rapid.SliceOfN(rapid.Int32Range(0, 3), 1, 8).Draw(t, "toks")
				if err := m.Append(id, toks...); err != nil {
					t.Fatal(err)
				}
			case op == 3 && len(s.tokens) > 1:
				n := rapid.IntRange(1, len(s.tokens)-1).Draw(t, "n")
				if err := m.Truncate(id, n); err != nil {
					t.Fatal(err)
				}
			case op == 4:
				if running {
					err = m.Preempt(id)
				} else {
					_, err = m.Admit(id)
				}
				if err != nil {
					t.Fatal(err)
				}
				running = !running
			}
			s, _ = m.seq(id)
			// The hashes of the tokens, hashed whole (BlockHashes would
			// refuse a multimodal range past a truncation).
			want := m.chain.extend(nil, s.tokens, &s.opts, 0, len(s.tokens)/bs)
			if !slices.Equal(s.hashes, want) {
				t.Fatalf("%d hashes differ from the %d tokens' %d hashed whole", len(s.hashes), len(s.tokens), len(want))
			}
			if err := m.Check(); err != nil {
				t.Fatal(err)
			}
		}
	})
}
