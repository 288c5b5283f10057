package bench

import (
	"testing"

	"github.com/pagedkv/pagedkv/paged"
)

// TestW1ReserveSameDecisions: the managers' reserve (W1Config.NoReserve
// off, the default) changes no counter and no allocation event of W1 or
// W1-H, in either mode.
func TestW1ReserveSameDecisions(t *testing.T) {
	for _, window := range []int{0, 256} {
		for _, compat := range []string{"vllm", ""} {
			cfg := W1Config{Requests: 300, Blocks: 1024, Window: window, Compat: compat, Digest: true, Hasher: paged.FastHasher{}}
			with, err := RunW1(cfg)
			if err != nil {
				t.Fatal(err)
			}
			cfg.NoReserve = true
			without, err := RunW1(cfg)
			if err != nil {
				t.Fatal(err)
			}
			strip := func(r W1Result) W1Result {
				r.NsAdmit, r.NsAllocDecode, r.NsFree, r.NsInit = 0, 0, 0, 0
				r.SchedNsAdmit, r.SchedNsAllocDecode, r.SchedNsFree, r.SchedNsInit, r.SchedulerNs = 0, 0, 0, 0, 0
				r.ManagerNs, r.ManagerNsExclPromptHash, r.TotalWallNs = 0, 0, 0
				r.TimerOverheadNsPerCall, r.SHA256Ns = 0, 0
				return r
			}
			if strip(with) != strip(without) {
				t.Errorf("window %d, compat %q: with the reserve\n%+v\nwithout\n%+v", window, compat, strip(with), strip(without))
			}
			if with.Digest == "" || with.Steps == 0 {
				t.Fatalf("window %d, compat %q: an empty replay", window, compat)
			}
		}
	}
}
