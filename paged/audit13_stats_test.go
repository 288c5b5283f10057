package paged_test

import (
	"testing"

	"github.com/pagedkv/pagedkv/paged"
)

// TestAudit13StatsCounters walks a small pool through every way a lifetime
// counter moves, with each expected figure worked out from Stats' doc:
// evictions by an admission (several blocks at once) and by a decode step
// (one block), blocks stored, prefix queries and hits, preemptions,
// forks, copies (none for a block no longer shared), and the
// running/waiting split. (Of the counters' mutations, M53 and M106, the
// preemption and fork counts, survived every other test; M12, M13, M35
// and M79 are caught elsewhere too, each by a test about something else.)
func TestAudit13StatsCounters(t *testing.T) {
	m, err := paged.New(paged.Config{BlockSize: 4, NumBlocks: 5}) // 4 usable
	if err != nil {
		t.Fatal(err)
	}
	seq := func(from, n int32) []int32 {
		p := make([]int32, n)
		for i := range p {
			p[i] = from + int32(i)
		}
		return p
	}
	type want struct {
		evictions, stored, queries, queryBlocks, hitBlocks, preemptions, forks, copies uint64
		running, waiting, cached, free                                                 int
	}
	expect := func(step string, w want) {
		t.Helper()
		if err := m.Check(); err != nil {
			t.Fatalf("%s: %v", step, err)
		}
		st := m.Stats()
		got := want{st.Evictions, st.BlocksStored, st.PrefixQueries, st.PrefixQueryBlocks, st.PrefixHitBlocks,
			st.Preemptions, st.Forks, st.Copies, st.Running, st.Waiting, st.CachedBlocks, st.FreeBlocks}
		if got != w {
			t.Fatalf("%s: stats %+v, want %+v", step, got, w)
		}
	}

	a, _, err := m.Create(seq(1, 9), nil) // 3 blocks, 2 full
	if err != nil {
		t.Fatal(err)
	}
	expect("create a", want{stored: 2, queries: 1, queryBlocks: 3, running: 1, free: 1})
	if err := m.Free(a); err != nil {
		t.Fatal(err)
	}
	expect("free a", want{stored: 2, queries: 1, queryBlocks: 3, cached: 2, free: 2})
	// 4 blocks: the 2 free ones, then both of a's cached ones, in one
	// allocation.
	b, _, err := m.Create(seq(100, 16), nil)
	if err != nil {
		t.Fatal(err)
	}
	expect("create b", want{evictions: 2, stored: 6, queries: 2, queryBlocks: 7, running: 1})
	if err := m.Free(b); err != nil {
		t.Fatal(err)
	}
	c, cached, err := m.Create(seq(1, 9), nil)
	if err != nil || cached != 0 {
		t.Fatalf("create c = %d, %v; a's blocks were evicted", cached, err)
	}
	expect("create c", want{evictions: 5, stored: 8, queries: 3, queryBlocks: 10, running: 1, cached: 1})
	// Three tokens fill c's third block (committed); the fourth starts a
	// block, which evicts b's last cached one.
	for _, tok := range seq(10, 4) {
		if err := m.Append(c, tok); err != nil {
			t.Fatal(err)
		}
	}
	expect("decode c", want{evictions: 6, stored: 9, queries: 3, queryBlocks: 10, running: 1})
	if err := m.Preempt(c); err != nil {
		t.Fatal(err)
	}
	expect("preempt c", want{evictions: 6, stored: 9, queries: 3, queryBlocks: 10, preemptions: 1, waiting: 1, cached: 3, free: 1})
	// 13 tokens: 4 blocks queried, the 3 full ones hit (the last token is
	// always computed).
	if cached, err := m.Admit(c); err != nil || cached != 12 {
		t.Fatalf("Admit(c) = %d, %v; want 12 cached tokens", cached, err)
	}
	expect("admit c", want{evictions: 6, stored: 9, queries: 4, queryBlocks: 14, hitBlocks: 3, preemptions: 1, running: 1})
	d, err := m.Fork(c)
	if err != nil {
		t.Fatal(err)
	}
	expect("fork c", want{evictions: 6, stored: 9, queries: 4, queryBlocks: 14, hitBlocks: 3, preemptions: 1, forks: 1, running: 2})
	// d writes into the shared partial block: the copy needs a block and
	// none is left, so it fails; once c is freed, d holds the block alone
	// and writes it in place, copying nothing.
	if err := m.Append(d, 50); err == nil {
		t.Fatal("Append with no free block succeeded")
	}
	if err := m.Free(c); err != nil {
		t.Fatal(err)
	}
	if err := m.Append(d, 50); err != nil {
		t.Fatal(err)
	}
	expect("append d", want{evictions: 6, stored: 9, queries: 4, queryBlocks: 14, hitBlocks: 3, preemptions: 1, forks: 1, running: 1})
}
