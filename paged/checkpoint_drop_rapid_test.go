package paged_test

import (
	"errors"
	"testing"

	"pgregory.net/rapid"

	"github.com/pagedkv/pagedkv/paged"
)

// TestCheckpointDropAgreesRapid: with a state checkpoint cached at a
// prefix's branch point, in small pools, beside a running sequence or a
// lasting prefix pin or neither, AdmitChunk does what CanAdmitChunk said
// (ok, later, never); where it drops the checkpoint hit for a miss
// (Stats.CheckpointHitsDropped moves, the whole prompt's or the cut's
// drop), it returns 0 cached tokens and PrefixHitTokens does not move,
// and otherwise PrefixHitTokens moves by what it returns; and admitted
// with nothing else running and no pin, the rest of the prompt is
// appended chunk by chunk, alone, Check passing after every step. (At
// 20,000 checks about 6% drop a hit.) CI may run it longer
// (-rapid.checks).
func TestCheckpointDropAgreesRapid(t *testing.T) {
	rapid.Check(t, func(t *rapid.T) {
		bs := rapid.SampledFrom([]int{2, 4}).Draw(t, "bs")
		groups := []paged.Group{{Kind: paged.FullAttention}}
		if rapid.Bool().Draw(t, "win") {
			groups = append(groups, paged.Group{Kind: paged.SlidingWindow, Window: rapid.IntRange(1, 3*bs).Draw(t, "window")})
		}
		groups = append(groups, paged.Group{Kind: paged.State, Pages: rapid.IntRange(1, 3).Draw(t, "pages")})
		blocks := rapid.IntRange(8, 40).Draw(t, "blocks")
		m, err := paged.New(paged.Config{BlockSize: bs, NumBlocks: blocks, Groups: groups, Watermark: float64(rapid.IntRange(0, 2).Draw(t, "wm")) * 0.05})
		if err != nil {
			t.Skip(err)
		}
		pre := rapid.IntRange(1, 4).Draw(t, "preblocks") * bs
		prefix := seqOf(1, pre)
		with := func(tail, n int) []int32 { return append(append([]int32(nil), prefix...), seqOf(tail, n)...) }
		for _, tail := range []int{100, 200} {
			id, _, err := m.Create(with(tail, bs+1), nil)
			if err != nil {
				t.Skip(err)
			}
			m.TakeCheckpoints(nil)
			m.TakeCopies(nil)
			m.EndStep()
			if err := m.Free(id); err != nil {
				t.Fatal(err)
			}
		}
		pinned := rapid.Bool().Draw(t, "pin")
		if pinned {
			if err := m.SetPinBudget(rapid.IntRange(1, blocks/2).Draw(t, "budget")); err != nil {
				t.Skip(err)
			}
			other := seqOf(5000, rapid.IntRange(1, 3).Draw(t, "pinblocks")*bs)
			if _, _, err := m.Pin(other, nil, 0); err != nil {
				t.Skip(err)
			}
		}
		var filler paged.SeqID
		running := rapid.Bool().Draw(t, "running")
		if running {
			id, _, err := m.Create(seqOf(9000, rapid.IntRange(1, 3*bs).Draw(t, "filler")), nil)
			if err != nil {
				t.Skip(err)
			}
			filler = id
		}
		c, err := m.Add(with(300, rapid.IntRange(1, 6*bs).Draw(t, "tail")), nil)
		if err != nil {
			t.Skip(err)
		}
		k := rapid.IntRange(1, 4*bs).Draw(t, "k")
		a, err := m.CanAdmitChunk(c, k)
		if err != nil {
			t.Fatal(err)
		}
		before := m.Stats()
		cached, rest, err := m.AdmitChunk(c, k, nil)
		after := m.Stats()
		switch {
		case err == nil && a != paged.AdmitOK, errors.Is(err, paged.ErrNoSpace) && a != paged.AdmitLater, errors.Is(err, paged.ErrNever) && a != paged.AdmitNever:
			t.Fatalf("CanAdmitChunk %v, AdmitChunk %v", a, err)
		}
		if cerr := m.Check(); cerr != nil {
			t.Fatal(cerr)
		}
		if d := after.CheckpointHitsDropped - before.CheckpointHitsDropped; d > 0 {
			if err != nil || cached != 0 || after.PrefixHitTokens != before.PrefixHitTokens {
				t.Fatalf("dropped %d: err %v cached %d hit tokens %d -> %d", d, err, cached, before.PrefixHitTokens, after.PrefixHitTokens)
			}
		}
		if err == nil && uint64(cached) != after.PrefixHitTokens-before.PrefixHitTokens {
			t.Fatalf("cached %d, PrefixHitTokens moved %d", cached, after.PrefixHitTokens-before.PrefixHitTokens)
		}
		if err != nil || pinned {
			return
		}
		if running {
			if err := m.Free(filler); err != nil {
				t.Fatal(err)
			}
		}
		for len(rest) > 0 {
			m.TakeCheckpoints(nil)
			m.TakeCopies(nil)
			m.EndStep()
			n := min(k, len(rest))
			if err := m.Append(c, rest[:n]...); err != nil {
				t.Fatalf("alone, chunk of %d with %d left: %v (dropped %v)", n, len(rest), err, after.CheckpointHitsDropped > before.CheckpointHitsDropped)
			}
			rest = rest[n:]
			if err := m.Check(); err != nil {
				t.Fatal(err)
			}
		}
	})
}
