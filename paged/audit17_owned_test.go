package paged

import (
	"slices"
	"testing"
)

// TestAudit17AddOwnedStaysInsideTheHint: a server that decodes its
// requests' token IDs into one arena, each prompt in its own region sized
// for the request's MaxTokens, hands each region over. The manager may
// write up to the hint of each prompt and no further: a sequence that
// outgrows its hint (a hint limits nothing), or a later sequence reusing
// a freed slot's buffer, must not write into the next region, which holds
// another live sequence's tokens.
func TestAudit17AddOwnedStaysInsideTheHint(t *testing.T) {
	m, err := New(Config{BlockSize: 4, NumBlocks: 64})
	mustOK(t, err)
	arena := make([]int32, 0, 64)
	a := append(arena[0:0], 1, 2, 3, 4, 5, 6, 7, 8) // region [0, 16)
	b := append(arena[16:16], 11, 12, 13, 14, 15, 16, 17, 18)
	wantB := slices.Clone(b)
	ida, err := m.AddOwned(a, &SeqOptions{MaxTokens: 16})
	mustOK(t, err)
	idb, err := m.AddOwned(b, &SeqOptions{MaxTokens: 16})
	mustOK(t, err)
	for _, id := range []SeqID{ida, idb} {
		_, err := m.Admit(id)
		mustOK(t, err)
	}
	// a outgrows its hint by four tokens.
	for tok := range int32(12) {
		mustOK(t, m.Append(ida, 100+tok))
	}
	if got, _ := m.Tokens(idb); !slices.Equal(got, wantB) {
		t.Fatalf("appending to one sequence past its hint rewrote another's tokens: %v, want %v", got, wantB)
	}
	// a's slot, freed, serves a longer prompt next.
	mustOK(t, m.Free(ida))
	long := make([]int32, 40)
	for i := range long {
		long[i] = int32(500 + i)
	}
	idc, err := m.Add(long, &SeqOptions{MaxTokens: 40})
	mustOK(t, err)
	if got, _ := m.Tokens(idb); !slices.Equal(got, wantB) {
		t.Fatalf("a later sequence in a freed slot rewrote a live one's tokens: %v, want %v", got, wantB)
	}
	if got, _ := m.Tokens(idc); !slices.Equal(got, long) {
		t.Fatalf("tokens %v, want %v", got, long)
	}
	mustOK(t, m.Check())
}

// TestAudit17AddOwnedWithoutHint: without a MaxTokens hint the manager
// takes the prompt's elements and nothing past them: the rest of the
// array's capacity stays the caller's.
func TestAudit17AddOwnedWithoutHint(t *testing.T) {
	m, err := New(Config{BlockSize: 4, NumBlocks: 64})
	mustOK(t, err)
	arena := make([]int32, 0, 32)
	a := append(arena[0:0], 1, 2, 3, 4, 5)
	rest := arena[5:8]
	copy(rest, []int32{7, 7, 7})
	id, err := m.AddOwned(a, nil)
	mustOK(t, err)
	_, err = m.Admit(id)
	mustOK(t, err)
	mustOK(t, m.Append(id, 9, 9, 9))
	if !slices.Equal(rest, []int32{7, 7, 7}) {
		t.Fatalf("the manager wrote past a hintless prompt into the caller's memory: %v", rest)
	}
	if got, _ := m.Tokens(id); !slices.Equal(got, []int32{1, 2, 3, 4, 5, 9, 9, 9}) {
		t.Fatalf("tokens %v", got)
	}
}
