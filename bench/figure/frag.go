package figure

import (
	"errors"
	"image/color"
	"os"

	"gonum.org/v1/plot"
	"gonum.org/v1/plot/plotter"
	"gonum.org/v1/plot/vg"
	"gonum.org/v1/plot/vg/draw"
	"gonum.org/v1/plot/vg/vgimg"

	"github.com/pagedkv/pagedkv/bench"
)

// ErrEmpty is returned when there is nothing to draw.
var ErrEmpty = errors.New("figure: nothing to plot")

// Frag draws one stacked bar per result (token states, reserved, internal
// and external fragmentation, free), with the PagedAttention paper's
// Figure 2 bars beside the contiguous models on the buddy allocator and
// beside paged/16, and saves it as a PNG at path.
func Frag(path string, results []bench.FragResult) error {
	w, h, paint, err := fragFigure(results)
	if err != nil {
		return err
	}
	img := vgimg.New(w, h)
	paint(draw.New(img))
	f, err := os.Create(path)
	if err != nil {
		return err
	}
	if _, err := (vgimg.PngCanvas{Canvas: img}).WriteTo(f); err != nil {
		f.Close()
		return err
	}
	return f.Close()
}

// fragFigure builds Frag's figure: its size and what draws it on a canvas
// of that size.
func fragFigure(results []bench.FragResult) (w, h vg.Length, paint func(draw.Canvas), err error) {
	if len(results) == 0 {
		return 0, 0, nil, ErrEmpty
	}
	type bar struct {
		label  string
		shares [5]float64 // tokens, reserved, internal, external, free, in percent
	}
	var bars []bar
	for _, r := range results {
		bars = append(bars, bar{r.Name(), [5]float64{100 * r.TokenStates, 100 * r.Reserved, 100 * r.Internal, 100 * r.External, 100 * r.Free}})
		// The paper ran its baselines on a buddy allocator and gives one
		// paged figure, for 16-token blocks.
		if (r.Model != bench.ModelPaged && r.Allocator == bench.AllocBuddy) || (r.Model == bench.ModelPaged && r.BlockSize == 16) {
			p := bench.PaperFig2(r.Model)
			bars = append(bars, bar{"paper " + r.Model.String(), [5]float64{p.TokenStates, p.Reserved, p.Internal, p.External, 0}})
		}
	}
	p := plot.New()
	p.Title.Text = "KV budget by use (share of slots, averaged over steps)"
	p.Y.Label.Text = "% of KV budget"
	p.Y.Max = 100
	names := [5]string{"token states", "reserved", "internal frag.", "external frag.", "free"}
	colors := [5]color.RGBA{{46, 125, 50, 255}, {255, 193, 7, 255}, {229, 57, 53, 255}, {94, 53, 177, 255}, {189, 189, 189, 255}}
	// A legend of its own, drawn beside the plot, not over the bars.
	leg := plot.NewLegend()
	leg.Top = true
	// Five bar charts stacked on one another, one per category, bottom up
	// in the order of the paper's legend.
	var below *plotter.BarChart
	for c := range names {
		vals := make(plotter.Values, len(bars))
		for i, b := range bars {
			vals[i] = b.shares[c]
		}
		bc, err := plotter.NewBarChart(vals, vg.Points(18))
		if err != nil {
			return 0, 0, nil, err
		}
		bc.Color = colors[c]
		bc.LineStyle.Width = 0
		if below != nil {
			bc.StackOn(below)
		}
		below = bc
		p.Add(bc)
		leg.Add(names[c], bc)
	}
	labels := make([]string, len(bars))
	for i, b := range bars {
		labels[i] = b.label
	}
	p.NominalX(labels...)
	p.X.Tick.Label.Rotation = 0.8
	p.X.Tick.Label.XAlign = -0.9 // right-aligned under the rotated tick
	p.X.Tick.Label.YAlign = -0.5
	const legendW = 1.4 * vg.Inch
	w, h = vg.Length(max(6, len(bars))*40)*vg.Points(1)+vg.Inch+legendW, 5*vg.Inch
	return w, h, func(dc draw.Canvas) {
		p.Draw(draw.Crop(dc, 0, -legendW, 0, 0))
		leg.Draw(draw.Crop(dc, w-legendW, 0, 0, -0.3*vg.Inch))
	}, nil
}
