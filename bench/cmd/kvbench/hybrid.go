package main

import (
	"encoding/json"
	"fmt"
	"io"
	"runtime"
	"strconv"
	"strings"

	"github.com/pagedkv/pagedkv/bench"
	"github.com/pagedkv/pagedkv/kvmem"
)

// runHybrid runs the hybrid prefix-hit study: W1-H at several windows, and
// W1 on state layouts, with vLLM's decisions (the compat mode) beside the
// default mode's.
func runHybrid(args []string, stdout, stderr io.Writer) error {
	fs := newFlags("hybrid", stderr)
	windows := fs.String("windows", joinInts(bench.DefaultHybridWindows), "comma-separated sliding windows in tokens (empty: none)")
	var cfg bench.HybridConfig
	fs.IntVar(&cfg.Requests, "requests", 2000, "number of leading trace requests to replay (unset: at most the trace's)")
	fs.IntVar(&cfg.Blocks, "blocks", 8192, "KV blocks in the pool, block 0 (the null block) included")
	fs.IntVar(&cfg.Workers, "workers", runtime.GOMAXPROCS(0), "replays run in parallel")
	trace := fs.String("trace", "", "Azure CSV `file` (default: the embedded Azure conversation trace)")
	stateModels := fs.String("state-models", strings.Join(bench.DefaultHybridStateModels, ","), "comma-separated kvmem presets with full-attention and state layers to replay W1 with (empty: none)")
	multiKind := fs.Bool("multikind", true, "replay W1 on the layouts of several kinds too (bench.DefaultHybridLayouts: full + window 128 + Qwen3-Next's state, full + windows 128 and 1,024), which vLLM v1 refuses")
	asJSON := fs.Bool("json", false, "print one JSON object per window, state model and layout of several kinds instead of the table (kvplot hybrid draws the windows)")
	if err := fs.Parse(args); err != nil {
		return err
	}
	for _, v := range []struct {
		name string
		val  int
	}{{"requests", cfg.Requests}, {"blocks", cfg.Blocks}, {"workers", cfg.Workers}} {
		if v.val <= 0 {
			return usageErrorf("-%s %d must be positive", v.name, v.val)
		}
	}
	cfg.Windows = []int{}
	for _, f := range strings.Split(*windows, ",") {
		if strings.TrimSpace(*windows) == "" {
			break
		}
		w, err := strconv.Atoi(strings.TrimSpace(f))
		if err != nil || w < 1 {
			return usageErrorf("-windows: %q is not a window of at least one token", f)
		}
		cfg.Windows = append(cfg.Windows, w)
	}
	cfg.StateModels = []string{}
	for _, f := range strings.Split(*stateModels, ",") {
		if f = strings.TrimSpace(f); f != "" {
			if err := checkStateModel(f); err != nil {
				return usageErrorf("-state-models: %w", err)
			}
			cfg.StateModels = append(cfg.StateModels, f)
		}
	}
	if !*multiKind {
		cfg.Layouts = []bench.HybridLayout{}
	}
	if len(cfg.Windows) == 0 && len(cfg.StateModels) == 0 && !*multiKind {
		return usageErrorf("-windows and -state-models are both empty and -multikind=false: nothing to replay")
	}
	if *trace != "" {
		reqs, err := bench.ReadTraceFile(*trace, "azure")
		if err != nil {
			return err
		}
		cfg.Trace = reqs
		// The default replays 2,000 requests or the whole of a shorter
		// trace; a -requests given past the trace's end is a mistake.
		if cfg.Requests > len(reqs) {
			if fs.given()["requests"] {
				return usageErrorf("-requests %d: the trace %s has %d requests", cfg.Requests, *trace, len(reqs))
			}
			cfg.Requests = len(reqs)
		}
	}
	layouts := 0
	if *multiKind {
		l, err := bench.DefaultHybridLayouts(16)
		if err != nil {
			return err
		}
		cfg.Layouts, layouts = l, len(l)
	}
	prog := startProgress(stderr, *asJSON, "hybrid", "replays", int64(2+2*len(cfg.Windows)+2*len(cfg.StateModels)+2*layouts))
	cfg.OnReplay = func() { prog.Add(1) }
	r, err := bench.RunHybridStudy(cfg)
	prog.Stop()
	if err != nil {
		return err
	}
	if *asJSON {
		enc := json.NewEncoder(stdout)
		for _, row := range r.Rows {
			if err := enc.Encode(hybridJSON(r, row.VLLM, row.Default, "window", row.Window)); err != nil {
				return err
			}
		}
		for _, row := range r.States {
			out := hybridJSON(r, row.VLLM, row.Default, "state_model", row.Model)
			out["full_groups"], out["state_groups"], out["state_pages"] = row.FullGroups, row.StateGroups, row.Pages
			if err := enc.Encode(out); err != nil {
				return err
			}
		}
		for _, row := range r.Layouts {
			out := hybridJSON(r, row.VLLM, row.Default, "layout", row.Name)
			if row.VLLMRefused != "" {
				// No vLLM figure: it cannot run the layout.
				for k := range out {
					if strings.HasPrefix(k, "vllm_") {
						delete(out, k)
					}
				}
				out["vllm_refused"] = row.VLLMRefused
			}
			if err := enc.Encode(out); err != nil {
				return err
			}
		}
		return nil
	}
	printHybrid(stdout, r, *trace)
	return nil
}

func joinInts(v []int) string {
	s := make([]string, len(v))
	for i, x := range v {
		s[i] = strconv.Itoa(x)
	}
	return strings.Join(s, ",")
}

// hybridJSON is one layout's figures, flat, with both bases; key and val
// name the layout (its window or its state model).
func hybridJSON(r bench.HybridResult, vllm, dflt bench.HybridHits, key string, val any) map[string]any {
	out := map[string]any{
		"requests":                       r.Requests,
		"blocks":                         r.Blocks,
		key:                              val,
		"w1_vllm_admitted_hit_tokens":    r.SingleVLLM.AdmittedHitTokens,
		"w1_default_admitted_hit_tokens": r.SingleDefault.AdmittedHitTokens,
	}
	for _, m := range []struct {
		prefix string
		h      bench.HybridHits
	}{{"vllm_", vllm}, {"default_", dflt}} {
		out[m.prefix+"admitted_hit_tokens"] = m.h.AdmittedHitTokens
		out[m.prefix+"first_hit_tokens"] = m.h.FirstHitTokens
		out[m.prefix+"resume_hit_tokens"] = m.h.ResumeHitTokens
		out[m.prefix+"preemptions"] = m.h.Preemptions
		out[m.prefix+"steps"] = m.h.Steps
		out[m.prefix+"tokens_processed"] = m.h.TokensProcessed
		out[m.prefix+"share_of_w1_vllm"] = round4(m.h.Share(r.SingleVLLM))
		out[m.prefix+"share_of_w1_default"] = round4(m.h.Share(r.SingleDefault))
	}
	return out
}

func round4(x float64) float64 {
	v, _ := strconv.ParseFloat(strconv.FormatFloat(x, 'f', 4, 64), 64)
	return v
}

func printHybrid(w io.Writer, r bench.HybridResult, trace string) {
	fmt.Fprintf(w, "W1-H: %d requests of %s, %d blocks of 16 tokens, a full-attention group beside each layout below (a sliding window unless a row names its groups)\n", r.Requests, traceName(trace), r.Blocks)
	fmt.Fprintf(w, "admitted prefix-hit tokens (hits of successful admissions: the prefill they save); W1 with one group: %s with vLLM's decisions, %s in the default mode\n\n",
		commas(r.SingleVLLM.AdmittedHitTokens), commas(r.SingleDefault.AdmittedHitTokens))
	fmt.Fprintf(w, "%7s | %-28s | %s\n", "", "vLLM v1 (compat: its choices)", "pagedkv default mode (hybrid retention)")
	fmt.Fprintf(w, "%7s | %11s %7s %8s | %11s %7s %10s %19s %8s\n",
		"window", "hit tokens", "of W1", "preempt", "hit tokens", "of W1", "of W1 dflt", "first / resume", "preempt")
	for _, row := range r.Rows {
		v, d := row.VLLM, row.Default
		fmt.Fprintf(w, "%7d | %11s %6.1f%% %8d | %11s %6.1f%% %9.1f%% %19s %8d\n",
			row.Window, commas(v.AdmittedHitTokens), 100*v.Share(r.SingleVLLM), v.Preemptions,
			commas(d.AdmittedHitTokens), 100*d.Share(r.SingleVLLM), 100*d.Share(r.SingleDefault),
			commas(d.FirstHitTokens)+" / "+commas(d.ResumeHitTokens), d.Preemptions)
	}
	for _, row := range r.States {
		v, d := row.VLLM, row.Default
		fmt.Fprintf(w, "%7s | %11s %6.1f%% %8d | %11s %6.1f%% %9.1f%% %19s %8d\n",
			"state", commas(v.AdmittedHitTokens), 100*v.Share(r.SingleVLLM), v.Preemptions,
			commas(d.AdmittedHitTokens), 100*d.Share(r.SingleVLLM), 100*d.Share(r.SingleDefault),
			commas(d.FirstHitTokens)+" / "+commas(d.ResumeHitTokens), d.Preemptions)
		fmt.Fprintf(w, "%7s   (%s: %d full-attention and %d state groups, a state of %d blocks; the default mode keeps state checkpoints)\n",
			"", row.Model, row.FullGroups, row.StateGroups, row.Pages)
	}
	for _, row := range r.Layouts {
		v, d := row.VLLM, row.Default
		vllm := fmt.Sprintf("%11s %6.1f%% %8d", commas(v.AdmittedHitTokens), 100*v.Share(r.SingleVLLM), v.Preemptions)
		if row.VLLMRefused != "" {
			vllm = fmt.Sprintf("%28s", "n/a (below)")
		}
		fmt.Fprintf(w, "%7s | %s | %11s %6.1f%% %9.1f%% %19s %8d\n",
			"layout", vllm,
			commas(d.AdmittedHitTokens), 100*d.Share(r.SingleVLLM), 100*d.Share(r.SingleDefault),
			commas(d.FirstHitTokens)+" / "+commas(d.ResumeHitTokens), d.Preemptions)
		note := ""
		if row.VLLMRefused != "" {
			note = "; vLLM v1 at f20c3b0: " + row.VLLMRefused
		}
		fmt.Fprintf(w, "%7s   (%s%s)\n", "", row.Name, note)
	}
	fmt.Fprintf(w, "\n\"of W1\" is against W1 with one group and vLLM's decisions (%s), \"of W1 dflt\" against the default mode's (%s).\n",
		commas(r.SingleVLLM.AdmittedHitTokens), commas(r.SingleDefault.AdmittedHitTokens))
	fmt.Fprintln(w, "Resumed requests' hits count: a run with more preemptions has more to hit (docs/hybrid.md).")
}

// commas formats n with thousands separators.
func commas(n int64) string {
	s := strconv.FormatInt(n, 10)
	neg := strings.HasPrefix(s, "-")
	s = strings.TrimPrefix(s, "-")
	var b strings.Builder
	if neg {
		b.WriteByte('-')
	}
	for i, c := range s {
		if i > 0 && (len(s)-i)%3 == 0 {
			b.WriteByte(',')
		}
		b.WriteRune(c)
	}
	return b.String()
}

// checkStateModel refuses, as a bad flag value, a -state-models name that
// is no kvmem preset or whose layers are not full attention and state
// only (the study's state rows replay exactly those).
func checkStateModel(name string) error {
	m, err := kvmem.LookupModel(name)
	if err != nil {
		return err
	}
	kinds := map[kvmem.Kind]bool{}
	for _, g := range m.KV.Groups {
		kinds[g.Kind] = true
	}
	if len(kinds) != 2 || !kinds[kvmem.Full] || !kinds[kvmem.State] {
		return fmt.Errorf("%s is not a model of full-attention and state layers only", m.Name)
	}
	return nil
}
