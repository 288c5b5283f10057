package paged

import (
	"testing"

	"github.com/stretchr/testify/assert"
)

// TestAudit54GroupTargets (M639, M640, the ninth mutation round,
// docs/testing.md): only a Shared group may name a Target, and it may
// share attention KV only, never a State group's.
func TestAudit54GroupTargets(t *testing.T) {
	for name, groups := range map[string][]Group{
		"a window with a Target":  {{Kind: FullAttention}, {Kind: SlidingWindow, Window: 4, Target: 1}},
		"full attention with one": {{Kind: FullAttention}, {Kind: FullAttention, Target: 2}, {Kind: Shared, Target: 0}},
		"sharing a State group":   {{Kind: FullAttention}, {Kind: State, Pages: 1}, {Kind: Shared, Target: 1}},
		"sharing a Shared group":  {{Kind: FullAttention}, {Kind: Shared, Target: 0}, {Kind: Shared, Target: 1}},
	} {
		_, err := New(Config{BlockSize: 4, NumBlocks: 16, Groups: groups})
		assert.ErrorIs(t, err, ErrInvalid, name)
	}
	_, err := New(Config{BlockSize: 4, NumBlocks: 16, Groups: []Group{{Kind: FullAttention}, {Kind: SlidingWindow, Window: 4}, {Kind: Shared, Target: 1}}})
	assert.NoError(t, err, "a Shared group reading a window's KV")
}
