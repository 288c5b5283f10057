package paged_test

import (
	"fmt"
	"testing"

	"github.com/stretchr/testify/assert"
	"github.com/stretchr/testify/require"

	"github.com/pagedkv/pagedkv/paged"
)

// ckptShadow is the KV a server keeps for a hybrid manager, written
// through the tables a step at a time: each attention group's KV of a
// position (kvOf of the group and the tokens up to it), each state page's
// state (kvOf of the group's page number and the tokens it absorbed),
// moved by the Copy directives, and the state checkpoints TakeCheckpoints
// hands out written with the state at their position.
type ckptShadow struct {
	m      *paged.Manager
	groups []paged.Group
	bs     int
	kv     map[int64]uint64
	// toks are the tokens of the sequences the checkpoints name.
	toks map[paged.SeqID][]int32
}

// step runs one step of sequence id, which holds tokens and computes
// [from, len(tokens)): the Copy directives, the checkpoints, the kernels;
// then it reads back what the next query reads, in every group.
func (c *ckptShadow) step(t *testing.T, id paged.SeqID, tokens []int32, from int) {
	t.Helper()
	c.toks[id] = tokens
	for _, ck := range c.m.TakeCheckpoints(nil) {
		for j, p := range ck.Pages {
			c.kv[int64(p)*int64(c.bs)] = stateOf(ck.Group, j, c.toks[ck.Seq][:ck.Tokens])
		}
	}
	for _, cp := range c.m.TakeCopies(nil) {
		c.kv[int64(cp.Dst)*int64(c.bs)] = c.kv[int64(cp.Src)*int64(c.bs)]
	}
	for g, gr := range c.groups {
		tab, err := c.m.TableGroup(id, g)
		require.NoError(t, err)
		if gr.Kind == paged.State {
			for j, p := range tab {
				if from > 0 {
					require.Equal(t, stateOf(g, j, tokens[:from]), c.kv[int64(p)*int64(c.bs)], "state group %d page %d of %v: not the state after %d tokens", g, j, id, from)
				}
				c.kv[int64(p)*int64(c.bs)] = stateOf(g, j, tokens)
			}
			continue
		}
		for p := from; p < len(tokens); p++ {
			b := tab[p/c.bs]
			require.NotZero(t, b, "group %d of %v: position %d computed into the null block", g, id, p)
			c.kv[int64(b)*int64(c.bs)+int64(p%c.bs)] = kvOf(int32(g), tokens[:p+1])
		}
	}
	c.m.EndStep()
	c.readBack(t, id, tokens)
}

// readBack checks the KV the query after tokens reads through id's tables.
func (c *ckptShadow) readBack(t *testing.T, id paged.SeqID, tokens []int32) {
	t.Helper()
	for g, gr := range c.groups {
		tab, err := c.m.TableGroup(id, g)
		require.NoError(t, err)
		if gr.Kind == paged.State {
			for j, p := range tab {
				require.Equal(t, stateOf(g, j, tokens), c.kv[int64(p)*int64(c.bs)], "read-back of %v state group %d page %d", id, g, j)
			}
			continue
		}
		from := 0
		if gr.Kind == paged.SlidingWindow {
			from = max(0, len(tokens)-gr.Window)
		}
		for p := from; p < len(tokens); p++ {
			b := tab[p/c.bs]
			require.Equal(t, kvOf(int32(g), tokens[:p+1]), c.kv[int64(b)*int64(c.bs)+int64(p%c.bs)], "read-back of %v group %d position %d (block %d)", id, g, p, b)
		}
	}
}

// TestAudit40ChunkHitKept: docs/hybrid.md's Limits said that AdmitChunk
// judged whether a state checkpoint hit ever fits from the prompt
// admitted whole, so it dropped, for every cut, a hit whose prefill in
// chunks fits the pool. audit39's layouts (blocks of 4, a checkpoint at 8
// tokens, a 24-token prompt that takes every usable block computed whole
// from scratch), admitted in chunks of 4 and 8: with the hit the peak is 7
// blocks of 8 usable on full attention + State (the hit's 2 pages are held
// at the admission's step only), and 13 and 11 of 14 with the window. The
// hit is now kept: cached 8, its pages copied, nothing dropped, and the
// prefill completes alone with the content a server writes read back
// through every table after every step (the checkpoint's state restored,
// the prefix's KV hit), Check passing. Where the chunk's peak does not fit
// (chunks of 12 on full attention + State: 9 blocks at the admission's
// step), and admitted whole, the hit is dropped as before.
func TestAudit40ChunkHitKept(t *testing.T) {
	const bs = 4
	for _, l := range audit39Layouts {
		for _, k := range []int{4, 8, 12, 24} {
			t.Run(fmt.Sprintf("%s/chunks=%d", l.name, k), func(t *testing.T) {
				m, err := paged.New(paged.Config{BlockSize: bs, NumBlocks: l.blocks, Groups: l.groups})
				require.NoError(t, err)
				sh := &ckptShadow{m: m, groups: l.groups, bs: bs, kv: map[int64]uint64{}, toks: map[paged.SeqID][]int32{}}
				with := func(tail int32, n int) []int32 { return append(seqOf(1, 8), seqOf(int(tail), n)...) }
				// Two sequences branching after 8 tokens: the second's
				// step writes the checkpoint there.
				for _, tail := range []int32{100, 200} {
					p := with(tail, 5)
					id, cached, err := m.Create(p, nil)
					require.NoError(t, err)
					sh.step(t, id, p, cached)
					require.NoError(t, m.Free(id))
				}
				p := with(300, 16)
				id, err := m.Add(p, nil)
				require.NoError(t, err)
				before := m.Stats()
				a, err := m.CanAdmitChunk(id, k)
				require.NoError(t, err)
				assert.Equal(t, paged.AdmitOK, a)
				cached, rest, err := m.AdmitChunk(id, k, nil)
				require.NoError(t, err)
				after := m.Stats()
				keep := k < 12 // the chunk's peak fits, and the prompt is cut
				if keep {
					assert.Equal(t, 8, cached, "the checkpoint hit kept")
					assert.Zero(t, after.CheckpointHitsDropped)
					assert.Equal(t, before.PrefixHitTokens+8, after.PrefixHitTokens)
					assert.Equal(t, before.Copies+2, after.Copies, "the checkpoint's pages copied")
				} else if k == 12 && l.name == "window+state" {
					// 12 tokens a step with the window: 12 blocks at the
					// admission's step, kept.
					assert.Equal(t, 8, cached)
					keep = true
				} else {
					assert.Zero(t, cached, "the hit dropped")
					assert.Equal(t, uint64(1), after.CheckpointHitsDropped)
					assert.Equal(t, before.PrefixHitTokens, after.PrefixHitTokens)
				}
				require.NoError(t, m.Check())
				have := len(p) - len(rest)
				sh.step(t, id, p[:have], cached)
				peak := m.Stats().UsedBlocks
				for have < len(p) {
					n := min(k, len(p)-have)
					require.NoError(t, m.Append(id, p[have:have+n]...), "alone, %d left", len(p)-have)
					sh.step(t, id, p[:have+n], have)
					have += n
					require.NoError(t, m.Check())
					peak = max(peak, m.Stats().UsedBlocks)
				}
				t.Logf("cached %d, peak %d used blocks", cached, peak)
				if keep {
					assert.LessOrEqual(t, peak, l.blocks-1, "the pool's usable blocks")
				}
				require.NoError(t, m.Free(id))
				require.NoError(t, m.Check())
			})
		}
	}
}
