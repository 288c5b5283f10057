package paged_test

import (
	"errors"
	"slices"
	"testing"

	"github.com/stretchr/testify/assert"
	"github.com/stretchr/testify/require"

	"github.com/pagedkv/pagedkv/paged"
)

// stepDone ends the step being built as a server does: it takes the
// step's directives (BuildBatch and DecodeStep take both) and, in a real
// server, runs them and then the step's kernels, which compute the KV of
// the sequences admitted in it.
func stepDone(m *paged.Manager) {
	m.TakeSwaps(nil)
	m.TakeCopies(nil)
}

// kvStore is a server's KV memory as a test sees it: device and host
// slots holding the token whose KV they store.
type kvStore struct {
	bs           int
	device, host map[int64]int32
}

func newKVStore(bs int) *kvStore {
	return &kvStore{bs: bs, device: map[int64]int32{}, host: map[int64]int32{}}
}

// run runs tier directives in order, as Batch.Swaps says.
func (kv *kvStore) run(swaps []paged.Swap) {
	for _, d := range swaps {
		src, dst := kv.device, kv.device
		if d.Kind.SrcMedium() == paged.Host {
			src = kv.host
		}
		if d.Kind.DstMedium() == paged.Host {
			dst = kv.host
		}
		for off := range kv.bs {
			from, to := int64(d.Src)*int64(kv.bs)+int64(off), int64(d.Dst)*int64(kv.bs)+int64(off)
			if v, ok := src[from]; ok {
				dst[to] = v
			} else {
				delete(dst, to)
			}
		}
	}
}

// compute is a kernel writing the KV of positions [from, len) of id.
func (kv *kvStore) compute(t *testing.T, m *paged.Manager, id paged.SeqID, from int) {
	toks, err := m.Tokens(id)
	require.NoError(t, err)
	for p := from; p < len(toks); p++ {
		slot, err := m.Slot(id, p)
		require.NoError(t, err)
		kv.device[slot] = toks[p]
	}
}

// TestSwapOutRefusesUncomputedHits: a sequence admitted in a step may hit
// blocks another admission of the same step committed and that step's
// kernels have not written yet. Swapped out in that step, its SwapOut
// directives, which run before the kernels, copied those blocks empty;
// once the device copies were evicted, SwapIn brought the empty copies
// back and the sequence read KV that was never there (before the guard:
// position 0 read as missing). SwapOut now refuses the group with
// ErrUncomputed and changes nothing; once the step's directives are
// taken (its kernels ran), the same swap works and reads back right.
func TestSwapOutRefusesUncomputedHits(t *testing.T) {
	m, err := paged.New(paged.Config{BlockSize: 4, NumBlocks: 9, HostBlocks: 8, DisableOffload: true})
	require.NoError(t, err)
	kv := newKVStore(4)
	prompt := seqTokens(9, 1)
	// One step: a computes its prompt, b hits a's two full blocks.
	a, cached, err := m.Create(prompt, nil)
	require.NoError(t, err)
	require.Zero(t, cached)
	b, cached, err := m.Create(append(prompt[:8:8], 77, 78), nil)
	require.NoError(t, err)
	require.Equal(t, 8, cached, "b hits a's blocks, which this step computes")
	// a finishes; other traffic evicts its cached blocks; b comes back.
	evictAndSwapIn := func() {
		require.NoError(t, m.Free(a))
		filler, _, err := m.Create(seqTokens(32, 500), nil)
		require.NoError(t, err)
		require.NoError(t, m.Free(filler))
		require.NoError(t, m.SwapIn(b))
		kv.run(m.TakeSwaps(nil))
	}
	before := m.Stats()
	err = m.SwapOut(b)
	if err == nil {
		// The server runs the step: directives first, then the kernels.
		var batch paged.Batch
		require.NoError(t, m.BuildBatch(&batch, []paged.Scheduled{{ID: a, NewTokens: 9}}))
		kv.run(batch.Swaps)
		kv.compute(t, m, a, 0)
		evictAndSwapIn()
		for p := range 8 {
			slot, err := m.Slot(b, p)
			require.NoError(t, err)
			got, ok := kv.device[slot]
			require.True(t, ok && got == prompt[p], "b's position %d (a cached hit) reads %d (present %v), want %d", p, got, ok, prompt[p])
		}
		return
	}
	require.ErrorIs(t, err, paged.ErrUncomputed)
	assert.Contains(t, err.Error(), b.String())
	assert.Equal(t, before, m.Stats(), "a refused SwapOut changes nothing")
	running, _ := m.Running(b)
	assert.True(t, running)
	require.NoError(t, m.Check())
	assert.Empty(t, m.TakeSwaps(nil), "no directive")
	// The step ran (its directives were taken just now): b swaps out.
	kv.compute(t, m, a, 0)
	kv.compute(t, m, b, 8)
	require.NoError(t, m.SwapOut(b))
	kv.run(m.TakeSwaps(nil))
	require.NoError(t, m.Check())
	evictAndSwapIn()
	toks, _ := m.Tokens(b)
	for p := range toks {
		slot, err := m.Slot(b, p)
		require.NoError(t, err)
		assert.Equal(t, toks[p], kv.device[slot], "position %d", p)
	}
	require.NoError(t, m.Check())
}

// TestSwapOutGuardCases: which sequences the step being built has not
// computed: admitted by Admit, AdmitChunk or Create, swapped in, or
// forked from one of those; a group naming one is refused whole, after
// the other checks of its arguments. The step ends when its directives
// are taken (TakeSwaps, TakeCopies, BuildBatch, DecodeStep); a sequence
// running since an earlier step swaps out as before, also right after
// appending (Uncompute is the caller's).
func TestSwapOutGuardCases(t *testing.T) {
	m, err := paged.New(paged.Config{BlockSize: 4, NumBlocks: 33, HostBlocks: 32})
	require.NoError(t, err)
	old, _, err := m.Create(seqTokens(6, 1), nil)
	require.NoError(t, err)
	stepDone(m)

	fresh, _, err := m.Create(seqTokens(6, 100), nil)
	require.NoError(t, err)
	waiting, err := m.Add(seqTokens(10, 200), nil)
	require.NoError(t, err)
	_, rest, err := m.AdmitChunk(waiting, 4, nil)
	require.NoError(t, err)
	require.Len(t, rest, 6)
	child, err := m.Fork(fresh)
	require.NoError(t, err)
	oldChild, err := m.Fork(old)
	require.NoError(t, err)
	for _, group := range [][]paged.SeqID{{fresh}, {waiting}, {child}, {fresh, child}, {old, fresh}} {
		before := m.Stats()
		require.ErrorIs(t, m.SwapOut(group...), paged.ErrUncomputed, "%v", group)
		assert.Equal(t, before, m.Stats())
	}
	require.ErrorIs(t, m.SwapOut(fresh, fresh), paged.ErrInvalid, "argument errors first")
	require.NoError(t, m.Append(old, 9), "running since an earlier step")
	require.NoError(t, m.Uncompute(old, 6))
	require.NoError(t, m.SwapOut(old, oldChild), "a group running since an earlier step")
	require.NoError(t, m.Check())

	// A swap-in is an arrival too: its reclaimed blocks may hold content
	// an admission of the step committed.
	var b paged.Batch
	require.NoError(t, m.BuildBatch(&b, []paged.Scheduled{{ID: fresh, NewTokens: 6}}))
	require.NoError(t, m.SwapIn(old, oldChild))
	require.ErrorIs(t, m.SwapOut(old), paged.ErrUncomputed)
	require.NoError(t, m.SwapOut(fresh, child), "BuildBatch ended the step")
	require.NoError(t, m.Check())
	_, err = m.DecodeStep(&b, []paged.Scheduled{{ID: old, NewTokens: 1}, {ID: oldChild, NewTokens: 1}}, []int32{1, 2})
	require.NoError(t, err)
	require.NoError(t, m.Uncompute(old, 6))
	require.NoError(t, m.Uncompute(oldChild, 6))
	require.NoError(t, m.SwapOut(old, oldChild), "DecodeStep ended the step")
	require.NoError(t, m.Check())
}

// TestSwapOutGuardManyGroups: the guard holds for a hybrid manager too
// (every group's table would be copied), and a refused group leaves
// every table as it was.
func TestSwapOutGuardManyGroups(t *testing.T) {
	m, err := paged.New(paged.Config{BlockSize: 4, NumBlocks: 40, HostBlocks: 40,
		Groups: []paged.Group{{Kind: paged.FullAttention}, {Kind: paged.SlidingWindow, Window: 8}, {Kind: paged.State, Pages: 2}}})
	require.NoError(t, err)
	a, _, err := m.Create(seqTokens(13, 1), nil)
	require.NoError(t, err)
	before := m.Stats()
	table, _ := m.Table(a)
	table = slices.Clone(table)
	err = m.SwapOut(a)
	require.ErrorIs(t, err, paged.ErrUncomputed)
	require.False(t, errors.Is(err, paged.ErrNoSpace))
	assert.Equal(t, before, m.Stats())
	after, _ := m.Table(a)
	assert.Equal(t, table, after)
	stepDone(m)
	require.NoError(t, m.SwapOut(a))
	require.NoError(t, m.Check())
}
