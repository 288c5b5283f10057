package paged

import (
	"slices"
	"testing"
)

// TestAppendWindowedAfterAdmitSlides: the first decode token of a
// sliding-window sequence (SeqOptions.Window) just admitted slides its
// window, through Append's inline path as through the general one
// (appendTokens): the blocks no query reads any more are released at
// once, not when the next block starts. Before the fix Admit marked a
// windowed sequence own, so Append wrote the token in place and kept
// every prompt block until the sequence started a new block.
func TestAppendWindowedAfterAdmitSlides(t *testing.T) {
	type result struct {
		table []int32
		avail int
		stats Stats
	}
	run := func(general bool) result {
		m, err := New(Config{BlockSize: 4, NumBlocks: 32})
		if err != nil {
			t.Fatal(err)
		}
		prompt := make([]int32, 21) // 5 full blocks and one token
		for i := range prompt {
			prompt[i] = int32(i)
		}
		id, err := m.Add(prompt, &SeqOptions{Window: 4})
		if err != nil {
			t.Fatal(err)
		}
		if _, err := m.Admit(id); err != nil {
			t.Fatal(err)
		}
		for tok := range int32(3) { // up to the token that fills the block
			if general {
				err = m.appendTokens(id, []int32{100 + tok}, false)
			} else {
				err = m.Append(id, 100+tok)
			}
			if err != nil {
				t.Fatal(err)
			}
			if err := m.Check(); err != nil {
				t.Fatal(err)
			}
		}
		tb, _ := m.Table(id)
		var r result
		for _, b := range tb {
			r.table = append(r.table, int32(b))
		}
		r.avail, r.stats = m.available(), m.Stats()
		return r
	}
	fast, general := run(false), run(true)
	if !slices.Equal(fast.table, general.table) || fast.avail != general.avail || fast.stats != general.stats {
		t.Fatalf("Append: table %v, %d available; general path: table %v, %d available", fast.table, fast.avail, general.table, general.avail)
	}
	if general.table[0] != int32(nullBlock) {
		t.Fatalf("the general path did not slide: %v", general.table)
	}
}
