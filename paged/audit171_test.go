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

// TestAudit171DroppedSequenceKeepsAnothersHit: A (11 tokens, blocks of
// 2, full attention and a window of 4) is preempted; C, whose prompt is
// A's first 8 tokens and more, hits them and is preempted too, as is D,
// which shares nothing with them: each preempted chain waits on the high
// shelf for its resume. Dropping A without resuming it moves A's chain
// past its branch point off the high shelf (its fifth block, in both
// groups), except what C still waits for: C's hit runs through A's
// chain. Moved (before session 37), C's hit blocks went to the policy,
// where any allocation evicts them before the high shelf. C's resume
// then hits all it computed.
func TestAudit171DroppedSequenceKeepsAnothersHit(t *testing.T) {
	m, err := paged.New(paged.Config{BlockSize: 2, NumBlocks: 40,
		Groups: []paged.Group{{Kind: paged.FullAttention}, {Kind: paged.SlidingWindow, Window: 4}}})
	if err != nil {
		t.Fatal(err)
	}
	preempted := func(prompt []int32, hit int) paged.SeqID {
		t.Helper()
		id, cached, err := m.Create(prompt, nil)
		if err != nil || cached != hit {
			t.Fatalf("%v: %d cached, %v; want %d", prompt, cached, err, hit)
		}
		m.EndStep()
		if err := m.Preempt(id); err != nil {
			t.Fatal(err)
		}
		return id
	}
	a := preempted(seqOf(1, 11), 0)
	c := preempted(append(seqOf(1, 8), 50, 51, 52), 8)
	preempted(seqOf(100, 6), 0)
	_, before := paged.Shelves(m)
	if err := m.Free(a); err != nil {
		t.Fatal(err)
	}
	_, after := paged.Shelves(m)
	if before-after != 2 {
		t.Fatalf("high shelf: %d blocks before A is dropped, %d after; want A's fifth block in both groups to leave it, and nothing else", before, after)
	}
	if err := m.Check(); err != nil {
		t.Fatal(err)
	}
	if cached, err := m.Admit(c); err != nil || cached != 10 {
		t.Fatalf("C readmitted: %d cached, %v; want its 10 full-block tokens", cached, err)
	}
	if err := m.Check(); err != nil {
		t.Fatal(err)
	}
}
