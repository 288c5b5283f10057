package paged

import (
	"errors"
	"testing"

	"github.com/stretchr/testify/require"
)

// TestAudit26BadInputChangesNothing sweeps the exported API for bad
// input of one class (nil pointers and destinations, nil or short slices
// where content is required, negative sizes): each call must return an
// error wrapping ErrInvalid (or, for a call without an error, its
// documented neutral answer), never panic, and leave the manager exactly
// as it was.
func TestAudit26BadInputChangesNothing(t *testing.T) {
	cases := []struct {
		name string
		call func(m *Manager) error // nil error only where documented
	}{
		{"Snapshot(nil)", func(m *Manager) error { return m.Snapshot(nil) }},
		{"nil Snapshot.Validate", func(m *Manager) error { return (*Snapshot)(nil).Validate() }},
		{"nil Snapshot.Events", func(m *Manager) error {
			if evs := (*Snapshot)(nil).Events(nil); evs != nil {
				return errors.New("events of a nil snapshot")
			}
			return ErrInvalid
		}},
		{"zero PromptHasher then AddHashed", func(m *Manager) error {
			var p PromptHasher
			prompt := []int32{1, 2, 3, 4, 5, 6, 7, 8, 9}
			_, err := m.AddHashed(prompt, p.Hashes(nil, prompt, nil), nil)
			return err
		}},
		{"BuildBatch(nil)", func(m *Manager) error { return m.BuildBatch(nil, nil) }},
		{"DecodeStep(nil)", func(m *Manager) error { _, err := m.DecodeStep(nil, nil, nil); return err }},
		{"AppendStep short tokens", func(m *Manager) error {
			_, err := m.AppendStep([]Scheduled{{ID: 1, NewTokens: 1}}, nil)
			return err
		}},
		{"Add(nil)", func(m *Manager) error { _, err := m.Add(nil, nil); return err }},
		{"AddFromHashes negative", func(m *Manager) error { _, err := m.AddFromHashes(nil, -1, nil); return err }},
		{"SetPinBudget negative", func(m *Manager) error { return m.SetPinBudget(-1) }},
		{"PinHashes past expiry", func(m *Manager) error { _, _, err := m.PinHashes(nil, -1); return err }},
		{"SplitPlan.Build negative blocks", func(m *Manager) error {
			var p SplitPlan
			return p.Build([]int32{-1}, 1, 1)
		}},
	}
	for _, c := range cases {
		t.Run(c.name, func(t *testing.T) {
			m, err := New(Config{BlockSize: 4, NumBlocks: 16, HostBlocks: 8, Events: 64})
			require.NoError(t, err)
			id, _, err := m.Create([]int32{1, 2, 3, 4, 5, 6, 7, 8, 9}, nil)
			require.NoError(t, err)
			require.NoError(t, m.Append(id, 10))
			before := observe(m, []SeqID{id})
			var got error
			require.NotPanics(t, func() { got = c.call(m) })
			require.ErrorIs(t, got, ErrInvalid)
			require.Equal(t, before, observe(m, []SeqID{id}))
			require.NoError(t, m.Check())
		})
	}
}
