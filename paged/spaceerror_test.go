package paged

import (
	"errors"
	"testing"
	"unsafe"
)

// TestSpaceErrorSize: a refusal's error stays at 32 bytes (it is part of
// every Manager), and its message names the call, the sequence and the
// numbers.
func TestSpaceErrorSize(t *testing.T) {
	if n := unsafe.Sizeof(spaceError{}); n > 32 {
		t.Fatalf("spaceError is %d bytes, more than 32", n)
	}
	id := makeSeqID(7, 3)
	m, err := New(Config{NumBlocks: 2})
	if err != nil {
		t.Fatal(err)
	}
	for _, c := range []struct {
		op                     spaceOp
		need, avail, watermark int
		want                   string
	}{
		{opAdmit, 12, 5, 2, "paged: not enough free blocks: Admit seq7.3: needs 12 blocks, 5 available (watermark 2)"},
		{opAppend, 1, 0, 0, "paged: not enough free blocks: Append to seq7.3: needs 1 blocks, 0 available"},
		{opFork, 1 << 30, MaxBlocks, 0, "paged: not enough free blocks: Fork seq7.3: needs 1073741824 blocks, 16777216 available"},
	} {
		// The manager's value, rewritten by each refusal: read at once.
		err := m.noSpace(c.op, id, c.need, c.avail, c.watermark)
		if !errors.Is(err, ErrNoSpace) || err.Error() != c.want {
			t.Errorf("got %q (ErrNoSpace: %v), want %q", err.Error(), errors.Is(err, ErrNoSpace), c.want)
		}
	}
}
