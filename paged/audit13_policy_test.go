package paged_test

import (
	"slices"
	"testing"

	"github.com/pagedkv/pagedkv/allocator"
	"github.com/pagedkv/pagedkv/eviction"
	"github.com/pagedkv/pagedkv/paged"
)

// spyPolicy is an LRU that records the optional-interface calls the
// manager makes (eviction's package doc: Access on every prefix hit, Hint
// once per commit), so a test can hold the manager to that contract.
type spyPolicy struct {
	eviction.Policy
	accessed []allocator.BlockID
	hints    map[allocator.BlockID]eviction.Hint
}

func (p *spyPolicy) Access(id allocator.BlockID) { p.accessed = append(p.accessed, id) }

func (p *spyPolicy) Hint(id allocator.BlockID, h eviction.Hint) { p.hints[id] = h }

func newSpyManager(t *testing.T) (*paged.Manager, *spyPolicy) {
	t.Helper()
	spy := &spyPolicy{hints: map[allocator.BlockID]eviction.Hint{}}
	m, err := paged.New(paged.Config{
		BlockSize: 4,
		NumBlocks: 32,
		Policy: func(n int) eviction.Policy {
			spy.Policy = eviction.NewLRU(n)
			return spy
		},
	})
	if err != nil {
		t.Fatal(err)
	}
	return m, spy
}

// TestAudit13AccessOnEveryHit checks that every block a prefix lookup hits
// is reported to an Accessor policy once per admission, whether it is
// evictable (in the policy) or held by a running sequence; without it,
// frequency-based policies (LFU, ARC, SLRU, S3-FIFO, SIEVE, CLOCK) never
// learn of a hit. (Mutation M03, found surviving by the session-8
// mutation run.)
func TestAudit13AccessOnEveryHit(t *testing.T) {
	m, spy := newSpyManager(t)
	prompt := []int32{1, 2, 3, 4, 5, 6, 7, 8, 9, 10, 11, 12, 13}
	a, cached, err := m.Create(prompt, nil)
	if err != nil || cached != 0 {
		t.Fatalf("Create = %d, %v", cached, err)
	}
	if len(spy.accessed) != 0 {
		t.Fatalf("a cold admission reported hits %v", spy.accessed)
	}
	tbl, _ := m.Table(a)
	want := slices.Clone(tbl[:3])
	if err := m.Free(a); err != nil {
		t.Fatal(err)
	}
	// Evictable hits: the three full blocks wait in the policy.
	b, cached, err := m.Create(prompt, nil)
	if err != nil || cached != 12 {
		t.Fatalf("Create over the cached prefix = %d, %v; want 12 tokens", cached, err)
	}
	if !slices.Equal(spy.accessed, want) {
		t.Fatalf("evictable hits reported %v, want %v", spy.accessed, want)
	}
	// Held hits: b still holds them.
	spy.accessed = spy.accessed[:0]
	if _, cached, err = m.Create(prompt, nil); err != nil || cached != 12 {
		t.Fatalf("Create beside a holder = %d, %v", cached, err)
	}
	if !slices.Equal(spy.accessed, want) {
		t.Fatalf("held hits reported %v, want %v", spy.accessed, want)
	}
	if tb, _ := m.Table(b); !slices.Equal(tb[:3], want) {
		t.Fatalf("hits %v, want %v", tb[:3], want)
	}
}

// TestAudit13HintNamesChainParent checks each committed block's hint: its
// depth in the chain and, as Parent, the block holding the chain's previous
// block (NoBlock for the first), for a prompt committed at admission and
// blocks committed one decode token at a time. (Mutation M24: a hint that
// named the block itself as its parent survived every other test.)
func TestAudit13HintNamesChainParent(t *testing.T) {
	m, spy := newSpyManager(t)
	id, _, err := m.Create([]int32{1, 2, 3, 4, 5, 6, 7, 8, 9, 10}, nil)
	if err != nil {
		t.Fatal(err)
	}
	for tok := range int32(11) {
		if err := m.Append(id, 20+tok); err != nil {
			t.Fatal(err)
		}
	}
	tbl, _ := m.Table(id)
	full := 21 / 4
	if len(spy.hints) != full {
		t.Fatalf("%d hints for %d committed blocks", len(spy.hints), full)
	}
	for k, b := range tbl[:full] {
		h, ok := spy.hints[b]
		if !ok {
			t.Fatalf("block %d (entry %d) committed without a hint", b, k)
		}
		parent := allocator.NoBlock
		if k > 0 {
			parent = tbl[k-1]
		}
		if h.Depth != int32(k) || h.Parent != parent || h.Priority != eviction.DefaultPriority {
			t.Fatalf("entry %d: hint %+v, want depth %d, parent %d, priority %d", k, h, k, parent, eviction.DefaultPriority)
		}
	}
}
