package main

import (
	"encoding/json"
	"fmt"

	"github.com/pagedkv/pagedkv/bench"
)

// hybridLine is one line of kvbench hybrid -json: a window, a state
// model or a layout of several kinds, with vLLM's figures (or why it
// cannot run the layout), the default mode's and the W1 bases.
type hybridLine struct {
	Requests      int    `json:"requests"`
	Blocks        int    `json:"blocks"`
	Window        int    `json:"window"`
	StateModel    string `json:"state_model"`
	Layout        string `json:"layout"`
	VLLMRefused   string `json:"vllm_refused"`
	FullGroups    int    `json:"full_groups"`
	StateGroups   int    `json:"state_groups"`
	StatePages    int    `json:"state_pages"`
	W1VLLM        int64  `json:"w1_vllm_admitted_hit_tokens"`
	W1Default     int64  `json:"w1_default_admitted_hit_tokens"`
	VLLMHits      int64  `json:"vllm_admitted_hit_tokens"`
	VLLMFirst     int64  `json:"vllm_first_hit_tokens"`
	VLLMResume    int64  `json:"vllm_resume_hit_tokens"`
	VLLMPreempt   int    `json:"vllm_preemptions"`
	DefaultHits   int64  `json:"default_admitted_hit_tokens"`
	DefaultFirst  int64  `json:"default_first_hit_tokens"`
	DefaultResume int64  `json:"default_resume_hit_tokens"`
	DefaultPreemp int    `json:"default_preemptions"`
}

// readHybrid rebuilds the hybrid study from kvbench hybrid -json lines.
func readHybrid(in []byte) (bench.HybridResult, error) {
	var r bench.HybridResult
	err := jsonLines(in, func(b []byte) error {
		var l hybridLine
		if err := json.Unmarshal(b, &l); err != nil {
			return err
		}
		kinds := 0
		for _, set := range []bool{l.Window != 0, l.StateModel != "", l.Layout != ""} {
			if set {
				kinds++
			}
		}
		if l.W1VLLM == 0 || kinds != 1 {
			return fmt.Errorf("not a kvbench hybrid line (want one of a window, a state model or a layout, and the W1 figures)")
		}
		// A negative window counted as the line's one kind but is no
		// window row: it fell through to a state row with no model.
		if l.Window < 0 {
			return fmt.Errorf("window %d is not a positive number of tokens", l.Window)
		}
		r.Requests, r.Blocks = l.Requests, l.Blocks
		r.SingleVLLM.AdmittedHitTokens, r.SingleDefault.AdmittedHitTokens = l.W1VLLM, l.W1Default
		vllm := bench.HybridHits{AdmittedHitTokens: l.VLLMHits, FirstHitTokens: l.VLLMFirst, ResumeHitTokens: l.VLLMResume, Preemptions: l.VLLMPreempt}
		dflt := bench.HybridHits{AdmittedHitTokens: l.DefaultHits, FirstHitTokens: l.DefaultFirst, ResumeHitTokens: l.DefaultResume, Preemptions: l.DefaultPreemp}
		switch {
		case l.Layout != "":
			// The figure draws the windows; the layouts are kept as read
			// (their groups are not in the line, only their name).
			r.Layouts = append(r.Layouts, bench.HybridLayoutRow{HybridLayout: bench.HybridLayout{Name: l.Layout},
				VLLMRefused: l.VLLMRefused, VLLM: vllm, Default: dflt})
		case l.Window > 0:
			r.Rows = append(r.Rows, bench.HybridRow{Window: l.Window, VLLM: vllm, Default: dflt})
		default:
			r.States = append(r.States, bench.HybridStateRow{Model: l.StateModel, FullGroups: l.FullGroups,
				StateGroups: l.StateGroups, Pages: l.StatePages, VLLM: vllm, Default: dflt})
		}
		return nil
	})
	if err == nil && len(r.Rows) == 0 {
		err = fmt.Errorf("%w: no window rows (want the output of kvbench hybrid -json)", errInput)
	}
	return r, err
}
