package paged_test

import (
	"errors"
	"testing"

	"github.com/pagedkv/pagedkv/paged"
)

// TestAudit13NoOffloadOfContentStillOnDevice evicts one of two device
// blocks holding the same content (two sequences filled them
// independently): the other still holds it, so nothing is copied to the
// host and the content stays a device hit. (Mutation M68 offloaded it.)
func TestAudit13NoOffloadOfContentStillOnDevice(t *testing.T) {
	m, err := paged.New(paged.Config{BlockSize: 4, NumBlocks: 4, HostBlocks: 4})
	if err != nil {
		t.Fatal(err)
	}
	// Partial first blocks share nothing; the fourth token fills each
	// sequence's own block with the same content.
	a, _, err := m.Create([]int32{1, 2, 3}, nil)
	if err != nil {
		t.Fatal(err)
	}
	b, _, err := m.Create([]int32{1, 2, 3}, nil)
	if err != nil {
		t.Fatal(err)
	}
	for _, id := range []paged.SeqID{a, b} {
		if err := m.Append(id, 4); err != nil {
			t.Fatal(err)
		}
	}
	if err := m.Free(a); err != nil {
		t.Fatal(err)
	}
	// Two blocks: the free one, then a's cached duplicate is evicted.
	x, _, err := m.Create([]int32{7, 7, 7, 7, 7}, nil)
	if err != nil {
		t.Fatal(err)
	}
	st := m.Stats()
	if st.Evictions != 1 || st.Tiers.Offloads != 0 || st.Tiers.HostCached != 0 {
		t.Fatalf("evictions %d, offloads %d, host cached %d; want 1, 0, 0", st.Evictions, st.Tiers.Offloads, st.Tiers.HostCached)
	}
	if err := m.Check(); err != nil {
		t.Fatal(err)
	}
	if err := m.Free(x); err != nil {
		t.Fatal(err)
	}
	// b's block, the index's entry now, still answers the content.
	tb, _ := m.Table(b)
	c, cached, err := m.Create([]int32{1, 2, 3, 4, 5}, nil)
	if err != nil || cached != 4 {
		t.Fatalf("Create over b's block = %d, %v; want 4 cached tokens", cached, err)
	}
	if tc, _ := m.Table(c); tc[0] != tb[0] {
		t.Fatalf("hit block %d, want b's %d", tc[0], tb[0])
	}
}

// TestAudit13OnboardCountsEvictableHits refuses an onboarding that the
// pool cannot hold once the device hits it claims are counted: the hits
// are evictable blocks, which the claim takes out of the available count,
// leaving none for the host block to come back to. The refusal changes
// nothing. (Mutation M70 ignored the claimed hits and panicked allocating.)
func TestAudit13OnboardCountsEvictableHits(t *testing.T) {
	m, err := paged.New(paged.Config{BlockSize: 4, NumBlocks: 5, HostBlocks: 4})
	if err != nil {
		t.Fatal(err)
	}
	prompt := []int32{1, 2, 3, 4, 5, 6, 7, 8, 9, 10, 11, 12, 13}
	a, _, err := m.Create(prompt, nil) // 4 blocks, 3 full
	if err != nil {
		t.Fatal(err)
	}
	if err := m.Free(a); err != nil {
		t.Fatal(err)
	}
	// Released tail first, a's third block is the LRU victim: two blocks
	// take the free one and offload it.
	if _, _, err := m.Create([]int32{50, 51, 52, 53, 54}, nil); err != nil {
		t.Fatal(err)
	}
	if st := m.Stats(); st.Tiers.Offloads != 1 || st.FreeBlocks != 0 || st.CachedBlocks != 2 {
		t.Fatalf("setup: %+v", st)
	}
	s, err := m.Add(prompt, nil)
	if err != nil {
		t.Fatal(err)
	}
	before := m.Stats()
	// Two evictable hits and one host hit need three blocks; two are
	// available.
	if _, err := m.Onboard(s); !errors.Is(err, paged.ErrNoSpace) {
		t.Fatalf("Onboard = %v, want ErrNoSpace", err)
	}
	if after := m.Stats(); after != before {
		t.Fatalf("a refused Onboard changed the stats:\n%+v\n%+v", before, after)
	}
	if err := m.Check(); err != nil {
		t.Fatal(err)
	}
}
