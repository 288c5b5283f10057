package figure_test

import (
	"errors"
	"path/filepath"
	"testing"

	"github.com/pagedkv/pagedkv/bench"
	"github.com/pagedkv/pagedkv/bench/figure"
)

func TestHybrid(t *testing.T) {
	r, err := bench.RunHybridStudy(bench.HybridConfig{Windows: []int{33, 128}, Requests: 200, Blocks: 1024})
	if err != nil {
		t.Fatal(err)
	}
	path := filepath.Join(t.TempDir(), "hybrid.png")
	if err := figure.Hybrid(path, r); err != nil {
		t.Fatal(err)
	}
	isPNG(t, path)
	if err := figure.Hybrid(path, bench.HybridResult{}); !errors.Is(err, figure.ErrEmpty) {
		t.Errorf("no results: %v", err)
	}
}
