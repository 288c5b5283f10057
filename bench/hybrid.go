package bench

import (
	"errors"
	"fmt"
	"runtime"
	"slices"
	"strconv"
	"strings"
	"sync"

	"github.com/pagedkv/pagedkv/kvmem"
	"github.com/pagedkv/pagedkv/paged"
)

// ErrHybridStudy marks a hybrid study that cannot run as configured.
var ErrHybridStudy = errors.New("bench: hybrid study")

// DefaultHybridWindows are the sliding windows the hybrid study replays by
// default: gpt-oss's 128 tokens, Gemma 3's 1,024 (and Gemma 2's 4,096),
// and the powers of two between and around them.
var DefaultHybridWindows = []int{64, 128, 256, 512, 1024, 2048, 4096}

// HybridTargets are the default mode's targets on W1-H at 2,000 requests
// and 8,192 blocks (issue 14): admitted hit tokens as a share of W1's
// single-group figure with vLLM's decisions.
var HybridTargets = []struct {
	Window int
	Share  float64
}{{128, 0.70}, {1024, 0.95}}

// HybridStateTarget is the default mode's target on W1 with the layout of
// a model with state layers (3 state groups : 1 full-attention group,
// Qwen3-Next-like): admitted hit tokens as a share of W1's single-group
// figure with vLLM's decisions (issue 14; vLLM at f20c3b0 caches no state
// and gets none).
const HybridStateTarget = 0.60

// DefaultHybridStateModels are the models whose full-attention and state
// layout the hybrid study replays by default.
var DefaultHybridStateModels = []string{"Qwen3-Next-80B-A3B"}

// HybridConfig configures the hybrid prefix-hit study: W1-H (W1 with a
// full-attention group and a sliding-window group, docs/workloads.md section 8)
// at several windows, each replayed twice: with vLLM v1's decisions (the
// bit-exact compat mode) and with the library's default mode, whose
// retention keeps the blocks hybrid hits need (docs/hybrid.md).
type HybridConfig struct {
	// Windows are the sliding windows in tokens; default
	// DefaultHybridWindows.
	Windows []int
	// Requests, Blocks and Trace are W1Config's: default 2000 requests
	// of the embedded Azure conversation trace over 8192 blocks.
	Requests, Blocks int
	Trace            []Request
	// StateModels are kvmem presets with full-attention and state layers
	// (Mamba, Gated DeltaNet) whose layout W1 is also replayed with; nil
	// means DefaultHybridStateModels, empty none.
	StateModels []string
	// Layouts are layouts of several kinds W1 is also replayed with (the
	// default mode takes any combination, vLLM v1 at f20c3b0 one kind
	// besides full attention); nil means DefaultHybridLayouts at W1's
	// 16-token blocks, empty none.
	Layouts []HybridLayout
	// Workers bounds the replays run at once; default GOMAXPROCS.
	Workers int
	// OnReplay, when set, is called after each replay, from the goroutine
	// that ran it (progress reports), so with Workers above 1 it must be
	// safe for concurrent use.
	OnReplay func()
}

// HybridStateRow is W1 on a model's full-attention and state layout:
// vLLM's decisions beside the default mode's.
type HybridStateRow struct {
	// Model is the kvmem preset; FullGroups and StateGroups count its KV
	// cache groups at W1's 16-token blocks, each state taking Pages blocks
	// (kvmem.Spec.StateBlocks at BF16).
	Model                          string
	FullGroups, StateGroups, Pages int
	// VLLM is the compat mode, Default the default mode (checkpoints).
	VLLM, Default HybridHits
}

// HybridLayout is a layout of KV cache groups of several kinds that the
// hybrid study replays W1 with.
type HybridLayout struct {
	// Name describes the layout; empty means LayoutName(Groups).
	Name string
	// Groups are the KV cache groups, group 0 full attention.
	Groups []paged.Group
}

// HybridVLLMRefused is HybridLayoutRow.VLLMRefused when the compat mode
// refuses a layout: vLLM v1's hybrid coordinator at f20c3b0 takes one kind
// besides full attention, of one size.
const HybridVLLMRefused = "n/a: one kind besides full attention"

// HybridLayoutRow is W1 on a layout of several kinds: the default mode's
// hits and, where vLLM v1 takes the layout, vLLM's decisions.
type HybridLayoutRow struct {
	HybridLayout
	// VLLMRefused is HybridVLLMRefused when the compat mode refused the
	// layout (VLLM is then zero: vLLM cannot run it, it did not score 0),
	// empty when VLLM holds its replay.
	VLLMRefused string
	// VLLM is the compat mode, Default the default mode.
	VLLM, Default HybridHits
}

// DefaultHybridLayouts returns the layouts of several kinds the study
// replays by default, at blockSize-token blocks: full attention beside a
// 128-token window (gpt-oss's) and a state sized as the planner sizes one
// of Qwen3-Next-80B-A3B's Gated DeltaNet slices (kvmem.Spec.StateBlocks at
// BF16: 34 blocks of 16 tokens), and full attention beside two windows,
// 128 and 1,024 tokens (gpt-oss's and Gemma 3's). vLLM v1 at f20c3b0
// refuses both (docs/hybrid.md, "Several kinds").
func DefaultHybridLayouts(blockSize int) ([]HybridLayout, error) {
	qwen, _, err := stateLayout("Qwen3-Next-80B-A3B", blockSize)
	if err != nil {
		return nil, err
	}
	full := paged.Group{Kind: paged.FullAttention}
	window := func(w int) paged.Group { return paged.Group{Kind: paged.SlidingWindow, Window: w} }
	layouts := []HybridLayout{
		{Groups: []paged.Group{full, window(128), {Kind: paged.State, Pages: qwen.Pages}}},
		{Groups: []paged.Group{full, window(128), window(1024)}},
	}
	for i := range layouts {
		layouts[i].Name = LayoutName(layouts[i].Groups)
	}
	return layouts, nil
}

// LayoutName names a layout of KV cache groups by its kinds and sizes,
// "full + window 128 + state 34".
func LayoutName(groups []paged.Group) string {
	parts := make([]string, len(groups))
	for i, g := range groups {
		switch g.Kind {
		case paged.SlidingWindow:
			parts[i] = fmt.Sprintf("%v %d", g.Kind, g.Window)
		case paged.ChunkedLocal:
			parts[i] = fmt.Sprintf("%v %d", g.Kind, g.Chunk)
		case paged.State:
			parts[i] = fmt.Sprintf("%v %d", g.Kind, g.Pages)
		case paged.Shared:
			parts[i] = fmt.Sprintf("%v of %d", g.Kind, g.Target)
		default:
			parts[i] = g.Kind.String()
		}
	}
	return strings.Join(parts, " + ")
}

// HybridHits are the prefix hits of one W1 or W1-H replay.
type HybridHits struct {
	// AdmittedHitTokens are the hit tokens of successful admissions (the
	// prefill they save), split into FirstHitTokens (a request's first
	// admission: shared system prompts) and ResumeHitTokens (readmissions
	// of preempted requests).
	AdmittedHitTokens, FirstHitTokens, ResumeHitTokens int64
	// Preemptions, Steps and TokensProcessed are the replay's counters.
	Preemptions, Steps int
	TokensProcessed    int64
}

// HybridRow is one window of the study: vLLM's decisions beside the
// default mode's.
type HybridRow struct {
	// Window is the sliding window in tokens.
	Window int
	// VLLM is the compat mode (vLLM v1's hybrid coordinator, decision for
	// decision); Default the library's default mode.
	VLLM, Default HybridHits
}

// HybridResult is the whole study.
type HybridResult struct {
	// Requests and Blocks are the replays' size.
	Requests, Blocks int
	// SingleVLLM and SingleDefault are W1 (one full-attention group) in
	// the compat and default modes: the bases the rows are compared with.
	SingleVLLM, SingleDefault HybridHits
	// Rows are the windows in the order asked.
	Rows []HybridRow
	// States are the state layouts in the order asked.
	States []HybridStateRow
	// Layouts are the layouts of several kinds in the order asked.
	Layouts []HybridLayoutRow
}

// stateLayout returns a kvmem preset's KV cache groups at W1's block size:
// one group per slice of LayersPerBlock layers, full attention first.
func stateLayout(model string, blockSize int) (HybridStateRow, []paged.Group, error) {
	row := HybridStateRow{Model: model}
	md, err := kvmem.LookupModel(model)
	if err != nil {
		return row, nil, fmt.Errorf("%w: %w", ErrHybridStudy, err)
	}
	spec := md.Spec(kvmem.BF16, kvmem.BF16)
	lpb, err := spec.LayersPerBlock()
	if err != nil {
		return row, nil, fmt.Errorf("%w: %s: %w", ErrHybridStudy, model, err)
	}
	var state []paged.Group
	for _, g := range spec.Groups {
		switch g.Kind {
		case kvmem.Full:
			row.FullGroups += g.Layers / lpb
		case kvmem.State:
			pages, err := spec.StateBlocks(g, blockSize)
			if err != nil {
				return row, nil, fmt.Errorf("%w: %s: %w", ErrHybridStudy, model, err)
			}
			row.Pages = int(pages)
			for range g.Layers / lpb {
				state = append(state, paged.Group{Kind: paged.State, Pages: row.Pages})
			}
		default:
			return row, nil, fmt.Errorf("%w: %s has %v layers; the state rows take full attention and state only", ErrHybridStudy, model, g.Kind)
		}
	}
	row.StateGroups = len(state)
	if row.FullGroups == 0 || row.StateGroups == 0 {
		return row, nil, fmt.Errorf("%w: %s has no full-attention or no state layers", ErrHybridStudy, model)
	}
	groups := make([]paged.Group, row.FullGroups, row.FullGroups+len(state))
	for i := range groups {
		groups[i] = paged.Group{Kind: paged.FullAttention}
	}
	return row, append(groups, state...), nil
}

// Share returns hits as a fraction of base's admitted hit tokens.
func (h HybridHits) Share(base HybridHits) float64 {
	if base.AdmittedHitTokens == 0 {
		return 0
	}
	return float64(h.AdmittedHitTokens) / float64(base.AdmittedHitTokens)
}

// RunHybridStudy replays W1 and, per window, W1-H in both modes. The hash
// function does not change any decision (W1Config.Hasher), so the replays
// use paged.FastHasher.
func RunHybridStudy(cfg HybridConfig) (HybridResult, error) {
	if cfg.Windows == nil {
		cfg.Windows = DefaultHybridWindows
	}
	if len(cfg.Windows) == 0 && len(cfg.StateModels) == 0 && cfg.StateModels != nil && len(cfg.Layouts) == 0 && cfg.Layouts != nil {
		return HybridResult{}, fmt.Errorf("%w: no windows, no state models and no layouts", ErrHybridStudy)
	}
	for _, w := range cfg.Windows {
		if w < 1 {
			return HybridResult{}, fmt.Errorf("%w: window %d must be at least 1", ErrHybridStudy, w)
		}
	}
	if cfg.Requests < 0 || cfg.Blocks < 0 || cfg.Workers < 0 {
		return HybridResult{}, fmt.Errorf("%w: requests %d, blocks %d and workers %d must not be negative", ErrHybridStudy, cfg.Requests, cfg.Blocks, cfg.Workers)
	}
	workers := cfg.Workers
	if workers == 0 {
		workers = runtime.GOMAXPROCS(0)
	}
	base := W1Config{Trace: cfg.Trace, Requests: cfg.Requests, Blocks: cfg.Blocks, Hasher: paged.FastHasher{}}.withDefaults()
	res := HybridResult{Requests: base.Requests, Blocks: base.Blocks, Rows: make([]HybridRow, len(cfg.Windows))}

	type job struct {
		window int
		groups []paged.Group
		compat string
		out    *HybridHits
		// refused, when set, takes HybridVLLMRefused if the compat
		// mode refuses the layout, instead of an error.
		refused *string
	}
	jobs := []job{{0, nil, "vllm", &res.SingleVLLM, nil}, {0, nil, "", &res.SingleDefault, nil}}
	for i, w := range cfg.Windows {
		res.Rows[i].Window = w
		jobs = append(jobs, job{w, nil, "vllm", &res.Rows[i].VLLM, nil}, job{w, nil, "", &res.Rows[i].Default, nil})
	}
	models := cfg.StateModels
	if models == nil {
		models = DefaultHybridStateModels
	}
	res.States = make([]HybridStateRow, len(models))
	for i, name := range models {
		row, groups, err := stateLayout(name, base.BlockSize)
		if err != nil {
			return HybridResult{}, err
		}
		res.States[i] = row
		jobs = append(jobs, job{0, groups, "vllm", &res.States[i].VLLM, nil}, job{0, groups, "", &res.States[i].Default, nil})
	}
	layouts := cfg.Layouts
	if layouts == nil {
		var err error
		if layouts, err = DefaultHybridLayouts(base.BlockSize); err != nil {
			return HybridResult{}, err
		}
	}
	res.Layouts = make([]HybridLayoutRow, len(layouts))
	for i, l := range layouts {
		if len(l.Groups) == 0 {
			return HybridResult{}, fmt.Errorf("%w: layout %d %q has no groups", ErrHybridStudy, i, l.Name)
		}
		if l.Name == "" {
			l.Name = LayoutName(l.Groups)
		}
		row := &res.Layouts[i]
		row.HybridLayout = HybridLayout{Name: l.Name, Groups: slices.Clone(l.Groups)}
		jobs = append(jobs, job{0, row.Groups, "vllm", &row.VLLM, &row.VLLMRefused}, job{0, row.Groups, "", &row.Default, nil})
	}
	errs := make([]error, len(jobs))
	next := make(chan int)
	var wg sync.WaitGroup
	for range min(workers, len(jobs)) {
		wg.Add(1)
		go func() {
			defer wg.Done()
			for i := range next {
				c := base
				c.Window, c.Groups, c.Compat = jobs[i].window, jobs[i].groups, jobs[i].compat
				*jobs[i].out, errs[i] = hybridHits(c)
				if jobs[i].refused != nil && errors.Is(errs[i], paged.ErrInvalid) {
					// vLLM's coordinator cannot run the layout: say so
					// rather than report a figure. The default-mode job
					// of the same groups reports any other fault.
					*jobs[i].out, *jobs[i].refused, errs[i] = HybridHits{}, HybridVLLMRefused, nil
				}
				if cfg.OnReplay != nil {
					cfg.OnReplay()
				}
			}
		}()
	}
	for i := range jobs {
		next <- i
	}
	close(next)
	wg.Wait()
	if err := errors.Join(errs...); err != nil {
		return HybridResult{}, err
	}
	return res, nil
}

// hybridHits replays c and splits its admitted hits by reading the
// admission lines of the allocation digest: the first admission of
// request i is its first "A<i>:" line, and its hit is the number of
// group-0 IDs before the '|'.
func hybridHits(c W1Config) (HybridHits, error) {
	var h HybridHits
	seen := make(map[int]bool)
	var bad error
	c.CountersOnly = true
	c.OnEvent = func(line string) {
		if len(line) == 0 || line[0] != 'A' || bad != nil {
			return
		}
		colon := strings.IndexByte(line, ':')
		bar := strings.IndexByte(line, '|')
		i, err := strconv.Atoi(line[1:max(colon, 1)])
		if colon < 0 || bar < colon || err != nil {
			bad = fmt.Errorf("%w: admission line %q", ErrHybridStudy, line)
			return
		}
		group0, _, _ := strings.Cut(line[colon+1:bar], ";")
		tokens := int64(0)
		if group0 != "" {
			tokens = int64(strings.Count(group0, ",")+1) * int64(c.BlockSize)
		}
		if seen[i] {
			h.ResumeHitTokens += tokens
		} else {
			h.FirstHitTokens += tokens
			seen[i] = true
		}
	}
	r, err := RunW1(c)
	if err != nil {
		return h, err
	}
	if bad != nil {
		return h, bad
	}
	if h.FirstHitTokens+h.ResumeHitTokens != r.AdmittedHitTokens {
		return h, fmt.Errorf("%w: admission lines count %d hit tokens, the replay %d", ErrHybridStudy, h.FirstHitTokens+h.ResumeHitTokens, r.AdmittedHitTokens)
	}
	h.AdmittedHitTokens = r.AdmittedHitTokens
	h.Preemptions, h.Steps, h.TokensProcessed = r.Preemptions, r.Steps, r.TokensProcessed
	return h, nil
}
