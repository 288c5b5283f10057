package bench

import (
	"testing"

	"github.com/pagedkv/pagedkv/paged"
	"github.com/pagedkv/pagedkv/sched"

	"github.com/stretchr/testify/assert"
	"github.com/stretchr/testify/require"
)

// The hundred-and-third round of mutation testing (docs/testing.md): W1's
// recorded replay, the kvplot command and the cache study's table.

// TestAudit151RecorderErrorEndsTheReplay: a recording the recorder found
// out of step with the scheduler is not replayed, even when what it holds
// would replay cleanly (here nothing, on a manager that ends as it starts):
// the recorder's first error is the replay's.
func TestAudit151RecorderErrorEndsTheReplay(t *testing.T) {
	mcfg := paged.Config{BlockSize: 16, NumBlocks: 16, MaxModelLen: 64}
	m, err := paged.New(mcfg)
	require.NoError(t, err)
	rec := &w1Recorder{}
	rec.fail("request %d decoded out of admission order", 2)
	rec.fail("request %d preempted while not the newest running", 3)
	err = replayW1(mcfg, W1Config{}, nil, rec, m.Stats(), sched.Stats{}, &W1Result{})
	assert.EqualError(t, err, "bench: W1 replay: request 2 decoded out of admission order")
}
