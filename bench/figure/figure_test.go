package figure_test

import (
	"bytes"
	"errors"
	"fmt"
	"os"
	"path/filepath"
	"testing"

	"github.com/pagedkv/pagedkv/bench"
	"github.com/pagedkv/pagedkv/bench/figure"
)

func isPNG(t *testing.T, path string) {
	t.Helper()
	b, err := os.ReadFile(path)
	if err != nil || !bytes.HasPrefix(b, []byte("\x89PNG")) {
		t.Fatalf("%s: not a PNG (%v)", path, err)
	}
}

func TestFrag(t *testing.T) {
	reqs := bench.AzureConv()[:200]
	rs, err := bench.FragStudy(reqs, []bench.FragRun{{Model: bench.ModelOracle}, {Model: bench.ModelOracle, Allocator: bench.AllocCompact}, {Model: bench.ModelPaged, BlockSize: 16}}, bench.FragConfig{}, nil)
	if err != nil {
		t.Fatal(err)
	}
	path := filepath.Join(t.TempDir(), "frag.png")
	if err := figure.Frag(path, rs); err != nil {
		t.Fatal(err)
	}
	isPNG(t, path)
	if err := figure.Frag(path, nil); !errors.Is(err, figure.ErrEmpty) {
		t.Errorf("no results: %v", err)
	}
}

func TestCache(t *testing.T) {
	tr, err := bench.CacheTraceFromHashes(bench.MooncakeSynthetic()[:300], bench.MooncakeBlockSize)
	if err != nil {
		t.Fatal(err)
	}
	pols, err := bench.CachePolicies([]string{"lru", "fifo", "belady"})
	if err != nil {
		t.Fatal(err)
	}
	results, err := bench.RunCacheStudy(bench.CacheStudyConfig{Trace: tr, Policies: pols, CapacityTokens: []int64{102400, 512000}})
	if err != nil {
		t.Fatal(err)
	}
	path := filepath.Join(t.TempDir(), "cache.png")
	if err := figure.Cache(path, "test", results); err != nil {
		t.Fatal(err)
	}
	isPNG(t, path)
	if err := figure.Cache(path, "test", nil); !errors.Is(err, bench.ErrCacheStudy) {
		t.Errorf("no results: %v", err)
	}
}

func TestQuant(t *testing.T) {
	path := filepath.Join(t.TempDir(), "quant.png")
	pts := []figure.QuantPoint{{"fp16", 131072, 4096, 0}, {"q8_0", 69632, 4096, 0.026}, {"q4_0", 36864, 4096, 0.42}}
	if err := figure.Quant(path, pts); err != nil {
		t.Fatal(err)
	}
	isPNG(t, path)
	if err := figure.Quant(path, pts[:1]); !errors.Is(err, figure.ErrEmpty) {
		t.Errorf("only an exact type: %v", err)
	}
}

func ExampleQuant() {
	path := filepath.Join(os.TempDir(), "pagedkv-example-quant.svg")
	defer os.Remove(path)
	err := figure.Quant(path, []figure.QuantPoint{
		{Type: "q8_0", BytesPerToken: 69632, Context: 16384, MeanError: 0.026},
		{Type: "q4_0", BytesPerToken: 36864, Context: 16384, MeanError: 0.42},
	})
	fmt.Println(err)
	// Output: <nil>
}
