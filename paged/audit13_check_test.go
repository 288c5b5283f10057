package paged

import (
	"strings"
	"testing"
)

// TestAudit13CheckCatchesCoreCorruption corrupts one fact of a plain
// manager per case, through its unexported fields, and requires Check to
// name it: the invariant checker is what the state-machine tests trust, so
// a check it lost would let them pass over the corruption it was meant to
// find. (Mutations M80-M82 switched off the reference-count, index-reach
// and committed-hash comparisons; no test noticed.)
func TestAudit13CheckCatchesCoreCorruption(t *testing.T) {
	for _, tc := range []struct {
		name, want string
		corrupt    func(m *Manager, s *sequence)
	}{
		// A reference no table entry accounts for: the block could never
		// be freed.
		{"extra reference", "table entries", func(m *Manager, s *sequence) { m.bp.pool.Ref(s.blocks[0]) }},
		// A block out of the index that still says it is cached: a
		// lookup misses content the manager believes it holds.
		{"cached block out of the index", "index reaches", func(m *Manager, s *sequence) {
			m.bp.index.remove(s.blocks[1])
			m.bp.index.flush()
		}},
		// The sequence's record of a committed block's hash differs from
		// the block's: its next commit would chain to the wrong parent.
		{"committed hash", "does not hold the committed hash", func(m *Manager, s *sequence) { s.hashes[0][0] ^= 1 }},
	} {
		t.Run(tc.name, func(t *testing.T) {
			m, err := New(Config{BlockSize: 4, NumBlocks: 8})
			if err != nil {
				t.Fatal(err)
			}
			id, _, err := m.Create([]int32{1, 2, 3, 4, 5, 6, 7, 8, 9}, nil)
			if err != nil {
				t.Fatal(err)
			}
			if err := m.Check(); err != nil {
				t.Fatal(err)
			}
			s, _ := m.seq(id)
			tc.corrupt(m, s)
			if err := m.Check(); err == nil || !strings.Contains(err.Error(), tc.want) {
				t.Fatalf("Check = %v, want an error naming %q", err, tc.want)
			}
		})
	}
}
