package paged_test

import (
	"errors"
	"fmt"
	"slices"
	"testing"

	"github.com/pagedkv/pagedkv/paged"
)

// availableBlocks is what an allocation may take: free, evictable and
// spare blocks (Stats).
func availableBlocks(m *paged.Manager) int {
	st := m.Stats()
	return st.FreeBlocks + st.CachedBlocks + st.StateSparePages
}

// slideCase is a manager whose window slides one block past an appended
// token (bs 2, window 1): through a KV cache group, or SeqOptions.Window
// on a manager of one group.
type slideCase struct {
	name   string
	groups []paged.Group
	opts   *paged.SeqOptions
}

var slideCases = []slideCase{
	{"groups", []paged.Group{{Kind: paged.FullAttention}, {Kind: paged.SlidingWindow, Window: 1}}, nil},
	{"one group", nil, &paged.SeqOptions{Window: 1}},
}

// forkOfThree makes a manager of cfg with a sequence A of three tokens
// (opts), admitted, and its fork B, the fork's copies taken (the step
// ended).
func forkOfThree(t *testing.T, cfg paged.Config, opts *paged.SeqOptions) (*paged.Manager, paged.SeqID, paged.SeqID) {
	t.Helper()
	m, err := paged.New(cfg)
	noErr(t, err)
	A, err := m.Add([]int32{1, 2, 3}, opts)
	noErr(t, err)
	_, err = m.Admit(A)
	noErr(t, err)
	B, err := m.Fork(A)
	noErr(t, err)
	m.TakeCopies(nil)
	return m, A, B
}

// TestSlideCountsParkedSource: the space check of an Append counts the
// blocks its window's slide frees. A block whose other holder made a
// copy-on-write copy of it this step is parked when the slide lets it go
// (its copy has not run), so it frees nothing: counted as freed, the
// Append passed the check and then found no block to allocate (a panic,
// TestHybridLookupHitsAreIndexAnswers' "allocation with no free or
// evictable block"). Refused, it changes nothing.
func TestSlideCountsParkedSource(t *testing.T) {
	for _, tc := range slideCases {
		t.Run(tc.name, func(t *testing.T) {
			// A's blocks, B's copies of its tails and a one-token
			// sequence leave no block when A appends past its shared
			// block, which needs one per table.
			nb := 8
			if tc.groups == nil {
				nb = 4
			}
			m, A, B := forkOfThree(t, paged.Config{BlockSize: 2, NumBlocks: nb, Groups: tc.groups}, tc.opts)

			// One step: B copies A's partly filled last block(s), then A
			// fills its block and starts the next, sliding past the block
			// B's copy still has to read.
			noErr(t, m.Append(B, 4))
			noErr(t, m.Append(A, 4))
			F, err := m.Add([]int32{9}, tc.opts)
			noErr(t, err)
			_, err = m.Admit(F)
			noErr(t, err)
			if got := availableBlocks(m); got != 0 {
				t.Fatalf("%d blocks available, want none: the test no longer builds the case", got)
			}
			appendRefused(t, m, A, "past the parked block", 5)
			noErr(t, m.Check())
			checkStepDirectives(t, nil, m.TakeCopies(nil)) // ends the step
			// Now the slide frees the block; F's make up the rest.
			noErr(t, m.Free(F))
			noErr(t, m.Append(A, 5))
			noErr(t, m.Check())
		})
	}
}

// appendRefused checks that Append of toks to id (what names the case) is
// refused with ErrNoSpace and leaves id's table as it was.
func appendRefused(t *testing.T, m *paged.Manager, id paged.SeqID, what string, toks ...int32) {
	t.Helper()
	before, _ := m.Table(id)
	before = slices.Clone(before)
	if err := m.Append(id, toks...); !errors.Is(err, paged.ErrNoSpace) {
		t.Fatalf("Append %s: %v, want ErrNoSpace", what, err)
	}
	if after, _ := m.Table(id); !slices.Equal(before, after) {
		t.Fatalf("refused Append changed %v's table %v to %v", id, before, after)
	}
}

// copyThenPark starts a step for forkOfThree's A and B: B copies A's
// partly filled last block(s) and fills its copy; A goes, its last block
// parked for the copy; a one-token sequence takes what is left, and no
// block is available after.
func copyThenPark(t *testing.T, m *paged.Manager, A, B paged.SeqID, opts *paged.SeqOptions) {
	t.Helper()
	noErr(t, m.Append(B, 4))
	noErr(t, m.Free(A))
	F, err := m.Add([]int32{9}, opts)
	noErr(t, err)
	_, err = m.Admit(F)
	noErr(t, err)
	if got := availableBlocks(m); got != 0 {
		t.Fatalf("%d blocks available, want none: the test no longer builds the case", got)
	}
}

// TestSlideCountsUnparkedSource: a slide that frees a copy's destination,
// uncached (prefix caching off: a cached one could come back as a hit in
// the step and still needs the copy), makes the copy moot and releases
// its parked source with it, and the space check counts both: with no
// block free before, the Append that needs exactly those two succeeds.
func TestSlideCountsUnparkedSource(t *testing.T) {
	for _, tc := range slideCases {
		t.Run(tc.name, func(t *testing.T) {
			// Two blocks to allocate: one token with two tables, three
			// (a block and a half) with one.
			toks := []int32{5}
			nb := 8
			if tc.groups == nil {
				toks, nb = []int32{5, 6, 7}, 4
			}
			m, A, B := forkOfThree(t, paged.Config{BlockSize: 2, NumBlocks: nb, Groups: tc.groups, MaxModelLen: 16, DisablePrefixCaching: true}, tc.opts)

			copyThenPark(t, m, A, B, tc.opts)
			// B's window slides past its copy, which frees the copy and
			// its parked source.
			noErr(t, m.Append(B, toks...))
			noErr(t, m.Check())
			checkStepDirectives(t, nil, m.TakeCopies(nil))
		})
	}
}

// TestSpareReadByCopyNotCounted: spare draft states count as available
// (Stats.StateSparePages), but a page a Fork of the step copies, made a
// spare by the verdict in the same step, is parked when released and
// frees nothing. An admission sized to the count then found no block (a
// panic); the verdict gives such spares back at once instead, so the
// count holds and the copy's source is still not handed out.
func TestSpareReadByCopyNotCounted(t *testing.T) {
	for _, n := range []int{0, 1} {
		t.Run(fmt.Sprintf("accept %d", n), func(t *testing.T) {
			m, err := paged.New(paged.Config{BlockSize: 2, NumBlocks: 12,
				Groups: []paged.Group{{Kind: paged.FullAttention}, {Kind: paged.State, Pages: 1}}})
			noErr(t, err)
			P, err := m.Add([]int32{1, 2, 3}, nil)
			noErr(t, err)
			_, err = m.Admit(P)
			noErr(t, err)
			noErr(t, m.AppendSpeculative(P, 4))
			m.TakeCopies(nil)

			// One step: P is forked with its draft pending (the child
			// copies its state and its draft's), then its verdict makes
			// the state it leaves a spare.
			_, err = m.Fork(P)
			noErr(t, err)
			noErr(t, m.AcceptSpeculative(P, n))
			noErr(t, m.Check())
			// A prompt of a state page and blocks for the rest of what
			// is available (the last block partly filled).
			avail := availableBlocks(m)
			if avail < 2 {
				t.Fatalf("%d blocks available: the test no longer builds the case", avail)
			}
			prompt := make([]int32, 2*(avail-1)-1)
			for i := range prompt {
				prompt[i] = 50 + int32(i)
			}
			Q, err := m.Add(prompt, nil)
			noErr(t, err)
			_, err = m.Admit(Q)
			noErr(t, err)
			noErr(t, m.Check())
			copies := m.TakeCopies(nil)
			checkStepDirectives(t, nil, copies)
			for g := range 2 {
				tq, err := m.TableGroup(Q, g)
				noErr(t, err)
				for _, c := range copies {
					if slices.Contains(tq, c.Src) {
						t.Fatalf("Q's group %d table %v holds block %d, the source of copy %v of the step", g, tq, c.Src, c)
					}
				}
			}
		})
	}
}

// TestMootCopyFromReusedBlockDropped: B's copy-on-write copy of A's
// block goes moot when B is freed in the step, and A's block, no longer
// read, goes back to the pool with A. Handed out again as the destination
// of D's copy, the block must not stay the source of the moot copy in the
// same list (run as one batched kernel, that copy reads the block D's
// copy writes).
func TestMootCopyFromReusedBlockDropped(t *testing.T) {
	f := newForkedPairs(t)
	m, sh, c, C, D := f.m, f.sh, f.c, f.C, f.D
	at, err := m.Table(f.A)
	noErr(t, err)
	last := at[len(at)-1]
	noErr(t, m.Append(f.B, 7))
	noErr(t, m.Free(f.A))
	noErr(t, m.Free(f.B))
	noErr(t, m.Append(D, 7))
	dt, err := m.Table(D)
	noErr(t, err)
	if dt[len(dt)-1] != last {
		t.Fatalf("D's copy went to block %d, not A's freed %d: the test no longer builds the case", dt[len(dt)-1], last)
	}
	noErr(t, m.Check())
	copies := m.TakeCopies(nil)
	checkStepDirectives(t, nil, copies)
	runReversed(sh, copies)
	writeGrown(t, m, sh, D, c, 7)
	sh.readBack(t, m, C, 0, c, len(c))
}

// TestCachedCopyDestinationKeepsSource: B's copy-on-write copy of A's
// partly filled block goes into d, which B fills and commits; B and A are
// freed in the step. d is free but cached: a prefix hit may claim it in
// the same step and read what the copy fills in, so the copy is not moot
// and A's block stays parked. Released at once, it came back as the
// destination of D's copy-on-write copy, beside the copy that reads it.
func TestCachedCopyDestinationKeepsSource(t *testing.T) {
	f := newForkedPairs(t)
	m, sh, a, c, C, D := f.m, f.sh, f.a, f.c, f.C, f.D
	b := append(slices.Clone(a), 7, 8)
	noErr(t, m.Append(f.B, 7, 8))
	noErr(t, m.Free(f.A))
	noErr(t, m.Free(f.B))
	noErr(t, m.Append(D, 7))
	noErr(t, m.Check())
	// E hits B's two blocks, d among them, in the same step.
	e := append(slices.Clone(b), 3)
	E, err := m.Add(e, nil)
	noErr(t, err)
	cached, err := m.Admit(E)
	noErr(t, err)
	if cached != len(b) {
		t.Fatalf("E hit %d tokens, want %d: the test no longer builds the case", cached, len(b))
	}
	noErr(t, m.Check())
	copies := m.TakeCopies(nil)
	checkStepDirectives(t, nil, copies)
	runReversed(sh, copies)
	// The step's kernels: B's two tokens into d (named here through E's
	// table, which holds d too), then E's own.
	sh.write(t, m, E, 0, e, len(a))
	writeGrown(t, m, sh, D, c, 7)
	sh.readBack(t, m, E, 0, e, len(e))
	sh.readBack(t, m, C, 0, c, len(c))
	noErr(t, m.Check())
}
