package paged

import (
	"testing"
	"unsafe"
)

// TestSequenceHotLine: what the one-token Append and BuildBatch read of
// every sequence every step (generation, version, state, the own limit
// and its version, the mark, the windowed flag, the tokens' header and
// the blocks' length) lies in the record's first 64 bytes, and the record is a whole number of cache
// lines, so a decode step over many sequences touches one line of each.
func TestSequenceHotLine(t *testing.T) {
	var f seqFields
	blocksLen := unsafe.Offsetof(f.blocks) + unsafe.Sizeof(uintptr(0)) // the header's second word
	if end := blocksLen + unsafe.Sizeof(0); end > 64 {
		t.Errorf("the blocks' length ends at byte %d of the sequence record, past its first cache line", end)
	}
	for name, off := range map[string]uintptr{
		"gen": unsafe.Offsetof(f.gen), "version": unsafe.Offsetof(f.version), "ownVer": unsafe.Offsetof(f.ownVer),
		"ownEnd": unsafe.Offsetof(f.ownEnd), "mark": unsafe.Offsetof(f.mark), "state": unsafe.Offsetof(f.state),
		"windowed": unsafe.Offsetof(f.windowed), "tokens": unsafe.Offsetof(f.tokens) + unsafe.Sizeof(f.tokens) - 1,
	} {
		if off >= 64 {
			t.Errorf("%s ends past the sequence record's first cache line (byte %d)", name, off)
		}
	}
	if n := unsafe.Sizeof(sequence{}); n%64 != 0 {
		t.Errorf("a sequence record is %d bytes, not a whole number of cache lines", n)
	}
}
