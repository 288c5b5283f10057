package paged_test

import (
	"fmt"
	"slices"
	"testing"

	"github.com/stretchr/testify/assert"
	"github.com/stretchr/testify/require"

	"github.com/pagedkv/pagedkv/paged"
)

// TestOnboardEventsCarryTokens: the BlockMoved of an onboard names each
// block with the tokens and parent a BlockStored of it carries (blocks
// onboarded one after another along a chain in one event), so that
// consumers that cannot follow moves can store the blocks again; offload
// moves carry none. With events drained every step the churn still
// allocates nothing.
func TestOnboardEventsCarryTokens(t *testing.T) {
	m, err := paged.New(paged.Config{BlockSize: 4, NumBlocks: 5, HostBlocks: 64, Events: 1024})
	require.NoError(t, err)
	prompts := make([][]int32, 8)
	for i := range prompts {
		prompts[i] = make([]int32, 9)
		for j := range prompts[i] {
			prompts[i][j] = int32(100*i + j)
		}
	}
	hashes := make([][]paged.Hash, len(prompts))
	for i, p := range prompts {
		hashes[i], err = m.BlockHashes(nil, p, nil)
		require.NoError(t, err)
	}
	evs := make([]paged.Event, 0, 64)
	swaps := make([]paged.Swap, 0, 64)
	var errs []error
	i := 0
	onboards := 0
	step := func() {
		p, hs := prompts[i%len(prompts)], hashes[i%len(prompts)]
		id, _, err := m.Create(p, nil)
		if err == nil {
			err = m.Free(id)
		}
		if err != nil {
			errs = append(errs, err)
		}
		swaps = m.TakeSwaps(swaps[:0])
		evs = m.DrainEvents(evs[:0])
		// The onboards of the step, in order, are p's full blocks, each
		// with its tokens and its parent (events of offloads between
		// them may split the run).
		next := 0
		for k := range evs {
			e := &evs[k]
			if e.Kind != paged.BlockMoved {
				continue
			}
			if e.Medium == paged.Host {
				if len(e.Tokens) != 0 {
					errs = append(errs, fmt.Errorf("offload move with %d tokens", len(e.Tokens)))
				}
				continue
			}
			onboards++
			n := len(e.Hashes)
			if next+n > len(hs) || !slices.Equal(e.Hashes, hs[next:next+n]) || e.BlockSize != 4 ||
				!slices.Equal(e.Tokens, p[4*next:4*(next+n)]) || e.HasParent != (next > 0) || (next > 0 && e.Parent != hs[next-1]) {
				errs = append(errs, fmt.Errorf("prompt %d: onboard of blocks %d to %d: %+v", i%len(prompts), next, next+n, *e))
			}
			next += n
		}
		if next != 0 && next != len(hs) {
			errs = append(errs, fmt.Errorf("prompt %d: %d of its %d blocks onboarded", i%len(prompts), next, len(hs)))
		}
		i++
	}
	for range 64 {
		step()
	}
	allocs := testing.AllocsPerRun(200, step)
	require.Empty(t, errs)
	assert.Zero(t, allocs)
	assert.Greater(t, onboards, 200, "every prompt comes back from the host")
	require.NoError(t, m.Check())
}

// TestPinStatsLasting: PinStats.Lasting counts the live pins without an
// expiry through Pin, ExtendPin (both ways), Unpin and expiry.
func TestPinStatsLasting(t *testing.T) {
	m, err := paged.New(paged.Config{BlockSize: 2, NumBlocks: 16})
	require.NoError(t, err)
	require.NoError(t, m.SetPinBudget(8))
	prompt := []int32{1, 2, 3, 4, 5}
	id, _, err := m.Create(prompt, nil)
	require.NoError(t, err)
	require.NoError(t, m.Free(id))
	a, _, err := m.Pin(prompt, nil, 0)
	require.NoError(t, err)
	b, _, err := m.Pin(prompt, nil, 5)
	require.NoError(t, err)
	require.Equal(t, 1, m.PinStats().Lasting)
	require.NoError(t, m.ExtendPin(b, 0))
	require.Equal(t, 2, m.PinStats().Lasting)
	require.NoError(t, m.ExtendPin(a, 3))
	require.Equal(t, 1, m.PinStats().Lasting)
	require.NoError(t, m.Check())
	m.Advance(3) // a expires
	require.Equal(t, 1, m.PinStats().Pins)
	require.Equal(t, 1, m.PinStats().Lasting)
	require.NoError(t, m.Unpin(b))
	require.Equal(t, 0, m.PinStats().Lasting)
	require.NoError(t, m.Check())
}
