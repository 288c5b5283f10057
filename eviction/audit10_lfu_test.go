package eviction

import (
	"math"
	"testing"

	"github.com/stretchr/testify/assert"

	"github.com/pagedkv/pagedkv/allocator"
)

// TestAudit10LFUCountSaturates: a hit count saturates; it never wraps. A
// block of a shared system prompt is hit by every request, so at a
// thousand requests a second its count passes 2^32 in 50 days; it wrapped
// to 0 and the hottest block became the first victim. The count is set
// near the limit directly (2^32 Access calls take minutes).
func TestAudit10LFUCountSaturates(t *testing.T) {
	p := NewLFU(2).(*LFU)
	p.Insert(0)
	p.Insert(1)
	for range 5 {
		p.Access(1)
	}
	p.count[0] = math.MaxUint32 - 1
	p.Access(0)
	p.Access(0)
	p.Access(0)
	assert.Equal(t, []allocator.BlockID{1, 0}, victims(t, p, 2))
}
