package kvevents

import (
	"testing"

	"github.com/stretchr/testify/assert"
	"github.com/stretchr/testify/require"

	"github.com/pagedkv/pagedkv/paged"
)

// TestAudit11EncoderWithoutGroupsRefusesGroupedEvents: an encoder that
// omits group_idx (EncoderConfig.Group negative, vLLM before hybrid KV
// cache groups) cannot say which group an event's blocks belong to. An
// event of group 1 used to be written without group_idx, which every
// consumer reads as group 0: a sliding-window group's removals taken for
// the full-attention group's. It is an event vLLM cannot express, so
// ErrInvalid, with nothing appended.
func TestAudit11EncoderWithoutGroupsRefusesGroupedEvents(t *testing.T) {
	for _, layout := range []Layout{ArrayLayout, MapLayout} {
		e, err := NewEncoder(EncoderConfig{Layout: layout, Group: -1})
		require.NoError(t, err)
		for _, ev := range []paged.Event{
			{Kind: paged.BlockRemoved, Hashes: make([]paged.Hash, 1), Group: 1},
			{Kind: paged.BlockMoved, Hashes: make([]paged.Hash, 1), Medium: paged.Host, Group: 2},
			{Kind: paged.BlockStored, Hashes: make([]paged.Hash, 1), Tokens: []int32{7}, BlockSize: 1, Group: 1},
		} {
			out, err := e.AppendBatch([]byte("kept"), 0, []paged.Event{ev})
			require.ErrorIs(t, err, ErrInvalid, "%v of group %d, layout %d", ev.Kind, ev.Group, layout)
			assert.Equal(t, []byte("kept"), out)
		}
		// Group 0 is what a frame without group_idx means: still fine.
		_, err = e.AppendBatch(nil, 0, []paged.Event{{Kind: paged.BlockRemoved, Hashes: make([]paged.Hash, 1)}})
		require.NoError(t, err)
	}
}
