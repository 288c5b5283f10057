package sched_test

import (
	"testing"

	"github.com/stretchr/testify/assert"
	"github.com/stretchr/testify/require"

	"github.com/pagedkv/pagedkv/paged"
	"github.com/pagedkv/pagedkv/sched"
)

// TestChunkedPrefillHashesOnce: a 40-block prompt prefilled in chunks of 8
// blocks has each block hashed once, at Submit, not again when its chunk
// comes back to the manager; the content cached is the prompt's.
func TestChunkedPrefillHashesOnce(t *testing.T) {
	const bs = 4
	m := newManager(t, paged.Config{BlockSize: bs, NumBlocks: 65})
	s, err := sched.New(m, sched.Config{MaxBatchTokens: 32, ChunkedPrefill: true})
	require.NoError(t, err)
	p := make([]int32, 40*bs+1)
	for i := range p {
		p[i] = int32(i + 1)
	}
	_, err = s.Submit(p, sched.Options{MaxTokens: 1})
	require.NoError(t, err)
	assert.Equal(t, uint64(40), m.Stats().BlocksHashed, "blocks hashed at Submit")
	assert.Greater(t, drain(t, s, 7), 5, "steps: the prompt is prefilled in chunks")
	assert.Equal(t, uint64(40), m.Stats().BlocksHashed, "blocks hashed in all")
	_, cached, err := m.Create(p, nil)
	require.NoError(t, err)
	assert.Equal(t, 40*bs, cached)
}
