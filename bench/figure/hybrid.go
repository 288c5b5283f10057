package figure

import (
	"fmt"
	"image/color"
	"slices"
	"strconv"

	"gonum.org/v1/plot"
	"gonum.org/v1/plot/plotter"
	"gonum.org/v1/plot/vg"
	"gonum.org/v1/plot/vg/draw"

	"github.com/pagedkv/pagedkv/bench"
)

// Hybrid draws the hybrid study: admitted prefix-hit tokens of W1-H
// against the window (log scale), as a percentage of W1's single-group
// figure with vLLM's decisions, one line for vLLM's hybrid coordinator
// (the compat mode) and one for the default mode, with the single-group
// figures as reference lines; it saves the figure to path, whose extension
// (.png, .svg, .pdf) picks the format.
func Hybrid(path string, r bench.HybridResult) error {
	p, err := hybridPlot(r)
	if err != nil {
		return err
	}
	if err := p.Save(7*vg.Inch, 4.5*vg.Inch, path); err != nil {
		return fmt.Errorf("figure: hybrid: %w", err)
	}
	return nil
}

// hybridPlot builds Hybrid's figure.
func hybridPlot(r bench.HybridResult) (*plot.Plot, error) {
	if len(r.Rows) == 0 || r.SingleVLLM.AdmittedHitTokens == 0 {
		return nil, ErrEmpty
	}
	rows := slices.Clone(r.Rows)
	slices.SortFunc(rows, func(a, b bench.HybridRow) int { return a.Window - b.Window })
	p := plot.New()
	p.Title.Text = fmt.Sprintf("Hybrid prefix hits on W1-H (%d requests, %d blocks)", r.Requests, r.Blocks)
	p.X.Label.Text = "sliding window (tokens)"
	p.Y.Label.Text = "admitted hit tokens, % of W1 with one group (vLLM)"
	p.X.Scale = plot.LogScale{}
	p.Add(plotter.NewGrid())
	ticks := make([]plot.Tick, len(rows))
	for i, row := range rows {
		ticks[i] = plot.Tick{Value: float64(row.Window), Label: strconv.Itoa(row.Window)}
	}
	p.X.Tick.Marker = plot.ConstantTicks(ticks)
	p.X.Min, p.X.Max = float64(rows[0].Window)/1.3, float64(rows[len(rows)-1].Window)*1.3

	pct := func(h bench.HybridHits) float64 { return 100 * h.Share(r.SingleVLLM) }
	top := 100.0
	for _, row := range rows {
		top = max(top, pct(row.VLLM), pct(row.Default))
	}
	top = max(top, pct(r.SingleDefault))
	p.Y.Min, p.Y.Max = 0, top*1.08
	var yt []plot.Tick
	for v := 0.0; v <= p.Y.Max; v += 10 {
		yt = append(yt, plot.Tick{Value: v, Label: strconv.Itoa(int(v))})
	}
	p.Y.Tick.Marker = plot.ConstantTicks(yt)

	series := []struct {
		label string
		pick  func(bench.HybridRow) bench.HybridHits
		c     color.Color
		shape draw.GlyphDrawer
	}{
		{"vLLM v1's hybrid coordinator (compat mode)", func(x bench.HybridRow) bench.HybridHits { return x.VLLM }, palette[3], draw.BoxGlyph{}},
		{"pagedkv default mode (hybrid retention)", func(x bench.HybridRow) bench.HybridHits { return x.Default }, palette[0], draw.CircleGlyph{}},
	}
	for _, s := range series {
		pts := make(plotter.XYs, len(rows))
		for i, row := range rows {
			pts[i] = plotter.XY{X: float64(row.Window), Y: pct(s.pick(row))}
		}
		line, points, err := plotter.NewLinePoints(pts)
		if err != nil {
			return nil, fmt.Errorf("figure: hybrid: %w", err)
		}
		line.Color, points.Color = s.c, s.c
		line.Width = vg.Points(1.5)
		points.Shape = s.shape
		p.Add(line, points)
		p.Legend.Add(s.label, line, points)
	}
	// Issue 14's targets for the default mode, where the study has their
	// windows.
	var goals plotter.XYs
	for _, g := range bench.HybridTargets {
		if slices.ContainsFunc(rows, func(x bench.HybridRow) bool { return x.Window == g.Window }) {
			goals = append(goals, plotter.XY{X: float64(g.Window), Y: 100 * g.Share})
		}
	}
	if len(goals) > 0 {
		sc, err := plotter.NewScatter(goals)
		if err != nil {
			return nil, fmt.Errorf("figure: hybrid: %w", err)
		}
		sc.Shape = draw.CrossGlyph{}
		sc.Color = color.Black
		sc.Radius = vg.Points(5)
		p.Add(sc)
		p.Legend.Add("targets for the default mode", sc)
	}
	for _, ref := range []struct {
		label  string
		y      float64
		dashes []vg.Length
	}{
		{fmt.Sprintf("W1, one group, vLLM (%d tokens)", r.SingleVLLM.AdmittedHitTokens), 100, []vg.Length{vg.Points(6), vg.Points(3)}},
		{fmt.Sprintf("W1, one group, default mode (%d)", r.SingleDefault.AdmittedHitTokens), pct(r.SingleDefault), []vg.Length{vg.Points(1), vg.Points(2)}},
	} {
		l, err := plotter.NewLine(plotter.XYs{{X: p.X.Min, Y: ref.y}, {X: p.X.Max, Y: ref.y}})
		if err != nil {
			return nil, fmt.Errorf("figure: hybrid: %w", err)
		}
		l.Color = color.Gray{Y: 80}
		l.Dashes = ref.dashes
		l.Width = vg.Points(1.2)
		p.Add(l)
		p.Legend.Add(ref.label, l)
	}
	for _, st := range r.States {
		p.Legend.Add(fmt.Sprintf("%s (%d state : %d full groups): vLLM %.0f%%, default mode %.0f%%",
			st.Model, st.StateGroups, st.FullGroups, pct(st.VLLM), pct(st.Default)))
	}
	p.Legend.Top = false
	p.Legend.Left = false
	p.Legend.XOffs = -vg.Points(12)
	p.Legend.YOffs = vg.Points(8)
	p.Legend.ThumbnailWidth = vg.Points(24)
	p.Legend.TextStyle.Font.Size = vg.Points(9)
	return p, nil
}
