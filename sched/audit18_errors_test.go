package sched_test

import (
	"errors"
	"strings"
	"testing"

	"github.com/stretchr/testify/assert"
	"github.com/stretchr/testify/require"

	"github.com/pagedkv/pagedkv/paged"
	"github.com/pagedkv/pagedkv/sched"
)

// TestErrorsReadOncePerPackage: a refusal the manager makes, passed on by
// the scheduler, read "sched: invalid argument: paged: invalid argument:
// ..." (each sentinel's text in turn). It reads each package's prefix and
// the sentinel's words once, and errors.Is still finds both sentinels.
func TestErrorsReadOncePerPackage(t *testing.T) {
	once := func(t *testing.T, err error, ours, theirs error) {
		t.Helper()
		require.Error(t, err)
		assert.ErrorIs(t, err, ours)
		assert.ErrorIs(t, err, theirs)
		msg := err.Error()
		assert.Equal(t, 1, strings.Count(msg, "sched:"), msg)
		assert.Equal(t, 1, strings.Count(msg, "paged:"), msg)
		for _, words := range []string{"invalid argument", "never"} {
			assert.LessOrEqual(t, strings.Count(msg, words), 1, msg)
		}
	}
	m := newManager(t, paged.Config{BlockSize: 4, NumBlocks: 16})
	s, err := sched.New(m, sched.Config{})
	require.NoError(t, err)

	// The manager refuses the sequence options.
	_, err = s.Submit([]int32{1, 2, 3}, sched.Options{MaxTokens: 2, Seq: &paged.SeqOptions{Window: -1}})
	once(t, err, sched.ErrInvalid, paged.ErrInvalid)

	// The manager refuses the batch's settings.
	_, err = s.Submit([]int32{1, 2, 3}, sched.Options{MaxTokens: 2})
	require.NoError(t, err)
	_, err = s.Schedule()
	require.NoError(t, err)
	once(t, s.BuildBatch(&paged.Batch{Stride: -1}), sched.ErrInvalid, paged.ErrInvalid)

	// A request only admission can tell never fits (a sliding window:
	// Submit counts on a hit of the prompt's prefix, after which it holds
	// the window's last 2 blocks beside 10 of full attention, 12 of the
	// 14 usable blocks of 2; not cached, the 20-token prompt takes 10 in
	// each group): Request.Err.
	m = newManager(t, windowGroups(2, 15))
	s, err = sched.New(m, sched.Config{})
	require.NoError(t, err)
	r, err := s.Submit(make([]int32, 20), sched.Options{MaxTokens: 1})
	require.NoError(t, err)
	drain(t, s, 1)
	require.Equal(t, sched.Aborted, r.State())
	once(t, r.Err(), sched.ErrNever, paged.ErrNever)
	assert.True(t, errors.Is(r.Err(), sched.ErrNever))
}
