package paged

import "testing"

// TestRetainedHitsCountOnboardedBlocks: Stats.RetainedHits counts every
// cached block an admission with a retention reused, those it onboarded
// from the host tier included, in a one-group manager as in a hybrid one.
// Before, the one-group admission passed its promise before onboarding
// and counted only the hits already on the device (audit15).
func TestRetainedHitsCountOnboardedBlocks(t *testing.T) {
	m := offloadedPromise(t)
	before := m.Stats().RetainedHits
	run(t, m, []int32{1, 2, 3}, retain(80, 0)) // onboards [1] and [1 2]
	st := m.Stats()
	if st.Tiers.Onboards != 2 {
		t.Fatalf("%d blocks onboarded, want 2", st.Tiers.Onboards)
	}
	if got := st.RetainedHits - before; got != 2 {
		t.Errorf("RetainedHits grew by %d for an admission that reused 2 onboarded blocks under a retention, want 2", got)
	}
	if err := m.Check(); err != nil {
		t.Fatal(err)
	}
}
