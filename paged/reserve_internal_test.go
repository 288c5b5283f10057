package paged

import (
	"runtime"
	"testing"
	"unsafe"
)

// reserveLayoutsInternal are reserveLayouts (reserve_test.go) for the
// package's own tests.
var reserveLayoutsInternal = []struct {
	name   string
	groups []Group
}{
	{"one group", nil},
	{"window", []Group{{Kind: FullAttention}, {Kind: SlidingWindow, Window: 64}}},
	{"state", []Group{{Kind: FullAttention}, {Kind: State, Pages: 2}}},
}

// TestReserveBytes: New allocates what Reserve's documentation says it
// costs, beyond a manager without a reserve, to within the heap's
// rounding of each slab.
func TestReserveBytes(t *testing.T) {
	const bs, seqs, tokens = 16, 3000, 1 << 20
	for _, l := range reserveLayoutsInternal {
		t.Run(l.name, func(t *testing.T) {
			cfg := Config{BlockSize: bs, NumBlocks: 512, Groups: l.groups}
			var counted float64 // what checkReserve bounds
			alloc := func(r Reserve) uint64 {
				cfg.Reserve = r
				var a, b runtime.MemStats
				runtime.ReadMemStats(&a)
				m, err := New(cfg)
				runtime.ReadMemStats(&b)
				if err != nil {
					t.Fatal(err)
				}
				counted = m.reserveBytes()
				runtime.KeepAlive(m)
				return b.TotalAlloc - a.TotalAlloc
			}
			got := int64(alloc(Reserve{Sequences: seqs, Tokens: tokens})) - int64(alloc(Reserve{}))
			if counted != 0 {
				t.Fatalf("a manager without a reserve counts %v reserve bytes", counted)
			}
			alloc(Reserve{Sequences: seqs, Tokens: tokens})
			groups := max(1, len(l.groups))
			// Records and the free list; tokens; hashes; the lookup's scratch,
			// a table of the pool's 511 blocks per group (the longest
			// sequence fills the pool); the tables.
			rec, ext := int(unsafe.Sizeof(sequence{})), int(unsafe.Sizeof(groupTable{}))
			if unsafe.Sizeof(uintptr(0)) == 8 && (rec != 448 || ext != 88) {
				t.Fatalf("a record is %d bytes and a group table %d, documented 448 and 88", rec, ext)
			}
			want := seqs*(rec+4) + seqs*ext*(groups-1) + 4*tokens + 32*tokens/bs + 4*511*groups
			if l.name == "window" {
				want += 4 * 511 // the window lookup's scratch
			}
			for g := range groups {
				if g > 0 && l.groups[g].Kind == State {
					want += 4 * l.groups[g].Pages * (1 + seqs)
					continue
				}
				want += 4 * (tokens/bs + seqs)
			}
			if counted != float64(want) {
				// checkReserve bounds reserveBytes: it must count all
				// that New makes for the reserve, the lookup's
				// scratch included (it left the scratch out).
				t.Errorf("reserveBytes counts %v bytes for the reserve, documented %d", counted, want)
			}
			slabs := 6 + 2*groups // each rounded up to the heap's 8 KB pages
			if got < int64(want) || got > int64(want+slabs*8192) {
				t.Fatalf("New with a reserve of %d sequences and %d tokens allocates %d bytes more, documented %d", seqs, tokens, got, want)
			}
		})
	}
}
