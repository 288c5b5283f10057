package bench

import (
	"testing"
	"time"
)

func TestTryFrag(t *testing.T) {
	reqs := AzureConv()
	for _, r := range []FragRun{{ModelMax, 0}, {ModelPow2, 0}, {ModelOracle, 0}, {ModelPaged, 16}, {ModelPaged, 1}, {ModelPaged, 256}} {
		st := time.Now()
		res, err := Frag(reqs, r.Model, r.BlockSize, FragConfig{})
		if err != nil {
			t.Fatal(err)
		}
		t.Logf("%v/%d tok %.3f res %.3f int %.3f ext %.3f free %.3f run %.2f steps %d pre %d trunc %d %v", res.Model, res.BlockSize, res.TokenStates, res.Reserved, res.Internal, res.External, res.Free, res.AvgRunning, res.Steps, res.Preemptions, res.Truncated, time.Since(st))
	}
}
