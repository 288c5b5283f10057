package paged_test

import (
	"testing"

	"github.com/pagedkv/pagedkv/paged"
)

// TestDraftsAfterBonusKeepWindow: a speculative decoding step schedules
// the token sampled last (Append) and the drafts after it
// (AppendSpeculative) together, so the bonus token's KV is computed in the
// same step as the drafts and its query reads the window before it. The
// drafts' append must not slide the window past what that query reads, or
// BuildBatch refuses the step (a released position) though the caller did
// nothing wrong. Before the fix, the drafts slid the window from the
// accepted length, the bonus token included, as if it were computed.
func TestDraftsAfterBonusKeepWindow(t *testing.T) {
	for _, tc := range []struct {
		name string
		cfg  paged.Config
		opts *paged.SeqOptions
	}{
		{"SeqOptions.Window", paged.Config{BlockSize: 2, NumBlocks: 16}, &paged.SeqOptions{Window: 1}},
		{"window group", paged.Config{BlockSize: 2, NumBlocks: 16, Groups: []paged.Group{{Kind: paged.FullAttention}, {Kind: paged.SlidingWindow, Window: 1}}}, nil},
		{"window group of 3", paged.Config{BlockSize: 2, NumBlocks: 16, Groups: []paged.Group{{Kind: paged.FullAttention}, {Kind: paged.SlidingWindow, Window: 3}}}, nil},
	} {
		t.Run(tc.name, func(t *testing.T) {
			m, err := paged.New(tc.cfg)
			if err != nil {
				t.Fatal(err)
			}
			id, _, err := m.Create([]int32{1, 2, 3}, tc.opts)
			if err != nil {
				t.Fatal(err)
			}
			var b paged.Batch
			if err := m.BuildBatch(&b, []paged.Scheduled{{ID: id, NewTokens: 3}}); err != nil {
				t.Fatal(err)
			}
			for step := range 4 {
				// The bonus token of the last verdict, then two drafts:
				// three new tokens, the first of them the bonus.
				if err := m.Append(id, 10+int32(step)); err != nil {
					t.Fatal(err)
				}
				if err := m.AppendSpeculative(id, 20, 21); err != nil {
					t.Fatal(err)
				}
				if err := m.Check(); err != nil {
					t.Fatal(err)
				}
				if err := m.BuildBatch(&b, []paged.Scheduled{{ID: id, NewTokens: 3}}); err != nil {
					t.Fatalf("step %d: the bonus token and two drafts: %v", step, err)
				}
				if err := m.AcceptSpeculative(id, step%3); err != nil {
					t.Fatal(err)
				}
				if err := m.Check(); err != nil {
					t.Fatal(err)
				}
			}
		})
	}
}
