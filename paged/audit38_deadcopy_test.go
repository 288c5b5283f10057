package paged

import (
	"errors"
	"fmt"
	"slices"
	"testing"
)

// TestAudit38DeadCopySourceIsNoRoom: a copy of the step whose destination
// was freed uncached is dead (blockPool.live): nothing reads what it
// fills in, a destination handed out again drops it, and release does
// not park its source (frees). Retention held such a source all the same
// when it was a pin (pinHeld asked copySource, which read every copy of
// the step, dead or alive), so a sequence alone in the pool could not
// grow into that pin's room in the rest of the step, as it could once
// the step ended: an Append a pool without the pin serves was refused
// with ErrNoSpace, with nothing else running to make room.
//
// The shape: a prompt of 8 tokens cached (blocks of 2, a window of 4
// beside full attention); S hits its 4 blocks (branch point 4: the
// window's blocks 2 and 3 before it are pinned when the window leaves
// them), is cut back to 7 tokens and forked; the fork writes block 3 (a
// Copy from S's window block 3), gives the step back (Uncompute) and
// ends (Free), which leaves the copy dead; x's blocks, freed uncached
// after the fork's, are handed out first (the free list is last in,
// first out), so the dead copy stays in the step. S then grows alone
// until its window leaves block 3, which it pins. For every pool size
// from one that cannot hold the shape to a roomy one, each Append of S
// must succeed or fail as it does when the step ends before S grows (the
// copies ran: TakeCopies), and Check pass. Before the fix the pool of 13
// blocks refused the fourth Append (5 tokens, 4 blocks: 2 available and
// the room of pin 7; block 8, the dead copy's source, held). M123 as
// first written (slidFrees counted the pinned copy source as room while
// releasePins kept it) panicked allocating in the same pool; M123 now
// (the fix undone) fails the comparison.
func TestAudit38DeadCopySourceIsNoRoom(t *testing.T) {
	shaped := 0
	for blocks := 12; blocks <= 24; blocks++ {
		t.Run(fmt.Sprint(blocks), func(t *testing.T) {
			defer func() {
				if r := recover(); r != nil {
					t.Fatalf("panic: %v", r)
				}
			}()
			got, shape := deadCopyRun(t, blocks, false)
			want, _ := deadCopyRun(t, blocks, true)
			if !slices.Equal(got, want) {
				t.Fatalf("appends succeeded %v in the step of the dead copy, %v once the step ended", got, want)
			}
			if shape {
				shaped++
			}
		})
	}
	if shaped == 0 {
		t.Fatal("no pool size reached a slide of a dead copy's source: the test lost its shape")
	}
}

// deadCopyRun runs the shape in a pool of n blocks, the step ended before
// S grows if end, and returns which Appends of S succeeded and whether,
// in the step of the dead copy, S's slide reached block 3 while it was
// the dead copy's source.
func deadCopyRun(t *testing.T, n int, end bool) (ok []bool, shaped bool) {
	m, err := New(Config{BlockSize: 2, NumBlocks: n, Groups: []Group{{Kind: FullAttention}, {Kind: SlidingWindow, Window: 4}}})
	if err != nil {
		t.Fatal(err)
	}
	check := func() {
		t.Helper()
		if err := m.Check(); err != nil {
			t.Fatal(err)
		}
	}
	prompt := []int32{10, 11, 12, 13, 14, 15, 16, 17}
	a, _, err := m.Create(prompt, nil)
	if err != nil {
		t.Skip(err)
	}
	m.EndStep()
	if err := m.Free(a); err != nil {
		t.Fatal(err)
	}
	s, _, err := m.Create(append(append([]int32{}, prompt...), 18), nil)
	if err != nil {
		t.Skip(err)
	}
	m.EndStep()
	if got := m.seqs[uint32(s)].keep.branch; got != 4 {
		t.Fatalf("branch point %d, want 4", got)
	}
	if err := m.Truncate(s, 7); err != nil {
		t.Fatal(err)
	}
	x, _, err := m.Create([]int32{50, 51, 52}, nil)
	if err != nil {
		t.Skip(err)
	}
	c, err := m.Fork(s)
	if err != nil {
		t.Skip(err)
	}
	if err := m.Append(c, 99); err != nil {
		t.Skip(err)
	}
	b3 := m.seqs[uint32(s)].ext[0].blocks[3]
	if err := m.Uncompute(c, 6); err != nil {
		t.Fatal(err)
	}
	if err := m.Free(c); err != nil {
		t.Fatal(err)
	}
	if err := m.Uncompute(x, 0); err != nil {
		t.Fatal(err)
	}
	if err := m.Free(x); err != nil {
		t.Fatal(err)
	}
	check()
	if !slices.ContainsFunc(m.bp.named, func(c Copy) bool { return c.Src == b3 }) {
		t.Fatalf("window block 3 (%d) is no copy's source", b3)
	}
	if m.bp.read(b3) {
		t.Fatalf("window block 3 (%d) is read by a live copy; want a dead copy's source", b3)
	}
	if end {
		m.TakeCopies(nil)
	}
	for _, toks := range [][]int32{{17}, {18, 19}, {20}, {21, 22, 23, 24, 25}, {26}, {27, 28}} {
		ss := &m.seqs[uint32(s)]
		if !end && ss.ext[0].released <= 3 && len(ss.tokens) >= 11 && slices.ContainsFunc(m.bp.named, func(c Copy) bool { return c.Src == b3 }) {
			shaped = true // this Append's slide reaches block 3, a dead copy's source
		}
		err := m.Append(s, toks...)
		check()
		if err != nil && !errors.Is(err, ErrNoSpace) {
			t.Fatal(err)
		}
		ok = append(ok, err == nil)
		if err != nil {
			break
		}
	}
	return ok, shaped
}
