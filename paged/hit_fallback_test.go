package paged_test

import (
	"errors"
	"testing"

	"github.com/stretchr/testify/assert"
	"github.com/stretchr/testify/require"
	"pgregory.net/rapid"

	"github.com/pagedkv/pagedkv/paged"
)

// fallbackLayout is the layout of TestLongestHitFallsBack: full
// attention, a group sharing its table, a sliding window of 1 token.
var fallbackLayout = []paged.Group{{Kind: paged.FullAttention}, {Kind: paged.Shared}, {Kind: paged.SlidingWindow, Window: 1}}

// cachePrompt computes prompt (admitted in chunks of 1 token) and frees
// it, leaving its full blocks cached.
func cachePrompt(t *testing.T, m *paged.Manager, prompt []int32) {
	t.Helper()
	id, err := m.Add(prompt, nil)
	require.NoError(t, err)
	_, err = chunkByChunk(m, id, 1)
	require.NoError(t, err)
	require.NoError(t, m.Free(id))
}

// TestLongestHitFallsBack: a 21-token prompt with its first 20 tokens
// cached, blocks of 2 tokens, 12 usable blocks. With the hit the
// admission computes 1 token: the whole admission holds the 11 full
// blocks and the window's 2 (the hit's last block, the window before the
// new token, and the new token's), 13: never. With an empty cache the
// prompt fits in chunks of 1, 2 or 4. Before, AdmitChunk always took the
// longest hit and refused the prompt as never at every chunk size; the
// cached blocks of an idle pool are not evicted by a refusal, so the
// prompt was refused for good. Now the admission falls back to the
// longest shorter hit that fits (or a miss).
func TestLongestHitFallsBack(t *testing.T) {
	prompt := seqOf(1, 21)
	for _, chunk := range []int{0, 1, 2, 4} {
		m, err := paged.New(paged.Config{BlockSize: 2, NumBlocks: 13, Groups: fallbackLayout})
		require.NoError(t, err)
		// With an empty cache.
		if chunk > 0 {
			e, err := m.Add(prompt, nil)
			require.NoError(t, err)
			a, err := m.CanAdmitChunk(e, chunk)
			require.NoError(t, err)
			require.Equal(t, paged.AdmitOK, a, "chunk %d, empty cache", chunk)
			require.NoError(t, m.Free(e))
		}
		cachePrompt(t, m, prompt[:20])
		id, err := m.Add(prompt, nil)
		require.NoError(t, err)
		before := m.Stats()
		if chunk == 0 {
			a, err := m.CanAdmit(id)
			require.NoError(t, err)
			assert.Equal(t, paged.AdmitNever, a, "whole, with or without a hit")
			_, err = m.Admit(id)
			require.ErrorIs(t, err, paged.ErrNever)
			require.NoError(t, m.Check())
			continue
		}
		a, err := m.CanAdmitChunk(id, chunk)
		require.NoError(t, err)
		assert.Equal(t, paged.AdmitOK, a, "chunk %d", chunk)
		cached, rest, err := m.AdmitChunk(id, chunk, nil)
		require.NoError(t, err, "chunk %d", chunk)
		assert.Less(t, cached, 20, "a shorter hit")
		t.Logf("chunk %d: %d cached", chunk, cached)
		assert.Zero(t, cached%2, "at a block boundary")
		after := m.Stats()
		assert.Equal(t, before.HitFallbacks+1, after.HitFallbacks, "counted")
		assert.Equal(t, before.PrefixHitTokens+uint64(cached), after.PrefixHitTokens, "the hit taken")
		require.NoError(t, m.Check())
		for len(rest) > 0 {
			m.TakeCheckpoints(nil)
			m.TakeCopies(nil)
			c := min(chunk, len(rest))
			require.NoError(t, m.Append(id, rest[:c]...), "chunk %d: alone in the pool", chunk)
			rest = rest[c:]
			require.NoError(t, m.Check())
		}
	}
}

// TestCachedHitNeverRefusesRapid: in tiny pools, on layouts of full
// attention with windows, chunked-local, shared and state groups, with a
// prefix of the prompt cached (computed chunk by chunk, branched where a
// state group keeps checkpoints), an admission of the prompt (whole or in
// chunks) does what CanAdmit/CanAdmitChunk said; one refused as never
// is refused as never with an empty cache too (the cache never makes a
// prompt that fits never fit); one that fell back from its longest hit
// (Stats.HitFallbacks) took a shorter hit; and one admitted in an idle
// pool computes the rest of its prompt chunk by chunk, alone, Check
// passing after every step. CI may run it longer (-rapid.checks).
func TestCachedHitNeverRefusesRapid(t *testing.T) {
	rapid.Check(t, func(t *rapid.T) {
		bs := rapid.SampledFrom([]int{1, 2, 4}).Draw(t, "bs")
		groups := []paged.Group{{Kind: paged.FullAttention}}
		for i := range rapid.IntRange(1, 3).Draw(t, "kinds") {
			switch rapid.IntRange(0, 3).Draw(t, "kind") {
			case 0:
				groups = append(groups, paged.Group{Kind: paged.SlidingWindow, Window: rapid.IntRange(1, 3*bs).Draw(t, "window")})
			case 1:
				groups = append(groups, paged.Group{Kind: paged.ChunkedLocal, Chunk: rapid.IntRange(1, 3*bs).Draw(t, "chunk")})
			case 2:
				groups = append(groups, paged.Group{Kind: paged.Shared, Target: rapid.IntRange(0, i).Draw(t, "target")})
			case 3:
				groups = append(groups, paged.Group{Kind: paged.State, Pages: rapid.IntRange(1, 2).Draw(t, "pages")})
			}
		}
		cfg := paged.Config{BlockSize: bs, NumBlocks: rapid.IntRange(4, 16).Draw(t, "blocks"), Groups: groups}
		m, err := paged.New(cfg)
		if err != nil {
			t.Skip(err)
		}
		empty, err := paged.New(cfg)
		if err != nil {
			t.Fatal(err)
		}
		n := rapid.IntRange(1, 12*bs).Draw(t, "promptLen")
		prompt := seqOf(1, n)
		if id, err := m.Add(prompt, nil); err != nil {
			t.Skip(err) // longer than a sequence may be in this pool
		} else if err := m.Free(id); err != nil {
			t.Fatal(err)
		}
		// Cache a prefix: computed chunk by chunk, then freed; twice,
		// branching past it, for a state checkpoint at its end.
		pre := rapid.IntRange(0, n).Draw(t, "cached")
		if rapid.Bool().Draw(t, "near") {
			// Close to the whole prompt: few tokens left to compute.
			pre = max(0, n-rapid.IntRange(1, 2*bs).Draw(t, "left"))
		}
		step := rapid.IntRange(1, 4*bs).Draw(t, "cacheChunk")
		for i, tail := range []int32{0, 1000, 2000}[:rapid.IntRange(1, 3).Draw(t, "runs")] {
			p := prompt[:pre]
			if i > 0 {
				p = append(append([]int32(nil), p...), seqOf(int(tail), bs+1)...)
			}
			if len(p) == 0 {
				continue
			}
			id, err := m.Add(p, nil)
			if errors.Is(err, paged.ErrNever) {
				continue // the branch is longer than a sequence may be
			}
			if err != nil {
				t.Fatal(err)
			}
			if _, err := chunkByChunk(m, id, step); err != nil {
				// The prefix does not fit alone: cached in part.
				if err := m.Free(id); err != nil {
					t.Fatal(err)
				}
				continue
			}
			m.TakeCheckpoints(nil)
			m.TakeCopies(nil)
			m.EndStep()
			if err := m.Free(id); err != nil {
				t.Fatal(err)
			}
		}
		id, err := m.Add(prompt, nil)
		if err != nil {
			t.Fatal(err)
		}
		e, err := empty.Add(prompt, nil)
		if err != nil {
			t.Fatal(err)
		}
		// Every chunk size: never with the cache is never without it.
		for k := 1; k <= n; k++ {
			a, err := m.CanAdmitChunk(id, k)
			if err != nil {
				t.Fatal(err)
			}
			ea, err := empty.CanAdmitChunk(e, k)
			if err != nil {
				t.Fatal(err)
			}
			if a == paged.AdmitNever && ea != paged.AdmitNever {
				t.Fatalf("chunks of %d: never with %d tokens cached, %v with an empty cache", k, pre, ea)
			}
		}
		k := rapid.IntRange(0, 4*bs).Draw(t, "k") // 0: whole
		var a, ea paged.Admission
		if k == 0 {
			a, err = m.CanAdmit(id)
			if err == nil {
				ea, err = empty.CanAdmit(e)
			}
		} else {
			a, err = m.CanAdmitChunk(id, k)
			if err == nil {
				ea, err = empty.CanAdmitChunk(e, k)
			}
		}
		if err != nil {
			t.Fatal(err)
		}
		before := m.Stats()
		var cached int
		var rest []int32
		if k == 0 {
			cached, err = m.Admit(id)
		} else {
			cached, rest, err = m.AdmitChunk(id, k, nil)
		}
		after := m.Stats()
		switch {
		case err == nil && a != paged.AdmitOK, errors.Is(err, paged.ErrNoSpace) && a != paged.AdmitLater, errors.Is(err, paged.ErrNever) && a != paged.AdmitNever:
			t.Fatalf("CanAdmit(Chunk) %v, Admit(Chunk) %v", a, err)
		case err != nil && !errors.Is(err, paged.ErrNoSpace) && !errors.Is(err, paged.ErrNever):
			t.Fatal(err)
		}
		if a == paged.AdmitNever && ea != paged.AdmitNever {
			t.Fatalf("never with %d tokens cached, %v with an empty cache", pre, ea)
		}
		if cerr := m.Check(); cerr != nil {
			t.Fatal(cerr)
		}
		fell := after.HitFallbacks - before.HitFallbacks
		if err != nil && fell != 0 || fell > 1 {
			t.Fatalf("fell back %d times (%v)", fell, err)
		}
		if err != nil {
			if after.CheckpointHitsDropped != before.CheckpointHitsDropped {
				t.Fatal("a refusal counted a dropped checkpoint")
			}
			return
		}
		if got := after.PrefixHitTokens - before.PrefixHitTokens; uint64(cached) != got {
			t.Fatalf("cached %d, PrefixHitTokens moved %d", cached, got)
		}
		if k == 0 {
			k = n
		}
		for len(rest) > 0 {
			m.TakeCheckpoints(nil)
			m.TakeCopies(nil)
			m.EndStep()
			c := min(k, len(rest))
			if err := m.Append(id, rest[:c]...); err != nil {
				t.Fatalf("alone, chunk of %d with %d left (cached %d, fell back %d): %v", c, len(rest), cached, fell, err)
			}
			rest = rest[c:]
			if err := m.Check(); err != nil {
				t.Fatal(err)
			}
		}
	})
}
