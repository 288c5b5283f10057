package paged

import (
	"slices"
	"testing"
	"unsafe"
)

// TestSequenceHotLine: what the one-token Append and BuildBatch read of
// every sequence every step (generation, version, state, the own limit
// and its version, the mark, the windowed and plain flags, the tokens'
// header and the blocks' length) lies in the record's first 64 bytes,
// and the record is a whole number of cache lines, so a decode step over
// many sequences touches one line of each.
func TestSequenceHotLine(t *testing.T) {
	var f seqFields
	blocksLen := unsafe.Offsetof(f.blocks) + unsafe.Sizeof(uintptr(0)) // the header's second word
	if end := blocksLen + unsafe.Sizeof(0); end > 64 {
		t.Errorf("the blocks' length ends at byte %d of the sequence record, past its first cache line", end)
	}
	for name, off := range map[string]uintptr{
		"gen": unsafe.Offsetof(f.gen), "version": unsafe.Offsetof(f.version), "ownVer": unsafe.Offsetof(f.ownVer),
		"ownEnd": unsafe.Offsetof(f.ownEnd), "mark": unsafe.Offsetof(f.mark), "state": unsafe.Offsetof(f.state),
		"windowed": unsafe.Offsetof(f.windowed), "plain": unsafe.Offsetof(f.plain),
		"tokens": unsafe.Offsetof(f.tokens) + unsafe.Sizeof(f.tokens) - 1,
	} {
		if off >= 64 {
			t.Errorf("%s ends past the sequence record's first cache line (byte %d)", name, off)
		}
	}
	if n := unsafe.Sizeof(sequence{}); n%64 != 0 {
		t.Errorf("a sequence record is %d bytes, not a whole number of cache lines", n)
	}
}

// TestSequenceHashLine: what hashing and committing the block a decode
// token fills reads besides the first line (the hashes' header, the hash
// limit, the committed and speculative counts, the pending pointer) lies
// in the record's second 64 bytes, so that such a block touches the
// sequence's first two lines (the options' extra keys are read through
// the plain flag of the first), not four as before session 6.
func TestSequenceHashLine(t *testing.T) {
	if unsafe.Sizeof(uintptr(0)) != 8 {
		t.Skip("the record is laid out for 64-bit words; with 4-byte words its fields move to other lines")
	}
	var f seqFields
	for name, r := range map[string][2]uintptr{
		"hashes":    {unsafe.Offsetof(f.hashes), unsafe.Sizeof(f.hashes)},
		"hashLimit": {unsafe.Offsetof(f.hashLimit), unsafe.Sizeof(f.hashLimit)},
		"committed": {unsafe.Offsetof(f.committed), unsafe.Sizeof(f.committed)},
		"spec":      {unsafe.Offsetof(f.spec), unsafe.Sizeof(f.spec)},
		"pend":      {unsafe.Offsetof(f.pend), unsafe.Sizeof(f.pend)},
	} {
		if r[0] < 64 || r[0]+r[1] > 128 {
			t.Errorf("%s lies at bytes %d-%d of the sequence record, outside its second cache line", name, r[0], r[0]+r[1]-1)
		}
	}
}

// TestPlainKeys: a sequence's plain flag says exactly that its options add
// no extra hash key, and the blocks its decode tokens fill (the one-token
// fast paths, a fork's too) hash as BlockHashes says under its options,
// with and without extra keys.
func TestPlainKeys(t *testing.T) {
	for _, tc := range []struct {
		name  string
		opts  *SeqOptions
		plain bool
	}{
		{"none", nil, true},
		{"hint", &SeqOptions{MaxTokens: 200}, true},
		{"lora", &SeqOptions{LoRA: 7}, false},
		{"salt", &SeqOptions{Salt: "tenant"}, false},
		{"mm", &SeqOptions{MM: []MMRange{{Start: 2, End: 5, Hash: "img"}}}, false},
	} {
		t.Run(tc.name, func(t *testing.T) {
			m, err := New(Config{NumBlocks: 64})
			if err != nil {
				t.Fatal(err)
			}
			prompt := make([]int32, 20)
			for i := range prompt {
				prompt[i] = int32(i + 1)
			}
			id, _, err := m.Create(prompt, tc.opts)
			if err != nil {
				t.Fatal(err)
			}
			for i := range 30 {
				if err := m.Append(id, int32(100+i)); err != nil {
					t.Fatal(err)
				}
			}
			child, err := m.Fork(id)
			if err != nil {
				t.Fatal(err)
			}
			for i := range 20 {
				if err := m.Append(child, int32(200+i)); err != nil {
					t.Fatal(err)
				}
			}
			for _, sid := range []SeqID{id, child} {
				s, _ := m.seq(sid)
				if s.plain != tc.plain {
					t.Errorf("%v: plain %v, want %v", sid, s.plain, tc.plain)
				}
				want, err := m.BlockHashes(nil, s.tokens, tc.opts)
				if err != nil {
					t.Fatal(err)
				}
				if len(s.hashes) != len(want) || !slices.Equal(s.hashes, want) {
					t.Errorf("%v: %d hashes differ from BlockHashes' %d", sid, len(s.hashes), len(want))
				}
			}
			if err := m.Check(); err != nil {
				t.Fatal(err)
			}
			// The slot's next sequence starts plain again.
			for _, sid := range []SeqID{child, id} {
				if err := m.Free(sid); err != nil {
					t.Fatal(err)
				}
			}
			id2, _, err := m.Create(prompt, nil)
			if err != nil {
				t.Fatal(err)
			}
			if s, _ := m.seq(id2); !s.plain {
				t.Error("a reused slot without options is not plain")
			}
		})
	}
}
