package paged_test

import (
	"testing"

	"github.com/stretchr/testify/assert"
	"github.com/stretchr/testify/require"

	"github.com/pagedkv/pagedkv/paged"
)

// TestStatePagesMustFitThePool: every State group's pages together are
// what a sequence takes at admission, whatever its length; a pool with
// fewer usable blocks could never admit one, so New refuses it
// (ErrInvalid) as it refuses one group's pages past the pool. The sum is
// checked as it is made, so that 255 groups of up to MaxBlocks pages
// each never wrap a 32-bit int.
func TestStatePagesMustFitThePool(t *testing.T) {
	state := func(pages ...int) []paged.Group {
		g := []paged.Group{{Kind: paged.FullAttention}}
		for _, p := range pages {
			g = append(g, paged.Group{Kind: paged.State, Pages: p})
		}
		return g
	}
	_, err := paged.New(paged.Config{BlockSize: 4, NumBlocks: 10, Groups: state(5, 4)})
	require.NoError(t, err, "9 pages of 9 usable blocks")
	_, err = paged.New(paged.Config{BlockSize: 4, NumBlocks: 10, Groups: state(5, 5)})
	require.ErrorIs(t, err, paged.ErrInvalid)
	assert.Contains(t, err.Error(), "pages to 10")
	many := make([]int, 254)
	for i := range many {
		many[i] = 1<<24 - 1
	}
	_, err = paged.New(paged.Config{BlockSize: 4, NumBlocks: 1 << 24, Groups: state(many...)})
	require.ErrorIs(t, err, paged.ErrInvalid)
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
