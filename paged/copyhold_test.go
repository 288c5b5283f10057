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
			if i != j && o.Dst == c.Dst {
				t.Fatalf("step directives: copies %d -> %d and %d -> %d of the same list write one block (%v)", c.Src, c.Dst, o.Src, o.Dst, copies)
			}
			if i != j && o.Dst == c.Src {
				t.Fatalf("step directives: copy %d -> %d writes the source of copy %d -> %d of the same list %v", o.Src, o.Dst, c.Src, c.Dst, copies)
			}
		}
	}
}

// runReversed runs copies last first: a server that runs them as one
// batched kernel gives no order among them, and this is one it may take.
func runReversed(s *shadowKV, copies []paged.Copy) {
	for i := len(copies) - 1; i >= 0; i-- {
		s.apply(copies[i : i+1])
	}
}

// forkedPairs is two sequences of one partly filled block past a full
// one, A and C, each forked (B and D), their KV recorded, the step ended.
type forkedPairs struct {
	m          *paged.Manager
	sh         *shadowKV
	a, c       []int32
	A, B, C, D paged.SeqID
}

func newForkedPairs(t *testing.T) forkedPairs {
	const bs = 4
	m, err := paged.New(paged.Config{BlockSize: bs, NumBlocks: 8})
	noErr(t, err)
	f := forkedPairs{m: m, sh: &shadowKV{bs: bs, slot: map[int64]uint64{}},
		a: []int32{1, 2, 3, 4, 5, 6}, c: []int32{9, 9, 9, 9, 8}}
	ids := admitAll(t, m, f.sh, f.a, f.c)
	f.A, f.C = ids[0], ids[1]
	f.B, err = m.Fork(f.A)
	noErr(t, err)
	f.D, err = m.Fork(f.C)
	noErr(t, err)
	f.sh.apply(m.TakeCopies(nil)) // ends the step
	return f
}

// TestCopySourceNotReusedInStep: a copy-on-write append queues Copy{last,
// d} and gives up its reference to last; when the other holder of last is
// freed in the same step, last must not come back as the destination of
// another copy of the step (nor be handed out at all) before the server
// has run the copies. Run as one parallel kernel, the copies would
// otherwise read a source another copy is writing.
func TestCopySourceNotReusedInStep(t *testing.T) {
	f := newForkedPairs(t)
	m, sh, a, c, A, B, C, D := f.m, f.sh, f.a, f.c, f.A, f.B, f.C, f.D

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
	runReversed(sh, copies)
	b := writeGrown(t, m, sh, B, a, 7)
	writeGrown(t, m, sh, D, c, 7)
	sh.readBack(t, m, B, 0, b, len(b))
	sh.readBack(t, m, C, 0, c, len(c))
	noErr(t, m.Check())
}

// admitAll adds and admits a sequence per prompt and records its KV.
func admitAll(t *testing.T, m *paged.Manager, sh *shadowKV, prompts ...[]int32) []paged.SeqID {
	var ids []paged.SeqID
	for _, p := range prompts {
		id, err := m.Add(p, nil)
		noErr(t, err)
		_, err = m.Admit(id)
		noErr(t, err)
		sh.write(t, m, id, 0, p, 0)
		ids = append(ids, id)
	}
	return ids
}

// writeGrown records the KV of the token tok appended to sequence id
// after prev and reads the whole sequence back; it returns its tokens.
func writeGrown(t *testing.T, m *paged.Manager, sh *shadowKV, id paged.SeqID, prev []int32, tok int32) []int32 {
	toks := append(slices.Clone(prev), tok)
	sh.write(t, m, id, 0, toks, len(prev))
	sh.readBack(t, m, id, 0, toks, len(toks))
	return toks
}

func noErr(t *testing.T, err error) {
	t.Helper()
	if err != nil {
		t.Fatal(err)
	}
}

// runStream runs the step's tier directives in order on the shadow device
// store dev and host store host, as the server runs Batch.Swaps.
func runStream(dev *shadowKV, host map[int64]uint64, swaps []paged.Swap) {
	for _, d := range swaps {
		src, dst := dev.slot, dev.slot
		if d.Kind.SrcMedium() == paged.Host {
			src = host
		}
		if d.Kind.DstMedium() == paged.Host {
			dst = host
		}
		for off := range int64(dev.bs) {
			from, to := int64(d.Src)*int64(dev.bs)+off, int64(d.Dst)*int64(dev.bs)+off
			if v, ok := src[from]; ok {
				dst[to] = v
			} else {
				delete(dst, to)
			}
		}
	}
}

// TestCopySourceNotSwappedIntoInStep: with a host tier, a copy-on-write
// append's source, freed by its other holder in the same step, must not
// come back as the destination of a swap-in of that step. (The manager
// folds a copy decided before a tier directive into the stream as a
// DeviceCopy, so run in the documented order the content was right even
// before; the block must still not be reused, for a server that overlaps
// its transfers.)
func TestCopySourceNotSwappedIntoInStep(t *testing.T) {
	const bs = 4
	m, err := paged.New(paged.Config{BlockSize: bs, NumBlocks: 10, HostBlocks: 8})
	noErr(t, err)
	sh := &shadowKV{bs: bs, slot: map[int64]uint64{}}
	host := map[int64]uint64{}
	a := []int32{1, 2, 3, 4, 5, 6}
	e := []int32{7, 7, 7, 7, 7}
	f := []int32{3, 3, 3, 3, 3, 3}
	ids := admitAll(t, m, sh, a, e, f)
	A, E, F := ids[0], ids[1], ids[2]
	B, err := m.Fork(A)
	noErr(t, err)
	G, err := m.Fork(F)
	noErr(t, err)
	runStream(sh, host, m.TakeSwaps(nil))
	sh.apply(m.TakeCopies(nil))
	noErr(t, m.SwapOut(E))
	runStream(sh, host, m.TakeSwaps(nil))
	sh.apply(m.TakeCopies(nil))

	// One step: B copies A's partial block, A finishes, E comes back;
	// F is swapped out and G, sharing F's partial block, copies it.
	noErr(t, m.Append(B, 9))
	noErr(t, m.Free(A))
	noErr(t, m.SwapIn(E))
	noErr(t, m.SwapOut(F))
	noErr(t, m.Append(G, 9))
	noErr(t, m.Check())
	swaps := m.TakeSwaps(nil)
	copies := m.TakeCopies(nil)
	checkStepDirectives(t, swaps, copies)
	runStream(sh, host, swaps)
	runReversed(sh, copies)
	writeGrown(t, m, sh, B, a, 9)
	writeGrown(t, m, sh, G, f, 9)
	sh.readBack(t, m, E, 0, e, len(e))
	noErr(t, m.SwapIn(F))
	runStream(sh, host, m.TakeSwaps(nil))
	sh.apply(m.TakeCopies(nil))
	sh.readBack(t, m, F, 0, f, len(f))
	noErr(t, m.Check())
}

// TestSwapOutSourceReusedByCopyInStep is the other direction: a
// swap-out's source, freed at once, may be the destination of a copy of
// the same step. Swaps run before copies, so the swap-out reads the block
// before the copy writes it: the swapped-out KV comes back intact.
func TestSwapOutSourceReusedByCopyInStep(t *testing.T) {
	const bs = 4
	// Three usable blocks: A's two (B shares them) and H's one.
	m, err := paged.New(paged.Config{BlockSize: bs, NumBlocks: 4, HostBlocks: 4})
	noErr(t, err)
	sh := &shadowKV{bs: bs, slot: map[int64]uint64{}}
	host := map[int64]uint64{}
	a := []int32{1, 2, 3, 4, 5, 6}
	h := []int32{5, 5, 5, 5}
	ids := admitAll(t, m, sh, a, h)
	A, H := ids[0], ids[1]
	B, err := m.Fork(A)
	noErr(t, err)
	runStream(sh, host, m.TakeSwaps(nil))
	sh.apply(m.TakeCopies(nil))
	hb, err := m.Table(H)
	noErr(t, err)
	hblock := hb[0]

	// One step: H is swapped out, freeing the only free block, which B's
	// copy-on-write append then takes as its copy's destination.
	noErr(t, m.SwapOut(H))
	noErr(t, m.Append(B, 9))
	noErr(t, m.Check())
	swaps := m.TakeSwaps(nil)
	copies := m.TakeCopies(nil)
	if len(copies) != 1 || copies[0].Dst != hblock {
		t.Fatalf("copies %v, want one into H's block %d: the test no longer builds the case", copies, hblock)
	}
	checkStepDirectives(t, swaps, copies)
	runStream(sh, host, swaps)
	runReversed(sh, copies)
	b := writeGrown(t, m, sh, B, a, 9)
	sh.readBack(t, m, A, 0, a, len(a))

	noErr(t, m.Free(A))
	noErr(t, m.SwapIn(H))
	runStream(sh, host, m.TakeSwaps(nil))
	sh.apply(m.TakeCopies(nil))
	sh.readBack(t, m, H, 0, h, len(h))
	sh.readBack(t, m, B, 0, b, len(b))
	noErr(t, m.Check())
}

// TestStateCopiesInStep: with a State group, a fork copies the parent's
// state pages. Forking the child again in the same step must not queue a
// copy whose source is the first copy's destination (a batched kernel
// would read it before it is written), and the parent's pages, freed in
// the step, must not come back as the destination of a later copy.
func TestStateCopiesInStep(t *testing.T) {
	m, err := paged.New(paged.Config{BlockSize: 4, NumBlocks: 16,
		Groups: []paged.Group{{Kind: paged.FullAttention}, {Kind: paged.State, Pages: 1}}})
	noErr(t, err)
	P, err := m.Add([]int32{1, 2, 3, 4, 5, 6}, nil)
	noErr(t, err)
	_, err = m.Admit(P)
	noErr(t, err)
	m.TakeCopies(nil)

	C1, err := m.Fork(P)
	noErr(t, err)
	noErr(t, m.Free(P))
	C2, err := m.Fork(C1)
	noErr(t, err)
	_, err = m.Fork(C2)
	noErr(t, err)
	noErr(t, m.Check())
	copies := m.TakeCopies(nil)
	if len(copies) != 3 {
		t.Fatalf("copies %v, want one per fork", copies)
	}
	checkStepDirectives(t, nil, copies)
	noErr(t, m.Check())
}

// TestMootCopyDropped: a copy-on-write append queues Copy{last, d}; when
// the appending sequence is freed in the same step, d goes back to the
// pool and may be the destination of another copy of the step. The moot
// first copy must go: run beside the second, as one batched kernel, it
// would race it for d.
func TestMootCopyDropped(t *testing.T) {
	f := newForkedPairs(t)
	m, sh, a, c, A, B, C, D := f.m, f.sh, f.a, f.c, f.A, f.B, f.C, f.D

	noErr(t, m.Append(B, 7))
	bt, err := m.Table(B)
	noErr(t, err)
	noErr(t, m.Free(B))
	noErr(t, m.Append(D, 7))
	dt, err := m.Table(D)
	noErr(t, err)
	if dt[len(dt)-1] != bt[len(bt)-1] {
		t.Fatalf("D's copy went to block %d, not B's freed %d: the test no longer builds the case", dt[len(dt)-1], bt[len(bt)-1])
	}
	noErr(t, m.Check())
	copies := m.TakeCopies(nil)
	checkStepDirectives(t, nil, copies)
	runReversed(sh, copies)
	writeGrown(t, m, sh, D, c, 7)
	sh.readBack(t, m, A, 0, a, len(a))
	sh.readBack(t, m, C, 0, c, len(c))
}

// TestCopyAfterUntakenStepReadsItsOwnSource: a caller that builds no batch
// (a simulation) ends its steps with EndStep and leaves the copies
// untaken. A copy-on-write append queued Copy{b, d}; b's other holder was
// freed in the step, so b was parked until EndStep, which released it.
// In the next step a copy-on-write of d read b instead of d, as if
// Copy{b, d} were still to run: b, held by nothing, could be handed out
// again before the copy read it (Check: "copy ... of the step reads block
// b, which is free"; the fleet replay found it, seed 9927065982788325546).
// EndStep says the step ran, its copies too: d holds the KV.
func TestCopyAfterUntakenStepReadsItsOwnSource(t *testing.T) {
	m, err := paged.New(paged.Config{BlockSize: 3, NumBlocks: 5})
	noErr(t, err)
	A, _, err := m.Create([]int32{1, 2, 3, 4, 5, 6, 7}, nil)
	noErr(t, err)
	B, err := m.Fork(A)
	noErr(t, err)
	noErr(t, m.Truncate(A, 4))
	noErr(t, m.Append(A, 8)) // Copy{b, d}: b is A's second block, shared with B
	at, err := m.Table(A)
	noErr(t, err)
	d := at[1]
	noErr(t, m.Free(B)) // b parked: the copy still reads it
	_, err = m.Fork(A)
	noErr(t, err)
	_, err = m.Fork(A) // d shared again
	noErr(t, err)
	noErr(t, m.Check())
	m.EndStep() // the step ran; b goes back to the pool

	noErr(t, m.Append(A, 9)) // copy-on-write of d
	noErr(t, m.Check())
	copies := m.TakeCopies(nil)
	if last := copies[len(copies)-1]; last.Src != d {
		t.Fatalf("the copy-on-write of block %d copies %d -> %d (copies %v)", d, last.Src, last.Dst, copies)
	}
}
