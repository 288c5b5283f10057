package fleettest

import (
	"testing"

	"github.com/stretchr/testify/require"

	"github.com/pagedkv/pagedkv/fleet"
	"github.com/pagedkv/pagedkv/paged"
)

// CheckAffinityOfFullGroup checks Score.Affinity on backend b (fresh,
// under model) for a layout whose full-attention group is not group 0,
// as a vLLM engine's groups come in its layers' order (Gemma 3's window
// group first, "window:8 full"): Affinity is the full group's run, at
// least the hit, and stays the family's length once the window's blocks
// are gone and the hit with them.
func CheckAffinityOfFullGroup(t *testing.T, model string, b fleet.Backend) {
	l, err := fleet.ParseLayout("b4 window:8 full")
	require.NoError(t, err)
	x, err := fleet.New(fleet.Config{Backend: b, Model: model})
	require.NoError(t, err)
	require.NoError(t, x.SetLayout("s", l))
	hs := make([]paged.Hash, 8)
	for i := range hs {
		hs[i] = paged.Hash{byte(i + 1)}
	}
	seq := uint64(0)
	store := func(g int, from, to int) {
		seq++
		ev := paged.Event{Kind: paged.BlockStored, Seq: seq, Group: g, Hashes: hs[from:to], BlockSize: 4, Tokens: make([]int32, 4*(to-from))}
		if from > 0 {
			ev.Parent, ev.HasParent = hs[from-1], true
		}
		require.NoError(t, x.Apply("s", []paged.Event{ev}))
	}
	store(1, 0, 8) // the full group holds the family
	store(0, 6, 8) // the window only its last blocks
	sc, err := x.Lookup(hs, nil)
	require.NoError(t, err)
	require.Equal(t, 8, sc[0].Blocks, "a hit of 8: the window's two blocks before it and the full group's run")
	require.Equal(t, 8, sc[0].Affinity, "at least the hit")

	seq++
	require.NoError(t, x.Apply("s", []paged.Event{{Kind: paged.BlockRemoved, Seq: seq, Hashes: hs[6:8]}}))
	sc, err = x.Lookup(hs, nil)
	require.NoError(t, err)
	require.Zero(t, sc[0].Blocks, "the window blocks are gone")
	require.Equal(t, 8, sc[0].Affinity, "the family is still in the full group")
	require.False(t, sc[0].Partial)
}
