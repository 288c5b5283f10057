package paged

// Shelves returns the blocks on a hybrid manager's low and high shelves
// (retention.go), for tests.
func Shelves(m *Manager) (low, high int) {
	return m.bp.shelves.n[shelfLow], m.bp.shelves.n[shelfHigh]
}

// ReleaseRetentionPins releases every running sequence's retention pins
// as each does when it needs the room (releasePins), for tests.
func ReleaseRetentionPins(m *Manager) {
	for i := range m.seqs {
		if s := &m.seqs[i]; s.state == seqRunning {
			m.releasePins(s)
		}
	}
}
