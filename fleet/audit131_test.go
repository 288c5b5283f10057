package fleet

import (
	"testing"

	"github.com/stretchr/testify/assert"
	"github.com/stretchr/testify/require"
)

// Tests written for the eighty-fourth round of mutation testing (session
// 35, docs/testing.md): fleet's Memory backend's registry. Each kills a
// mutation the rest of the package let survive.

// audit131Memory is an attached Memory for two servers with server "a"
// registered.
func audit131Memory(t *testing.T) (*Memory, ServerID) {
	t.Helper()
	m, err := NewMemory(MemoryConfig{Capacity: 8})
	require.NoError(t, err)
	require.NoError(t, m.Attach("model", 2))
	id, _, err := m.Register("a", StreamState{})
	require.NoError(t, err)
	return m, id
}

// TestAudit131RegisterAgainReturnsTheStoredState: Register of a name
// held already returns its ID and the state its updates left, not the
// caller's init (M3512 returned init: a second router attaching to the
// stream would compare-and-set against a state the backend does not
// hold, and take its first update as a conflict).
func TestAudit131RegisterAgainReturnsTheStoredState(t *testing.T) {
	m, id := audit131Memory(t)
	next := StreamState{Gen: 3, Last: 7, Started: true}
	_, err := m.Update(id, StreamState{}, next, false, nil)
	require.NoError(t, err)
	again, st, err := m.Register("a", StreamState{Gen: 1})
	require.NoError(t, err)
	assert.Equal(t, id, again)
	assert.Equal(t, next, st)
}

// TestAudit131RenamedServerIsFoundByItsNewName: after Rename, Register
// of the new name finds the renamed server with its new state (M3514 left
// the new name unregistered: Register made it a second server, and
// another Rename could take the same name).
func TestAudit131RenamedServerIsFoundByItsNewName(t *testing.T) {
	m, id := audit131Memory(t)
	next := StreamState{Life: 1}
	_, err := m.Rename(id, StreamState{}, "b", next)
	require.NoError(t, err)
	got, st, err := m.Register("b", StreamState{})
	require.NoError(t, err)
	assert.Equal(t, id, got)
	assert.Equal(t, next, st)
	recs, err := m.Servers(nil)
	require.NoError(t, err)
	assert.Len(t, recs, 1)
}
