package fleet

import (
	"math"
	"testing"
	"time"

	"github.com/pagedkv/pagedkv/paged"
)

// TestPendingLongTTL: a TTL as long as a Duration goes ("never expire")
// must not overflow the deadline, now + TTL in nanoseconds, into the past,
// which would end every claim at once.
func TestPendingLongTTL(t *testing.T) {
	now := time.Date(2026, 12, 1, 0, 0, 0, 0, time.UTC)
	for _, ttl := range []time.Duration{math.MaxInt64, math.MaxInt64 - time.Duration(now.UnixNano()) + 1, 100 * 365 * 24 * time.Hour} {
		p, err := NewPending(PendingConfig{TTL: ttl, Now: func() time.Time { return now }})
		if err != nil {
			t.Fatal(err)
		}
		if err := p.Add(1, []paged.Hash{{1}, {2}}); err != nil {
			t.Fatal(err)
		}
		now = now.Add(time.Hour)
		if n := p.Len(); n != 2 {
			t.Errorf("TTL %v: %d hashes pending an hour after Add, want 2", ttl, n)
		}
	}
}
