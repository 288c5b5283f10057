package bench_test

import (
	"fmt"
	"testing"

	"github.com/stretchr/testify/assert"
	"github.com/stretchr/testify/require"

	"github.com/pagedkv/pagedkv/bench"
)

func idReqs(ids ...[]int64) []bench.Request {
	reqs := make([]bench.Request, len(ids))
	for i, h := range ids {
		reqs[i] = bench.Request{InputTokens: 512 * len(h), HashIDs: h}
	}
	return reqs
}

// TestConversationsByHand: requests link to the conversation that
// introduced the deepest block they share, the shared first block apart;
// an edit that shares a shorter prefix, or only a middle block of a longer
// one, stays in its conversation; a request with no hash IDs is a
// conversation of its own.
func TestConversationsByHand(t *testing.T) {
	reqs := idReqs(
		[]int64{0, 1, 2},       // 0: new
		[]int64{0, 3, 4},       // 1: shares only the system block: new
		[]int64{0, 1, 2, 5, 6}, // 2: extends 0
		[]int64{0, 3, 7},       // 3: an edit of 1 (shares 3, not 4)
		nil,                    // 4: no hash IDs: its own
		[]int64{0},             // 5: the system block alone: new
		[]int64{0, 1, 2, 5, 8}, // 6: extends 2, so 0
		[]int64{9, 3},          // 7: another first block, but 3 is 1's
	)
	assert.Equal(t, []int{0, 1, 0, 1, 2, 3, 0, 1}, bench.Conversations(reqs))
}

// TestSplitConversations: the parts of a split partition the trace, keep
// its order and hold whole conversations; bad part numbers are refused.
func TestSplitConversations(t *testing.T) {
	reqs := bench.MooncakeSynthetic()[:400]
	conv := bench.Conversations(reqs)
	const n = 3
	seen := 0
	for k := range n {
		part, err := bench.SplitConversations(reqs, k, n)
		require.NoError(t, err)
		j := 0
		for i := range reqs {
			if conv[i]%n != k {
				continue
			}
			require.Less(t, j, len(part))
			assert.Equal(t, reqs[i].HashIDs, part[j].HashIDs, "part %d, request %d", k, i)
			j++
		}
		assert.Equal(t, j, len(part))
		seen += len(part)
	}
	assert.Equal(t, len(reqs), seen)
	whole, err := bench.SplitConversations(reqs, 0, 1)
	require.NoError(t, err)
	assert.Equal(t, len(reqs), len(whole))
	for _, bad := range [][2]int{{0, 0}, {-1, 2}, {2, 2}, {0, -1}} {
		_, err := bench.SplitConversations(reqs, bad[0], bad[1])
		assert.Error(t, err, "%v", bad)
	}
}

// Three chat conversations, the second and third interleaved with the
// first; every prompt starts with the shared block 0.
func ExampleSplitConversations() {
	reqs := []bench.Request{
		{HashIDs: []int64{0, 1, 2}},
		{HashIDs: []int64{0, 3}},
		{HashIDs: []int64{0, 1, 2, 4}},
		{HashIDs: []int64{0, 5, 6}},
		{HashIDs: []int64{0, 3, 7}},
	}
	fmt.Println(bench.Conversations(reqs))
	for k := range 2 {
		part, _ := bench.SplitConversations(reqs, k, 2)
		var ids [][]int64
		for _, r := range part {
			ids = append(ids, r.HashIDs)
		}
		fmt.Println(ids)
	}
	// Output:
	// [0 1 0 2 1]
	// [[0 1 2] [0 1 2 4] [0 5 6]]
	// [[0 3] [0 3 7]]
}
