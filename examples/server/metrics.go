package main

import (
	"bufio"
	"io"
	"strconv"
)

// MetricsContentType is the media type of the Prometheus text format,
// version 0.0.4.
const MetricsContentType = "text/plain; version=0.0.4; charset=utf-8"

// WriteMetrics writes sn in the Prometheus text exposition format. The
// names follow vLLM's where one exists (vllm:kv_cache_usage_perc becomes
// pagedkv_kv_cache_usage_ratio, and so on) and say their unit as
// Prometheus asks: counters end in _total, 0-to-1 gauges in _ratio, and
// figures in tokens or blocks say so.
func WriteMetrics(w io.Writer, sn Snapshot) error {
	p := promWriter{w: bufio.NewWriter(w)}
	p.gauge("pagedkv_kv_cache_usage_ratio", "Share of usable KV blocks referenced by sequences (0 to 1).", sn.Usage)
	p.gauge("pagedkv_prefix_cache_hit_ratio", "Prompt tokens found in the prefix cache over prompt tokens queried, since start (0 to 1).", sn.HitRate)
	p.family("pagedkv_kv_cache_blocks", "gauge", "KV blocks by state; free + cached + used = usable.")
	p.sample("pagedkv_kv_cache_blocks", "state", "free", float64(sn.Blocks.Free))
	p.sample("pagedkv_kv_cache_blocks", "state", "cached", float64(sn.Blocks.Cached))
	p.sample("pagedkv_kv_cache_blocks", "state", "used", float64(sn.Blocks.Used))
	p.gauge("pagedkv_kv_cache_usable_blocks", "Usable KV blocks (the null block excluded).", float64(sn.Blocks.Usable))
	p.gauge("pagedkv_kv_cache_peak_used_blocks", "Most KV blocks referenced at once since start.", float64(sn.Blocks.PeakUsed))
	p.gauge("pagedkv_block_size_tokens", "Token slots per KV block.", float64(sn.BlockSize))
	p.family("pagedkv_requests", "gauge", "Live requests by state: running ones hold blocks, waiting ones (preempted included) hold none.")
	p.sample("pagedkv_requests", "state", "waiting", float64(sn.Requests.Waiting))
	p.sample("pagedkv_requests", "state", "running", float64(sn.Requests.Running))
	p.gauge("pagedkv_admission_queue_requests", "Requests waiting for their first admission.", float64(sn.Requests.Queued))
	p.gauge("pagedkv_admission_queue_capacity_requests", "Most requests the admission queue holds; more are refused with 429.", float64(sn.Requests.MaxQueued))
	p.family("pagedkv_sequences", "gauge", "Sequences (one per sample) by state; waiting ones hold no blocks.")
	p.sample("pagedkv_sequences", "state", "waiting", float64(sn.Sequences.Waiting))
	p.sample("pagedkv_sequences", "state", "running", float64(sn.Sequences.Running))
	p.counter("pagedkv_requests_submitted_total", "Requests accepted.", sn.Requests.Submitted)
	p.family("pagedkv_requests_rejected_total", "counter", "Submissions refused, by reason (the API's error code).")
	for r := range numReasons {
		p.sample("pagedkv_requests_rejected_total", "reason", r.String(), float64(sn.Requests.RejectedBy[r.String()]))
	}
	p.counter("pagedkv_requests_finished_total", "Requests that generated all their tokens.", sn.Requests.Finished)
	p.counter("pagedkv_requests_cancelled_total", "Requests cancelled by clients.", sn.Requests.Cancelled)
	p.counter("pagedkv_requests_aborted_total", "Requests accepted that can never run in this pool.", sn.Requests.Aborted)
	p.counter("pagedkv_prefix_cache_query_tokens_total", "Prompt tokens looked up in the prefix cache.", sn.Prefix.QueryTokens)
	p.counter("pagedkv_prefix_cache_hit_tokens_total", "Prompt tokens found in the prefix cache.", sn.Prefix.HitTokens)
	p.counter("pagedkv_prefix_cache_stored_blocks_total", "Blocks committed to the prefix cache.", sn.Prefix.Stored)
	p.counter("pagedkv_prompt_tokens_total", "Prompt tokens computed (recomputation after preemption included).", sn.Tokens.Prefill)
	p.counter("pagedkv_generation_tokens_total", "Tokens generated over all samples.", sn.Tokens.Generated)
	p.counter("pagedkv_spec_decode_draft_tokens_total", "Draft tokens verified (speculative decoding).", sn.Tokens.Drafted)
	p.counter("pagedkv_spec_decode_accepted_tokens_total", "Draft tokens accepted.", sn.Tokens.Accepted)
	p.counter("pagedkv_preemptions_total", "Sequences preempted by recompute.", sn.Preemptions)
	p.counter("pagedkv_cow_copied_blocks_total", "Blocks copied on write.", sn.Copies)
	p.counter("pagedkv_forks_total", "Sequences forked for parallel sampling.", sn.Forks)
	p.counter("pagedkv_evicted_blocks_total", "Cached blocks evicted to make room.", sn.Evictions)
	p.family("pagedkv_kv_events_total", "counter", "KV events drained from the manager, by kind.")
	p.sample("pagedkv_kv_events_total", "kind", "BlockStored", float64(sn.Events.Stored))
	p.sample("pagedkv_kv_events_total", "kind", "BlockRemoved", float64(sn.Events.Removed))
	p.sample("pagedkv_kv_events_total", "kind", "AllBlocksCleared", float64(sn.Events.Cleared))
	p.counter("pagedkv_kv_events_dropped_total", "KV events lost to a full event buffer.", sn.Events.Dropped)
	p.counter("pagedkv_steps_total", "Engine steps run.", sn.Steps)
	if len(sn.Groups) > 0 {
		p.groups(sn.Groups)
	}
	p.family("pagedkv_manager_seconds_total", "counter", "Time spent in block manager calls by the step loop.")
	p.sample("pagedkv_manager_seconds_total", "", "", sn.ManagerTime.Seconds())
	if p.err != nil {
		return p.err
	}
	return p.w.Flush()
}

// groups writes the per-group families of a manager with KV cache
// groups, each sample labelled with its group's index and layout field.
func (p *promWriter) groups(gs []GroupCounts) {
	families := [...]struct {
		name, typ, help string
		v               func(*GroupCounts) float64
	}{
		{"pagedkv_kv_group_batch_blocks", "gauge", "Non-null block table entries of the last step's batch, by KV cache group.",
			func(g *GroupCounts) float64 { return float64(g.BatchBlocks) }},
		{"pagedkv_kv_group_stored_blocks_total", "counter", "Blocks named by BlockStored events, by KV cache group (a state checkpoint counts one).",
			func(g *GroupCounts) float64 { return float64(g.StoredBlocks) }},
		{"pagedkv_kv_group_removed_blocks_total", "counter", "Blocks named by BlockRemoved events, by KV cache group (a state checkpoint counts one).",
			func(g *GroupCounts) float64 { return float64(g.RemovedBlocks) }},
		{"pagedkv_state_checkpoints_total", "counter", "State checkpoints handed out to write, by KV cache group (state groups only).",
			func(g *GroupCounts) float64 { return float64(g.Checkpoints) }},
	}
	for _, f := range families {
		p.family(f.name, f.typ, f.help)
		for i := range gs {
			g := &gs[i]
			p.buf = append(p.buf[:0], f.name...)
			p.buf = strconv.AppendInt(append(p.buf, `{group="`...), int64(g.Group), 10)
			p.buf = appendEscaped(append(p.buf, `",kind="`...), g.Kind, true)
			p.buf = strconv.AppendFloat(append(p.buf, `"} `...), f.v(g), 'g', -1, 64)
			p.buf = append(p.buf, '\n')
			p.write()
		}
	}
}

// promWriter writes metric families, keeping the first write error.
type promWriter struct {
	w   *bufio.Writer
	buf []byte
	err error
}

func (p *promWriter) family(name, typ, help string) {
	p.buf = append(p.buf[:0], "# HELP "...)
	p.buf = append(append(p.buf, name...), ' ')
	p.buf = appendEscaped(p.buf, help, false)
	p.buf = append(append(append(p.buf, "\n# TYPE "...), name...), ' ')
	p.buf = append(append(p.buf, typ...), '\n')
	p.write()
}

// sample writes one sample, with one label if label is not empty.
func (p *promWriter) sample(name, label, value string, v float64) {
	p.buf = append(p.buf[:0], name...)
	if label != "" {
		p.buf = append(append(append(p.buf, '{'), label...), `="`...)
		p.buf = append(appendEscaped(p.buf, value, true), `"}`...)
	}
	// strconv spells infinities and NaN as the format does: +Inf, -Inf, NaN.
	p.buf = strconv.AppendFloat(append(p.buf, ' '), v, 'g', -1, 64)
	p.buf = append(p.buf, '\n')
	p.write()
}

// appendEscaped appends s escaped as the text format asks: backslash and
// newline in HELP text, and double quotes too in label values.
func appendEscaped(b []byte, s string, quote bool) []byte {
	for i := 0; i < len(s); i++ {
		switch c := s[i]; {
		case c == '\\':
			b = append(b, `\\`...)
		case c == '\n':
			b = append(b, `\n`...)
		case c == '"' && quote:
			b = append(b, `\"`...)
		default:
			b = append(b, c)
		}
	}
	return b
}

func (p *promWriter) gauge(name, help string, v float64) {
	p.family(name, "gauge", help)
	p.sample(name, "", "", v)
}

func (p *promWriter) counter(name, help string, v uint64) {
	p.family(name, "counter", help)
	p.sample(name, "", "", float64(v))
}

func (p *promWriter) write() {
	if p.err == nil {
		_, p.err = p.w.Write(p.buf)
	}
}
