package main

import (
	"encoding/json"
	"errors"
	"fmt"
	"io"
	"math"
	"strconv"
	"strings"
	"text/tabwriter"

	"github.com/pagedkv/pagedkv/bench"
	"github.com/pagedkv/pagedkv/kvmem"
)

// planRow is one KV type's line of the plan.
type planRow struct {
	KV             string `json:"kv"`
	TokenBytes     int64  `json:"token_bytes"`
	DeviceBytes    int64  `json:"token_bytes_per_device"`
	SequenceBytes  int64  `json:"sequence_bytes_per_device"` // -1: past int64
	NumBlocks      int64  `json:"num_blocks_per_device"`
	KVTokens       int64  `json:"kv_tokens"`
	MaxSequences   int64  `json:"max_sequences"`
	LongestContext int64  `json:"longest_context"`
	Error          string `json:"error,omitempty"`
	// PoolError says why a paged.Manager cannot take this pool as planned
	// (more than kvmem.MaxBlocks blocks: use larger blocks); the row's
	// figures stand as the memory's capacity.
	PoolError string `json:"pool_error,omitempty"`
}

// planReport is the whole plan, as -json prints it.
type planReport struct {
	Model          string    `json:"model"`
	Params         int64     `json:"params"`
	ActiveParams   int64     `json:"active_params"`
	Weights        string    `json:"weights"`
	WeightBytes    int64     `json:"weight_bytes"`
	DeviceWeights  int64     `json:"weight_bytes_per_device"`
	GPUs           int       `json:"gpus"`
	GPUMemory      int64     `json:"gpu_memory"`
	TP             int       `json:"tp"`
	CP             int       `json:"cp"`
	Replicas       int       `json:"replicas"`
	Reserve        int64     `json:"reserve_bytes_per_device"`
	KVBudget       int64     `json:"kv_budget_per_device"`
	Context        int       `json:"context"`
	ModelContext   int       `json:"model_context,omitempty"`
	BlockSize      int       `json:"block_size"`
	PrefillChunk   int       `json:"prefill_chunk"`
	NoHybridPins   bool      `json:"no_hybrid_pins"`
	SpecTokens     int       `json:"spec_tokens"`
	LayersPerBlock int       `json:"layers_per_block"`
	WeightsFit     bool      `json:"weights_fit"`
	WeightsMessage string    `json:"weights_message,omitempty"`
	Rows           []planRow `json:"rows"`
}

// runPlan plans KV capacity for a model on a set of GPUs, one row per KV
// type. With no flags it plans Kimi K2 with FP8 weights on 8 x 141 GB at a
// 256K context: the weights take almost everything, and the row per KV
// type shows how quantizing the cache buys context.
func runPlan(args []string, stdout, stderr io.Writer) error {
	fs := newFlags("plan", stderr)
	model := fs.String("model", "Kimi-K2", "preset model `name` ("+modelNames()+")")
	layers := fs.Int("layers", 0, "custom model: attention layers, all full attention")
	groups := fs.String("groups", "", "custom layer groups, `kind:layers[:arg],...`: full:10, window:52:1024 (window in tokens), chunked:36:8192, state:36:1097728[:heads] (bytes per layer), shared:4:0 (group index)")
	kvHeads := fs.Int("kv-heads", 0, "custom model: KV heads (GQA/MQA)")
	headDim := fs.Int("head-dim", 0, "custom model: head dimension")
	mlaLatent := fs.Int("mla-latent", 0, "custom model: MLA compressed KV dimension (kv_lora_rank)")
	mlaRope := fs.Int("mla-rope", 0, "custom model: MLA decoupled rope dimension")
	params := fs.String("params", "", "custom model: total parameters, every expert counted (e.g. 70.6B, 1.03T)")
	// The defaults are the brief's newcomer run: Kimi K2, FP8 weights, an
	// 8 x H200 node. 5% reserve rather than vLLM's 10% (gpu_memory_utilization
	// 0.9): at 10% the FP8 weights plus reserve already exceed 141 GB, and
	// the point of the default is to show how little KV is left, not a
	// refusal.
	weights := fs.String("weights", "fp8", "weight `type` (bf16, fp8, int4-g128, nvfp4, ...)")
	kv := fs.String("kv", "all", "KV `type` (key:value for different types, e.g. q8_0:q4_0), a comma-separated list, or all")
	gpus := fs.Int("gpus", 8, "number of devices")
	gpuMem := fs.String("gpu-mem", "141GB", "memory per device (80GB, 141GB, 192GiB; GB = 1e9, GiB = 2^30)")
	reserve := fs.String("reserve", "0.05", "kept per device for activations and runtime: a fraction (0.1) or bytes (4GiB)")
	tp := fs.Int("tp", 0, "tensor parallel degree (default gpus/cp)")
	cp := fs.Int("cp", 1, "context parallel degree (ring attention)")
	context := fs.String("context", "", "context length in tokens (262144, 256K, 128k; default the model's)")
	blockSize := fs.Int("block-size", kvmem.DefaultBlockSize, "block size in tokens")
	prefillChunk := fs.String("prefill-chunk", "1", "most tokens of one sequence computed in one step (a prompt's prefill chunk, 8192, 8K); window and chunked layers hold a whole step's blocks; 1 counts the decode peak only")
	noPins := fs.Bool("no-hybrid-pins", false, "plan for a manager that pins nothing for hybrid prefix hits (vLLM, paged's compatible mode, no prefix caching); by default each sequence is also charged what paged's default mode pins for it: the window before its branch point and two state checkpoints")
	specTokens := fs.Int("spec-tokens", 0, "speculative decoding: draft `tokens` per sequence per step (vLLM's num_speculative_tokens, sched's MaxDrafts); each sequence is charged that many more tokens of KV and, in state layers, one more state per draft")
	asJSON := fs.Bool("json", false, "print JSON")
	if err := fs.Parse(args); err != nil {
		return err
	}
	// Which flags were given decides between a preset and a custom shape,
	// so a flag set to its zero value still counts.
	set := fs.given()

	m, err := planModel(*model, set, *layers, *groups, *kvHeads, *headDim, *mlaLatent, *mlaRope, *params)
	if err != nil {
		return &usageError{err: err} // every error of planModel names a flag's value
	}
	wt, err := kvmem.ParseType(*weights)
	if err != nil {
		return usageErrorf("-weights: %w", err)
	}
	kvTypes, err := parseKVList(*kv)
	if err != nil {
		return usageErrorf("-kv: %w", err)
	}
	mem, err := parseBytes(*gpuMem)
	if err != nil {
		return usageErrorf("-gpu-mem: %w", err)
	}
	d := kvmem.Deployment{GPUs: *gpus, GPUMemory: mem, TP: *tp, CP: *cp, BlockSize: *blockSize, NoHybridPins: *noPins, SpecTokens: *specTokens}
	if d.PrefillChunk, err = parseTokens(*prefillChunk); err != nil {
		return usageErrorf("-prefill-chunk: %w", err)
	}
	if d.Reserve, d.ReserveBytes, err = parseReserve(*reserve); err != nil {
		return usageErrorf("-reserve: %w", err)
	}
	// Planning at the model's own maximum is the question most users ask
	// first; a custom shape has none, so it must be given.
	ctx := m.ContextLen
	if *context != "" {
		if ctx, err = parseTokens(*context); err != nil {
			return usageErrorf("-context: %w", err)
		}
	}
	switch {
	case *gpus <= 0:
		return usageErrorf("-gpus %d must be positive", *gpus)
	case *tp < 0:
		return usageErrorf("-tp %d must be positive", *tp)
	case *cp <= 0:
		return usageErrorf("-cp %d must be positive", *cp)
	case *blockSize <= 0:
		return usageErrorf("-block-size %d must be positive", *blockSize)
	case ctx <= 0:
		return usageErrorf("-context is required for a custom model")
	}

	rep, err := buildPlan(m, wt, kvTypes, d, ctx)
	if errors.Is(err, kvmem.ErrInvalid) {
		// A combination of flags the planner refuses (-tp or -cp above
		// -gpus): a usage error, as a bad value of one flag is. (A pool
		// past kvmem.MaxBlocks is a row's PoolError: the memory's figures
		// stand, but a manager cannot take that pool.)
		return &usageError{err: err}
	}
	if err != nil {
		return err
	}
	if *asJSON {
		enc := json.NewEncoder(stdout)
		enc.SetIndent("", "  ")
		if err := enc.Encode(rep); err != nil {
			return err
		}
	} else {
		printPlan(stdout, m, rep)
	}
	// The report (header, or JSON with weights_fit false) is printed before
	// failing, so a script still sees the sizes; the exit status says no.
	if !rep.WeightsFit {
		return errors.New(rep.WeightsMessage)
	}
	return nil
}

// buildPlan computes the report; a deployment whose weights do not fit is
// a report with WeightsFit false and no rows, not an error.
func buildPlan(m kvmem.Model, wt kvmem.Type, kvTypes []kvPair, d kvmem.Deployment, ctx int) (planReport, error) {
	w, err := m.WeightBytes(wt)
	if err != nil {
		return planReport{}, fmt.Errorf("-weights: %w", err)
	}
	rep := planReport{
		Model: m.Name, Params: m.Params, ActiveParams: m.ActiveParams, Weights: wt.String(), WeightBytes: w,
		GPUs: d.GPUs, GPUMemory: d.GPUMemory, Context: ctx, ModelContext: m.ContextLen, BlockSize: d.BlockSize, PrefillChunk: d.PrefillChunk, NoHybridPins: d.NoHybridPins,
		SpecTokens: d.SpecTokens,
		Rows:       []planRow{},
	}
	// Every type must pack the model's rows, even when the weights do not
	// fit, so a bad -kv or -head-dim is always an error.
	for _, t := range kvTypes {
		if _, err := m.Spec(t.key, t.value).TokenBytes(); err != nil {
			return planReport{}, fmt.Errorf("-kv %v: %w", t, err)
		}
		rep.LayersPerBlock, _ = m.Spec(t.key, t.value).LayersPerBlock()
	}
	budget, err := d.KVBudget(w)
	switch {
	case errors.Is(err, kvmem.ErrTooSmall):
		fillDeployment(&rep, d, w)
		// Say which of the two does not fit and which flag changes it.
		if rep.DeviceWeights > rep.GPUMemory {
			rep.WeightsMessage = fmt.Sprintf("the %s weights need %s per device (%s over TP %d) but a device has %s (-gpu-mem): add -gpus, raise -tp or use a smaller -weights type",
				wt, humanBytes(rep.DeviceWeights), humanBytes(w), rep.TP, humanBytes(rep.GPUMemory))
		} else {
			rep.WeightsMessage = fmt.Sprintf("the %s weights (%s per device) fit, but with the reserve (%s) they exceed a device's %s: lower -reserve",
				wt, humanBytes(rep.DeviceWeights), humanBytes(rep.Reserve), humanBytes(rep.GPUMemory))
		}
		return rep, nil
	case err != nil:
		return planReport{}, err
	}
	rep.WeightsFit, rep.KVBudget = true, budget
	for _, t := range kvTypes {
		spec := m.Spec(t.key, t.value)
		row := planRow{KV: t.String()}
		row.TokenBytes, _ = spec.TokenBytes()
		c, err := kvmem.Plan(spec, w, d)
		switch {
		// Fewer than two blocks is a property of this type's block size,
		// not of the deployment: a row with the reason, not a failure.
		case errors.Is(err, kvmem.ErrTooSmall):
			row.Error = err.Error()
		case err != nil:
			return planReport{}, err
		default:
			rep.TP, rep.CP, rep.Replicas = c.Deployment.TP, c.Deployment.CP, c.Replicas
			rep.DeviceWeights, rep.Reserve = c.WeightBytes, c.ReserveBytes
			row.DeviceBytes, row.NumBlocks, row.SequenceBytes = c.TokenBytes, c.NumBlocks, c.SequenceBytes(ctx)
			row.KVTokens, row.MaxSequences, row.LongestContext = c.Tokens(), c.MaxSequences(ctx), c.MaxContext(1)
			if _, err := c.PoolBlocks(); err != nil {
				row.PoolError = err.Error()
			}
		}
		rep.Rows = append(rep.Rows, row)
	}
	fillDeployment(&rep, d, w)
	return rep, nil
}

// fillDeployment records the deployment's defaults in rep when no row did.
// It repeats kvmem's defaulting (TP = GPUs/CP, weights split over TP) only
// for the header of a deployment whose weights do not fit, where no
// Capacity exists to read them from.
func fillDeployment(rep *planReport, d kvmem.Deployment, w int64) {
	if rep.TP != 0 {
		return
	}
	rep.CP = max(d.CP, 1)
	rep.TP = d.TP
	if rep.TP == 0 {
		rep.TP = max(d.GPUs/rep.CP, 1)
	}
	rep.Replicas = d.GPUs / (rep.TP * rep.CP)
	rep.DeviceWeights = (w + int64(rep.TP) - 1) / int64(rep.TP)
	rep.Reserve = int64(math.Ceil(d.Reserve*float64(d.GPUMemory))) + d.ReserveBytes
}

// printPlan prints the report as a header and a table.
func printPlan(w io.Writer, m kvmem.Model, r planReport) {
	shape := fmt.Sprintf("%s x %d KV heads x %d (%d query heads)", describeLayers(m.KV), m.KV.KVHeads, m.KV.HeadDim, m.QueryHeads)
	if m.KV.MLA() {
		shape = fmt.Sprintf("MLA, %s x (latent %d + rope %d), one row replicated on every TP rank", describeLayers(m.KV), m.KV.MLALatent, m.KV.MLARope)
	}
	fmt.Fprintf(w, "model    %s: %s\n", m.Name, shape)
	moe := ""
	if m.Experts > 0 {
		moe = fmt.Sprintf(", %s active (%d experts, all resident)", humanCount(m.ActiveParams), m.Experts)
	}
	fmt.Fprintf(w, "params   %s%s\n", humanCount(m.Params), moe)
	fmt.Fprintf(w, "devices  %d x %s, TP %d, CP %d, %d replica(s)\n", r.GPUs, humanBytes(r.GPUMemory), r.TP, r.CP, r.Replicas)
	fmt.Fprintf(w, "weights  %s: %s, %s per device; reserve %s per device\n",
		r.Weights, humanBytes(r.WeightBytes), humanBytes(r.DeviceWeights), humanBytes(r.Reserve))
	if !r.WeightsFit {
		fmt.Fprintf(w, "\nDOES NOT FIT: %s\n", r.WeightsMessage)
		return
	}
	// A hybrid model's block spans only some of its layers (kvmem's
	// LayersPerBlock), which the blocks column needs to be read right.
	layers := ""
	if m.KV.Hybrid() {
		layers = fmt.Sprintf(" tokens x %d layers", r.LayersPerBlock)
	}
	if r.PrefillChunk > 1 {
		layers += fmt.Sprintf(", prefill chunk %s", bench.Thousands(int64(r.PrefillChunk)))
	}
	if r.NoHybridPins && m.KV.Hybrid() {
		layers += ", no hybrid pins"
	}
	if r.SpecTokens > 0 {
		layers += fmt.Sprintf(", %d draft tokens", r.SpecTokens)
	}
	fmt.Fprintf(w, "KV       %s per device; context %s tokens, block size %d%s\n\n", humanBytes(r.KVBudget), bench.Thousands(int64(r.Context)), r.BlockSize, layers)

	// Right-aligned numbers read as columns; the type name is padded to a
	// fixed width so it stays left-aligned inside the right-aligned cell.
	tw := tabwriter.NewWriter(w, 0, 0, 2, ' ', tabwriter.AlignRight)
	fmt.Fprintf(tw, "%-9s\tbytes/token\tper device\tseq @ %s/device\tblocks/device\tKV tokens\tseqs @ %s\tlongest 1 seq\t\n", "kv type", humanTokens(r.Context), humanTokens(r.Context))
	var fit, miss []string
	for _, row := range r.Rows {
		if row.Error != "" {
			fmt.Fprintf(tw, "%-9s\t%s\t%s\t%s\t%s\t%s\t%s\t%s\t\n", row.KV, bench.Thousands(row.TokenBytes), "-", "-", "0", "0", "0", "0")
		} else {
			fmt.Fprintf(tw, "%-9s\t%s\t%s\t%s\t%s\t%s\t%s\t%s\t\n", row.KV, bench.Thousands(row.TokenBytes), bench.Thousands(row.DeviceBytes),
				seqBytes(row.SequenceBytes), bench.Thousands(row.NumBlocks), tokensOrUnbounded(row.KVTokens), bench.Thousands(row.MaxSequences), tokensOrUnbounded(row.LongestContext))
		}
		if row.MaxSequences > 0 {
			fit = append(fit, row.KV)
		} else {
			miss = append(miss, row.KV)
		}
	}
	tw.Flush()
	for _, row := range r.Rows {
		if row.Error != "" {
			fmt.Fprintf(w, "%s: %s\n", row.KV, row.Error)
		}
		if row.PoolError != "" {
			fmt.Fprintf(w, "%s: a paged.Manager cannot take this pool: %s\n", row.KV, row.PoolError)
		}
	}
	fmt.Fprintln(w)
	if r.ModelContext > 0 && r.Context > r.ModelContext {
		fmt.Fprintf(w, "Note: %s's config allows %s tokens; the plan is for memory only.\n", r.Model, bench.Thousands(int64(r.ModelContext)))
	}
	// The last line is the answer a newcomer wants: which types hold one
	// sequence at this context. List whichever side is shorter.
	ctx := bench.Thousands(int64(r.Context))
	switch {
	case len(miss) == 0:
		fmt.Fprintf(w, "Every KV type holds at least one %s-token sequence.\n", ctx)
	case len(fit) == 0:
		fmt.Fprintf(w, "Not one %s-token sequence fits at any KV type: add devices, use -cp, or quantize the weights.\n", ctx)
	case len(fit) <= len(miss):
		fmt.Fprintf(w, "A %s-token sequence fits only with %s KV.\n", ctx, strings.Join(fit, ", "))
	default:
		fmt.Fprintf(w, "A %s-token sequence fits with every KV type but %s.\n", ctx, strings.Join(miss, ", "))
	}
}

// planModel returns the preset, with any custom shape flags applied; with
// shape flags and no -model it builds a custom model from them alone.
func planModel(name string, set map[string]bool, layers int, groups string, kvHeads, headDim, latent, rope int, params string) (kvmem.Model, error) {
	// With -model, shape flags override single fields (what-if questions:
	// "Llama-3.1-8B with 40 layers", "Gemma-3-27B as if every layer were
	// full attention"); without it they must describe the whole model,
	// since defaulting to Kimi K2's other fields would mix two models
	// silently.
	custom := set["layers"] || set["groups"] || set["kv-heads"] || set["head-dim"] || set["mla-latent"] || set["mla-rope"] || set["params"]
	var m kvmem.Model
	if set["model"] || !custom {
		var err error
		if m, err = kvmem.LookupModel(name); err != nil {
			return m, fmt.Errorf("-model: %w", err)
		}
	} else {
		m.Name = "custom"
	}
	switch {
	case set["layers"] && set["groups"]:
		return m, errors.New("-layers and -groups both give the layers: use one")
	case set["layers"]:
		// Resizing one group of a hybrid preset by a total would have to
		// guess which group grows, so -layers means all full attention.
		m.KV.Layers, m.KV.Groups = layers, nil
	case set["groups"]:
		g, err := parseGroups(groups)
		if err != nil {
			return m, fmt.Errorf("-groups: %w", err)
		}
		m.KV.Layers, m.KV.Groups = 0, g
	}
	// Each flag overrides its own field only: "-model llama-3.1-8b
	// -head-dim 64" keeps the preset's 8 KV heads (it used to zero them
	// and refuse the run), "-model deepseek-v3 -mla-rope 0" its latent.
	// Switching between standard attention and MLA clears the other
	// kind's fields.
	if set["kv-heads"] || set["head-dim"] {
		if m.KV.MLA() {
			m.KV.MLALatent, m.KV.MLARope = 0, 0
		}
		if set["kv-heads"] {
			m.KV.KVHeads = kvHeads
		}
		if set["head-dim"] {
			m.KV.HeadDim = headDim
		}
		// A custom model's query heads are unknown: show its KV heads
		// (as MHA); a preset keeps its own unless it has fewer.
		if m.Name == "custom" || m.QueryHeads < m.KV.KVHeads {
			m.QueryHeads = m.KV.KVHeads
		}
	}
	if set["mla-latent"] || set["mla-rope"] {
		if !m.KV.MLA() {
			m.KV.KVHeads, m.KV.HeadDim = 0, 0
		}
		if set["mla-latent"] {
			m.KV.MLALatent = latent
		}
		if set["mla-rope"] {
			m.KV.MLARope = rope
		}
	}
	// A custom parameter count describes a dense model: nothing says how
	// many of them are active.
	if set["params"] {
		p, err := parseCount(params)
		if err != nil {
			return m, fmt.Errorf("-params: %w", err)
		}
		m.Params, m.ActiveParams, m.Experts = p, p, 0
	}
	if custom && m.Name != "custom" {
		m.Name += " (modified)"
	}
	switch {
	case len(m.KV.Groups) == 0 && m.KV.Layers <= 0:
		return m, fmt.Errorf("-layers %d must be positive (or give -groups)", m.KV.Layers)
	case !m.KV.MLA() && (m.KV.KVHeads <= 0 || m.KV.HeadDim <= 0):
		return m, fmt.Errorf("-kv-heads %d and -head-dim %d must be positive (or give -mla-latent)", m.KV.KVHeads, m.KV.HeadDim)
	case m.KV.MLA() && m.KV.MLALatent <= 0:
		return m, fmt.Errorf("-mla-latent %d must be positive", m.KV.MLALatent)
	case m.KV.MLARope < 0:
		return m, fmt.Errorf("-mla-rope %d must not be negative", m.KV.MLARope)
	case m.Params <= 0:
		return m, fmt.Errorf("-params is required for a custom model")
	}
	return m, nil
}

// parseGroups reads -groups: comma-separated kind:layers[:arg] items, the
// arg being a window or chunk in tokens, a state's bytes per layer
// (optionally :heads for its tensor-parallel split), or the index of the
// group a shared group reads. Range checks are the library's.
func parseGroups(s string) ([]kvmem.Group, error) {
	var out []kvmem.Group
	for item := range strings.SplitSeq(s, ",") {
		f := strings.Split(strings.TrimSpace(item), ":")
		nums := make([]int64, len(f)-1)
		for i, v := range f[1:] {
			n, err := strconv.ParseInt(v, 10, 64)
			if err != nil {
				return nil, fmt.Errorf("%q: %q is not a whole number", item, v)
			}
			nums[i] = n
		}
		want := map[string]int{"full": 1, "window": 2, "chunked": 2, "state": 2, "shared": 2}
		kind := strings.ToLower(f[0])
		n, ok := want[kind]
		if !ok {
			return nil, fmt.Errorf("%q: unknown kind %q (want full, window, chunked, state or shared)", item, f[0])
		}
		if len(nums) != n && !(kind == "state" && len(nums) == 3) {
			return nil, fmt.Errorf("%q: want %s", item, map[string]string{
				"full": "full:layers", "window": "window:layers:tokens", "chunked": "chunked:layers:tokens",
				"state": "state:layers:bytes[:heads]", "shared": "shared:layers:group"}[kind])
		}
		// Every field but a state's bytes is an int, 32 bits on some
		// platforms, where int(n) wrapped 4294967297 layers to 1.
		for i, n := range nums {
			if (kind != "state" || i != 1) && int64(int(n)) != n {
				return nil, fmt.Errorf("%q: %d is out of range", item, n)
			}
		}
		g := kvmem.Group{Layers: int(nums[0])}
		switch kind {
		case "window":
			g.Kind, g.Window = kvmem.Window, int(nums[1])
		case "chunked":
			g.Kind, g.Chunk = kvmem.Chunked, int(nums[1])
		case "state":
			g.Kind, g.StateBytes = kvmem.State, nums[1]
			if len(nums) == 3 {
				g.StateHeads = int(nums[2])
			}
		case "shared":
			g.Kind, g.Of = kvmem.Shared, int(nums[1])
		}
		out = append(out, g)
	}
	return out, nil
}

// describeLayers returns "62 layers (10 full, 52 window 1,024)", or "32
// layers" when they are all full attention.
func describeLayers(s kvmem.Spec) string {
	n := fmt.Sprintf("%d layers", s.NumLayers())
	if !s.Hybrid() {
		return n
	}
	var parts []string
	for _, g := range s.Groups {
		p := fmt.Sprintf("%d %v", g.Layers, g.Kind)
		switch g.Kind {
		case kvmem.Window:
			p += " " + bench.Thousands(int64(g.Window))
		case kvmem.Chunked:
			p += " " + bench.Thousands(int64(g.Chunk))
		case kvmem.State:
			p += " of " + humanBytes(g.StateBytes)
		case kvmem.Shared:
			p += fmt.Sprintf(" of group %d", g.Of)
		}
		parts = append(parts, p)
	}
	return n + " (" + strings.Join(parts, ", ") + ")"
}

// kvPair is a row's key and value types; value is unset when it is the
// same as key.
type kvPair struct{ key, value kvmem.Type }

// String returns "q8_0", or "q8_0:q4_0" when the value type differs.
func (p kvPair) String() string {
	if p.value.IsZero() || p.value == p.key {
		return p.key.String()
	}
	return p.key.String() + ":" + p.value.String()
}

// parseKVList parses "all" or a comma-separated list of KV types, each a
// type or key:value (llama.cpp's -ctk/-ctv pairs, where keys usually get
// the wider type since attention scores are more sensitive to them).
func parseKVList(s string) ([]kvPair, error) {
	if strings.EqualFold(strings.TrimSpace(s), "all") {
		var out []kvPair
		for _, t := range kvmem.Types() {
			out = append(out, kvPair{key: t})
		}
		return out, nil
	}
	var out []kvPair
	for part := range strings.SplitSeq(s, ",") {
		k, v, pair := strings.Cut(part, ":")
		var p kvPair
		var err error
		if p.key, err = kvmem.ParseType(k); err != nil {
			return nil, err
		}
		if pair {
			if p.value, err = kvmem.ParseType(v); err != nil {
				return nil, err
			}
		}
		out = append(out, p)
	}
	return out, nil
}

// parseBytes reads a size: a plain byte count, or a number with an SI unit
// (kB, MB, GB, TB; K, M, G, T) or a binary one (KiB, MiB, GiB, TiB; Ki, Mi,
// Gi, Ti). Case does not matter.
func parseBytes(s string) (int64, error) {
	num, unit := splitUnit(s)
	// SI for GB, binary for GiB, as the units say: vendors sell "141 GB"
	// and drivers report MiB, and the planner should not guess which one
	// the user meant.
	mult := map[string]float64{
		"": 1, "b": 1,
		"k": 1e3, "kb": 1e3, "m": 1e6, "mb": 1e6, "g": 1e9, "gb": 1e9, "t": 1e12, "tb": 1e12,
		"ki": 1 << 10, "kib": 1 << 10, "mi": 1 << 20, "mib": 1 << 20, "gi": 1 << 30, "gib": 1 << 30, "ti": 1 << 40, "tib": 1 << 40,
	}[strings.ToLower(unit)]
	if mult == 0 {
		return 0, fmt.Errorf("size %q: unknown unit %q (want GB, GiB, TB, ...)", s, unit)
	}
	v, err := strconv.ParseFloat(num, 64)
	if err != nil || !(v > 0) || v*mult >= 1<<60 {
		return 0, fmt.Errorf("size %q must be a positive number of bytes below 2^60", s)
	}
	return int64(math.Round(v * mult)), nil
}

// parseReserve reads a fraction below 1 or a size with a unit.
func parseReserve(s string) (frac float64, bytes int64, err error) {
	// A bare number of 1 or more is refused rather than read as bytes:
	// "-reserve 4" is far more likely meant as 4 GB than as 4 bytes.
	num, unit := splitUnit(s)
	if unit == "" {
		v, err := strconv.ParseFloat(num, 64)
		if err != nil || !(v >= 0 && v < 1) {
			return 0, 0, fmt.Errorf("%q: give a fraction in [0, 1) such as 0.1, or bytes with a unit such as 4GiB", s)
		}
		return v, 0, nil
	}
	b, err := parseBytes(s)
	return 0, b, err
}

// parseTokens reads a token count: 262144, 256K or 128k (K = 1024), 1M
// (M = 1048576).
func parseTokens(s string) (int, error) {
	num, unit := splitUnit(s)
	// Context lengths are quoted in binary K: "128K" is 131,072 in every
	// model config, so K = 1024 here, unlike memory sizes.
	mult := map[string]int64{"": 1, "k": 1 << 10, "m": 1 << 20}[strings.ToLower(unit)]
	v, err := strconv.ParseInt(num, 10, 64)
	// At most 2^40 tokens, and no more than an int holds: where int has
	// 32 bits, int(v*mult) wrapped a longer count to another one ("4M"
	// became 0, "4194305k" 1,024) and the plan was printed for it.
	limit := min(int64(1)<<40, math.MaxInt)
	if mult == 0 || err != nil || v <= 0 || v > limit/mult {
		return 0, fmt.Errorf("%q must be a positive token count such as 262144, 256K or 128k, at most %s", s, bench.Thousands(limit))
	}
	return int(v * mult), nil
}

// parseCount reads a parameter count: 8030261248, 70.6B, 1.03T, 405e9.
func parseCount(s string) (int64, error) {
	num, unit := splitUnit(s)
	mult := map[string]float64{"": 1, "k": 1e3, "m": 1e6, "b": 1e9, "t": 1e12}[strings.ToLower(unit)]
	v, err := strconv.ParseFloat(num, 64)
	if mult == 0 || err != nil || !(v > 0) || v*mult >= 1<<62 {
		return 0, fmt.Errorf("%q must be a positive parameter count such as 70.6B or 1.03T", s)
	}
	return int64(math.Round(v * mult)), nil
}

// splitUnit splits "141GB" into "141" and "GB". Signs and exponents stay
// with the number, so "405e9" and "-1GB" reach ParseFloat whole and fail or
// pass there.
func splitUnit(s string) (num, unit string) {
	s = strings.TrimSpace(s)
	i := strings.IndexFunc(s, func(r rune) bool {
		return (r < '0' || r > '9') && r != '.' && r != '-' && r != '+' && r != 'e' && r != 'E'
	})
	if i < 0 {
		return s, ""
	}
	return s[:i], strings.TrimSpace(s[i:])
}

func modelNames() string {
	var names []string
	for _, m := range kvmem.Models() {
		names = append(names, m.Name)
	}
	return strings.Join(names, ", ")
}

// humanBytes formats bytes in SI units with three significant digits, as
// GPU memory is sold: 141 GB, 7.05 GB, 1.03 TB.
func humanBytes(n int64) string {
	if n < 1000 {
		return fmt.Sprintf("%d B", n)
	}
	f := float64(n)
	u := 0
	units := []string{"B", "kB", "MB", "GB", "TB", "PB", "EB"}
	for f >= 999.5 && u < len(units)-1 {
		f /= 1000
		u++
	}
	d := max(0, 2-int(math.Floor(math.Log10(f))))
	s := strconv.FormatFloat(f, 'f', d, 64)
	// A value that rounds up to the next power of ten (9.996 GB, 999,600
	// B) printed four digits, "10.00 GB" or "1.000 MB": one decimal fewer
	// keeps three.
	if v, _ := strconv.ParseFloat(s, 64); d > 0 && v >= math.Pow10(3-d) {
		s = strconv.FormatFloat(f, 'f', d-1, 64)
	}
	return s + " " + units[u]
}

// seqBytes formats a sequence's bytes, or says that they pass int64
// (kvmem's -1): a sequence that size was printed as "-1 B".
func seqBytes(n int64) string {
	if n < 0 {
		return "> 2^62 B"
	}
	return humanBytes(n)
}

// tokensOrUnbounded formats a token count, or "unbounded" when no layer's
// KV grows with the context.
func tokensOrUnbounded(n int64) string {
	if n == kvmem.Unbounded {
		return "unbounded"
	}
	return bench.Thousands(n)
}

// humanCount formats a parameter count: 8.03B, 1.03T.
func humanCount(n int64) string {
	// A unit starts where the one below would print 1000.00 (999,995,000
	// parameters were "1000.00M"; they are "1.00B").
	switch {
	case n >= 1e12-5e6:
		return fmt.Sprintf("%.2fT", float64(n)/1e12)
	case n >= 1e9-5e3:
		return fmt.Sprintf("%.2fB", float64(n)/1e9)
	case n >= 1e6:
		return fmt.Sprintf("%.2fM", float64(n)/1e6)
	}
	return strconv.FormatInt(n, 10)
}

// humanTokens formats a context length as 256K when it is a whole number of
// K tokens, else with commas.
func humanTokens(n int) string {
	if n >= 1024 && n%1024 == 0 {
		return strconv.Itoa(n/1024) + "K"
	}
	return bench.Thousands(int64(n))
}
