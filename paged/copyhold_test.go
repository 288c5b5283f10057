package paged_test

import (
	"slices"
	"testing"

	"github.com/pagedkv/pagedkv/paged"
)

// checkStepDirectives fails unless no directive of a step writes a block
// a copy of the same step reads, after (in the documented order: swaps in
// order, then the copies) or beside that copy: a DeviceCopy of the stream
// must not have its source overwritten by a later directive of the
// stream nor by a Copy, and no Copy's destination may be another Copy's
// source (a server may run the copies as one parallel kernel).
func checkStepDirectives(t fataler, swaps []paged.Swap, copies []paged.Copy) {
	for i, d := range swaps {
		if d.Kind != paged.DeviceCopy {
			continue
		}
		for _, w := range swaps[i+1:] {
			if w.Kind.DstMedium() == paged.Device && w.Dst == d.Src {
				t.Fatalf("step directives: %v into block %d after the device copy %d -> %d read it (swaps %v)", w.Kind, w.Dst, d.Src, d.Dst, swaps)
			}
		}
		for _, c := range copies {
			if c.Dst == d.Src {
				t.Fatalf("step directives: copy %d -> %d overwrites the source of the device copy %d -> %d", c.Src, c.Dst, d.Src, d.Dst)
			}
		}
	}
	for i, c := range copies {
		for j, o := range copies {
			if i != j && o.Dst == c.Src {
				t.Fatalf("step directives: copy %d -> %d writes the source of copy %d -> %d of the same list %v", o.Src, o.Dst, c.Src, c.Dst, copies)
			}
		}
	}
}

// runParallel runs copies as one batched kernel would: every copy reads
// its source before any writes.
func runParallel(s *shadowKV, copies []paged.Copy) {
	read := make([]map[int]uint64, len(copies))
	for i, c := range copies {
		read[i] = map[int]uint64{}
		for off := range s.bs {
			if v, ok := s.slot[int64(c.Src)*int64(s.bs)+int64(off)]; ok {
				read[i][off] = v
			}
		}
	}
	for i, c := range copies {
		for off := range s.bs {
			to := int64(c.Dst)*int64(s.bs) + int64(off)
			if v, ok := read[i][off]; ok {
				s.slot[to] = v
			} else {
				delete(s.slot, to)
			}
		}
	}
}

// TestCopySourceNotReusedInStep: a copy-on-write append queues Copy{last,
// d} and gives up its reference to last; when the other holder of last is
// freed in the same step, last must not come back as the destination of
// another copy of the step (nor be handed out at all) before the server
// has run the copies. Run as one parallel kernel, the copies would
// otherwise read a source another copy is writing.
func TestCopySourceNotReusedInStep(t *testing.T) {
	const bs = 4
	m, err := paged.New(paged.Config{BlockSize: bs, NumBlocks: 8})
	noErr(t, err)
	sh := &shadowKV{bs: bs, slot: map[int64]uint64{}}
	a := []int32{1, 2, 3, 4, 5, 6}
	c := []int32{9, 9, 9, 9, 8}
	A, err := m.Add(a, nil)
	noErr(t, err)
	C, err := m.Add(c, nil)
	noErr(t, err)
	for _, id := range []paged.SeqID{A, C} {
		_, err := m.Admit(id)
		noErr(t, err)
	}
	sh.write(t, m, A, 0, a, 0)
	sh.write(t, m, C, 0, c, 0)
	B, err := m.Fork(A)
	noErr(t, err)
	D, err := m.Fork(C)
	noErr(t, err)
	sh.apply(m.TakeCopies(nil)) // ends the step

	// One step: B copies A's partial block, A finishes, D copies C's.
	noErr(t, m.Append(B, 7))
	noErr(t, m.Free(A))
	noErr(t, m.Append(D, 7))
	noErr(t, m.Check())
	copies := m.TakeCopies(nil)
	if len(copies) != 2 {
		t.Fatalf("copies %v, want two", copies)
	}
	checkStepDirectives(t, nil, copies)
	runParallel(sh, copies)
	b := append(slices.Clone(a), 7)
	d := append(slices.Clone(c), 7)
	sh.write(t, m, B, 0, b, len(a))
	sh.write(t, m, D, 0, d, len(c))
	sh.readBack(t, m, B, 0, b, len(b))
	sh.readBack(t, m, D, 0, d, len(d))
	sh.readBack(t, m, C, 0, c, len(c))
	noErr(t, m.Check())
}

func noErr(t *testing.T, err error) {
	t.Helper()
	if err != nil {
		t.Fatal(err)
	}
}
