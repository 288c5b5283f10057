package paged

import (
	"slices"
	"testing"
	"unsafe"
)

// TestAudit142ReserveOfSequencesOnly: a reserve of sequences and no
// tokens makes the records, their free list and, with more than one
// group, the group tables of every record (the hybrid layouts' extra
// 88 bytes a group), and counts them with the lookup's scratch in
// reserveBytes; TestReserveBytes reserves tokens too.
func TestAudit142ReserveOfSequencesOnly(t *testing.T) {
	const seqs = 5
	for _, l := range reserveLayoutsInternal {
		t.Run(l.name, func(t *testing.T) {
			m, err := New(Config{BlockSize: 16, NumBlocks: 512, Groups: l.groups, Reserve: Reserve{Sequences: seqs}})
			mustOK(t, err)
			groups := max(1, len(l.groups))
			if cap(m.seqs) < seqs || cap(m.freeSeqs) < seqs {
				t.Fatalf("room for %d records and %d free entries, want %d", cap(m.seqs), cap(m.freeSeqs), seqs)
			}
			if got := len(m.res.ext); got != seqs*(groups-1) {
				t.Fatalf("%d reserved group tables, want %d", got, seqs*(groups-1))
			}
			rec, ext := int(unsafe.Sizeof(sequence{})), int(unsafe.Sizeof(groupTable{}))
			want := seqs*(rec+4) + seqs*ext*(groups-1) + 4*511*groups // scratch as in TestReserveBytes
			if l.name == "window" {
				want += 4 * 511
			}
			if got := m.reserveBytes(); got != float64(want) {
				t.Fatalf("reserveBytes counts %v, want %d", got, want)
			}
		})
	}
}

// TestAudit142DivergingPromptKeepsTheSharer: a prompt that leaves the
// recorded sharer's beginning before the sharer's hashed blocks end does
// not replace it (only one that begins with all of them and goes on
// does), so a later prompt as the sharer's takes all its hashes.
func TestAudit142DivergingPromptKeepsTheSharer(t *testing.T) {
	a := make([]int32, 16*3+3) // three full blocks
	for i := range a {
		a[i] = int32(i + 1)
	}
	b := slices.Clone(a[:16]) // a's first block, then five others
	for i := range 16 * 5 {
		b = append(b, int32(1000+i))
	}
	m, _ := New(Config{BlockSize: 16, NumBlocks: 64})
	for _, p := range [][]int32{a, b, a} {
		_, err := m.Add(p, nil)
		mustOK(t, err)
	}
	// a: 3 hashed; b: 1 recalled, 5 hashed; a again: 3 recalled.
	if st := m.Stats(); st.BlocksHashed != 8 || st.HashesRecalled != 4 {
		t.Fatalf("hashed %d, recalled %d; want 8 and 4", st.BlocksHashed, st.HashesRecalled)
	}
}
