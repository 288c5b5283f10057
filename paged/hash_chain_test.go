package paged

import (
	"crypto/sha256"
	"encoding/binary"
	"math/rand/v2"
	"testing"
)

// TestChainExtendIsSHA256Chain: a SHA256Hasher's chain, which hashes
// 16-token blocks without extra keys through its own loop (extendMore), is
// h[k] = SHA-256(h[k-1] || tokens of block k as little-endian int32) from
// the root, computed here with crypto/sha256 alone, whether it starts at
// block 0 or extends a chain already begun; blocks with extra keys and
// other block sizes still agree with it.
func TestChainExtendIsSHA256Chain(t *testing.T) {
	rng := rand.New(rand.NewPCG(11, 13))
	tokens := make([]int32, 16*40+5)
	for i := range tokens {
		tokens[i] = int32(rng.Uint32() >> 1)
	}
	want := func(bs int, extra func(k int) []byte) []Hash {
		root := rootHash(nil)
		var out []Hash
		parent := root
		for k := 0; (k+1)*bs <= len(tokens); k++ {
			msg := append([]byte(nil), parent[:]...)
			for _, tok := range tokens[k*bs : (k+1)*bs] {
				msg = binary.LittleEndian.AppendUint32(msg, uint32(tok))
			}
			msg = append(msg, extra(k)...)
			parent = sha256.Sum256(msg)
			out = append(out, parent)
		}
		return out
	}
	none := func(int) []byte { return nil }
	for _, bs := range []int{16, 8} {
		c := chain{hasher: NewSHA256Hasher(), root: rootHash(nil), bs: bs}
		w := want(bs, none)
		got := c.extend(nil, tokens, &SeqOptions{}, 0, len(w))
		if len(got) != len(w) {
			t.Fatalf("bs %d: %d hashes, want %d", bs, len(got), len(w))
		}
		for k := range w {
			if got[k] != w[k] {
				t.Fatalf("bs %d: block %d hash differs from SHA-256's chain", bs, k)
			}
		}
		// Extending a chain begun elsewhere, into a buffer with room.
		part := c.extend(make([]Hash, 0, 2), tokens, &SeqOptions{}, 0, 7)
		part = c.extend(part, tokens, &SeqOptions{}, 7, len(w))
		for k := range w {
			if part[k] != w[k] {
				t.Fatalf("bs %d: extended chain differs at block %d", bs, k)
			}
		}
		// Nothing to extend: the chain comes back as it was.
		if got := c.extend(part[:5:5], tokens, &SeqOptions{}, 5, 3); len(got) != 5 || got[4] != w[4] {
			t.Fatalf("bs %d: an empty extension changed the chain", bs)
		}
	}
	c := chain{hasher: NewSHA256Hasher(), root: rootHash(nil), bs: 16}
	opts := &SeqOptions{LoRA: 3}
	w := want(16, func(k int) []byte { return appendExtraKeys(nil, opts, k, 16) })
	got := c.extend(nil, tokens, opts, 0, len(w))
	for k := range w {
		if got[k] != w[k] {
			t.Fatalf("LoRA: block %d hash differs from SHA-256's chain", k)
		}
	}
}
