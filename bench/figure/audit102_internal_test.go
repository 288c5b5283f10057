package figure

import (
	"errors"
	"fmt"
	"image/color"
	"math"
	"path/filepath"
	"slices"
	"strings"
	"testing"

	"gonum.org/v1/plot"
	"gonum.org/v1/plot/plotter"
	"gonum.org/v1/plot/vg"
	"gonum.org/v1/plot/vg/draw"
	"gonum.org/v1/plot/vg/recorder"

	"github.com/pagedkv/pagedkv/bench"
)

// The tests of audit 102 read what a figure draws: it is drawn on a
// recording canvas, and its texts (title, axis and tick labels, legend),
// stroked paths (lines, with their color and dashes), filled paths (bars)
// and glyph centres are compared with what the data says, through the
// plot's own transforms from data to canvas coordinates.

// path is one stroked or filled path: its vertices and the color and
// dashes in force when it was drawn.
type path struct {
	pts    []vg.Point
	col    color.Color
	dashes []vg.Length
}

// drawing is what a recorder.Canvas was asked to draw.
type drawing struct {
	texts           []string
	strokes, fills  []path
	arcs            []vg.Point // centres of arcs (ring and circle glyphs)
	xf, yf          func(float64) vg.Length
	width, height   vg.Length
	dataMin, dataMx vg.Point
}

// record runs paint on a w by h recording canvas and collects what it drew.
func record(w, h vg.Length, paint func(draw.Canvas)) *drawing {
	rec := new(recorder.Canvas)
	paint(draw.NewCanvas(rec, w, h))
	d := &drawing{width: w, height: h}
	type state struct {
		col    color.Color
		dashes []vg.Length
	}
	cur := state{col: color.Black}
	var stack []state
	for _, a := range rec.Actions {
		switch a := a.(type) {
		case *recorder.Push:
			stack = append(stack, cur)
		case *recorder.Pop:
			cur, stack = stack[len(stack)-1], stack[:len(stack)-1]
		case *recorder.SetColor:
			cur.col = a.Color
		case *recorder.SetLineDash:
			cur.dashes = a.Dashes
		case *recorder.FillString:
			d.texts = append(d.texts, a.String)
		case *recorder.Stroke, *recorder.Fill:
			var vp vg.Path
			if s, ok := a.(*recorder.Stroke); ok {
				vp = s.Path
			} else {
				vp = a.(*recorder.Fill).Path
			}
			p := path{col: cur.col, dashes: cur.dashes}
			for _, c := range vp {
				switch c.Type {
				case vg.MoveComp, vg.LineComp:
					p.pts = append(p.pts, c.Pos)
				case vg.ArcComp:
					d.arcs = append(d.arcs, c.Pos)
				}
			}
			if _, ok := a.(*recorder.Stroke); ok {
				d.strokes = append(d.strokes, p)
			} else {
				d.fills = append(d.fills, p)
			}
		}
	}
	return d
}

// recordPlot draws p on a w by h recording canvas and keeps the plot's
// transforms from data to canvas coordinates.
func recordPlot(p *plot.Plot, w, h vg.Length) *drawing {
	d := record(w, h, p.Draw)
	dc := p.DataCanvas(draw.NewCanvas(new(recorder.Canvas), w, h))
	d.xf, d.yf = p.Transforms(&dc)
	d.dataMin, d.dataMx = dc.Min, dc.Max
	return d
}

// count returns how many times s was drawn as a text.
func (d *drawing) count(s string) int {
	n := 0
	for _, t := range d.texts {
		if t == s {
			n++
		}
	}
	return n
}

func near(a, b vg.Point) bool {
	return math.Abs(float64(a.X-b.X)) < 1e-6 && math.Abs(float64(a.Y-b.Y)) < 1e-6
}

// at returns the canvas point of a data point.
func (d *drawing) at(xy plotter.XY) vg.Point { return vg.Point{X: d.xf(xy.X), Y: d.yf(xy.Y)} }

// line returns the stroked paths through exactly the data points xys, in
// their order.
func (d *drawing) line(xys ...plotter.XY) []path {
	var out []path
	for _, s := range d.strokes {
		if len(s.pts) != len(xys) {
			continue
		}
		ok := true
		for i, xy := range xys {
			ok = ok && near(s.pts[i], d.at(xy))
		}
		if ok {
			out = append(out, s)
		}
	}
	return out
}

// crosses counts the cross glyphs centred on the data point xy: two
// two-point strokes whose midpoint it is.
func (d *drawing) crosses(xy plotter.XY) int {
	c := d.at(xy)
	n := 0
	for _, s := range d.strokes {
		if len(s.pts) == 2 && s.pts[0].X != s.pts[1].X && near(vg.Point{X: (s.pts[0].X + s.pts[1].X) / 2, Y: (s.pts[0].Y + s.pts[1].Y) / 2}, c) {
			n++
		}
	}
	return n / 2
}

func approx(t *testing.T, what string, got, want float64) {
	t.Helper()
	if math.Abs(got-want) > 1e-9*max(1, math.Abs(want)) {
		t.Errorf("%s = %v, want %v", what, got, want)
	}
}

// ticks returns the labelled ticks of an axis, as value/label pairs.
func ticks(a plot.Axis) []string {
	var out []string
	for _, t := range a.Tick.Marker.Ticks(a.Min, a.Max) {
		if t.Label != "" {
			out = append(out, fmt.Sprintf("%g=%s", t.Value, t.Label))
		}
	}
	return out
}

// TestAudit102CacheFigure: the cache figure's title, log capacity axis
// ticked at exactly the capacities replayed (sorted, labelled 500k, 1M,
// 2M), widened by a quarter each side; hit-rate ticks up to the axis' top
// (1.0, capped); one line per policy through its own results sorted by
// capacity; Belady's line black, dashed and named the oracle; and the
// infinite-cache line at the largest maximum, across the axis (M2396-M2404,
// M2407).
func TestAudit102CacheFigure(t *testing.T) {
	results := []bench.CacheResult{
		{Policy: "lru", CapacityTokens: 2_000_000, HitRate: 0.5, MaxHitRate: 0.95},
		{Policy: bench.BeladyName, CapacityTokens: 1_000_000, HitRate: 0.6, MaxHitRate: 0.9},
		{Policy: "lru", CapacityTokens: 1_000_000, HitRate: 0.3, MaxHitRate: 0.9},
		{Policy: bench.BeladyName, CapacityTokens: 2_000_000, HitRate: 0.8, MaxHitRate: 0.9},
		{Policy: "lru", CapacityTokens: 500_000, HitRate: 0.1, MaxHitRate: 0.9},
	}
	p, err := cachePlot("the study", results)
	if err != nil {
		t.Fatal(err)
	}
	if p.Title.Text != "the study" || p.X.Label.Text != "cache capacity (tokens)" || p.Y.Label.Text != "hit rate (block references)" {
		t.Errorf("title %q, axes %q and %q", p.Title.Text, p.X.Label.Text, p.Y.Label.Text)
	}
	if _, ok := p.X.Scale.(plot.LogScale); !ok {
		t.Errorf("capacity axis scale %T, want a log scale", p.X.Scale)
	}
	approx(t, "X.Min", p.X.Min, 500_000/1.25)
	approx(t, "X.Max", p.X.Max, 2_000_000*1.25)
	approx(t, "Y.Max", p.Y.Max, 1)
	if got, want := ticks(p.X), []string{"500000=500k", "1e+06=1M", "2e+06=2M"}; !slices.Equal(got, want) {
		t.Errorf("capacity ticks %v, want %v", got, want)
	}
	if got := ticks(p.Y); len(got) != 11 || !strings.HasSuffix(got[10], "=1.0") {
		t.Errorf("hit-rate ticks %v, want 0.0 to 1.0", got)
	}
	d := recordPlot(p, 7*vg.Inch, 4.5*vg.Inch)
	for _, s := range []string{"the study", "lru", "belady (oracle)", "infinite cache (0.950)", "500k", "1M", "2M"} {
		if n := d.count(s); n != 1 {
			t.Errorf("%q drawn %d times, want once", s, n)
		}
	}
	if d.count(bench.BeladyName) != 0 {
		t.Errorf("Belady's line named %q, not as the oracle", bench.BeladyName)
	}
	lru := d.line(plotter.XY{X: 500_000, Y: 0.1}, plotter.XY{X: 1_000_000, Y: 0.3}, plotter.XY{X: 2_000_000, Y: 0.5})
	if len(lru) != 1 || lru[0].col != palette[0] || len(lru[0].dashes) != 0 {
		t.Errorf("LRU's line: %v, want one, solid, in the first color", lru)
	}
	bel := d.line(plotter.XY{X: 1_000_000, Y: 0.6}, plotter.XY{X: 2_000_000, Y: 0.8})
	if len(bel) != 1 || bel[0].col != color.Black || len(bel[0].dashes) == 0 {
		t.Errorf("Belady's line: %v, want one, black and dashed", bel)
	}
	if ref := d.line(plotter.XY{X: p.X.Min, Y: 0.95}, plotter.XY{X: p.X.Max, Y: 0.95}); len(ref) != 1 || len(ref[0].dashes) == 0 {
		t.Errorf("infinite-cache line at 0.95 across the axis: %v", ref)
	}
}

// TestAudit102CachePolicyColors: the online policies take the palette's
// colors in turn, solid, and those past its ten reuse them dotted, from
// the eleventh (M2405, M2406).
func TestAudit102CachePolicyColors(t *testing.T) {
	var results []bench.CacheResult
	const n = 12
	for i := range n {
		for j, c := range []int64{1000, 2000} {
			results = append(results, bench.CacheResult{Policy: fmt.Sprintf("p%02d", i), CapacityTokens: c, HitRate: 0.01*float64(i) + 0.3*float64(j), MaxHitRate: 0.5})
		}
	}
	p, err := cachePlot("colors", results)
	if err != nil {
		t.Fatal(err)
	}
	d := recordPlot(p, 7*vg.Inch, 4.5*vg.Inch)
	for i := range n {
		l := d.line(plotter.XY{X: 1000, Y: 0.01 * float64(i)}, plotter.XY{X: 2000, Y: 0.01*float64(i) + 0.3})
		if len(l) != 1 {
			t.Errorf("p%02d: %d lines", i, len(l))
			continue
		}
		if l[0].col != palette[i%len(palette)] {
			t.Errorf("p%02d: color %v, want %v", i, l[0].col, palette[i%len(palette)])
		}
		if dotted := len(l[0].dashes) > 0; dotted != (i >= len(palette)) {
			t.Errorf("p%02d: dashes %v", i, l[0].dashes)
		}
	}
}

// hybridResult is a hybrid study by hand: W1's base of 1000 hit tokens,
// the windows out of order, with vLLM's and the default mode's hits per
// window given in percent of the base.
func hybridResult(singleDefault int64, rows map[int][2]int64) bench.HybridResult {
	r := bench.HybridResult{Requests: 200, Blocks: 1024,
		SingleVLLM: bench.HybridHits{AdmittedHitTokens: 1000}, SingleDefault: bench.HybridHits{AdmittedHitTokens: singleDefault}}
	for _, w := range []int{1024, 33, 512} {
		if v, ok := rows[w]; ok {
			r.Rows = append(r.Rows, bench.HybridRow{Window: w, VLLM: bench.HybridHits{AdmittedHitTokens: 10 * v[0]}, Default: bench.HybridHits{AdmittedHitTokens: 10 * v[1]}})
		}
	}
	return r
}

// TestAudit102HybridFigure: the hybrid figure's title, window ticks
// (sorted) and range, the two mode lines through their shares in window
// order, issue 14's target only where the study ran its window (1024, not
// 128) at its percentage, the state models' legend lines, and the share
// axis' top 8% above the largest of the rows and the default mode's
// single-group figure (M2409-M2417).
func TestAudit102HybridFigure(t *testing.T) {
	rows := map[int][2]int64{33: {20, 40}, 512: {50, 80}, 1024: {60, 120}}
	r := hybridResult(1100, rows)
	r.States = []bench.HybridStateRow{{Model: "m", FullGroups: 3, StateGroups: 1, VLLM: bench.HybridHits{AdmittedHitTokens: 500}, Default: bench.HybridHits{AdmittedHitTokens: 800}}}
	p, err := hybridPlot(r)
	if err != nil {
		t.Fatal(err)
	}
	if want := "Hybrid prefix hits on W1-H (200 requests, 1024 blocks)"; p.Title.Text != want {
		t.Errorf("title %q, want %q", p.Title.Text, want)
	}
	if got, want := ticks(p.X), []string{"33=33", "512=512", "1024=1024"}; !slices.Equal(got, want) {
		t.Errorf("window ticks %v, want %v", got, want)
	}
	approx(t, "X.Min", p.X.Min, 33/1.3)
	approx(t, "X.Max", p.X.Max, 1024*1.3)
	approx(t, "Y.Max", p.Y.Max, 120*1.08)
	d := recordPlot(p, 7*vg.Inch, 4.5*vg.Inch)
	if l := d.line(plotter.XY{X: 33, Y: 20}, plotter.XY{X: 512, Y: 50}, plotter.XY{X: 1024, Y: 60}); len(l) != 1 || l[0].col != palette[3] {
		t.Errorf("vLLM's line: %v", l)
	}
	if l := d.line(plotter.XY{X: 33, Y: 40}, plotter.XY{X: 512, Y: 80}, plotter.XY{X: 1024, Y: 120}); len(l) != 1 || l[0].col != palette[0] {
		t.Errorf("the default mode's line: %v", l)
	}
	if n := d.crosses(plotter.XY{X: 1024, Y: 95}); n != 1 {
		t.Errorf("%d targets at window 1024 and 95%%, want 1", n)
	}
	if n := d.crosses(plotter.XY{X: 128, Y: 70}); n != 0 {
		t.Errorf("%d targets at window 128, which the study did not run", n)
	}
	for _, s := range []string{"m (1 state : 3 full groups): vLLM 50%, default mode 80%", "W1, one group, vLLM (1000 tokens)", "W1, one group, default mode (1100)"} {
		if d.count(s) != 1 {
			t.Errorf("legend %q missing in %q", s, d.texts)
		}
	}

	// The axis' top is the largest share drawn, rows or the single-group
	// reference line, with 8% above it.
	for _, c := range []struct {
		single int64
		rows   map[int][2]int64
		top    float64
	}{
		{1300, map[int][2]int64{33: {20, 40}, 1024: {60, 120}}, 130},
		{1100, map[int][2]int64{33: {20, 40}, 1024: {60, 150}}, 150},
		{1100, map[int][2]int64{33: {20, 40}, 1024: {125, 110}}, 125},
	} {
		p, err := hybridPlot(hybridResult(c.single, c.rows))
		if err != nil {
			t.Fatal(err)
		}
		approx(t, fmt.Sprintf("Y.Max (top %v)", c.top), p.Y.Max, c.top*1.08)
	}
}

// TestAudit102HybridWithoutBase: a study whose W1 base has no hits has no
// shares to draw (M2408).
func TestAudit102HybridWithoutBase(t *testing.T) {
	r := hybridResult(0, map[int][2]int64{33: {20, 40}})
	r.SingleVLLM = bench.HybridHits{}
	if err := Hybrid(filepath.Join(t.TempDir(), "h.png"), r); !errors.Is(err, ErrEmpty) {
		t.Errorf("no base: %v, want ErrEmpty", err)
	}
}

// fragFills returns the bar segments a Frag figure drew left of its
// legend, bar by bar from the left, each bottom up.
func fragFills(d *drawing, legendLeft vg.Length) [][]vg.Rectangle {
	var segs []vg.Rectangle
	for _, f := range d.fills {
		if len(f.pts) != 4 {
			continue
		}
		r := vg.Rectangle{Min: f.pts[0], Max: f.pts[0]}
		for _, pt := range f.pts[1:] {
			r.Min.X, r.Min.Y = min(r.Min.X, pt.X), min(r.Min.Y, pt.Y)
			r.Max.X, r.Max.Y = max(r.Max.X, pt.X), max(r.Max.Y, pt.Y)
		}
		if r.Min.X < legendLeft && math.Abs(float64(r.Size().X-vg.Points(18))) < 1e-6 {
			segs = append(segs, r)
		}
	}
	var bars [][]vg.Rectangle
	for _, s := range segs {
		i := slices.IndexFunc(bars, func(b []vg.Rectangle) bool { return math.Abs(float64(b[0].Min.X-s.Min.X)) < 1e-6 })
		if i < 0 {
			bars = append(bars, []vg.Rectangle{s})
		} else {
			bars[i] = append(bars[i], s)
		}
	}
	slices.SortFunc(bars, func(a, b []vg.Rectangle) int { return int(a[0].Min.X - b[0].Min.X) })
	return bars
}

// TestAudit102FragFigure: the paper's bars stand beside the contiguous
// models on the buddy allocator and beside paged/16 only; a bar's five
// categories are stacked bottom up in the legend's order with heights in
// the ratio of the result's shares; the legend names each category; the
// figure is at least six bars wide (M2418-M2423).
func TestAudit102FragFigure(t *testing.T) {
	shares := [5]float64{0.40, 0.10, 0.20, 0.05, 0.25}
	res := func(m bench.MemoryModel, bs int, a bench.Allocator) bench.FragResult {
		return bench.FragResult{Model: m, BlockSize: bs, Allocator: a, TokenStates: shares[0], Reserved: shares[1], Internal: shares[2], External: shares[3], Free: shares[4]}
	}
	results := []bench.FragResult{
		res(bench.ModelMax, 0, bench.AllocBuddy),
		res(bench.ModelPow2, 0, bench.AllocCompact),
		res(bench.ModelPaged, 16, 0),
		res(bench.ModelPaged, 32, 0),
	}
	w, h, paint, err := fragFigure(results)
	if err != nil {
		t.Fatal(err)
	}
	const legendW = 1.4 * vg.Inch
	if want := 6*vg.Points(40) + vg.Inch + legendW; w != want {
		t.Errorf("width %v for 6 bars, want %v", w, want)
	}
	d := record(w, h, paint)
	for _, s := range []string{"max/buddy", "paper max", "pow2/compact", "paged/16", "paper paged", "paged/32",
		"token states", "reserved", "internal frag.", "external frag.", "free"} {
		if n := d.count(s); n != 1 {
			t.Errorf("%q drawn %d times, want once", s, n)
		}
	}
	if n := d.count("paper pow2"); n != 0 {
		t.Errorf("the paper's pow2 bar beside a compacting allocator's")
	}
	bars := fragFills(d, w-legendW)
	if len(bars) != 6 {
		t.Fatalf("%d bars, want 6", len(bars))
	}
	b := bars[0]
	if len(b) != 5 {
		t.Fatalf("the first bar has %d segments, want 5", len(b))
	}
	for c := 1; c < 5; c++ {
		if math.Abs(float64(b[c].Min.Y-b[c-1].Max.Y)) > 1e-6 {
			t.Errorf("category %d starts at %v, not on category %d's top %v", c, b[c].Min.Y, c-1, b[c-1].Max.Y)
		}
		approx(t, fmt.Sprintf("category %d's height over the token states'", c), float64(b[c].Size().Y/b[0].Size().Y), shares[c]/shares[0])
	}

	// Fewer than six bars still take six bars' width.
	w, _, _, err = fragFigure(results[3:])
	if err != nil {
		t.Fatal(err)
	}
	if want := 6*vg.Points(40) + vg.Inch + legendW; w != want {
		t.Errorf("width %v for one bar, want %v", w, want)
	}
}

// TestAudit102QuantFigure: the quantization figure's title gives the
// context, each type with an error is a ring at its memory and error
// labelled with its own name, the memory axis reaches 15% past the
// largest type (the exact one, left out, included), and the error axis
// spans half the least error to twice the largest (M2425-M2429).
func TestAudit102QuantFigure(t *testing.T) {
	pts := []QuantPoint{{"fp16", 131072, 4096, 0}, {"q8_0", 69632, 4096, 0.026}, {"q4_0", 36864, 4096, 0.42}}
	p, err := quantPlot(pts)
	if err != nil {
		t.Fatal(err)
	}
	if want := "KV quantization: memory vs attention error (4096-token context)"; p.Title.Text != want {
		t.Errorf("title %q, want %q", p.Title.Text, want)
	}
	approx(t, "X.Max", p.X.Max, 128*1.15)
	approx(t, "Y.Min", p.Y.Min, 0.013)
	approx(t, "Y.Max", p.Y.Max, 0.84)
	d := recordPlot(p, 8*vg.Inch, 5*vg.Inch)
	for _, s := range []string{"q8_0", "q4_0"} {
		if n := d.count(s); n != 1 {
			t.Errorf("%q drawn %d times, want once", s, n)
		}
	}
	if n := d.count("fp16"); n != 0 {
		t.Errorf("fp16, with no error, labelled %d times", n)
	}
	for _, xy := range []plotter.XY{{X: 68, Y: 0.026}, {X: 36, Y: 0.42}} {
		if !slices.ContainsFunc(d.arcs, func(c vg.Point) bool { return near(c, d.at(xy)) }) {
			t.Errorf("no point at %v", xy)
		}
	}
}
