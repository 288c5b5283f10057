package paged

import (
	"errors"
	"testing"
	"unsafe"
)

// TestSpaceErrorSize: a refusal's error stays in the heap's 32-byte size
// class, and its message names the call, the sequence and the numbers.
func TestSpaceErrorSize(t *testing.T) {
	if n := unsafe.Sizeof(spaceError{}); n > 32 {
		t.Fatalf("spaceError is %d bytes, more than 32", n)
	}
	id := makeSeqID(7, 3)
	for _, c := range []struct {
		err  error
		want string
	}{
		{noSpace(opAdmit, id, 12, 5, 2), "paged: not enough free blocks: Admit seq7.3: needs 12 blocks, 5 available (watermark 2)"},
		{noSpace(opAppend, id, 1, 0, 0), "paged: not enough free blocks: Append to seq7.3: needs 1 blocks, 0 available"},
		{noSpace(opFork, id, 1<<30, MaxBlocks, 0), "paged: not enough free blocks: Fork seq7.3: needs 1073741824 blocks, 16777216 available"},
	} {
		if !errors.Is(c.err, ErrNoSpace) || c.err.Error() != c.want {
			t.Errorf("got %q (ErrNoSpace: %v), want %q", c.err.Error(), errors.Is(c.err, ErrNoSpace), c.want)
		}
	}
}
