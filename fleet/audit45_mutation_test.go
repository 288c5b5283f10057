package fleet

import (
	"testing"

	"github.com/stretchr/testify/assert"
	"github.com/stretchr/testify/require"
)

// Tests written for the fourth round of mutation testing (session 23,
// docs/testing.md): each kills a mutation the property tests and the rest
// of the package let survive.

// TestAudit45PrefixAwareWeighsGainByDeviceWeight: PrefixAware counts an
// affinity gain as blocks of score, each worth DeviceWeight (M275 counted
// each as 1). Server 0 holds none of the request now but 4 blocks of its
// family; server 1 hits 2 blocks (Value 2.5). Server 0's gain is 4-2 = 2
// blocks: 2*2 = 4 beats 2.5 at DeviceWeight 2, and 2*1 = 2 loses at 1.
func TestAudit45PrefixAwareWeighsGainByDeviceWeight(t *testing.T) {
	cands := []Candidate{
		{Score: Score{Server: 0, Affinity: 4}},
		{Score: Score{Server: 1, Blocks: 2, Device: 2, Affinity: 2, Value: 2.5}},
	}
	assert.Equal(t, 0, PrefixAware{DeviceWeight: 2}.Route(cands))
	assert.Equal(t, 1, PrefixAware{DeviceWeight: 1}.Route(cands))
	assert.Equal(t, 1, PrefixAware{}.Route(cands), "DeviceWeight 0 counts as 1")
}

// TestAudit45PendingExtendWeighsByDeviceWeight: the blocks Extend adds
// from pending claims are device blocks, worth PendingConfig.DeviceWeight
// each in Value (M283 added 1 each).
func TestAudit45PendingExtendWeighsByDeviceWeight(t *testing.T) {
	p, err := NewPending(PendingConfig{MaxServers: 1, DeviceWeight: 3})
	require.NoError(t, err)
	req := pendingHashes(0, 4)
	require.NoError(t, p.Add(0, req))
	sc := []Score{{Server: 0, Blocks: 1, Device: 1, Affinity: 1, Value: 3}}
	p.Extend(req, sc)
	assert.Equal(t, Score{Server: 0, Blocks: 4, Device: 4, Pending: 3, Affinity: 4, Value: 12}, sc[0])
}

// TestAudit45PrefixAwareCapExcludesTheCap: a server whose load is at
// LoadCap is over it (M273 took only loads past the cap): server 0 hits
// more but sits at the cap, so server 1, under it, gets the request.
func TestAudit45PrefixAwareCapExcludesTheCap(t *testing.T) {
	cands := []Candidate{
		{Score: Score{Server: 0, Blocks: 8, Device: 8, Affinity: 8, Value: 8}, Load: 0.75},
		{Score: Score{Server: 1, Blocks: 1, Device: 1, Affinity: 1, Value: 1}, Load: 0.5},
	}
	assert.Equal(t, 1, PrefixAware{LoadCap: 0.75}.Route(cands))
	assert.Equal(t, 0, PrefixAware{LoadCap: 0.76}.Route(cands))
}
