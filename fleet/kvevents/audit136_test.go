package kvevents

import (
	"testing"

	"github.com/stretchr/testify/assert"
	"github.com/stretchr/testify/require"

	"github.com/pagedkv/pagedkv/paged"
)

// Tests written for the eighty-ninth round of mutation testing (session
// 35, docs/testing.md): the writer's spec check. Each kills a mutation the
// rest of the package let survive.

// TestAudit136SpecKindPastSharedRefused: a spec of a kind paged does not
// define is refused, the first one past Shared too: the writer would send
// its group's BlockStored with no kv_cache_spec_kind (specOf knows no
// name for it), and a consumer learning the layout would miss the group.
func TestAudit136SpecKindPastSharedRefused(t *testing.T) {
	for _, k := range []paged.GroupKind{paged.Shared + 1, paged.Shared + 2} {
		_, err := NewEncoder(EncoderConfig{Specs: []paged.Group{{Kind: paged.FullAttention}, {Kind: k}}})
		assert.ErrorIs(t, err, ErrInvalid, "kind %v", k)
	}
	_, err := NewEncoder(EncoderConfig{Specs: []paged.Group{{Kind: paged.FullAttention}, {Kind: paged.Shared}}})
	require.NoError(t, err, "Shared is a kind")
}
