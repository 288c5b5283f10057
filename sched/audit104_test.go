package sched_test

import (
	"errors"
	"fmt"
	"strings"
	"testing"

	"github.com/stretchr/testify/assert"
	"github.com/stretchr/testify/require"

	"github.com/pagedkv/pagedkv/paged"
	"github.com/pagedkv/pagedkv/sched"
)

// Tests that kill the sched mutants of the fifty-eighth mutation round
// (docs/testing.md, "Mutation testing, fifty-eighth round").

// TestAudit104SentinelsApart: the four sentinels are told apart by
// errors.Is, through the calls that return them: Cancel of an ended
// request is ErrDone and of another scheduler's request ErrForeign,
// neither of them ErrInvalid (nor each other). The tests asked only
// errors.Is(err, ErrDone) or ErrForeign, which a sentinel that was
// ErrInvalid itself (M2495, M2496) still answered.
func TestAudit104SentinelsApart(t *testing.T) {
	const invalid, never, done, foreign = 0, 1, 2, 3
	all := []error{sched.ErrInvalid, sched.ErrNever, sched.ErrDone, sched.ErrForeign}
	only := func(t *testing.T, err error, want int) {
		t.Helper()
		require.Error(t, err)
		for i, e := range all {
			assert.Equal(t, i == want, errors.Is(err, e), "%v: errors.Is sentinel %d (%v)", err, i, e)
		}
	}
	m := newManager(t, paged.Config{BlockSize: 4, NumBlocks: 16})
	s, err := sched.New(m, sched.Config{})
	require.NoError(t, err)
	other, err := sched.New(newManager(t, paged.Config{BlockSize: 4, NumBlocks: 16}), sched.Config{})
	require.NoError(t, err)
	theirs, err := other.Submit([]int32{1, 2}, sched.Options{MaxTokens: 1})
	require.NoError(t, err)
	r, err := s.Submit([]int32{1, 2}, sched.Options{MaxTokens: 1})
	require.NoError(t, err)

	only(t, s.Cancel(theirs), foreign)
	require.NoError(t, s.Cancel(r))
	only(t, s.Cancel(r), done)
	_, err = s.Submit(nil, sched.Options{MaxTokens: 1})
	only(t, err, invalid)
	_, err = s.Submit(make([]int32, 100), sched.Options{MaxTokens: 1})
	only(t, err, never)
}

// TestAudit104PassedNamesTheRequest: an admission the manager says can
// never happen aborts the request with an error that names it ("sched:
// request <ID>: paged: ..."), as its context was formatted. The window
// case of TestErrorsReadOncePerPackage counted the prefixes, not the
// context, so context left unformatted (M2490) read "request %d". Three
// requests submitted before it make its ID 4, not 1.
func TestAudit104PassedNamesTheRequest(t *testing.T) {
	m := newManager(t, windowGroups(2, 15))
	s, err := sched.New(m, sched.Config{})
	require.NoError(t, err)
	var ids []uint64
	for range 3 {
		r, err := s.Submit([]int32{7}, sched.Options{MaxTokens: 1})
		require.NoError(t, err)
		ids = append(ids, r.ID())
	}
	r, err := s.Submit(make([]int32, 20), sched.Options{MaxTokens: 1})
	require.NoError(t, err)
	drain(t, s, 1)
	require.Equal(t, sched.Aborted, r.State())
	require.ErrorIs(t, r.Err(), sched.ErrNever)
	require.ErrorIs(t, r.Err(), paged.ErrNever)
	assert.True(t, strings.HasPrefix(r.Err().Error(), fmt.Sprintf("sched: request %d: paged: ", r.ID())), r.Err().Error())
	assert.NotContains(t, ids, r.ID())
}
