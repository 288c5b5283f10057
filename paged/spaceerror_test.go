package paged

import (
	"errors"
	"strings"
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
	m := &Manager{}
	for _, c := range []struct {
		err  error
		want string
	}{
		{m.noSpace(opAdmit, id, 12, 5, 2), "paged: not enough free blocks: Admit seq7.3: needs 12 blocks, 5 available (watermark 2)"},
		{m.noSpace(opAppend, id, 1, 0, 0), "paged: not enough free blocks: Append to seq7.3: needs 1 blocks, 0 available"},
		{m.noSpace(opFork, id, 1<<30, MaxBlocks, 0), "paged: not enough free blocks: Fork seq7.3: needs 1073741824 blocks, 16777216 available"},
	} {
		if !errors.Is(c.err, ErrNoSpace) || c.err.Error() != c.want {
			t.Errorf("got %q (ErrNoSpace: %v), want %q", c.err.Error(), errors.Is(c.err, ErrNoSpace), c.want)
		}
	}
}

// TestRefusalsKeepTheirErrors: the ErrNoSpace errors of Admit and Append
// come from slabs (noSpace), yet each is its own value: every one of
// several slabs' worth still reads as it did when it was returned, after
// the refusals that came later, and a refused Admit allocates nothing on
// average (one slab a refusalSlab refusals).
func TestRefusalsKeepTheirErrors(t *testing.T) {
	m, err := New(Config{NumBlocks: 17, BlockSize: 4})
	if err != nil {
		t.Fatal(err)
	}
	// Two sequences hold most of the pool; others, each needing more
	// than is left, are refused at every Admit.
	var big SeqID
	for k := range 2 {
		tokens := make([]int32, 24)
		tokens[0] = int32(k + 1)
		if big, err = m.Add(tokens, nil); err != nil {
			t.Fatal(err)
		}
		if _, err := m.Admit(big); err != nil {
			t.Fatal(err)
		}
	}
	var ids []SeqID
	for k := range 5 {
		tokens := make([]int32, 17+4*k) // 5 to 9 blocks
		for i := range tokens {
			tokens[i] = int32(1000*k + i + 1)
		}
		id, err := m.Add(tokens, nil)
		if err != nil {
			t.Fatal(err)
		}
		ids = append(ids, id)
	}
	type kept struct {
		err error
		msg string
	}
	var all []kept
	for r := range 3*refusalSlab + 5 {
		id := ids[r%len(ids)]
		_, err := m.Admit(id)
		if !errors.Is(err, ErrNoSpace) {
			t.Fatalf("refusal %d: Admit(%v) = %v, want ErrNoSpace", r, id, err)
		}
		all = append(all, kept{err, err.Error()})
	}
	// Append refusals share the slabs: the last big sequence fills its
	// blocks and then asks for one more than is free.
	for {
		err := m.Append(big, 1)
		if err == nil {
			continue
		}
		if !errors.Is(err, ErrNoSpace) {
			t.Fatal(err)
		}
		all = append(all, kept{err, err.Error()})
		break
	}
	for k, e := range all {
		if got := e.err.Error(); got != e.msg {
			t.Fatalf("error %d reads %q, was %q when returned", k, got, e.msg)
		}
		for _, f := range all[:k] {
			if f.err == e.err {
				t.Fatalf("error %d is the same value as an earlier one", k)
			}
		}
	}
	if want := "Admit " + ids[0].String() + ": needs "; !strings.Contains(all[0].msg, want) {
		t.Errorf("first refusal %q, want it to contain %q", all[0].msg, want)
	}
	if a := testing.AllocsPerRun(3*refusalSlab, func() { _, _ = m.Admit(ids[1]) }); a != 0 {
		t.Errorf("a refused Admit allocates %v on average, want 0", a)
	}
}
