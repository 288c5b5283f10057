package figure

import (
	"cmp"
	"fmt"
	"image/color"
	"slices"
	"strconv"

	"gonum.org/v1/plot"
	"gonum.org/v1/plot/plotter"
	"gonum.org/v1/plot/plotutil"
	"gonum.org/v1/plot/vg"

	"github.com/pagedkv/pagedkv/bench"
)

// Cache draws the hit rate against cache capacity (tokens, log scale),
// one line per policy, with the infinite-cache maximum as a dashed
// reference line, and saves it to path; the extension (.png, .svg, .pdf)
// picks the format.
func Cache(path, title string, results []bench.CacheResult) error {
	p, err := cachePlot(title, results)
	if err != nil {
		return err
	}
	if err := p.Save(7*vg.Inch, 4.5*vg.Inch, path); err != nil {
		return fmt.Errorf("%w: %w", bench.ErrCacheStudy, err)
	}
	return nil
}

// cachePlot builds Cache's figure.
func cachePlot(title string, results []bench.CacheResult) (*plot.Plot, error) {
	if len(results) == 0 {
		return nil, fmt.Errorf("%w: nothing to plot", bench.ErrCacheStudy)
	}
	p := plot.New()
	p.Title.Text = title
	p.X.Label.Text = "cache capacity (tokens)"
	p.Y.Label.Text = "hit rate (block references)"
	// Capacities of interest span two orders of magnitude (Mooncake's 3M
	// tokens of DRAM to the 50M its paper needs to approach the maximum).
	p.X.Scale = plot.LogScale{}
	p.Add(plotter.NewGrid())

	var policies []string
	var caps []float64
	maxRate := 0.0
	for _, r := range results {
		if !slices.Contains(policies, r.Policy) {
			policies = append(policies, r.Policy)
		}
		if c := float64(r.CapacityTokens); !slices.Contains(caps, c) {
			caps = append(caps, c)
		}
		maxRate = max(maxRate, r.MaxHitRate)
	}
	slices.Sort(caps)
	ticks := make([]plot.Tick, len(caps))
	for i, c := range caps {
		ticks[i] = plot.Tick{Value: c, Label: shortTokens(c)}
	}
	// Tick exactly the capacities replayed: log ticks at powers of ten
	// would label none of them.
	p.X.Tick.Marker = plot.ConstantTicks(ticks)
	// With one capacity the log axis would be empty; widen it.
	p.X.Min, p.X.Max = caps[0]/1.25, caps[len(caps)-1]*1.25
	p.Y.Min, p.Y.Max = 0, min(1, maxRate*1.1+0.02)
	var yt []plot.Tick
	for v := 0.0; v <= p.Y.Max+1e-9; v += 0.1 {
		yt = append(yt, plot.Tick{Value: v, Label: strconv.FormatFloat(v, 'f', 1, 64)})
	}
	p.Y.Tick.Marker = plot.ConstantTicks(yt)

	online := 0
	for i, name := range policies {
		var pts plotter.XYs
		for _, r := range results {
			if r.Policy == name {
				pts = append(pts, plotter.XY{X: float64(r.CapacityTokens), Y: r.HitRate})
			}
		}
		slices.SortFunc(pts, func(a, b plotter.XY) int { return cmp.Compare(a.X, b.X) })
		line, points, err := plotter.NewLinePoints(pts)
		if err != nil {
			return nil, fmt.Errorf("%w: plot %s: %w", bench.ErrCacheStudy, name, err)
		}
		points.Shape = plotutil.Shape(i)
		line.Width = vg.Points(1.5)
		label := name
		var c color.Color = color.Black
		if name == bench.BeladyName {
			label = "belady (oracle)"
			line.Dashes = []vg.Length{vg.Points(4), vg.Points(2)}
		} else {
			c = palette[online%len(palette)]
			// Past ten policies colors repeat; dots tell them apart.
			if online >= len(palette) {
				line.Dashes = []vg.Length{vg.Points(1), vg.Points(2)}
			}
			online++
		}
		line.Color, points.Color = c, c
		p.Add(line, points)
		p.Legend.Add(label, line, points)
	}
	// The maximum does not depend on capacity: one line across the axis.
	ref, err := plotter.NewLine(plotter.XYs{{X: p.X.Min, Y: maxRate}, {X: p.X.Max, Y: maxRate}})
	if err != nil {
		return nil, fmt.Errorf("%w: plot maximum: %w", bench.ErrCacheStudy, err)
	}
	ref.Color = color.Gray{Y: 80}
	ref.Dashes = []vg.Length{vg.Points(6), vg.Points(3)}
	ref.Width = vg.Points(1.5)
	p.Add(ref)
	p.Legend.Add(fmt.Sprintf("infinite cache (%.3f)", maxRate), ref)
	p.Legend.ThumbnailWidth = vg.Points(24)
	p.Legend.Padding = vg.Points(2)
	p.Legend.YOffs = -vg.Points(4)
	p.Legend.TextStyle.Font.Size = vg.Points(9)
	return p, nil
}

// palette holds well-separated line colors (the Tableau 10 set).
var palette = []color.Color{
	color.RGBA{31, 119, 180, 255}, color.RGBA{255, 127, 14, 255}, color.RGBA{44, 160, 44, 255},
	color.RGBA{214, 39, 40, 255}, color.RGBA{148, 103, 189, 255}, color.RGBA{140, 86, 75, 255},
	color.RGBA{227, 119, 194, 255}, color.RGBA{127, 127, 127, 255}, color.RGBA{188, 189, 34, 255},
	color.RGBA{23, 190, 207, 255},
}

// shortTokens formats a token count as 512k, 3M, 25.6M.
func shortTokens(v float64) string {
	switch {
	case v >= 1e6:
		return strconv.FormatFloat(v/1e6, 'f', -1, 64) + "M"
	case v >= 1e3:
		return strconv.FormatFloat(v/1e3, 'f', -1, 64) + "k"
	}
	return strconv.FormatFloat(v, 'f', -1, 64)
}
