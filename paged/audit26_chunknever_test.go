package paged_test

import (
	"testing"

	"github.com/pagedkv/pagedkv/paged"
)

// TestAudit26ChunkNeverSkipsTheCheckpoint: a prompt that fits the pool
// admitted whole is never refused in chunks for the state checkpoint at
// its branch point, which an admission asks for only where there is room
// (Full, a window of 6 and a State page at BlockSize 1, 15 usable blocks:
// the 7-token prompt holds 15 whole; its branch point after the cached
// block of an earlier prompt asks a checkpoint page, a 16th). AdmitChunk
// and CanAdmitChunk called it never (its chunk-by-chunk peak counted the
// page), so a scheduler whose budget was below the prompt aborted a
// request that fits; now the admission leaves the checkpoint out and the
// prompt is computed chunk by chunk to the end, alone in the pool.
func TestAudit26ChunkNeverSkipsTheCheckpoint(t *testing.T) {
	for _, k := range []int{1, 2, 4, 6} {
		m, err := paged.New(paged.Config{BlockSize: 1, NumBlocks: 16, Groups: []paged.Group{
			{Kind: paged.FullAttention}, {Kind: paged.SlidingWindow, Window: 6}, {Kind: paged.State, Pages: 1}}})
		if err != nil {
			t.Fatal(err)
		}
		id, _, err := m.Create([]int32{11, 20}, nil)
		if err != nil {
			t.Fatal(err)
		}
		m.TakeCheckpoints(nil)
		if err := m.Free(id); err != nil {
			t.Fatal(err)
		}
		id, err = m.Add([]int32{11, 12, 13, 14, 15, 16, 20}, nil)
		if err != nil {
			t.Fatal(err)
		}
		if a, err := m.CanAdmit(id); err != nil || a != paged.AdmitOK {
			t.Fatalf("CanAdmit: %v, %v", a, err)
		}
		if a, err := m.CanAdmitChunk(id, k); err != nil || a != paged.AdmitOK {
			t.Fatalf("CanAdmitChunk(%d) of a prompt that fits whole: %v, %v", k, a, err)
		}
		_, rest, err := m.AdmitChunk(id, k, nil)
		if err != nil {
			t.Fatalf("AdmitChunk(%d) of a prompt that fits whole: %v", k, err)
		}
		for len(rest) > 0 {
			m.TakeCheckpoints(nil)
			m.EndStep()
			n := min(k, len(rest))
			if err := m.Append(id, rest[:n]...); err != nil {
				t.Fatalf("chunk %d, %d tokens left, alone in the pool: %v", k, len(rest), err)
			}
			rest = rest[n:]
			if err := m.Check(); err != nil {
				t.Fatal(err)
			}
		}
		m.TakeCheckpoints(nil)
		m.EndStep()
		if err := m.Check(); err != nil {
			t.Fatal(err)
		}
	}
}
