package figure

import (
	"fmt"
	"path/filepath"
	"testing"

	"gonum.org/v1/plot/vg"

	"github.com/pagedkv/pagedkv/bench"
)

// Tests that kill the bench/figure mutants of the hundred-and-fourteenth
// mutation round (docs/testing.md, "Mutation testing, hundred-and-fourteenth
// round").

// TestAudit162FragPaperBarShares: the paper's bar beside max/buddy is
// stacked from the paper's own shares, each category in proportion to
// its token states, external fragmentation included (M4700).
func TestAudit162FragPaperBarShares(t *testing.T) {
	r := bench.FragResult{Model: bench.ModelMax, Allocator: bench.AllocBuddy, TokenStates: 0.4, Reserved: 0.1, Internal: 0.2, External: 0.05, Free: 0.25}
	w, h, paint, err := fragFigure([]bench.FragResult{r})
	if err != nil {
		t.Fatal(err)
	}
	const legendW = 1.4 * vg.Inch
	bars := fragFills(record(w, h, paint), w-legendW)
	if len(bars) != 2 {
		t.Fatalf("%d bars, want 2 (the result's and the paper's)", len(bars))
	}
	p := bench.PaperFig2(bench.ModelMax)
	want := []float64{p.TokenStates, p.Reserved, p.Internal, p.External}
	b := bars[1]
	if len(b) < len(want) {
		t.Fatalf("the paper's bar has %d segments, want at least %d", len(b), len(want))
	}
	for c := 1; c < len(want); c++ {
		approx(t, fmt.Sprintf("the paper's category %d over its token states", c), float64(b[c].Size().Y/b[0].Size().Y), want[c]/want[0])
	}
}

// TestAudit162FragUnwritablePath: Frag reports a file it cannot create
// instead of returning nil (M4703).
func TestAudit162FragUnwritablePath(t *testing.T) {
	r := bench.FragResult{Model: bench.ModelPaged, BlockSize: 32, TokenStates: 1}
	path := filepath.Join(t.TempDir(), "missing", "frag.png")
	if err := Frag(path, []bench.FragResult{r}); err == nil {
		t.Errorf("Frag(%s) into a missing directory: no error", path)
	}
}
