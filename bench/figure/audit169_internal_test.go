package figure

import (
	"testing"

	"gonum.org/v1/plot"
	"gonum.org/v1/plot/plotter"
	"gonum.org/v1/plot/vg"
)

// TestAudit169HybridAxesAndReferences: the hybrid figure's window axis is
// logarithmic (the windows run from tens to thousands of tokens), its share
// axis is ticked from 0 every 10 points, and its two dashed reference lines
// run across the axis at 100% (W1's single-group figure with vLLM, the
// base) and at the default mode's own single-group share (M5000, M5002,
// M5004).
func TestAudit169HybridAxesAndReferences(t *testing.T) {
	p, err := hybridPlot(hybridResult(1100, map[int][2]int64{33: {20, 40}, 512: {50, 80}, 1024: {60, 90}}))
	if err != nil {
		t.Fatal(err)
	}
	if _, ok := p.X.Scale.(plot.LogScale); !ok {
		t.Errorf("window axis scale %T, want a log scale", p.X.Scale)
	}
	// The top is the default mode's 110%, 8% above: 118.8, ticked 0 to 110.
	got := ticks(p.Y)
	if len(got) != 12 || got[0] != "0=0" || got[11] != "110=110" {
		t.Errorf("share ticks %v, want 0 to 110 every 10", got)
	}
	d := recordPlot(p, 7*vg.Inch, 4.5*vg.Inch)
	for _, y := range []float64{100, 110} {
		// The grid's solid line at a tick is no reference line.
		var dashed int
		for _, l := range d.line(plotter.XY{X: p.X.Min, Y: y}, plotter.XY{X: p.X.Max, Y: y}) {
			if len(l.dashes) > 0 {
				dashed++
			}
		}
		if dashed != 1 {
			t.Errorf("%d dashed reference lines at %v%% across the axis, want 1", dashed, y)
		}
	}
}
