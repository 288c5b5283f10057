package paged_test

import (
	"errors"
	"fmt"
	"strings"
	"testing"

	"github.com/pagedkv/pagedkv/paged"
)

// TestAudit171NeverPastADroppedCheckpointHit: a prompt that never fits,
// whose lookup hits a state checkpoint the admission drops (the hit
// costs more than computing from scratch), is refused by AdmitChunk with
// the blocks the prompt holds admitted whole in every group (its full
// attention blocks and its State pages), the figure Admit's refusal
// names; the dropped hit's plan said group 0's blocks only.
func TestAudit171NeverPastADroppedCheckpointHit(t *testing.T) {
	const bs = 4
	for _, nb := range []int{12, 14} {
		m, err := paged.New(paged.Config{BlockSize: bs, NumBlocks: nb, Groups: []paged.Group{{Kind: paged.FullAttention}, {Kind: paged.State, Pages: 2}}})
		if err != nil {
			t.Fatal(err)
		}
		// Two prompts branching after 8 tokens: the second's step writes
		// the checkpoint at the branch point.
		var ckpts []paged.Checkpoint
		for _, tail := range []int32{100, 200} {
			id, _, err := m.Create(append(seqOf(1, 8), seqOf(int(tail), 5)...), nil)
			if err != nil {
				t.Fatal(err)
			}
			ckpts = m.TakeCheckpoints(ckpts)
			m.EndStep()
			if err := m.Free(id); err != nil {
				t.Fatal(err)
			}
		}
		if len(ckpts) != 1 || ckpts[0].Tokens != 8 {
			t.Fatalf("checkpoints written: %+v, want one at the branch point, 8", ckpts)
		}
		// As many tokens as the pool's usable blocks hold: group 0 alone
		// fits, its State pages do not.
		usable := nb - 1
		p := append(seqOf(1, 8), seqOf(300, bs*usable-8)...)
		id, err := m.Add(p, nil)
		if err != nil {
			t.Fatal(err)
		}
		whole := usable + 2
		want := fmt.Sprintf("needs %d blocks, the pool has %d usable", whole, usable)
		if _, err := m.Admit(id); !errors.Is(err, paged.ErrNever) || !strings.Contains(err.Error(), want) {
			t.Fatalf("%d blocks: Admit: %v, want ErrNever saying %q", nb, err, want)
		}
		chunked := fmt.Sprintf("(%d admitted whole), the pool has %d usable", whole, usable)
		if _, _, err := m.AdmitChunk(id, 2, nil); !errors.Is(err, paged.ErrNever) || !strings.Contains(err.Error(), chunked) {
			t.Fatalf("%d blocks: AdmitChunk: %v, want ErrNever saying %q", nb, err, chunked)
		}
		if err := m.Check(); err != nil {
			t.Fatal(err)
		}
	}
}
