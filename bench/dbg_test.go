package bench

import (
	"testing"
)

func TestDbgImb(t *testing.T) {
	all := MooncakeSynthetic()
	sec := append([]Request(nil), all[1996:]...)
	t0 := sec[0].Arrival
	for i := range sec { sec[i].Arrival -= t0 }
	for seed := uint64(1); seed <= 10; seed++ {
		r := FleetRouters(seed, 8)[5]
		res, err := RunFleet(sec, FleetConfig{Speed: 2}, r)
		if err != nil { t.Fatal(err) }
		t.Logf("seed %d hit %.3f imb %.3f busy %.3f per %v", seed, res.HitRate, res.Imbalance, res.BusyImbalance, res.PerServer)
	}
}
