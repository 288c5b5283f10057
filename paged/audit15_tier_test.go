package paged

import "testing"

// TestAudit15ReuseRaisesOffloadWhateverItsLength: the host tier keeps one
// retention step per block; a reuse whose promise is higher but shorter
// than the one recorded, or lower but longer, must still be honoured (the
// two merge upwards, as the priority policy merges steps: kept longer than
// promised, never shorter). Before, the tier ignored such a reuse: content
// committed at 60 and reused at 90 for 5 ticks was dropped instead of
// offloaded at a floor of 80 while the reuse's promise held.
func TestAudit15ReuseRaisesOffloadWhateverItsLength(t *testing.T) {
	for _, tc := range []struct {
		name       string
		own, reuse *SeqOptions
		floor      int
		at         int64
		want       uint64
	}{
		{"higher and shorter than a promise for good", retain(60, 0), retain(90, 5), 80, 2, 3},
		{"higher and shorter than a timed promise", retain(60, 100), retain(90, 5), 80, 2, 3},
		// The first prompt's last block, at 90 when the reuse's new
		// block evicts it at tick 0, is offloaded too.
		{"lower and longer than a timed promise", retain(90, 3), retain(60, 100), 50, 5, 4},
	} {
		m, err := New(Config{BlockSize: 1, NumBlocks: 4, HostBlocks: 4, OffloadPriority: tc.floor})
		if err != nil {
			t.Fatal(err)
		}
		run(t, m, []int32{1, 2, 0}, tc.own)
		run(t, m, []int32{1, 2, 3}, tc.reuse)
		m.Advance(tc.at)
		run(t, m, []int32{7, 8, 9}, nil) // evicts the three cached blocks, [1], [2], [3]
		// The two reused blocks and the one the reuse added are all under
		// the reuse's promise at tick tc.at.
		if got := m.Stats().Tiers.Offloads; got != tc.want {
			t.Errorf("%s: %d blocks offloaded at tick %d, want %d", tc.name, got, tc.at, tc.want)
		}
	}
}
