package paged_test

import (
	"errors"
	"testing"

	"github.com/pagedkv/pagedkv/paged"
)

// swapTrimLayouts are the layouts of TestSwapOutDropsDeadWindowBlocks:
// block size 2, a local group (or window) whose next query, at position
// 13, reads block 6 alone, while a step that computed positions 11 and 12
// read blocks 5 and 6. local is the table that holds them (1: group 1;
// 0: a SeqOptions.Window sequence's own table); at14 are the blocks it
// holds for the query at position 14.
var swapTrimLayouts = []struct {
	name  string
	cfg   paged.Config
	opts  *paged.SeqOptions
	local int
	at14  int
}{
	{"chunked-local group", paged.Config{BlockSize: 2, NumBlocks: 24, HostBlocks: 24, DisablePrefixCaching: true, DisableOffload: true,
		Groups: []paged.Group{{Kind: paged.FullAttention}, {Kind: paged.ChunkedLocal, Chunk: 2}}}, nil, 1, 0},
	{"window group", paged.Config{BlockSize: 2, NumBlocks: 24, HostBlocks: 24, DisablePrefixCaching: true, DisableOffload: true,
		Groups: []paged.Group{{Kind: paged.FullAttention}, {Kind: paged.SlidingWindow, Window: 2}}}, nil, 1, 1},
	{"window group, prefix caching", paged.Config{BlockSize: 2, NumBlocks: 24, HostBlocks: 24, DisableOffload: true,
		Groups: []paged.Group{{Kind: paged.FullAttention}, {Kind: paged.SlidingWindow, Window: 2}}}, nil, 1, 1},
	{"SeqOptions.Window", paged.Config{BlockSize: 2, NumBlocks: 24, HostBlocks: 24, DisablePrefixCaching: true}, &paged.SeqOptions{Window: 2}, 0, 1},
}

// swapTrimSetup admits an 11-token prompt, computes it, then appends two
// tokens at positions 11 and 12 (a decode with an accepted draft, or a
// prompt chunk), which read blocks 5 and 6 of the local table: the append
// slides the window from position 11 only.
func swapTrimSetup(t *testing.T, cfg paged.Config, opts *paged.SeqOptions, local int) (*paged.Manager, paged.SeqID) {
	t.Helper()
	m, err := paged.New(cfg)
	if err != nil {
		t.Fatal(err)
	}
	prompt := []int32{1, 2, 3, 4, 5, 6, 7, 8, 9, 10, 11}
	id, _, err := m.Create(prompt, opts)
	if err != nil {
		t.Fatal(err)
	}
	var b paged.Batch
	if err := m.BuildBatch(&b, []paged.Scheduled{{ID: id, NewTokens: len(prompt)}}); err != nil {
		t.Fatal(err)
	}
	if err := m.Append(id, 100, 101); err != nil {
		t.Fatal(err)
	}
	if got := liveEntries(t, m, id, local); got != 2 {
		t.Fatalf("after a step of positions 11 and 12 the local table holds %d blocks, want 2 (5 and 6)", got)
	}
	return m, id
}

// liveEntries counts the entries of table g of id that name a block.
func liveEntries(t *testing.T, m *paged.Manager, id paged.SeqID, g int) int {
	t.Helper()
	tab, err := m.TableGroup(id, g)
	if err != nil {
		t.Fatal(err)
	}
	n := 0
	for _, b := range tab {
		if b != 0 {
			n++
		}
	}
	return n
}

// swapOutCount swaps id out and returns the SwapOut directives taken.
func swapOutCount(t *testing.T, m *paged.Manager, id paged.SeqID) int {
	t.Helper()
	if err := m.SwapOut(id); err != nil {
		t.Fatal(err)
	}
	if err := m.Check(); err != nil {
		t.Fatal(err)
	}
	n := 0
	for _, sw := range m.TakeSwaps(nil) {
		if sw.Kind == paged.SwapOut {
			n++
		}
	}
	return n
}

// TestSwapOutDropsDeadWindowBlocks: a sequence swapped out right after a
// step of several tokens comes back holding what its next step reads, as
// one swapped out after a decode does. Its window (or chunk) slides only
// when the next step appends, so until then it still holds every block
// that step read; SwapOut copied them all to the host and CanSwapIn
// counted them all, so such a sequence could hold more than an admission
// may take beside the watermark and never come back (sched's "can never
// be swapped in", on a request Submit had accepted: its floor counts what
// a decode holds). Before the fix, the local table came back with blocks
// 5 and 6 (9 host blocks; SeqOptions.Window: 2), though the query at
// position 13 reads block 6 alone.
func TestSwapOutDropsDeadWindowBlocks(t *testing.T) {
	for _, tc := range swapTrimLayouts {
		t.Run(tc.name, func(t *testing.T) {
			m, id := swapTrimSetup(t, tc.cfg, tc.opts, tc.local)
			// The step ran: positions 11 and 12 are computed.
			var b paged.Batch
			if err := m.BuildBatch(&b, []paged.Scheduled{{ID: id, NewTokens: 2}}); err != nil {
				t.Fatal(err)
			}
			full := 7 // positions 0-12 in blocks of 2, group 0
			want := 1 // block 6 of the local table
			if tc.local == 0 {
				full = 0 // the window is group 0's table itself
			}
			got := swapOutCount(t, m, id)
			if got != full+want {
				t.Errorf("SwapOut copied %d blocks, want %d (%d of the local table: the query at 13 reads block 6 alone)", got, full+want, want)
			}
			a, need, err := m.CanSwapIn(id)
			if err != nil || a != paged.AdmitOK || need != full+want {
				t.Errorf("CanSwapIn = %v, %d, %v; want AdmitOK, %d", a, need, err, full+want)
			}
			if err := m.SwapIn(id); err != nil {
				t.Fatal(err)
			}
			if got := liveEntries(t, m, id, tc.local); got != want {
				t.Errorf("swapped in, the local table holds %d blocks, want %d", got, want)
			}
			if err := m.Check(); err != nil {
				t.Fatal(err)
			}
			// The next decode reads what it kept.
			decodeAfterSwapIn(t, m, id, 102)
		})
	}
}

// TestSwapOutKeepsUncomputedWindow: tokens a step was given and then
// dropped (Uncompute) are computed again after the swap-in, reading the
// window of the first of them, which SwapOut keeps: it trims from the
// position Uncompute named, not from the sequence's length.
func TestSwapOutKeepsUncomputedWindow(t *testing.T) {
	for _, tc := range swapTrimLayouts {
		t.Run(tc.name, func(t *testing.T) {
			m, id := swapTrimSetup(t, tc.cfg, tc.opts, tc.local)
			// The step drops the sequence before computing 11 and 12.
			if err := m.Uncompute(id, 11); err != nil {
				t.Fatal(err)
			}
			swapKeepsRecompute(t, m, id, tc.local)
			full := 7
			if tc.local == 0 {
				full = 0
			}
			var b paged.Batch
			// Computed now, it trims on its next swap-out (an Append
			// takes every token before it as computed).
			if err := m.Append(id, 102); err != nil {
				t.Fatal(err)
			}
			if err := m.BuildBatch(&b, []paged.Scheduled{{ID: id, NewTokens: 1}}); err != nil {
				t.Fatal(err)
			}
			m.TakeSwaps(nil)
			if got := swapOutCount(t, m, id); got != full+tc.at14 {
				t.Errorf("swapped out again after a decode: %d blocks copied, want %d", got, full+tc.at14)
			}
			// Back (a chunked-local group with no block: position 14
			// starts a chunk), it decodes on.
			if err := m.SwapIn(id); err != nil {
				t.Fatal(err)
			}
			if got := liveEntries(t, m, id, tc.local); got != tc.at14 {
				t.Errorf("swapped in again, the local table holds %d blocks, want %d", got, tc.at14)
			}
			decodeAfterSwapIn(t, m, id, 103)
		})
	}
}

// swapKeepsRecompute swaps id out and in (swapTrimSetup's sequence, or a
// fork of it, with positions 11 and 12 uncomputed) and checks that it
// keeps what the query at 11 reads: the full table's 7 blocks (but with
// SeqOptions.Window, local 0) and the local table's blocks 5 and 6; then
// that a step recomputing 11 and 12 builds, for it and the others.
func swapKeepsRecompute(t *testing.T, m *paged.Manager, id paged.SeqID, local int, others ...paged.SeqID) {
	t.Helper()
	full := 7
	if local == 0 {
		full = 0
	}
	if got := swapOutCount(t, m, id); got != full+2 {
		t.Errorf("SwapOut copied %d blocks, want %d (the local table's 5 and 6: the query at 11 reads block 5)", got, full+2)
	}
	if err := m.SwapIn(id); err != nil {
		t.Fatal(err)
	}
	m.TakeSwaps(nil)
	if got := liveEntries(t, m, id, local); got != 2 {
		t.Errorf("swapped in, the local table holds %d blocks, want 2", got)
	}
	sched := []paged.Scheduled{{ID: id, NewTokens: 2}}
	for _, o := range others {
		sched = append(sched, paged.Scheduled{ID: o, NewTokens: 2})
	}
	var b paged.Batch
	if err := m.BuildBatch(&b, sched); err != nil {
		t.Fatalf("the recompute of 11 and 12 after the swap-in: %v", err)
	}
	if err := m.Check(); err != nil {
		t.Fatal(err)
	}
}

// decodeAfterSwapIn runs a decode step of tok for id, just swapped in:
// BuildBatch refuses it if it reads a position the swap left behind.
func decodeAfterSwapIn(t *testing.T, m *paged.Manager, id paged.SeqID, tok int32) {
	t.Helper()
	m.TakeSwaps(nil)
	if err := m.Append(id, tok); err != nil {
		t.Fatal(err)
	}
	var b paged.Batch
	if err := m.BuildBatch(&b, []paged.Scheduled{{ID: id, NewTokens: 1}}); err != nil {
		t.Fatalf("the decode after the swap-in: %v", err)
	}
	if err := m.Check(); err != nil {
		t.Fatal(err)
	}
}

// TestSwapOutAfterGivenBackStep: a step dropped (Uncompute), given back
// (Truncate) and given again, then computed, leaves no record of the
// drop: swapped out after it, the sequence keeps what its next query
// reads, as in TestSwapOutDropsDeadWindowBlocks. The cut either removes
// the position Uncompute named (the whole step given back: positions 11
// and 12 come again in one step) or keeps it (the last token given
// back: a step computes 11, an Append gives 12 again, a step computes
// it). Before the fix the record outlived the recompute, since the
// sequence never grew past the length it had at Uncompute: SwapOut kept
// the window of position 11, the local table's blocks 5 and 6, one more
// than the query at 13 reads.
func TestSwapOutAfterGivenBackStep(t *testing.T) {
	cuts := []struct {
		name  string
		keep  int // Truncate's length
		again func(*testing.T, *paged.Manager, paged.SeqID)
	}{
		{"cut removes the uncomputed position", 11, func(t *testing.T, m *paged.Manager, id paged.SeqID) {
			appendStep(t, m, id, 2, 100, 101)
		}},
		{"cut keeps the uncomputed position", 12, func(t *testing.T, m *paged.Manager, id paged.SeqID) {
			appendStep(t, m, id, 1)
			appendStep(t, m, id, 1, 101)
		}},
	}
	for _, tc := range swapTrimLayouts {
		for _, cut := range cuts {
			t.Run(tc.name+"/"+cut.name, func(t *testing.T) {
				m, id := swapTrimSetup(t, tc.cfg, tc.opts, tc.local)
				if err := m.Uncompute(id, 11); err != nil {
					t.Fatal(err)
				}
				if err := m.Truncate(id, cut.keep); err != nil {
					t.Fatal(err)
				}
				cut.again(t, m, id)
				swapKeepsNextQuery(t, m, id, tc.local)
			})
		}
	}
}

// swapKeepsNextQuery swaps id, of 13 tokens every one computed, out and
// back in on a swapTrimLayouts layout (local table local): SwapOut copies
// the full blocks and the one block of the local table that the query
// at 13 reads (block 6), the sequence comes back holding it alone, and
// decodes.
func swapKeepsNextQuery(t *testing.T, m *paged.Manager, id paged.SeqID, local int) {
	t.Helper()
	m.TakeSwaps(nil)
	full := 7
	if local == 0 {
		full = 0
	}
	if got := swapOutCount(t, m, id); got != full+1 {
		t.Errorf("SwapOut copied %d blocks, want %d (one of the local table: the query at 13 reads block 6 alone)", got, full+1)
	}
	if err := m.SwapIn(id); err != nil {
		t.Fatal(err)
	}
	if got := liveEntries(t, m, id, local); got != 1 {
		t.Errorf("swapped in, the local table holds %d blocks, want 1", got)
	}
	decodeAfterSwapIn(t, m, id, 102)
}

// appendStep appends toks to id, then builds a step computing its last
// n positions.
func appendStep(t *testing.T, m *paged.Manager, id paged.SeqID, n int, toks ...int32) {
	t.Helper()
	if len(toks) > 0 {
		if err := m.Append(id, toks...); err != nil {
			t.Fatal(err)
		}
	}
	var b paged.Batch
	if err := m.BuildBatch(&b, []paged.Scheduled{{ID: id, NewTokens: n}}); err != nil {
		t.Fatal(err)
	}
	if err := m.Check(); err != nil {
		t.Fatal(err)
	}
}

// TestSwapOutAfterRejectedDrafts: a step dropped (Uncompute at 11) and
// computed again, then a speculative step (drafts after the last token)
// whose drafts are all rejected, leaves no record of the drop: the
// speculative step took every token before the last accepted one as
// computed, as Append does. Before the fix AppendSpeculative let the
// record stand (it only expired while the drafts made the sequence
// longer than at Uncompute), so the rejection, back to that length,
// brought it back: SwapOut kept the window of position 11, the local
// table's blocks 5 and 6, one more than the query at 13 reads. The
// hybrid state machine found it (TestGroupsStateMachine's swap-in check,
// audit32).
func TestSwapOutAfterRejectedDrafts(t *testing.T) {
	for _, tc := range swapTrimLayouts {
		t.Run(tc.name, func(t *testing.T) {
			m, id := swapTrimSetup(t, tc.cfg, tc.opts, tc.local)
			if err := m.Uncompute(id, 11); err != nil {
				t.Fatal(err)
			}
			appendStep(t, m, id, 2) // 11 and 12 computed again
			if err := m.AppendSpeculative(id, 200); err != nil {
				t.Fatal(err)
			}
			appendStep(t, m, id, 2) // 12 again (sampled last) and the draft
			if err := m.AcceptSpeculative(id, 0); err != nil {
				t.Fatal(err)
			}
			swapKeepsNextQuery(t, m, id, tc.local)
		})
	}
}

// TestSwapOutWithoutUncompute pins what SwapOut keeps of a sequence whose
// scheduled tokens were never computed when the caller did not say so
// (Uncompute) first: it takes every token as computed. Positions 11 and
// 12 were appended for a step that never ran; SwapOut keeps the window
// of the query at 13 alone (block 6 of the local table; block 5, which
// the query at 11 reads, is released without a copy), and the full block
// position 11 filled stays in the prefix cache, committed: a new sequence
// of the same tokens hits it. So after SwapIn the tokens cannot be
// computed again: Truncate back to 11 is refused (the window released
// what the query at 11 reads). The caller's remedy is recompute
// (Preempt); the right order is Uncompute, then SwapOut
// (TestSwapOutKeepsUncomputedWindow).
func TestSwapOutWithoutUncompute(t *testing.T) {
	tc := swapTrimLayouts[2] // a window group, prefix caching
	m, id := swapTrimSetup(t, tc.cfg, tc.opts, tc.local)
	m.TakeSwaps(nil)
	if got := swapOutCount(t, m, id); got != 7+1 {
		t.Errorf("SwapOut copied %d blocks, want 8 (the window of the query at 13: block 6 alone)", got)
	}
	other, err := m.Add([]int32{1, 2, 3, 4, 5, 6, 7, 8, 9, 10, 11, 100, 101, 102}, nil)
	if err != nil {
		t.Fatal(err)
	}
	if a, err := m.CanAdmit(other); err != nil || a != paged.AdmitOK {
		t.Fatalf("CanAdmit: %v, %v", a, err)
	}
	cached, err := m.Admit(other)
	if err != nil {
		t.Fatal(err)
	}
	if cached != 12 {
		t.Errorf("a sequence of the same tokens hits %d, want 12: the block position 11 filled stays cached", cached)
	}
	if err := m.Free(other); err != nil {
		t.Fatal(err)
	}
	if err := m.SwapIn(id); err != nil {
		t.Fatal(err)
	}
	if got := liveEntries(t, m, id, tc.local); got != 1 {
		t.Errorf("swapped in, the local table holds %d blocks, want 1", got)
	}
	if err := m.Truncate(id, 11); !errors.Is(err, paged.ErrInvalid) {
		t.Errorf("Truncate back to the uncomputed position after SwapIn: %v, want ErrInvalid", err)
	}
	if err := m.Preempt(id); err != nil {
		t.Fatal(err)
	}
	if err := m.Check(); err != nil {
		t.Fatal(err)
	}
}
