package paged

import (
	"testing"

	"github.com/pagedkv/pagedkv/allocator"
)

// Shelf placements of hybrid retention that audit15's mutations of
// retention.go found untested: each test fails with one mutation that
// every other test survived.

// shelfManager returns a manager with full attention beside groups.
func shelfManager(t *testing.T, groups ...Group) *Manager {
	t.Helper()
	m, err := New(Config{BlockSize: 2, NumBlocks: 64, Groups: append([]Group{{Kind: FullAttention}}, groups...)})
	if err != nil {
		t.Fatal(err)
	}
	return m
}

func tableOf(t *testing.T, m *Manager, id SeqID, g int) []allocator.BlockID {
	t.Helper()
	tab, err := m.TableGroup(id, g)
	if err != nil {
		t.Fatal(err)
	}
	return append([]allocator.BlockID(nil), tab...)
}

// TestAudit15ChunkBlocksBeforeBranchWaitHigh: a chunked group's block that
// a hit at the sequence's branch point needs, left behind by the chunk, is
// not pinned (a chunk's worth is too much to hold) but waits on the high
// shelf, unreferenced. (Pinning it survived every other test.)
func TestAudit15ChunkBlocksBeforeBranchWaitHigh(t *testing.T) {
	m := shelfManager(t, Group{Kind: ChunkedLocal, Chunk: 4}, Group{Kind: SlidingWindow, Window: 3})
	a := []int32{1, 2, 3, 4, 5, 6, 7}
	run(t, m, a, nil)
	// B branches from A at 3 blocks (6 tokens), inside the chunk [4, 8):
	// the hit needs chunk block 2.
	b, cached, err := m.Create(append(a[:6:6], 20, 21, 22), nil)
	if err != nil || cached != 6 {
		t.Fatalf("B hit %d tokens, %v; want 6", cached, err)
	}
	blk := tableOf(t, m, b, 1)[2]
	if err := m.Append(b, 23, 24, 25); err != nil { // past position 8: the next chunk
		t.Fatal(err)
	}
	if tableOf(t, m, b, 1)[2] != nullBlock {
		t.Fatal("the chunk did not leave block 2: the test checks nothing")
	}
	if rc := m.bp.pool.RefCount(blk); rc != 0 {
		t.Errorf("chunk block %d before the branch point is held (%d references), want it on the high shelf", blk, rc)
	}
	if sh := m.bp.shelves.shelfOf(blk); sh != shelfHigh {
		t.Errorf("chunk block %d before the branch point is on shelf %d, want high", blk, sh)
	}
	if err := m.Check(); err != nil {
		t.Fatal(err)
	}
}

// TestAudit15OneTokenWindowKeepsBlockBeforeEnd: with a window of one token a
// hit of L blocks still needs the window group's block L-1 (its lookup's
// scan ends there, as vLLM's), so a finished sequence that ends a block
// leaves that block to the policy, not the low shelf. (Dropping the rule
// survived every other test.)
func TestAudit15OneTokenWindowKeepsBlockBeforeEnd(t *testing.T) {
	m := shelfManager(t, Group{Kind: SlidingWindow, Window: 1})
	id, _, err := m.Create([]int32{1, 2, 3, 4, 5, 6}, nil) // 3 full blocks
	if err != nil {
		t.Fatal(err)
	}
	blk := tableOf(t, m, id, 1)[2]
	if err := m.Free(id); err != nil {
		t.Fatal(err)
	}
	if sh := m.bp.shelves.shelfOf(blk); sh != shelfPolicy || !m.bp.policy.Contains(blk) {
		t.Errorf("the window block before the end (%d) is on shelf %d, want the policy", blk, sh)
	}
}

// TestAudit15PinsGoHighWhenDone: the window blocks a running sequence pins
// for its branch point go to the high shelf when it finishes: every later
// sequence sharing the prefix hits there. (Releasing them to the low
// shelf survived every other test.)
func TestAudit15PinsGoHighWhenDone(t *testing.T) {
	m := shelfManager(t, Group{Kind: SlidingWindow, Window: 4})
	prefix := []int32{1, 2, 3, 4, 5, 6, 7, 8} // 4 blocks
	run(t, m, append(prefix[:8:8], 50, 51), nil)
	b, cached, err := m.Create(append(prefix[:8:8], 60, 61), nil)
	if err != nil || cached != 8 {
		t.Fatalf("B hit %d tokens, %v; want 8", cached, err)
	}
	blk := tableOf(t, m, b, 1)[3] // the window before the branch point
	for i := range 8 {
		if err := m.Append(b, int32(70+i)); err != nil {
			t.Fatal(err)
		}
	}
	if tableOf(t, m, b, 1)[3] != nullBlock || m.bp.pool.RefCount(blk) != 1 {
		t.Fatal("the window block before the branch point is not pinned: the test checks nothing")
	}
	if err := m.Free(b); err != nil {
		t.Fatal(err)
	}
	if sh := m.bp.shelves.shelfOf(blk); sh != shelfHigh {
		t.Errorf("a pinned window block went to shelf %d when its sequence finished, want high", sh)
	}
	if err := m.Check(); err != nil {
		t.Fatal(err)
	}
}
