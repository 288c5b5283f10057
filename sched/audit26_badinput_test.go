package sched_test

import (
	"testing"

	"github.com/stretchr/testify/require"

	"github.com/pagedkv/pagedkv/paged"
	"github.com/pagedkv/pagedkv/sched"
)

// TestAudit26RunningSeqsNil: RunningSeqs with a nil callback while a
// sequence runs does nothing (it dereferenced nil before).
func TestAudit26RunningSeqsNil(t *testing.T) {
	m, err := paged.New(paged.Config{BlockSize: 4, NumBlocks: 64})
	require.NoError(t, err)
	s, err := sched.New(m, sched.Config{})
	require.NoError(t, err)
	_, err = s.Submit([]int32{1, 2, 3, 4, 5}, sched.Options{MaxTokens: 4})
	require.NoError(t, err)
	_, err = s.Schedule()
	require.NoError(t, err)
	n := 0
	s.RunningSeqs(func(*sched.Request, int, paged.SeqID, int) { n++ })
	require.Equal(t, 1, n)
	require.NotPanics(t, func() { s.RunningSeqs(nil) })
	require.Equal(t, 1, s.Running())
}
