package paged_test

import (
	"testing"

	"github.com/stretchr/testify/assert"
	"github.com/stretchr/testify/require"

	"github.com/pagedkv/pagedkv/paged"
)

// audit59Checkpoint makes a manager of a full attention group and a State
// group of two pages per sequence (blocks of 4 tokens, numBlocks blocks)
// holding a checkpoint after the 16-token prefix seqOf(1, 16): two
// sequences branch there, the second asks for it, both are freed.
func audit59Checkpoint(t *testing.T, numBlocks int) *paged.Manager {
	t.Helper()
	m, err := paged.New(paged.Config{BlockSize: 4, NumBlocks: numBlocks,
		Groups: []paged.Group{{}, {Kind: paged.State, Pages: 2}}})
	require.NoError(t, err)
	var ids []paged.SeqID
	for _, tail := range []int32{1000, 2000} {
		id, _, err := m.Create(append(seqOf(1, 16), tail, tail, tail, tail, tail), nil)
		require.NoError(t, err)
		ids = append(ids, id)
	}
	require.Len(t, m.TakeCheckpoints(nil), 1, "the checkpoint at the branch point")
	for _, id := range ids {
		require.NoError(t, m.Free(id))
	}
	m.TakeCopies(nil)
	return m
}

// fillTo holds blocks of m with sequences of fresh tokens until exactly
// left blocks are available (free or cached); each filler takes a block
// per 4 tokens and its two state pages.
func fillTo(t *testing.T, m *paged.Manager, next *int32, left int) {
	t.Helper()
	avail := func() int { st := m.Stats(); return st.FreeBlocks + st.CachedBlocks }
	for avail() > left {
		blocks := avail() - left - 2 // full-attention blocks of the filler
		if blocks > 8 {
			blocks = min(8, blocks-6) // leaves room for one more filler
		}
		require.Positive(t, blocks, "no filler takes exactly the blocks above %d", left)
		prompt := make([]int32, 4*blocks)
		for i := range prompt {
			*next++
			prompt[i] = *next
		}
		_, _, err := m.Create(prompt, nil)
		require.NoError(t, err)
	}
	require.Equal(t, left, avail())
}

// TestAudit59HeldCheckpointClaimsNothing: a checkpoint whose pages another
// running sequence holds (it hit them, and they stay pinned while it
// runs) costs an admission that hits it nothing of the evictable blocks:
// claiming them takes no block out of the pool. A prompt that needs
// exactly the blocks available besides is admitted with its hit. (The
// mutant that counted every device page of the hit as a claim refused it
// for now, M808.)
func TestAudit59HeldCheckpointClaimsNothing(t *testing.T) {
	m := audit59Checkpoint(t, 64)
	prefix := seqOf(1, 16)
	c, cached, err := m.Create(append(append([]int32(nil), prefix...), 3000), nil)
	require.NoError(t, err)
	require.Equal(t, 16, cached, "the first hit claims the checkpoint")
	m.TakeCopies(nil)
	// d needs a new full-attention block for its 17th token and its own
	// two state pages: 3 blocks; its prefix and the checkpoint are c's.
	next := int32(1 << 20)
	fillTo(t, m, &next, 3)
	d, err := m.Add(append(append([]int32(nil), prefix...), 4000), nil)
	require.NoError(t, err)
	a, err := m.CanAdmit(d)
	require.NoError(t, err)
	assert.Equal(t, paged.AdmitOK, a, "the checkpoint c holds is no claim")
	cached, err = m.Admit(d)
	require.NoError(t, err)
	assert.Equal(t, 16, cached, "admitted with its hit")
	assert.Len(t, m.TakeCopies(nil), 2, "the checkpoint's two pages copied into d's own")
	require.NoError(t, m.Check())
	require.NoError(t, m.Free(c))
	require.NoError(t, m.Check())
}

// TestAudit59ReaskOnlyOwnCheckpoint: a readmission asks again only for a
// checkpoint of the sequence's own content. A slot's record of the point
// its first admission wanted (pendingAt, pendingHash) outlives the
// sequence; a later sequence in the slot whose first admission found no
// hit records none, and its readmission must not ask for the earlier
// one's: the pages would be written from its own state and cached under
// the other prefix's hash, a checkpoint a later hit of that prefix
// restores (M812).
func TestAudit59ReaskOnlyOwnCheckpoint(t *testing.T) {
	m, err := paged.New(paged.Config{BlockSize: 4, NumBlocks: 64, Events: 4096,
		Groups: []paged.Group{{}, {Kind: paged.State, Pages: 2}}})
	require.NoError(t, err)
	// w caches the prefix; x, in w's slot, branches after it and asks for
	// the checkpoint there (4 blocks).
	w, _, err := m.Create(append(seqOf(1, 16), 1000, 1000, 1000, 1000, 1000), nil)
	require.NoError(t, err)
	require.NoError(t, m.Free(w))
	x, cached, err := m.Create(append(seqOf(1, 16), 2000, 2000, 2000, 2000, 2000), nil)
	require.NoError(t, err)
	require.Zero(t, cached, "no checkpoint at the prefix's end yet: no hit")
	require.Len(t, m.TakeCheckpoints(nil), 1, "x's checkpoint at its branch point")
	require.NoError(t, m.Free(x))
	// y, alone among the live sequences, takes the one slot; its prompt
	// is new (no hit: no branch point of its own).
	y, cached, err := m.Create(seqOf(5000, 24), nil)
	require.NoError(t, err)
	require.Zero(t, cached)
	assert.Empty(t, m.TakeCheckpoints(nil))
	require.NoError(t, m.Preempt(y))
	next := int32(1 << 20)
	flushDevice(t, m, &next) // evicts x's checkpoint and y's blocks
	cached, err = m.Admit(y)
	require.NoError(t, err)
	require.Zero(t, cached)
	assert.Empty(t, m.TakeCheckpoints(nil), "y's readmission asks for no checkpoint of x's prefix")
	require.NoError(t, m.Check())
	// x's prefix hits no checkpoint written from y's state.
	z, err := m.Add(append(seqOf(1, 16), 3000), nil)
	require.NoError(t, err)
	cached, err = m.Admit(z)
	require.NoError(t, err)
	assert.Zero(t, cached, "nothing of x's prefix is cached")
	require.NoError(t, m.Check())
}

// TestAudit59PendingOfOtherContent: two prompts admitted in one step that
// branch from two different cached prefixes after the same number of
// blocks each ask for their own checkpoint: a checkpoint pending at the
// same length but of another content is no reason to skip one (M813).
func TestAudit59PendingOfOtherContent(t *testing.T) {
	m, err := paged.New(paged.Config{BlockSize: 4, NumBlocks: 64, Events: 4096,
		Groups: []paged.Group{{}, {Kind: paged.State, Pages: 2}}})
	require.NoError(t, err)
	for _, from := range []int{1, 101} {
		w, _, err := m.Create(append(seqOf(from, 16), 1000, 1000, 1000, 1000), nil)
		require.NoError(t, err)
		require.NoError(t, m.Free(w))
	}
	m.TakeCheckpoints(nil)
	for _, from := range []int{1, 101} {
		_, _, err := m.Create(append(seqOf(from, 16), 2000, 2000, 2000, 2000, 2000), nil)
		require.NoError(t, err)
	}
	ck := m.TakeCheckpoints(nil)
	require.Len(t, ck, 2, "a checkpoint at each prefix's end")
	assert.NotEqual(t, ck[0].Seq, ck[1].Seq, "one each")
	require.NoError(t, m.Check())
}

// TestAudit59FreshCheckpointPagesStayPinned: the pages of a checkpoint
// TakeCheckpoints handed out in the current step are data its kernels
// still write, not retention: a Fork of the sequence alone in the pool,
// short of room in the same step, may release its retention pins for the
// child's state pages, but not those (the child's pages would be the
// checkpoint's, written by two kernels). Refused then (ErrNoSpace,
// nothing changed), the Fork fits once the step has ended (M818). The
// prompt is admitted whole, or in a chunk that ends at the checkpoint,
// which is then at the sequence's last hash (M1371, the twenty-eighth
// mutation round, held a fresh checkpoint only before it).
func TestAudit59FreshCheckpointPagesStayPinned(t *testing.T) {
	for _, chunk := range []bool{false, true} {
		setup := func(numBlocks int) (*paged.Manager, paged.SeqID) {
			m, err := paged.New(paged.Config{BlockSize: 4, NumBlocks: numBlocks,
				Groups: []paged.Group{{}, {Kind: paged.State, Pages: 2}}})
			require.NoError(t, err)
			w, _, err := m.Create(append(seqOf(1, 16), 1000, 1000, 1000, 1000, 1000), nil)
			require.NoError(t, err)
			require.NoError(t, m.Free(w))
			m.EndStep()
			x, err := m.Add(append(seqOf(1, 16), 2000, 2000, 2000, 2000, 2000), nil)
			require.NoError(t, err)
			if chunk {
				_, rest, err := m.AdmitChunk(x, 16, nil)
				require.NoError(t, err)
				require.Len(t, rest, 5, "the chunk ends at the branch point")
			} else {
				_, err = m.Admit(x)
				require.NoError(t, err)
			}
			ck := m.TakeCheckpoints(nil)
			require.Len(t, ck, 1, "x's checkpoint at its branch point")
			require.Equal(t, 16, ck[0].Tokens)
			return m, x
		}
		probe, _ := setup(64)
		st := probe.Stats()
		m, x := setup(64 - (st.FreeBlocks + st.CachedBlocks) + 1)
		st = m.Stats()
		require.Equal(t, 1, st.FreeBlocks+st.CachedBlocks, "one block available: the child's two state pages do not fit")
		_, err := m.Fork(x)
		require.ErrorIs(t, err, paged.ErrNoSpace, "the fresh checkpoint's pages are not the child's room (chunk %v)", chunk)
		assert.Equal(t, st, m.Stats(), "a refused Fork changes nothing")
		require.NoError(t, m.Check())
		m.EndStep() // the step that writes the checkpoint ran
		c, err := m.Fork(x)
		require.NoError(t, err, "its pins are retention now: released for the child")
		own, err := m.TableGroup(c, 1)
		require.NoError(t, err)
		require.Len(t, own, 2)
		require.NoError(t, m.Check())
	}
}

// TestAudit59UncomputeForgetsCheckpointAtChunkEnd: a checkpoint handed
// out for the step computing a chunk that ends exactly at it (the
// sequence holds no full block past the checkpoint) is forgotten when
// Uncompute says the step never ran, as one before the chunk's end is:
// kept, it stayed cached unwritten, and the next prompt of the prefix
// restored a state no kernel computed (M820).
func TestAudit59UncomputeForgetsCheckpointAtChunkEnd(t *testing.T) {
	m, err := paged.New(paged.Config{BlockSize: 4, NumBlocks: 64, Events: 4096,
		Groups: []paged.Group{{}, {Kind: paged.State, Pages: 2}}})
	require.NoError(t, err)
	prefix := seqOf(1, 16)
	w, _, err := m.Create(append(append([]int32(nil), prefix...), 1000, 1000, 1000, 1000, 1000), nil)
	require.NoError(t, err)
	require.NoError(t, m.Free(w))
	m.EndStep()
	y, err := m.Add(append(append([]int32(nil), prefix...), 2000, 2000, 2000, 2000, 2000), nil)
	require.NoError(t, err)
	cached, rest, err := m.AdmitChunk(y, 16, nil)
	require.NoError(t, err)
	require.Zero(t, cached)
	require.Len(t, rest, 5, "the chunk ends at the branch point")
	ck := m.TakeCheckpoints(nil)
	require.Len(t, ck, 1)
	require.Equal(t, 16, ck[0].Tokens, "the checkpoint at the chunk's end")
	// The step is dropped before it runs.
	require.NoError(t, m.Uncompute(y, 0))
	require.NoError(t, m.Check())
	require.NoError(t, m.Preempt(y))
	z, err := m.Add(append(append([]int32(nil), prefix...), 3000), nil)
	require.NoError(t, err)
	cached, err = m.Admit(z)
	require.NoError(t, err)
	assert.Zero(t, cached, "no hit of the checkpoint no kernel wrote")
	require.NoError(t, m.Check())
}

// TestAudit59IdleHitFallsBackBesidePins: in an idle pool (no sequence
// running) where prefix pins hold blocks, an admission in chunks of one
// token whose longest hit leaves one token to compute (admitted whole, as
// AdmitChunk does) and is refused for now falls back to a shorter hit, or
// a miss, that fits now: nothing running will give blocks back, and the
// pins may never end (here until Unpin). Taken as a wait, the prompt was
// refused until the pins ended (M822). The layout is
// TestLongestHitFallsBack's (a 1-token window: the hit holds its last
// cached block besides the new token's), in a pool of 15 usable blocks of
// which a pinned prompt takes 3: the longest hit needs 13 of the 12
// available.
func TestAudit59IdleHitFallsBackBesidePins(t *testing.T) {
	m, err := paged.New(paged.Config{BlockSize: 2, NumBlocks: 16, Groups: fallbackLayout})
	require.NoError(t, err)
	prompt := seqOf(1, 21)
	pinned := seqOf(500, 4)
	cachePrompt(t, m, pinned)
	m.EndStep()
	require.NoError(t, m.SetPinBudget(8))
	_, held, err := m.Pin(pinned, nil, 0)
	require.NoError(t, err)
	require.Equal(t, 4, held)
	cachePrompt(t, m, prompt[:20])
	m.EndStep()
	id, err := m.Add(prompt, nil)
	require.NoError(t, err)
	// Whole, the miss never fits (every block of the 1-token window is
	// held in the step computing the prompt): the longest hit's answer
	// stands, a wait for the pins (M823 answered the miss's never).
	a, err := m.CanAdmit(id)
	require.NoError(t, err)
	assert.Equal(t, paged.AdmitLater, a, "whole: the longest hit's refusal")
	a, err = m.CanAdmitChunk(id, 1)
	require.NoError(t, err)
	assert.Equal(t, paged.AdmitOK, a, "a shorter hit, or a miss, fits beside the pins")
	before := m.Stats()
	cached, _, err := m.AdmitChunk(id, 1, nil)
	require.NoError(t, err)
	assert.Less(t, cached, 20, "a shorter hit")
	assert.Equal(t, before.HitFallbacks+1, m.Stats().HitFallbacks, "counted")
	require.NoError(t, m.Check())
}

// TestAudit59EveryShorterHitStuckFallsToMiss: when the longest hit and
// every shorter one are refused for good and a miss is not, the
// admission plans the miss. Blocks of 1 token, full attention and a
// 1-token window, 6 usable blocks; the prompt's first 2 tokens cached.
// In chunks of 3, the 4-token prompt computed from scratch peaks at its
// first chunk: 3 full-attention blocks and the window's 3 (each query
// reads its own block, all in one step), 6. A hit of 2 or 1 blocks
// leaves 2 or 3 tokens, one step: 4 full-attention blocks, the window's
// blocks of those tokens and the hit's last one, 7 or 8: never. The walk
// down from the longest hit ended at the 1-block hit and planned it,
// refused as never, not the miss (M825; rapid's
// TestCachedHitNeverRefusesRapid finds it in some runs, seed
// 17352620785926308105).
func TestAudit59EveryShorterHitStuckFallsToMiss(t *testing.T) {
	m, err := paged.New(paged.Config{BlockSize: 1, NumBlocks: 7,
		Groups: []paged.Group{{}, {Kind: paged.SlidingWindow, Window: 1}}})
	require.NoError(t, err)
	prompt := seqOf(1, 4)
	cachePrompt(t, m, prompt[:2])
	m.EndStep()
	x, err := m.Add(prompt, nil)
	require.NoError(t, err)
	a, err := m.CanAdmitChunk(x, 3)
	require.NoError(t, err)
	require.Equal(t, paged.AdmitOK, a)
	before := m.Stats()
	cached, _, err := m.AdmitChunk(x, 3, nil)
	require.NoError(t, err)
	assert.Zero(t, cached, "the miss")
	assert.Equal(t, before.HitFallbacks+1, m.Stats().HitFallbacks, "a fallback")
	require.NoError(t, m.Check())
}

// TestAudit59PlacementDevicesCacheNothing: a placement's devices keep no
// prefix cache: a device holds a shard of a sequence, so its chain of
// hashes would cover the shard's blocks only, while their KV depends on
// the whole prefix. A freed sequence's blocks are free on every device,
// none cached (M830).
func TestAudit59PlacementDevicesCacheNothing(t *testing.T) {
	for _, layout := range []paged.Layout{paged.Contiguous, paged.RoundRobin} {
		p, err := paged.NewPlacement(paged.PlacementConfig{Device: paged.Config{BlockSize: 4, NumBlocks: 16},
			Devices: 2, Layout: layout})
		require.NoError(t, err)
		id, err := p.Create(seqOf(1, 13), 2)
		require.NoError(t, err)
		require.NoError(t, p.Append(id, 100, 101, 102, 103))
		require.NoError(t, p.Free(id))
		for i, d := range p.Devices() {
			st := d.Stats()
			assert.Zero(t, st.CachedBlocks, "%v: device %d keeps nothing cached", layout, i)
			assert.Equal(t, st.UsableBlocks, st.FreeBlocks, "%v: device %d", layout, i)
		}
		require.NoError(t, p.Check())
	}
}
