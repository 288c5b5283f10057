package paged_test

import (
	"errors"
	"fmt"
	"math/rand/v2"
	"testing"

	"github.com/stretchr/testify/assert"
	"github.com/stretchr/testify/require"

	"github.com/pagedkv/pagedkv/paged"
)

// prompt returns n tokens starting at base.
func prompt(base, n int) []int32 {
	p := make([]int32, n)
	for i := range p {
		p[i] = int32(base + i)
	}
	return p
}

// computed runs prompt p once (create, the step that computes it, free)
// so its full blocks are cached, computed: a pin may hold them.
func computed(t *testing.T, m *paged.Manager, p []int32) {
	t.Helper()
	id, _, err := m.Create(p, nil)
	require.NoError(t, err)
	m.EndStep()
	require.NoError(t, m.Free(id))
	require.NoError(t, m.Check())
}

func TestPinSurvivesFloodAndExpires(t *testing.T) {
	m, err := paged.New(paged.Config{BlockSize: 4, NumBlocks: 17})
	require.NoError(t, err)
	system := prompt(1000, 12) // three blocks
	computed(t, m, system)
	require.NoError(t, m.SetPinBudget(4))
	m.Advance(10)
	pin, tokens, err := m.Pin(system, nil, 70)
	require.NoError(t, err)
	assert.Equal(t, 12, tokens)
	require.NoError(t, m.Check())
	st := m.Stats()
	assert.Equal(t, 3, st.UsedBlocks, "pinned blocks are referenced")

	// Enough other prompts to evict everything evictable several times.
	for i := range 10 {
		computed(t, m, prompt(i*100, 40))
	}
	id, cached, err := m.Create(append(prompt(1000, 12), 7, 8), nil)
	require.NoError(t, err)
	assert.Equal(t, 12, cached, "the pinned prefix is still cached")
	require.NoError(t, m.Free(id))

	m.Advance(69)
	assert.Equal(t, 1, m.PinStats().Pins)
	m.Advance(70) // the expiry
	ps := m.PinStats()
	assert.Equal(t, 0, ps.Pins)
	assert.Equal(t, 0, ps.PinnedBlocks)
	assert.Equal(t, uint64(1), ps.Expired)
	assert.Equal(t, 3, ps.PeakPinnedBlocks)
	require.NoError(t, m.Check())
	assert.ErrorIs(t, m.Unpin(pin), paged.ErrUnknownPin)

	// Unpinned, the prefix is ordinary cache again: a flood evicts it.
	for i := range 10 {
		computed(t, m, prompt(5000+i*100, 40))
	}
	id, cached, err = m.Create(append(prompt(1000, 12), 7, 8), nil)
	require.NoError(t, err)
	assert.Zero(t, cached)
	require.NoError(t, m.Free(id))

	var kinds []paged.PinEventKind
	for _, e := range m.TakePinEvents(nil) {
		kinds = append(kinds, e.Kind)
	}
	assert.Equal(t, []paged.PinEventKind{paged.Pinned, paged.PinExpired}, kinds)
	assert.Empty(t, m.TakePinEvents(nil))
}

func TestPinBudget(t *testing.T) {
	m, err := paged.New(paged.Config{BlockSize: 4, NumBlocks: 17})
	require.NoError(t, err)
	a, b := prompt(1000, 12), prompt(2000, 8)
	computed(t, m, a)
	computed(t, m, b)

	_, _, err = m.Pin(a, nil, 0)
	assert.ErrorIs(t, err, paged.ErrPinBudget, "no budget set")
	assert.ErrorIs(t, m.SetPinBudget(-1), paged.ErrInvalid)
	assert.ErrorIs(t, m.SetPinBudget(17), paged.ErrInvalid)
	require.NoError(t, m.SetPinBudget(4))

	pa, _, err := m.Pin(a, nil, 0)
	require.NoError(t, err)
	before := m.Stats()
	_, _, err = m.Pin(b, nil, 0)
	assert.ErrorIs(t, err, paged.ErrPinBudget, "3 + 2 blocks > 4")
	assert.Equal(t, before, m.Stats(), "a refused pin changes nothing")
	require.NoError(t, m.Check())

	// Pinning the same prefix again costs no budget: blocks count once.
	pa2, _, err := m.Pin(a[:8], nil, 0)
	require.NoError(t, err)
	assert.Equal(t, 3, m.PinStats().PinnedBlocks)
	assert.ErrorIs(t, m.SetPinBudget(2), paged.ErrInvalid, "below what is pinned")
	require.NoError(t, m.Check())

	require.NoError(t, m.Unpin(pa))
	assert.Equal(t, 2, m.PinStats().PinnedBlocks, "the second pin still holds two blocks")
	require.NoError(t, m.Unpin(pa2))
	assert.ErrorIs(t, m.Unpin(pa2), paged.ErrUnknownPin)
	assert.ErrorIs(t, m.Unpin(0), paged.ErrUnknownPin)
	assert.ErrorIs(t, m.Unpin(paged.PinID(1<<40|7)), paged.ErrUnknownPin)
	_, _, err = m.Pin(b, nil, 0)
	require.NoError(t, err)
	require.NoError(t, m.Check())
	ps := m.PinStats()
	assert.Equal(t, uint64(3), ps.Made)
	assert.Equal(t, uint64(2), ps.Unpinned)
	assert.Equal(t, uint64(2), ps.Rejected)
}

func TestPinExpiryArguments(t *testing.T) {
	m, err := paged.New(paged.Config{BlockSize: 4, NumBlocks: 9})
	require.NoError(t, err)
	require.NoError(t, m.SetPinBudget(8))
	computed(t, m, prompt(1, 8))
	m.Advance(100)
	_, _, err = m.Pin(prompt(1, 8), nil, 100)
	assert.ErrorIs(t, err, paged.ErrInvalid, "expiry must be after now")
	p, n, err := m.Pin(prompt(1, 8), nil, 150)
	require.NoError(t, err)
	assert.Equal(t, 8, n)
	assert.ErrorIs(t, m.ExtendPin(p, 99), paged.ErrInvalid)
	require.NoError(t, m.ExtendPin(p, 300)) // refreshed on use
	m.Advance(200)
	assert.Equal(t, 1, m.PinStats().Pins)
	require.NoError(t, m.ExtendPin(p, 0)) // until Unpin
	m.Advance(1000)
	assert.Equal(t, 1, m.PinStats().Pins)
	require.NoError(t, m.Check())
	// A prompt with nothing cached pins nothing, and still succeeds.
	q, n, err := m.Pin(prompt(9000, 8), nil, 0)
	require.NoError(t, err)
	assert.Zero(t, n)
	require.NoError(t, m.Unpin(q))
	// Cache reset needs the pins gone.
	assert.ErrorIs(t, m.ResetCache(), paged.ErrCacheInUse)
	require.NoError(t, m.Unpin(p))
	require.NoError(t, m.ResetCache())
	require.NoError(t, m.Check())
}

func ExampleManager_Pin() {
	m, _ := paged.New(paged.Config{BlockSize: 4, NumBlocks: 9})
	_ = m.SetPinBudget(2) // at most 2 blocks pinned at once
	system := []int32{1, 2, 3, 4, 5, 6, 7, 8}
	id, _, _ := m.Create(system, nil)
	m.EndStep()    // the step that computes it ran (or BuildBatch, TakeSwaps...)
	_ = m.Free(id) // the system prompt is cached

	pin, tokens, err := m.Pin(system, nil, 300) // "cached until tick 300"
	fmt.Println("pinned tokens:", tokens, err)
	other := []int32{9, 10, 11, 12, 13}
	id, _, _ = m.Create(other, nil)
	m.EndStep()
	_ = m.Free(id)
	_, _, err = m.Pin(other, nil, 300)
	fmt.Println("budget full:", errors.Is(err, paged.ErrPinBudget))
	m.Advance(300)
	fmt.Println("pins after expiry:", m.PinStats().Pins, errors.Is(m.Unpin(pin), paged.ErrUnknownPin))
	// Output:
	// pinned tokens: 8 <nil>
	// budget full: true
	// pins after expiry: 0 true
}

// TestPinRandomOps drives pins, sequences and time at random and checks
// every invariant after each step: counts equal table entries plus pins,
// pinned blocks never leave the cache while pinned, the budget holds.
func TestPinRandomOps(t *testing.T) {
	var total paged.PinStats
	for seed := range uint64(8) {
		rng := rand.New(rand.NewPCG(seed, 7))
		m, err := paged.New(paged.Config{BlockSize: 4, NumBlocks: 33})
		require.NoError(t, err)
		require.NoError(t, m.SetPinBudget(12))
		var pins []paged.PinID
		var seqs []paged.SeqID
		now := int64(0)
		for step := range 400 {
			switch rng.IntN(6) {
			case 0, 1: // a request over one of a few shared prefixes
				p := prompt(1000*rng.IntN(5), 4*(1+rng.IntN(6))+rng.IntN(4))
				id, _, err := m.Create(p, nil)
				if err == nil {
					seqs = append(seqs, id)
				}
			case 2:
				if len(seqs) > 0 {
					i := rng.IntN(len(seqs))
					require.NoError(t, m.Free(seqs[i]))
					seqs = append(seqs[:i], seqs[i+1:]...)
				}
			case 3:
				p := prompt(1000*rng.IntN(5), 4*(1+rng.IntN(4)))
				until := int64(0)
				if rng.IntN(2) == 0 {
					until = now + 1 + int64(rng.IntN(20))
				}
				id, _, err := m.Pin(p, nil, until)
				if err != nil {
					require.ErrorIs(t, err, paged.ErrPinBudget)
					break
				}
				pins = append(pins, id)
			case 4:
				if len(pins) > 0 {
					i := rng.IntN(len(pins))
					err := m.Unpin(pins[i])
					if err != nil {
						require.ErrorIs(t, err, paged.ErrUnknownPin) // expired
					}
					pins = append(pins[:i], pins[i+1:]...)
				}
			case 5: // a step runs: what it computed may be pinned
				now += int64(rng.IntN(5))
				m.Advance(now)
				m.EndStep()
			}
			// Check verifies that every pinned block still holds its cached
			// content and that counts are table entries plus pins.
			require.NoError(t, m.Check(), "seed %d step %d", seed, step)
			require.LessOrEqual(t, m.PinStats().PinnedBlocks, 12)
		}
		ps := m.PinStats()
		total.Made += ps.Made
		total.Expired += ps.Expired
		total.Rejected += ps.Rejected
		total.Unpinned += ps.Unpinned
	}
	// The walk reaches every path: pins made, expired, refused, unpinned.
	t.Logf("%+v", total)
	assert.NotZero(t, total.Made)
	assert.NotZero(t, total.Expired)
	assert.NotZero(t, total.Rejected)
	assert.NotZero(t, total.Unpinned)
}
