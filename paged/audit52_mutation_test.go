package paged_test

import (
	"testing"

	"github.com/pagedkv/pagedkv/paged"
)

// TestAudit52SaltAndImageKeysDoNotAlias checks that the extra keys of a
// block say which key each byte belongs to (Hash: "two blocks with the
// same Hash hold the same KV"): a cache salt that happens to end in the
// bytes a multimodal key is written as ('M', its length, its hash) must
// not hash like a shorter salt followed by that multimodal input. Two
// tenants' first blocks then alias, so one tenant reads the other's KV
// through the prefix cache. The salt's length is written before it for
// exactly this. (Mutation M562.)
func TestAudit52SaltAndImageKeysDoNotAlias(t *testing.T) {
	for _, h := range []paged.Hasher{paged.NewSHA256Hasher(), paged.FastHasher{}} {
		m, err := paged.New(paged.Config{BlockSize: 4, NumBlocks: 16, Hasher: h})
		if err != nil {
			t.Fatal(err)
		}
		prompt := []int32{1, 2, 3, 4, 5, 6, 7, 8}
		a := paged.SeqOptions{Salt: "aM\x01z"}
		b := paged.SeqOptions{Salt: "a", MM: []paged.MMRange{{Start: 0, End: 2, Hash: "z"}}}
		ha, err := m.BlockHashes(nil, prompt, &a)
		if err != nil {
			t.Fatal(err)
		}
		hb, err := m.BlockHashes(nil, prompt, &b)
		if err != nil {
			t.Fatal(err)
		}
		if len(ha) != 2 || len(hb) != 2 {
			t.Fatalf("%T: %d and %d hashes, want 2", h, len(ha), len(hb))
		}
		if ha[0] == hb[0] {
			t.Errorf("%T: salt %q and salt %q with image %q hash block 0 alike (%x)", h, a.Salt, b.Salt, b.MM[0].Hash, ha[0][:8])
		}
	}
}

// TestAudit52FastHasherReadsTheWholeParent checks that FastHasher's sum
// depends on every byte of the parent that its sums vary in (the first
// 16: "only the first 16 bytes of the result vary"): two parents that
// differ only in bytes 8-15 are two different prefixes, and a child that
// ignored that word would alias across them with odds of one in 2^64
// rather than 2^128 for chained parents, and always for parents a caller
// precomputes (AddHashed). (Mutation M569.)
func TestAudit52FastHasherReadsTheWholeParent(t *testing.T) {
	tokens := []int32{1, 2, 3, 4}
	for i := range 16 {
		var p, q paged.Hash
		q[i] = 1
		if (paged.FastHasher{}).Sum(&p, tokens, nil) == (paged.FastHasher{}).Sum(&q, tokens, nil) {
			t.Errorf("parents differing in byte %d give the same hash", i)
		}
	}
}
