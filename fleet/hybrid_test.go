package fleet_test

import (
	"testing"

	"pgregory.net/rapid"

	"github.com/pagedkv/pagedkv/fleet"
	"github.com/pagedkv/pagedkv/fleet/fleettest"
)

// TestHybridScoresAreManagerHits: on a Memory backend, a server with a
// layout is scored exactly the hit its paged manager gives, for random
// hybrid layouts and workloads (fleettest.CheckHybridScores).
func TestHybridScoresAreManagerHits(t *testing.T) {
	compared, hits, corrected := fleettest.CheckHybridScores(t, "hybrid", func(*rapid.T) fleet.Backend {
		m, err := fleet.NewMemory(fleet.MemoryConfig{})
		if err != nil {
			t.Fatal(err)
		}
		return m
	})
	t.Logf("%d admissions compared, %d with a hit, %d where group 0's run over-reported", compared, hits, corrected)
	if hits == 0 || corrected == 0 {
		t.Fatalf("the workloads exercised too little: %d hits, %d corrected scores", hits, corrected)
	}
}
