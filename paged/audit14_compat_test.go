package paged

import (
	"errors"
	"strings"
	"testing"
)

// TestAudit14CompatRefusesSeveralKinds: the vLLM-compatible mode with
// prefix caching refuses every layout of more than one kind or size
// besides full attention (vLLM's coordinator takes one) with ErrInvalid
// and a message naming the mode, and takes one kind with shared and
// full groups beside it; without prefix caching it takes any layout.
func TestAudit14CompatRefusesSeveralKinds(t *testing.T) {
	full := Group{Kind: FullAttention}
	w4, w8 := Group{Kind: SlidingWindow, Window: 4}, Group{Kind: SlidingWindow, Window: 8}
	c6 := Group{Kind: ChunkedLocal, Chunk: 6}
	s1, s2 := Group{Kind: State, Pages: 1}, Group{Kind: State, Pages: 2}
	for _, tc := range []struct {
		groups []Group
		ok     bool
	}{
		{[]Group{full, w4, w8}, false},
		{[]Group{full, w4, c6}, false},
		{[]Group{full, s1, w4}, false},
		{[]Group{full, s1, s2}, false},
		{[]Group{full, c6, {Kind: Shared}, s1}, false},
		{[]Group{full, w4, full, w4, {Kind: Shared, Target: 1}}, true},
		{[]Group{full, s2, s2}, true},
	} {
		for _, noCache := range []bool{false, true} {
			_, err := New(Config{BlockSize: 4, NumBlocks: 32, UnifiedFreeQueue: true, DisablePrefixCaching: noCache, Groups: tc.groups})
			switch {
			case tc.ok || noCache:
				if err != nil {
					t.Errorf("%v (no caching %v): %v", tc.groups, noCache, err)
				}
			case !errors.Is(err, ErrInvalid) || !strings.Contains(err.Error(), "UnifiedFreeQueue"):
				t.Errorf("%v: %v, want ErrInvalid naming UnifiedFreeQueue", tc.groups, err)
			}
		}
		if _, err := New(Config{BlockSize: 4, NumBlocks: 32, Groups: tc.groups}); err != nil {
			t.Errorf("default mode %v: %v", tc.groups, err)
		}
	}
}
