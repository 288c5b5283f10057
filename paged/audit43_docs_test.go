package paged_test

import (
	"strings"
	"testing"

	"github.com/stretchr/testify/assert"
	"github.com/stretchr/testify/require"

	"github.com/pagedkv/pagedkv/paged"
)

// TestAudit43RefusalsNameTheState: a call that needs a running sequence
// and is given a swapped-out one returns ErrSequenceState naming the
// state it found. Before audit 43, BuildBatch, Slot, Fork, Preempt,
// Uncompute, Unadmit and AcceptSpeculative called a swapped-out sequence
// "waiting (preempted or not admitted)", while Admit refuses it as
// swapped out (SwapIn resumes it): 14 assertions failed, 2 for each.
func TestAudit43RefusalsNameTheState(t *testing.T) {
	m, err := paged.New(paged.Config{BlockSize: 4, NumBlocks: 64, HostBlocks: 64})
	require.NoError(t, err)
	swapped, _, err := m.Create(seqOf(1, 10), nil)
	require.NoError(t, err)
	waiting, err := m.Add(seqOf(100, 10), nil)
	require.NoError(t, err)
	m.EndStep()
	require.NoError(t, m.SwapOut(swapped))

	ops := map[string]func(id paged.SeqID) error{
		"BuildBatch": func(id paged.SeqID) error {
			return m.BuildBatch(&paged.Batch{}, []paged.Scheduled{{ID: id, NewTokens: 1}})
		},
		"DecodeStep": func(id paged.SeqID) error {
			_, err := m.DecodeStep(&paged.Batch{}, []paged.Scheduled{{ID: id, NewTokens: 1}}, []int32{3})
			return err
		},
		"Slot":              func(id paged.SeqID) error { _, err := m.Slot(id, 0); return err },
		"Fork":              func(id paged.SeqID) error { _, err := m.Fork(id); return err },
		"Preempt":           func(id paged.SeqID) error { return m.Preempt(id) },
		"Uncompute":         func(id paged.SeqID) error { return m.Uncompute(id, 5) },
		"Unadmit":           func(id paged.SeqID) error { return m.Unadmit(id) },
		"AcceptSpeculative": func(id paged.SeqID) error { return m.AcceptSpeculative(id, 0) },
		"Append":            func(id paged.SeqID) error { return m.Append(id, 3) },
		"Truncate":          func(id paged.SeqID) error { return m.Truncate(id, 5) },
	}
	for name, op := range ops {
		err := op(swapped)
		require.ErrorIs(t, err, paged.ErrSequenceState, name)
		assert.Contains(t, err.Error(), "swapped out", "%s of a swapped-out sequence", name)
		assert.NotContains(t, err.Error(), "waiting", "%s of a swapped-out sequence", name)
		if name == "Append" || name == "Truncate" {
			continue // a waiting sequence takes them
		}
		err = op(waiting)
		require.ErrorIs(t, err, paged.ErrSequenceState, name)
		assert.True(t, strings.Contains(err.Error(), "waiting"), "%s of a waiting sequence: %v", name, err)
	}
	require.NoError(t, m.Check())
}

// TestAudit43UncomputedCheckpointAskedAgain: docs/hybrid.md said that a
// branch-point checkpoint handed out for a step then dropped (Uncompute)
// "is not asked again"; Uncompute's and TakeCheckpoints' comments say a
// readmission asks for it again, and it does (since c0457aa): the
// preempted sequence readmitted gets the checkpoint at the same point.
func TestAudit43UncomputedCheckpointAskedAgain(t *testing.T) {
	const bs, shared = 4, 5 * 4
	prompt := func(tail int32) []int32 { return append(seqOf(1, shared), tail, tail+1, tail+2, tail+3, tail+4) }
	m, err := paged.New(paged.Config{BlockSize: bs, NumBlocks: 64,
		Groups: []paged.Group{{Kind: paged.FullAttention}, {Kind: paged.State, Pages: 2}}})
	require.NoError(t, err)
	chunkedPrefill(t, m, prompt(100), 64)
	id, err := m.Add(prompt(200), nil)
	require.NoError(t, err)
	cached, err := m.Admit(id)
	require.NoError(t, err)
	cks := m.TakeCheckpoints(nil)
	require.Len(t, cks, 1)
	require.Equal(t, shared, cks[0].Tokens)
	m.TakeCopies(nil)
	require.NoError(t, m.Uncompute(id, cached))
	require.NoError(t, m.Preempt(id))
	m.EndStep()
	cached, err = m.Admit(id)
	require.NoError(t, err)
	assert.Zero(t, cached, "the dropped checkpoint was forgotten: no hit")
	cks = m.TakeCheckpoints(nil)
	require.Len(t, cks, 1, "the readmission asks for the checkpoint again")
	assert.Equal(t, shared, cks[0].Tokens)
	require.NoError(t, m.Check())
}

// TestAudit43UncomputeKeepsSharedOnboardedBlocks pins what Uncompute's
// comment says since audit 43: blocks onboarded from the host tier in the
// step being built hold KV copied before the step's kernels, so when the
// sequence that onboarded them drops the step (Uncompute below them)
// while another admission of the step shares them, they stay cached, as
// computed (blockPool.markComputed), and a later prompt hits them.
func TestAudit43UncomputeKeepsSharedOnboardedBlocks(t *testing.T) {
	m, err := paged.New(paged.Config{BlockSize: 4, NumBlocks: 9, HostBlocks: 32})
	require.NoError(t, err)
	prefix := seqOf(1, 12)
	with := func(a, b int32) []int32 { return append(append([]int32{}, prefix...), a, b) }
	x, _, err := m.Create(with(500, 501), nil)
	require.NoError(t, err)
	m.EndStep()
	require.NoError(t, m.Free(x))
	// Other content fills the device: the prefix goes to the host.
	y, _, err := m.Create(seqOf(1000, 32), nil)
	require.NoError(t, err)
	m.EndStep()
	require.NoError(t, m.Free(y))
	m.TakeSwaps(nil)
	require.Equal(t, uint64(3), m.Stats().Tiers.Offloads)

	a, err := m.Add(with(600, 601), nil)
	require.NoError(t, err)
	hit, err := m.Admit(a)
	require.NoError(t, err)
	require.Equal(t, 12, hit)
	require.Equal(t, uint64(3), m.Stats().Tiers.Onboards, "the prefix onboarded in this step")
	b, err := m.Add(with(700, 701), nil)
	require.NoError(t, err)
	hit, err = m.Admit(b)
	require.NoError(t, err)
	require.Equal(t, 12, hit, "b shares the onboarded blocks")
	require.NoError(t, m.Uncompute(a, 0))
	require.NoError(t, m.Preempt(a))
	require.NoError(t, m.Check())
	m.EndStep()
	m.TakeSwaps(nil)
	_, hit, err = m.Create(with(800, 801), nil)
	require.NoError(t, err)
	assert.Equal(t, 12, hit, "the onboarded blocks stayed cached")
	require.NoError(t, m.Check())
}
