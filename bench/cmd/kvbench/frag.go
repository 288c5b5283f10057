package main

import (
	"cmp"
	"encoding/json"
	"errors"
	"fmt"
	"io"
	"runtime"
	"slices"
	"strconv"
	"strings"
	"sync"
	"text/tabwriter"

	"github.com/pagedkv/pagedkv/bench"
	"github.com/pagedkv/pagedkv/sched"
)

// fragOptions are the parsed flags of kvbench frag.
type fragOptions struct {
	trace, format   string
	requests        int
	cfg             bench.FragConfig
	blockSizes      []int
	models          []bench.MemoryModel
	allocators      []bench.Allocator
	json            bool
	sharingRequests int
	widths          []int
}

// runFrag prints the fragmentation study: the PagedAttention paper's
// Figure 2 method on a real trace, every memory model on one KV budget,
// the contiguous ones on each allocator.
func runFrag(args []string, stdout, stderr io.Writer) error {
	o, err := parseFrag(args, stderr)
	if err != nil {
		return err
	}
	reqs, source := bench.AzureConv(), bench.AzureAttribution+" (embedded)"
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

	// One run per contiguous model and allocator, one per block size for
	// paged, in the order of -models: the table follows it.
	var runs []bench.FragRun
	for _, m := range o.models {
		if m != bench.ModelPaged {
			for _, a := range o.allocators {
				runs = append(runs, bench.FragRun{Model: m, Allocator: a})
			}
			continue
		}
		for _, bs := range o.blockSizes {
			runs = append(runs, bench.FragRun{Model: m, BlockSize: bs})
		}
	}
	sharingReqs := min(len(reqs), o.sharingRequests)
	total := int64(len(runs) * len(reqs))
	if sharingReqs > 0 {
		for _, w := range o.widths {
			total += int64(sharingReqs) * (sharingWeight(bench.SharingParallel, w) + sharingWeight(bench.SharingBeam, w))
		}
	}
	// Progress counts finished requests over every run, a sharing run's
	// groups weighted by their cost.
	prog := startProgress(stderr, o.json, "frag", "requests", total)
	cfg := o.cfg
	if prog != nil {
		cfg.Progress = func(n int) { prog.Add(int64(n)) }
	}
	// The sharing runs go beside the study's, so no core idles while the
	// last long run of either finishes.
	var sharing []bench.SharingResult
	var sharingErr error
	sharingDone := make(chan struct{})
	go func() {
		defer close(sharingDone)
		sharing, sharingErr = runSharing(reqs[:sharingReqs], o.widths, cfg)
	}()
	results, err := bench.FragStudy(reqs, runs, cfg, nil)
	<-sharingDone
	prog.Stop()
	if err != nil {
		return err
	}
	if sharingErr != nil {
		return fmt.Errorf("the sharing study (raise -kv-tokens, lower -widths, or skip it with -sharing-requests 0): %w", sharingErr)
	}
	if o.json {
		return writeFragJSON(stdout, results, sharing)
	}
	writeFragTable(stdout, source, reqs, o, results, sharing)
	return nil
}

func parseFrag(args []string, stderr io.Writer) (fragOptions, error) {
	var o fragOptions
	fs := newFlags("frag", stderr)
	fs.StringVar(&o.trace, "trace", "", "trace `file`: any CSV in the Azure LLM inference trace format (TIMESTAMP,ContextTokens,GeneratedTokens), or a Mooncake JSONL (default: the embedded Azure conversation trace)")
	fs.StringVar(&o.format, "format", "", "trace format: azure or mooncake (default: by extension)")
	fs.IntVar(&o.requests, "requests", 0, "use the first N requests (0: all)")
	fs.IntVar(&o.cfg.MaxLen, "max-len", bench.DefaultFragMaxLen, "maximum request length in tokens; longer requests are truncated")
	fs.IntVar(&o.cfg.KVTokens, "kv-tokens", bench.DefaultFragKVTokens, "KV budget in token slots, the same for every memory model")
	blocks := fs.String("block-sizes", "1,2,4,8,16,32,64,128,256", "paged block sizes in tokens, comma separated")
	models := fs.String("models", "max,pow2,oracle,paged", "memory models, comma separated: paged, max, pow2, oracle")
	allocs := fs.String("allocators", "buddy,first-fit,compact", "allocators of the contiguous models, comma separated: buddy, first-fit, compact (ideal compaction)")
	fs.BoolVar(&o.cfg.Arrivals, "arrivals", false, "requests arrive at their trace timestamps (default: all wait at step 0)")
	fs.DurationVar(&o.cfg.StepTime, "step", bench.DefaultFragStepTime, "duration of one engine step with -arrivals")
	fs.BoolVar(&o.json, "json", false, "print one JSON object a line instead of the table")
	// Beam search forks and copies every step, about 5 s of CPU for the
	// whole trace; 1,000 requests give the savings of 2,000 within 0.2
	// points and keep the default run short.
	fs.IntVar(&o.sharingRequests, "sharing-requests", 1000, "run the sharing study on the first N requests (0: skip it)")
	widths := fs.String("widths", "2,4,6", "parallel-sampling outputs and beam widths of the sharing study")
	if err := fs.Parse(args); err != nil {
		return o, err
	}
	var err error
	if o.blockSizes, err = parseInts("-block-sizes", *blocks); err != nil {
		return o, &usageError{err: err}
	}
	// Bad widths matter only when the sharing study runs. One above the
	// samples a request may have is refused here, not after the frag
	// runs that go beside the sharing study.
	if o.widths, err = parseInts("-widths", *widths); err != nil && o.sharingRequests > 0 {
		return o, &usageError{err: err}
	}
	if w := slices.Max(append([]int{0}, o.widths...)); w > sched.MaxSamples && o.sharingRequests > 0 {
		return o, usageErrorf("-widths: %d is above %d, the most samples or beams a request may have", w, sched.MaxSamples)
	}
	for _, s := range strings.Split(*models, ",") {
		m, err := bench.ParseMemoryModel(strings.TrimSpace(s))
		if err != nil {
			return o, &usageError{err: err}
		}
		o.models = append(o.models, m)
	}
	for _, s := range strings.Split(*allocs, ",") {
		a, err := bench.ParseAllocator(strings.TrimSpace(s))
		if err != nil {
			return o, &usageError{err: err}
		}
		o.allocators = append(o.allocators, a)
	}
	switch {
	case o.requests < 0:
		return o, usageErrorf("-requests %d must not be negative", o.requests)
	case o.sharingRequests < 0:
		return o, usageErrorf("-sharing-requests %d must not be negative", o.sharingRequests)
	case o.cfg.MaxLen < 1 || o.cfg.KVTokens < o.cfg.MaxLen:
		return o, usageErrorf("-max-len %d must be positive and -kv-tokens %d at least as large", o.cfg.MaxLen, o.cfg.KVTokens)
	case slices.Max(o.blockSizes) > o.cfg.KVTokens:
		return o, usageErrorf("-block-sizes: %d tokens exceeds -kv-tokens %d", slices.Max(o.blockSizes), o.cfg.KVTokens)
	case o.cfg.StepTime <= 0:
		return o, usageErrorf("-step %v must be positive", o.cfg.StepTime)
	case o.format != "" && o.format != "azure" && o.format != "mooncake":
		return o, usageErrorf("-format %q: want azure or mooncake", o.format)
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

// sharingBlockSize is the block size of the sharing study: the paper's and
// vLLM's default.
const sharingBlockSize = 16

// sharingWeight is the cost of one group of a sharing run in finished
// requests of a frag run, for the progress estimate: measured on the Azure
// trace, parallel sampling costs about width^2 and beam search, which
// forks and copies every step, about 25 width.
func sharingWeight(mode bench.SharingMode, width int) int64 {
	if mode == bench.SharingBeam {
		return int64(25 * width)
	}
	return int64(width * width)
}

// runSharing runs parallel sampling and beam search for every width on
// reqs, two runs at a time.
func runSharing(reqs []bench.Request, widths []int, cfg bench.FragConfig) ([]bench.SharingResult, error) {
	if len(reqs) == 0 {
		return nil, nil
	}
	type job struct {
		mode  bench.SharingMode
		width int
	}
	var jobs []job
	for _, mode := range []bench.SharingMode{bench.SharingParallel, bench.SharingBeam} {
		for _, w := range widths {
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
				c := cfg
				if cfg.Progress != nil {
					weight := int(sharingWeight(jobs[i].mode, jobs[i].width))
					c.Progress = func(n int) { cfg.Progress(n * weight) }
				}
				out[i], errs[i] = bench.Sharing(reqs, jobs[i].mode, jobs[i].width, sharingBlockSize, c)
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

func pct(f float64) string { return strconv.FormatFloat(100*f, 'f', 1, 64) + "%" }

// ShareGPT's mean prompt and output lengths in the PagedAttention paper's
// sample (Kwon et al., SOSP 2023, Figure 11), for the footer's comparison.
const shareGPTPrompt, shareGPTOutput = 161, 338

func writeFragTable(w io.Writer, source string, reqs []bench.Request, o fragOptions, results []bench.FragResult, sharing []bench.SharingResult) {
	st := traceStats(reqs, o.cfg.MaxLen)
	arrivals := "all waiting at step 0"
	if o.cfg.Arrivals {
		arrivals = fmt.Sprintf("arriving by timestamp, %v per step", o.cfg.StepTime)
	}
	fmt.Fprintf(w, "Fragmentation study: %s\n", source)
	fmt.Fprintf(w, "%d requests (mean prompt %.0f, mean output %.0f tokens; %d truncated to %d), %s;\n",
		len(reqs), st.prompt, st.output, st.truncated, o.cfg.MaxLen, arrivals)
	fmt.Fprintf(w, "KV budget %d token slots for every model. Shares of the budget, averaged over steps; paper = PagedAttention Fig. 2 (buddy allocator).\n\n", o.cfg.KVTokens)

	// Right-aligned columns; the paper's numbers sit between bars so the
	// eye can compare row by row.
	tw := tabwriter.NewWriter(w, 0, 0, 2, ' ', tabwriter.AlignRight)
	fmt.Fprintln(tw, "model\tallocator\ttokens\treserved\tinternal\texternal\tfree\t|\tpaper: tokens\treserved\tinternal\texternal\t|\trunning\tsteps\ttok/step\tpreempted\t")
	for _, r := range results {
		p := bench.PaperFig2(r.Model)
		paper := fmt.Sprintf("%.1f%%\t%.1f%%\t%.1f%%\t%.1f%%", p.TokenStates, p.Reserved, p.Internal, p.External)
		if p.Partial {
			paper = fmt.Sprintf("%.1f%%\t-\t-\t-", p.TokenStates)
		}
		// The paper gives one paged figure, for its default 16-token
		// blocks, and ran its baselines on a buddy allocator; repeating
		// its figures elsewhere would suggest more.
		if (r.Model == bench.ModelPaged && r.BlockSize != 16) || (r.Model != bench.ModelPaged && r.Allocator != bench.AllocBuddy) {
			paper = "\t\t\t"
		}
		model, alloc := r.Model.String(), r.Allocator.String()
		if r.Model == bench.ModelPaged {
			model, alloc = r.Name(), "blocks"
		}
		fmt.Fprintf(tw, "%s\t%s\t%s\t%s\t%s\t%s\t%s\t|\t%s\t|\t%.2f\t%d\t%.2f\t%d\t\n",
			model, alloc, pct(r.TokenStates), pct(r.Reserved), pct(r.Internal), pct(r.External), pct(r.Free),
			paper, r.AvgRunning, r.Steps, r.TokensPerStep, r.Preemptions)
	}
	tw.Flush()
	fmt.Fprint(w, `
tokens: slots holding the KV of a processed token; reserved: allocated, will hold a later token of
its request; internal: allocated, never used because the request ends first; external: free, but
the allocator cannot place the next waiting request although the free slots together would hold it;
free: free because no request waits or the next one needs more than all free slots together.
`)
	fmt.Fprintf(w, "\nThis trace: mean prompt %.0f tokens, mean output %.0f (ShareGPT in the paper: %d and %d); after\n", st.prompt, st.output, shareGPTPrompt, shareGPTOutput)
	fmt.Fprintf(w, "truncation to %d the prompt is %.0f%% of a request's final length (ShareGPT: %.0f%%): that much of a\n", o.cfg.MaxLen, 100*st.promptShare, 100*float64(shareGPTPrompt)/float64(shareGPTPrompt+shareGPTOutput))
	fmt.Fprintln(w, "contiguous reservation fills at admission, so the more prompt-heavy the trace, the less the baselines waste.")
	for _, line := range fragVerdict(results) {
		fmt.Fprintln(w, line)
	}
	if len(sharing) == 0 {
		return
	}
	sst := traceStats(reqs[:min(len(reqs), o.sharingRequests)], o.cfg.MaxLen)
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
	fmt.Fprintf(w, "\nEvery output shares its prompt, %.0f%% of a request's final length on these requests (ShareGPT: %.0f%%):\n",
		100*sst.promptShare, 100*float64(shareGPTPrompt)/float64(shareGPTPrompt+shareGPTOutput))
	fmt.Fprintln(w, "the larger that share, the more sharing saves against the paper's ShareGPT ranges.")
}

// fragStats are a trace's lengths as the study sees them.
type fragStats struct {
	prompt, output float64 // means before truncation
	truncated      int
	promptShare    float64 // prompt / final length after truncation, over all tokens
}

func traceStats(reqs []bench.Request, maxLen int) fragStats {
	var st fragStats
	var in, out, tp, tf float64
	for _, r := range reqs {
		in += float64(r.InputTokens)
		out += float64(r.OutputTokens)
		p, f, cut := bench.Truncate(r.InputTokens, r.OutputTokens, maxLen)
		if cut {
			st.truncated++
		}
		tp += float64(p)
		tf += float64(f)
	}
	if n := float64(len(reqs)); n > 0 {
		st.prompt, st.output = in/n, out/n
	}
	if tf > 0 {
		st.promptShare = tp / tf
	}
	return st
}

// fragVerdict states the paper's claims against these results: paged
// memory (16-token blocks, or the best block size run) against the
// strongest contiguous reservation on any allocator, and the order Max <
// Pow2 < Oracle on each allocator.
func fragVerdict(results []bench.FragResult) []string {
	var paged, best *bench.FragResult
	byAlloc := map[bench.Allocator][]bench.FragResult{}
	var allocs []bench.Allocator
	for i := range results {
		r := &results[i]
		if r.Model == bench.ModelPaged {
			if paged == nil || r.BlockSize == 16 || (paged.BlockSize != 16 && r.TokenStates > paged.TokenStates) {
				paged = r
			}
			continue
		}
		if best == nil || r.TokenStates > best.TokenStates {
			best = r
		}
		if _, ok := byAlloc[r.Allocator]; !ok {
			allocs = append(allocs, r.Allocator)
		}
		byAlloc[r.Allocator] = append(byAlloc[r.Allocator], *r)
	}
	var out []string
	if paged != nil && best != nil {
		verdict := fmt.Sprintf("holds here, by %.1f points over the strongest", 100*(paged.TokenStates-best.TokenStates))
		if paged.TokenStates <= best.TokenStates {
			verdict = fmt.Sprintf("does NOT hold here: the strongest leads by %.1f points", 100*(best.TokenStates-paged.TokenStates))
		}
		out = append(out, fmt.Sprintf("Strongest contiguous reservation: %s, %s token states (%.2f running); %s: %s (%.2f running).",
			best.Name(), pct(best.TokenStates), best.AvgRunning, paged.Name(), pct(paged.TokenStates), paged.AvgRunning),
			"The paper's claim that paged memory beats every contiguous reservation "+verdict+".")
	}
	for _, a := range allocs {
		rs := byAlloc[a]
		if len(rs) < 2 {
			continue
		}
		slices.SortStableFunc(rs, func(x, y bench.FragResult) int { return cmp.Compare(x.TokenStates, y.TokenStates) })
		parts := make([]string, len(rs))
		for i, r := range rs {
			parts[i] = fmt.Sprintf("%s %s", r.Model, pct(r.TokenStates))
		}
		order := "the paper's order"
		if !slices.IsSortedFunc(rs, func(x, y bench.FragResult) int { return cmp.Compare(x.Model, y.Model) }) {
			order = "not the paper's Max < Pow2 < Oracle"
		}
		out = append(out, fmt.Sprintf("On %s: %s (%s).", a, strings.Join(parts, " < "), order))
	}
	return out
}

// fragJSON is one line of -json output for a memory model and block size.
// Shares are fractions of the budget (0 to 1), not percent, so consumers
// need no parsing of units; "study" tells frag rows from sharing rows.
type fragJSON struct {
	Study         string  `json:"study"`
	Model         string  `json:"model"`
	Allocator     string  `json:"allocator,omitempty"`
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
		alloc := r.Allocator.String()
		if r.Model == bench.ModelPaged {
			alloc = ""
		}
		if err := enc.Encode(fragJSON{"frag", r.Model.String(), alloc, r.BlockSize, r.TokenStates, r.Reserved, r.Internal, r.External,
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
