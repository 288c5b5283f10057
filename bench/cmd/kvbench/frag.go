package main

import (
	"encoding/json"
	"errors"
	"flag"
	"fmt"
	"image/color"
	"io"
	"os"
	"runtime"
	"strconv"
	"strings"
	"sync"
	"text/tabwriter"
	"time"

	"gonum.org/v1/plot"
	"gonum.org/v1/plot/plotter"
	"gonum.org/v1/plot/vg"
	"gonum.org/v1/plot/vg/draw"
	"gonum.org/v1/plot/vg/vgimg"

	"github.com/pagedkv/pagedkv/bench"
)

// fragOptions are the parsed flags of kvbench frag.
type fragOptions struct {
	trace, format   string
	requests        int
	cfg             bench.FragConfig
	blockSizes      []int
	models          []bench.MemoryModel
	json            bool
	plot            string
	progress        bool
	sharingRequests int
	widths          []int
}

// runFrag prints the fragmentation study: the PagedAttention paper's
// Figure 2 method on a real trace, every memory model on one KV budget.
func runFrag(args []string, stdout, stderr io.Writer) error {
	o, err := parseFrag(args, stderr)
	if err != nil {
		return err
	}
	// Progress lines come from the study's and the sharing runs'
	// goroutines at once.
	stderr = &syncWriter{w: stderr}
	start := time.Now()
	reqs, source := bench.AzureConv(), bench.AzureAttribution
	if o.trace != "" {
		if reqs, err = bench.ReadTraceFile(o.trace, o.format); err != nil {
			return err
		}
		source = o.trace
	}
	if len(reqs) == 0 {
		return errors.New("the trace has no requests")
	}
	// A prefix of the trace, not a sample: the first N requests keep the
	// trace's own order and mix.
	if o.requests > 0 && o.requests < len(reqs) {
		reqs = reqs[:o.requests]
	}

	// One run per contiguous model, one per block size for paged, in the
	// order of -models: the table follows it.
	var runs []bench.FragRun
	for _, m := range o.models {
		if m != bench.ModelPaged {
			runs = append(runs, bench.FragRun{Model: m})
			continue
		}
		for _, bs := range o.blockSizes {
			runs = append(runs, bench.FragRun{Model: m, BlockSize: bs})
		}
	}
	var progress func(done, total int, r bench.FragResult)
	if o.progress {
		progress = func(done, total int, r bench.FragResult) {
			fmt.Fprintf(stderr, "frag: %d/%d %s done in %v (%d steps)\n", done, total, runName(r.Model, r.BlockSize), r.Elapsed.Round(time.Millisecond), r.Steps)
		}
	}
	// The sharing runs go beside the study's, so no core idles while the
	// last long run of either finishes.
	var sharing []bench.SharingResult
	var sharingErr error
	sharingDone := make(chan struct{})
	go func() {
		defer close(sharingDone)
		sharing, sharingErr = runSharing(reqs, o, stderr)
	}()
	results, err := bench.FragStudy(reqs, runs, o.cfg, progress)
	<-sharingDone
	if err != nil {
		return err
	}
	if sharingErr != nil {
		return sharingErr
	}

	if o.json {
		err = writeFragJSON(stdout, results, sharing)
	} else {
		writeFragTable(stdout, source, reqs, o, results, sharing)
	}
	if err != nil {
		return err
	}
	if o.plot != "" {
		if err := plotFrag(o.plot, results); err != nil {
			return err
		}
	}
	if o.progress {
		fmt.Fprintf(stderr, "frag: total %v\n", time.Since(start).Round(time.Millisecond))
	}
	return nil
}

func parseFrag(args []string, stderr io.Writer) (fragOptions, error) {
	var o fragOptions
	fs := flag.NewFlagSet("kvbench frag", flag.ContinueOnError)
	fs.SetOutput(stderr)
	fs.StringVar(&o.trace, "trace", "", "trace file (default: the embedded Azure conversation trace)")
	fs.StringVar(&o.format, "format", "", "trace format: azure or mooncake (default: by extension)")
	fs.IntVar(&o.requests, "requests", 0, "use the first N requests (0: all)")
	fs.IntVar(&o.cfg.MaxLen, "max-len", bench.DefaultFragMaxLen, "maximum request length in tokens; longer requests are truncated")
	fs.IntVar(&o.cfg.KVTokens, "kv-tokens", bench.DefaultFragKVTokens, "KV budget in token slots, the same for every memory model")
	blocks := fs.String("block-sizes", "1,2,4,8,16,32,64,128,256", "paged block sizes in tokens, comma separated")
	models := fs.String("models", "max,pow2,oracle,paged", "memory models, comma separated: paged, max, pow2, oracle")
	fs.BoolVar(&o.cfg.Arrivals, "arrivals", false, "requests arrive at their trace timestamps (default: all wait at step 0)")
	fs.DurationVar(&o.cfg.StepTime, "step", bench.DefaultFragStepTime, "duration of one engine step with -arrivals")
	fs.BoolVar(&o.json, "json", false, "print one JSON object a line instead of the table")
	fs.StringVar(&o.plot, "plot", "", "write stacked bars of the shares to this PNG file")
	fs.BoolVar(&o.progress, "progress", false, "report each finished run on stderr")
	// Beam search forks and copies every step, about 5 s of CPU for the
	// whole trace; 1,000 requests give the savings of 2,000 within 0.2
	// points and keep the default run well within its 10 s.
	fs.IntVar(&o.sharingRequests, "sharing-requests", 1000, "run the sharing study on the first N requests (0: skip it)")
	widths := fs.String("widths", "2,4,6", "parallel-sampling outputs and beam widths of the sharing study")
	if err := fs.Parse(args); err != nil {
		return o, err
	}
	if fs.NArg() > 0 {
		return o, fmt.Errorf("unexpected argument %q", fs.Arg(0))
	}
	var err error
	if o.blockSizes, err = parseInts("-block-sizes", *blocks); err != nil {
		return o, err
	}
	// Bad widths matter only when the sharing study runs.
	if o.widths, err = parseInts("-widths", *widths); err != nil && o.sharingRequests > 0 {
		return o, err
	}
	for _, s := range strings.Split(*models, ",") {
		m, err := bench.ParseMemoryModel(strings.TrimSpace(s))
		if err != nil {
			return o, err
		}
		o.models = append(o.models, m)
	}
	switch {
	case o.requests < 0:
		return o, fmt.Errorf("-requests %d must not be negative", o.requests)
	case o.sharingRequests < 0:
		return o, fmt.Errorf("-sharing-requests %d must not be negative", o.sharingRequests)
	case o.cfg.MaxLen < 1 || o.cfg.KVTokens < 1:
		return o, fmt.Errorf("-max-len %d and -kv-tokens %d must be positive", o.cfg.MaxLen, o.cfg.KVTokens)
	case o.cfg.StepTime <= 0:
		return o, fmt.Errorf("-step %v must be positive", o.cfg.StepTime)
	}
	return o, nil
}

// parseInts parses a comma-separated list of positive integers.
func parseInts(flagName, s string) ([]int, error) {
	var out []int
	for _, f := range strings.Split(s, ",") {
		n, err := strconv.Atoi(strings.TrimSpace(f))
		if err != nil || n < 1 {
			return nil, fmt.Errorf("%s: %q is not a positive integer", flagName, f)
		}
		out = append(out, n)
	}
	return out, nil
}

// syncWriter serializes writes from several goroutines.
type syncWriter struct {
	mu sync.Mutex
	w  io.Writer
}

func (s *syncWriter) Write(b []byte) (int, error) {
	s.mu.Lock()
	defer s.mu.Unlock()
	return s.w.Write(b)
}

// sharingBlockSize is the block size of the sharing study: the paper's and
// vLLM's default.
const sharingBlockSize = 16

// runSharing runs parallel sampling and beam search for every width on
// the first o.sharingRequests requests, two runs at a time.
func runSharing(reqs []bench.Request, o fragOptions, stderr io.Writer) ([]bench.SharingResult, error) {
	if o.sharingRequests == 0 {
		return nil, nil
	}
	reqs = reqs[:min(len(reqs), o.sharingRequests)]
	type job struct {
		mode  bench.SharingMode
		width int
	}
	var jobs []job
	for _, mode := range []bench.SharingMode{bench.SharingParallel, bench.SharingBeam} {
		for _, w := range o.widths {
			jobs = append(jobs, job{mode, w})
		}
	}
	out := make([]bench.SharingResult, len(jobs))
	errs := make([]error, len(jobs))
	work := make(chan int)
	var wg sync.WaitGroup
	for range min(runtime.GOMAXPROCS(0), len(jobs)) {
		wg.Go(func() {
			for i := range work {
				out[i], errs[i] = bench.Sharing(reqs, jobs[i].mode, jobs[i].width, sharingBlockSize, o.cfg)
				if o.progress {
					fmt.Fprintf(stderr, "frag: sharing %s n=%d done in %v\n", jobs[i].mode, jobs[i].width, out[i].Elapsed.Round(time.Millisecond))
				}
			}
		})
	}
	for i := range jobs {
		work <- i
	}
	close(work)
	wg.Wait()
	return out, errors.Join(errs...)
}

func runName(m bench.MemoryModel, bs int) string {
	if m == bench.ModelPaged {
		return fmt.Sprintf("paged/%d", bs)
	}
	return m.String()
}

func pct(f float64) string { return strconv.FormatFloat(100*f, 'f', 1, 64) + "%" }

func writeFragTable(w io.Writer, source string, reqs []bench.Request, o fragOptions, results []bench.FragResult, sharing []bench.SharingResult) {
	var in, out float64
	for _, r := range reqs {
		in += float64(r.InputTokens)
		out += float64(r.OutputTokens)
	}
	n := float64(len(reqs))
	arrivals := "all waiting at step 0"
	if o.cfg.Arrivals {
		arrivals = fmt.Sprintf("arriving by timestamp, %v per step", o.cfg.StepTime)
	}
	truncated := 0
	if len(results) > 0 {
		truncated = results[0].Truncated
	}
	fmt.Fprintf(w, "Fragmentation study: %s\n", source)
	fmt.Fprintf(w, "%d requests (before truncation mean prompt %.0f, mean output %.0f tokens; %d truncated to %d), %s;\n",
		len(reqs), in/n, out/n, truncated, o.cfg.MaxLen, arrivals)
	fmt.Fprintf(w, "KV budget %d token slots for every model. Shares of the budget, averaged over steps; paper = PagedAttention Fig. 2.\n\n", o.cfg.KVTokens)

	// Right-aligned columns; the paper's numbers sit between bars so the
	// eye can compare row by row.
	tw := tabwriter.NewWriter(w, 0, 0, 2, ' ', tabwriter.AlignRight)
	fmt.Fprintln(tw, "model\ttokens\treserved\tinternal\texternal\tfree\t|\tpaper: tokens\treserved\tinternal\texternal\t|\trunning\tsteps\ttok/step\tpreempted\t")
	for _, r := range results {
		p := bench.PaperFig2(r.Model)
		paper := fmt.Sprintf("%.1f%%\t%.1f%%\t%.1f%%\t%.1f%%", p.TokenStates, p.Reserved, p.Internal, p.External)
		if p.Partial {
			paper = fmt.Sprintf("%.1f%%\t-\t-\t-", p.TokenStates)
		}
		// The paper gives one paged figure, for its default 16-token
		// blocks; repeating it beside other sizes would suggest more.
		if r.Model == bench.ModelPaged && r.BlockSize != 16 {
			paper = "\t\t\t"
		}
		fmt.Fprintf(tw, "%s\t%s\t%s\t%s\t%s\t%s\t|\t%s\t|\t%.2f\t%d\t%.2f\t%d\t\n",
			runName(r.Model, r.BlockSize), pct(r.TokenStates), pct(r.Reserved), pct(r.Internal), pct(r.External), pct(r.Free),
			paper, r.AvgRunning, r.Steps, r.TokensPerStep, r.Preemptions)
	}
	tw.Flush()
	fmt.Fprint(w, `
tokens: slots holding the KV of a processed token; reserved: allocated, will hold a later token of
its request; internal: allocated, never used because the request ends first; external: free, but
the allocator cannot place the next waiting request although the free slots together would hold it;
free: free because no request waits or the next one needs more than all free slots together.
The Azure prompts are long next to a 2,048-token maximum (mean context about 1,155 tokens against
161 on the paper's ShareGPT), so a reservation is mostly filled by the prompt at once and the
contiguous baselines waste less here than in the paper; the setting is the paper's, not tuned.
`)
	if len(sharing) == 0 {
		return
	}
	fmt.Fprintf(w, "\nSharing: memory saved against no sharing (paged, %d-token blocks, first %d requests;\n", sharingBlockSize, min(len(reqs), o.sharingRequests))
	fmt.Fprint(w, "beams re-parent uniformly at random each step; paper ranges over widths 2-6 and request rates)\n\n")
	tw = tabwriter.NewWriter(w, 0, 0, 2, ' ', tabwriter.AlignRight)
	fmt.Fprintln(tw, "method\tn\tsaved\t|\tpaper: Alpaca\tShareGPT\t|\tprompts\tsequences\tsteps\tCoW copies\tpreempted\t")
	for _, s := range sharing {
		a, g := bench.PaperSharing(s.Mode)
		fmt.Fprintf(tw, "%s\t%d\t%s\t|\t%.1f-%.1f%%\t%.1f-%.1f%%\t|\t%.2f\t%.2f\t%d\t%d\t%d\t\n",
			s.Mode, s.Width, pct(s.Saved), a[0], a[1], g[0], g[1], s.AvgRunning, s.AvgSequences, s.Steps, s.Copies, s.Preemptions)
	}
	tw.Flush()
	fmt.Fprint(w, "\nThe long Azure prompts are shared by every output, hence savings above the paper's ShareGPT ranges.\n")
}

// fragJSON is one line of -json output for a memory model and block size.
// Shares are fractions of the budget (0 to 1), not percent, so consumers
// need no parsing of units; "study" tells frag rows from sharing rows.
type fragJSON struct {
	Study         string  `json:"study"`
	Model         string  `json:"model"`
	BlockSize     int     `json:"block_size"`
	TokenStates   float64 `json:"token_states"`
	Reserved      float64 `json:"reserved"`
	Internal      float64 `json:"internal"`
	External      float64 `json:"external"`
	Free          float64 `json:"free"`
	AvgRunning    float64 `json:"avg_running"`
	Steps         int     `json:"steps"`
	TokensPerStep float64 `json:"tokens_per_step"`
	Preemptions   int     `json:"preemptions"`
	Requests      int     `json:"requests"`
	Truncated     int     `json:"truncated"`
}

// sharingJSON is one line of -json output for a sharing run.
type sharingJSON struct {
	Study        string  `json:"study"`
	Mode         string  `json:"mode"`
	Width        int     `json:"width"`
	BlockSize    int     `json:"block_size"`
	Saved        float64 `json:"saved"`
	AvgRunning   float64 `json:"avg_running"`
	AvgSequences float64 `json:"avg_sequences"`
	Steps        int     `json:"steps"`
	Copies       uint64  `json:"copies"`
	Preemptions  int     `json:"preemptions"`
	Requests     int     `json:"requests"`
}

func writeFragJSON(w io.Writer, results []bench.FragResult, sharing []bench.SharingResult) error {
	enc := json.NewEncoder(w)
	for _, r := range results {
		if err := enc.Encode(fragJSON{"frag", r.Model.String(), r.BlockSize, r.TokenStates, r.Reserved, r.Internal, r.External,
			r.Free, r.AvgRunning, r.Steps, r.TokensPerStep, r.Preemptions, r.Requests, r.Truncated}); err != nil {
			return err
		}
	}
	for _, s := range sharing {
		if err := enc.Encode(sharingJSON{"sharing", s.Mode.String(), s.Width, s.BlockSize, s.Saved, s.AvgRunning, s.AvgSequences,
			s.Steps, s.Copies, s.Preemptions, s.Requests}); err != nil {
			return err
		}
	}
	return nil
}

// plotFrag draws one stacked bar per run, and the paper's bars beside the
// contiguous models and paged/16, as in the paper's Figure 2.
func plotFrag(path string, results []bench.FragResult) error {
	type bar struct {
		label  string
		shares [5]float64 // tokens, reserved, internal, external, free, in percent
	}
	var bars []bar
	for _, r := range results {
		bars = append(bars, bar{runName(r.Model, r.BlockSize), [5]float64{100 * r.TokenStates, 100 * r.Reserved, 100 * r.Internal, 100 * r.External, 100 * r.Free}})
		if r.Model != bench.ModelPaged || r.BlockSize == 16 {
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
			return err
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
	w, h := vg.Length(max(6, len(bars))*40)*vg.Points(1)+vg.Inch+legendW, 5*vg.Inch
	img := vgimg.New(w, h)
	dc := draw.New(img)
	p.Draw(draw.Crop(dc, 0, -legendW, 0, 0))
	leg.Draw(draw.Crop(dc, w-legendW, 0, 0, -0.3*vg.Inch))
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
