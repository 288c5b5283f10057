package paged_test

import (
	"testing"

	"github.com/stretchr/testify/assert"
	"github.com/stretchr/testify/require"

	"github.com/pagedkv/pagedkv/paged"
)

// TestStatePagesSumChecked: every State group's pages together are what
// a sequence takes at admission; 255 groups of up to MaxBlocks pages each
// sum past 2^31, which wraps the manager's int where it is 32 bits. New
// sums them as it checks each group, refusing a sum past MaxBlocks (no
// pool holds it) with ErrInvalid; a sum past this pool's usable blocks
// is every admission's ErrNever.
func TestStatePagesSumChecked(t *testing.T) {
	state := func(pages ...int) []paged.Group {
		g := []paged.Group{{Kind: paged.FullAttention}}
		for _, p := range pages {
			g = append(g, paged.Group{Kind: paged.State, Pages: p})
		}
		return g
	}
	many := make([]int, 254)
	for i := range many {
		many[i] = 1<<24 - 1
	}
	_, err := paged.New(paged.Config{BlockSize: 4, NumBlocks: 1 << 24, Groups: state(many...)})
	require.ErrorIs(t, err, paged.ErrInvalid)
	assert.Contains(t, err.Error(), "Config.Groups[2]")
	// MaxBlocks and one: refused before the pool is made.
	_, err = paged.New(paged.Config{BlockSize: 4, NumBlocks: 1 << 24, Groups: state(1<<23, 1<<23, 1)})
	require.ErrorIs(t, err, paged.ErrInvalid)

	m, err := paged.New(paged.Config{BlockSize: 4, NumBlocks: 10, Groups: state(5, 5)})
	require.NoError(t, err)
	_, _, err = m.Create([]int32{1}, nil)
	require.ErrorIs(t, err, paged.ErrNever, "10 pages of 9 usable blocks")
}

// TestReserveStatePagesBounded: a reserve makes every record's State
// tables at New, Sequences x the states' pages entries; a count past
// 2^31-1 (a typo, or a large state times many sequences, which overflows
// an int where it is 32 bits) is ErrInvalid instead of an allocation of
// gigabytes (8.6 GB here) or, summed in 32 bits, a wrapped one.
func TestReserveStatePagesBounded(t *testing.T) {
	// 2^18 sequences x 2^13 pages: 2^31 entries, 8 GB.
	groups := []paged.Group{{Kind: paged.FullAttention}, {Kind: paged.State, Pages: 1 << 13}}
	_, err := paged.New(paged.Config{BlockSize: 16, NumBlocks: 1 << 14, Groups: groups,
		Reserve: paged.Reserve{Sequences: 1 << 18, Tokens: 1}})
	require.ErrorIs(t, err, paged.ErrInvalid)
	assert.Contains(t, err.Error(), "Reserve")
	m, err := paged.New(paged.Config{BlockSize: 16, NumBlocks: 1 << 14, Groups: groups,
		Reserve: paged.Reserve{Sequences: 4, Tokens: 64}})
	require.NoError(t, err)
	require.NoError(t, m.Check())
}
