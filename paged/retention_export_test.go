package paged

// Shelves returns the blocks on a hybrid manager's low and high shelves
// (retention.go), for tests.
func Shelves(m *Manager) (low, high int) {
	return m.bp.shelves.n[shelfLow], m.bp.shelves.n[shelfHigh]
}
