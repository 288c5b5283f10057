package probe_test

import (
	"testing"

	"github.com/pagedkv/pagedkv/internal/probe"
)

// TestAudit174ProbesHaveTheirScale bounds both probes from below by a
// figure far under any real machine's and far over what a probe that
// mis-divides its rounds, or chases within one cache line, reports. A
// SHA-256 of 96 bytes is two compression rounds, over 30 ns even with
// SHA instructions (about 150 ns here); a dependent load at a random
// address of a 64 MiB buffer misses the caches and the TLB (hundreds of
// ns here), while a chase that stays in the L1 cache takes about 1.5 ns.
func TestAudit174ProbesHaveTheirScale(t *testing.T) {
	if s := probe.SHA256(); s < 5 {
		t.Errorf("SHA256 probe = %v ns, below 5 ns", s)
	}
	if w := probe.MemoryWalk(); w < 10 {
		t.Errorf("MemoryWalk probe = %v ns, below 10 ns: the chase stays in the caches", w)
	}
}
