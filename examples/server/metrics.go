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
// names mirror vLLM's (vllm:kv_cache_usage_perc becomes
// pagedkv_kv_cache_usage, and so on) so dashboards carry over; counters end
// in _total.
func WriteMetrics(w io.Writer, sn Snapshot) error {
	p := promWriter{w: bufio.NewWriter(w)}
	p.gauge("pagedkv_kv_cache_usage", "Fraction of usable KV blocks referenced by sequences (0 to 1).", sn.Usage)
	p.gauge("pagedkv_prefix_cache_hit_rate", "Prompt tokens found in the prefix cache over prompt tokens queried, since start.", sn.HitRate)
	p.family("pagedkv_blocks", "gauge", "KV blocks by state; free + cached + used = usable.")
	p.sample("pagedkv_blocks", `state="free"`, float64(sn.Blocks.Free))
	p.sample("pagedkv_blocks", `state="cached"`, float64(sn.Blocks.Cached))
	p.sample("pagedkv_blocks", `state="used"`, float64(sn.Blocks.Used))
	p.gauge("pagedkv_blocks_usable", "Usable KV blocks (the null block excluded).", float64(sn.Blocks.Usable))
	p.gauge("pagedkv_blocks_peak_used", "Most KV blocks referenced at once since start.", float64(sn.Blocks.PeakUsed))
	p.gauge("pagedkv_block_size_tokens", "Token slots per KV block.", float64(sn.BlockSize))
	p.family("pagedkv_requests", "gauge", "Requests in the scheduler by state.")
	p.sample("pagedkv_requests", `state="waiting"`, float64(sn.Requests.Waiting))
	p.sample("pagedkv_requests", `state="running"`, float64(sn.Requests.Running))
	p.family("pagedkv_sequences", "gauge", "Sequences (one per sample) by state; waiting ones hold no blocks.")
	p.sample("pagedkv_sequences", `state="waiting"`, float64(sn.Sequences.Waiting))
	p.sample("pagedkv_sequences", `state="running"`, float64(sn.Sequences.Running))
	p.counter("pagedkv_requests_submitted_total", "Requests accepted.", sn.Requests.Submitted)
	p.counter("pagedkv_requests_rejected_total", "Requests refused as invalid or too long.", sn.Requests.Rejected)
	p.counter("pagedkv_requests_finished_total", "Requests that generated all their tokens.", sn.Requests.Finished)
	p.counter("pagedkv_requests_cancelled_total", "Requests cancelled by clients.", sn.Requests.Cancelled)
	p.counter("pagedkv_prefix_cache_queries_total", "Prompt tokens looked up in the prefix cache.", sn.Prefix.QueryTokens)
	p.counter("pagedkv_prefix_cache_hits_total", "Prompt tokens found in the prefix cache.", sn.Prefix.HitTokens)
	p.counter("pagedkv_prompt_tokens_total", "Prompt tokens computed (recomputation after preemption included).", sn.Tokens.Prefill)
	p.counter("pagedkv_generation_tokens_total", "Tokens generated over all samples.", sn.Tokens.Generated)
	p.counter("pagedkv_preemptions_total", "Sequences preempted by recompute.", sn.Preemptions)
	p.counter("pagedkv_copies_total", "Copy-on-write block copies issued.", sn.Copies)
	p.counter("pagedkv_forks_total", "Sequences forked for parallel sampling.", sn.Forks)
	p.counter("pagedkv_evictions_total", "Cached blocks evicted to make room.", sn.Evictions)
	p.counter("pagedkv_blocks_stored_total", "Blocks committed to the prefix cache.", sn.Prefix.Stored)
	p.family("pagedkv_kv_events_total", "counter", "KV events drained from the manager, by kind.")
	p.sample("pagedkv_kv_events_total", `kind="BlockStored"`, float64(sn.Events.Stored))
	p.sample("pagedkv_kv_events_total", `kind="BlockRemoved"`, float64(sn.Events.Removed))
	p.sample("pagedkv_kv_events_total", `kind="AllBlocksCleared"`, float64(sn.Events.Cleared))
	p.counter("pagedkv_kv_events_dropped_total", "KV events lost to a full event buffer.", sn.Events.Dropped)
	p.counter("pagedkv_steps_total", "Engine steps run.", sn.Steps)
	p.family("pagedkv_manager_seconds_total", "counter", "Time spent in block manager calls by the step loop.")
	p.sample("pagedkv_manager_seconds_total", "", sn.ManagerTime.Seconds())
	if p.err != nil {
		return p.err
	}
	return p.w.Flush()
}

// promWriter writes metric families, keeping the first write error.
type promWriter struct {
	w   *bufio.Writer
	buf []byte
	err error
}

func (p *promWriter) family(name, typ, help string) {
	p.buf = append(p.buf[:0], "# HELP "...)
	p.buf = append(append(append(p.buf, name...), ' '), help...)
	p.buf = append(append(append(p.buf, "\n# TYPE "...), name...), ' ')
	p.buf = append(append(p.buf, typ...), '\n')
	p.write()
}

func (p *promWriter) sample(name, labels string, v float64) {
	p.buf = append(p.buf[:0], name...)
	if labels != "" {
		p.buf = append(append(append(p.buf, '{'), labels...), '}')
	}
	p.buf = strconv.AppendFloat(append(p.buf, ' '), v, 'g', -1, 64)
	p.buf = append(p.buf, '\n')
	p.write()
}

func (p *promWriter) gauge(name, help string, v float64) {
	p.family(name, "gauge", help)
	p.sample(name, "", v)
}

func (p *promWriter) counter(name, help string, v uint64) {
	p.family(name, "counter", help)
	p.sample(name, "", float64(v))
}

func (p *promWriter) write() {
	if p.err == nil {
		_, p.err = p.w.Write(p.buf)
	}
}
