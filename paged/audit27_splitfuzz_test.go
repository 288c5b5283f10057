package paged_test

import (
	"errors"
	"reflect"
	"testing"

	"github.com/pagedkv/pagedkv/paged"
)

// FuzzSplitPlanBuildFrom: any first blocks, table lengths, units and
// minimum chunk either build a plan that CheckFrom accepts (every
// sequence covered from its first block to its end, the figures right)
// or fail with ErrInvalid leaving the plan as it was; Build is BuildFrom
// with every sequence from block 0.
func FuzzSplitPlanBuildFrom(f *testing.F) {
	f.Add([]byte{3, 0, 5, 1, 9, 9, 0, 0}, 4, 1)
	f.Add([]byte{0, 0, 0, 1}, 1, 2)
	f.Add([]byte{2, 7, 255, 3}, 3, 1)
	f.Fuzz(func(t *testing.T, data []byte, units, minChunk int) {
		if len(data) > 256 {
			return
		}
		// Pairs of bytes: a sequence's first block and its length, small
		// (signed: a negative one is bad input).
		var first, blocks []int32
		for i := 0; i+1 < len(data); i += 2 {
			first = append(first, int32(int8(data[i])))
			blocks = append(blocks, int32(int8(data[i+1])))
		}
		if len(data)%2 == 1 {
			first = append(first, int32(data[len(data)-1]%3)) // one extra: lengths differ
		}
		var p paged.SplitPlan
		if err := p.Build([]int32{4}, 2, 1); err != nil {
			t.Fatal(err)
		}
		before := p
		before.Items = append([]paged.SplitItem(nil), p.Items...)
		before.Merge = append([]int32(nil), p.Merge...)
		err := p.BuildFrom(first, blocks, units, minChunk)
		if err != nil {
			if !errors.Is(err, paged.ErrInvalid) {
				t.Fatalf("BuildFrom: %v, want ErrInvalid", err)
			}
			if !reflect.DeepEqual(p.Items, before.Items) || !reflect.DeepEqual(p.Merge, before.Merge) || p.TotalBlocks != before.TotalBlocks || p.Units != before.Units {
				t.Fatalf("a refused BuildFrom changed the plan")
			}
			return
		}
		if err := p.CheckFrom(first, blocks); err != nil {
			t.Fatalf("BuildFrom(%v, %v, %d, %d): %v", first, blocks, units, minChunk, err)
		}
		var total int64
		for s := range blocks {
			total += int64(blocks[s] - first[s])
		}
		if p.TotalBlocks != total {
			t.Fatalf("TotalBlocks %d, want %d", p.TotalBlocks, total)
		}
	})
}
