package figure

import (
	"fmt"
	"math"

	"gonum.org/v1/plot"
	"gonum.org/v1/plot/plotter"
	"gonum.org/v1/plot/vg"
)

// QuantPoint is one KV storage type of the quantization study at one
// context length.
type QuantPoint struct {
	// Type names the storage type.
	Type string
	// BytesPerToken is the KV memory of one token, whole model.
	BytesPerToken int64
	// Context is the context length in tokens.
	Context int
	// MeanError is the mean relative error of the attention output.
	MeanError float64
}

// Quant draws memory per token against the mean error, one labeled point
// per type, error on a log scale, and saves it at path (the extension,
// .png, .svg or .pdf, picks the format). Points with no error are left
// out: a log scale cannot show them.
func Quant(path string, points []QuantPoint) error {
	p, err := quantPlot(points)
	if err != nil {
		return err
	}
	return p.Save(8*vg.Inch, 5*vg.Inch, path)
}

// quantPlot builds Quant's figure.
func quantPlot(points []QuantPoint) (*plot.Plot, error) {
	p := plot.New()
	p.X.Label.Text = "KV bytes per token (KiB, whole model)"
	p.Y.Label.Text = "mean relative error of attention output"
	p.Y.Scale = plot.LogScale{}
	p.Y.Tick.Marker = plot.LogTicks{Prec: -1}
	var xys plotter.XYs
	var labels []string
	ctx, maxX := 0, 0.0
	for _, r := range points {
		maxX = max(maxX, float64(r.BytesPerToken)/1024)
		if !(r.MeanError > 0) {
			continue
		}
		ctx = r.Context
		xys = append(xys, plotter.XY{X: float64(r.BytesPerToken) / 1024, Y: r.MeanError})
		labels = append(labels, r.Type)
	}
	if len(xys) == 0 {
		return nil, fmt.Errorf("%w: no type with a nonzero error", ErrEmpty)
	}
	p.Title.Text = fmt.Sprintf("KV quantization: memory vs attention error (%d-token context)", ctx)
	sc, err := plotter.NewScatter(xys)
	if err != nil {
		return nil, err
	}
	lb, err := plotter.NewLabels(plotter.XYLabels{XYs: xys, Labels: labels})
	if err != nil {
		return nil, err
	}
	for i := range lb.TextStyle {
		lb.TextStyle[i].Font.Size = vg.Points(7)
		lb.TextStyle[i].XAlign = -0.1 // just right of the point
	}
	// Room for the labels and the points at the edges of a log axis.
	lo, hi := math.Inf(1), 0.0
	for _, xy := range xys {
		lo, hi = min(lo, xy.Y), max(hi, xy.Y)
	}
	p.Y.Min, p.Y.Max, p.X.Min, p.X.Max = lo/2, hi*2, 0, maxX*1.15
	p.Add(sc, lb, plotter.NewGrid())
	return p, nil
}
