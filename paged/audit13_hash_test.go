package paged_test

import (
	"testing"

	"github.com/pagedkv/pagedkv/paged"
)

// keyRecorder is a Hasher that records the extra keys of every block it
// hashes, so a test sees which blocks a salt or a multimodal input enters.
type keyRecorder struct {
	paged.SHA256Hasher
	extra [][]byte
}

func (h *keyRecorder) Sum(parent *paged.Hash, tokens []int32, extra []byte) paged.Hash {
	h.extra = append(h.extra, append([]byte(nil), extra...))
	return h.SHA256Hasher.Sum(parent, tokens, extra)
}

// TestAudit13ExtraKeysEnterTheirBlocks checks SeqOptions' documented
// reach of each extra hash key: the cache salt enters the first block
// only, a multimodal input every block its range [Start, End) overlaps
// and no other (a range ending at a block's first position does not
// overlap it), the LoRA ID every block. Chaining hides a key in the wrong
// block from any sharing test (a child of a different hash differs
// anyway), but not from a server that hashes as vLLM does (Salt in the
// first block's extra keys only). (Mutations M85 and M86.)
func TestAudit13ExtraKeysEnterTheirBlocks(t *testing.T) {
	rec := &keyRecorder{}
	m, err := paged.New(paged.Config{BlockSize: 4, NumBlocks: 16, Hasher: rec})
	if err != nil {
		t.Fatal(err)
	}
	prompt := []int32{1, 2, 3, 4, 5, 6, 7, 8, 9, 10, 11, 12}
	cases := []struct {
		name string
		opts paged.SeqOptions
		// with[k]: block k has extra keys
		with []bool
	}{
		{"salt", paged.SeqOptions{Salt: "tenant"}, []bool{true, false, false}},
		{"mm ending at a block start", paged.SeqOptions{MM: []paged.MMRange{{Start: 2, End: 4, Hash: "img"}}}, []bool{true, false, false}},
		{"mm starting at a block end", paged.SeqOptions{MM: []paged.MMRange{{Start: 8, End: 9, Hash: "img"}}}, []bool{false, false, true}},
		{"mm across a boundary", paged.SeqOptions{MM: []paged.MMRange{{Start: 3, End: 5, Hash: "img"}}}, []bool{true, true, false}},
		{"lora", paged.SeqOptions{LoRA: 7}, []bool{true, true, true}},
	}
	for _, c := range cases {
		rec.extra = rec.extra[:0]
		if _, err := m.BlockHashes(nil, prompt, &c.opts); err != nil {
			t.Fatalf("%s: %v", c.name, err)
		}
		if len(rec.extra) != len(c.with) {
			t.Fatalf("%s: %d blocks hashed, want %d", c.name, len(rec.extra), len(c.with))
		}
		for k, w := range c.with {
			if got := len(rec.extra[k]) > 0; got != w {
				t.Errorf("%s: block %d has extra keys %q, want some = %v", c.name, k, rec.extra[k], w)
			}
		}
	}
}
