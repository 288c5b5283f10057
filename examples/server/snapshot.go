package main

import (
	"time"

	"github.com/pagedkv/pagedkv/paged"
	"github.com/pagedkv/pagedkv/sched"
)

// Snapshot is the server's statistics at one moment: the manager's Stats
// plus the scheduler's counters, with JSON names in the style of vLLM's
// metrics.
type Snapshot struct {
	// Manager is the block manager's own snapshot.
	Manager paged.Stats `json:"-"`

	// BlockSize is the pool's tokens per block and Blocks its blocks by
	// state.
	BlockSize int `json:"block_size"`
	// Layout is the KV cache groups in the -layout flag's form, block
	// size first ("b16 full window:128"; "b16 full" for a model of one
	// attention kind), and Groups their figures, one per group of
	// paged.Config.Groups (none for a model of one attention kind).
	Layout string        `json:"layout"`
	Groups []GroupCounts `json:"groups,omitempty"`
	Blocks BlockCounts   `json:"blocks"`
	// Usage is used / usable blocks, as vLLM's kv_cache_usage_perc (0 to 1).
	Usage float64 `json:"kv_cache_usage"`
	// HitRate is prefix-cache hit tokens / queried tokens since start.
	HitRate float64 `json:"prefix_cache_hit_rate"`
	// Prefix, Requests, Sequences and Tokens are the counters of each
	// kind; Steps counts the engine steps run.
	Prefix    PrefixCounts   `json:"prefix_cache"`
	Requests  RequestCounts  `json:"requests"`
	Sequences SequenceCounts `json:"sequences"`
	Tokens    TokenCounts    `json:"tokens"`
	Steps     uint64         `json:"steps"`
	// Preemptions, Copies (copy-on-write), Forks and Evictions are the
	// manager's lifetime counters.
	Preemptions uint64 `json:"preemptions"`
	Copies      uint64 `json:"copies"`
	Forks       uint64 `json:"forks"`
	Evictions   uint64 `json:"evictions"`
	// Events counts the KV events drained, by kind.
	Events EventCounts `json:"events"`
	// ManagerTime is the time spent in manager calls by the step loop.
	ManagerTime time.Duration `json:"manager_ns"`
}

// BlockCounts are the pool's blocks by state; Free+Cached+Used == Usable.
type BlockCounts struct {
	// Usable excludes the null block; Free are on the free list, Cached
	// hold prefix-cache content nobody references, Used are referenced.
	Usable int `json:"usable"`
	Free   int `json:"free"`
	Cached int `json:"cached"`
	Used   int `json:"used"`
	// PeakUsed is the most blocks ever referenced at once.
	PeakUsed int `json:"peak_used"`
}

// PrefixCounts are the prefix cache's lifetime counters in tokens, as
// vLLM's prefix_cache_queries and prefix_cache_hits.
type PrefixCounts struct {
	// QueryTokens are the prompt tokens looked up at admission, HitTokens
	// those found; Stored counts the blocks committed to the cache.
	QueryTokens uint64 `json:"query_tokens"`
	HitTokens   uint64 `json:"hit_tokens"`
	Stored      uint64 `json:"blocks_stored"`
}

// RequestCounts counts requests by outcome and current state.
type RequestCounts struct {
	// Submitted counts the requests accepted.
	Submitted uint64 `json:"submitted"`
	// Rejected counts every refused submission, whichever layer refused
	// it; RejectedBy splits it by reason (the API's error codes).
	Rejected   uint64            `json:"rejected"`
	RejectedBy map[string]uint64 `json:"rejected_by"`
	// Finished counts the requests whose every sample ended, Cancelled
	// those cancelled first.
	Finished  uint64 `json:"finished"`
	Cancelled uint64 `json:"cancelled"`
	// Aborted counts the requests accepted that turned out never to fit
	// the pool (state "aborted").
	Aborted uint64 `json:"aborted"`
	// Parallel counts submitted requests with more than one sample.
	Parallel uint64 `json:"parallel"`
	// Waiting counts live requests holding no blocks (preempted ones
	// included), Running those holding some.
	Waiting int `json:"waiting"`
	Running int `json:"running"`
	// Queued counts the requests never admitted yet, which MaxQueued
	// bounds.
	Queued    int `json:"queued"`
	MaxQueued int `json:"max_queued"`
}

// addRejected counts n more refusals for reason r. RejectedBy must be
// the caller's own map.
func (rc *RequestCounts) addRejected(r Reason, n uint64) {
	rc.RejectedBy[r.String()] += n
	rc.Rejected += n
}

// SequenceCounts are the manager's sequences (one per sample) by state.
type SequenceCounts struct {
	// Running hold blocks, Waiting do not (new or preempted); PeakRunning
	// is the most ever running at once.
	Running     int `json:"running"`
	Waiting     int `json:"waiting"`
	PeakRunning int `json:"peak_running"`
}

// TokenCounts are token totals.
type TokenCounts struct {
	// Prompt sums the prompts submitted.
	Prompt uint64 `json:"prompt"`
	// Prefill counts tokens computed at admission (recomputation after
	// preemption included); Cached those found in the prefix cache then.
	Prefill uint64 `json:"prefill"`
	Cached  uint64 `json:"cached"`
	// Generated counts tokens sampled, over all samples (accepted drafts
	// included).
	Generated uint64 `json:"generated"`
	// Drafted counts the draft tokens verified (SchedulerConfig.Drafts),
	// Accepted those the model accepted.
	Drafted  uint64 `json:"drafted"`
	Accepted uint64 `json:"accepted"`
}

// EventCounts count the KV events drained, and the blocks they name.
type EventCounts struct {
	// Stored and Removed count BlockStored and BlockRemoved events, and
	// StoredBlocks and RemovedBlocks the blocks they name; Cleared counts
	// AllBlocksCleared, Dropped the events lost to a full buffer.
	Stored        uint64 `json:"block_stored"`
	StoredBlocks  uint64 `json:"block_stored_blocks"`
	Removed       uint64 `json:"block_removed"`
	RemovedBlocks uint64 `json:"block_removed_blocks"`
	Cleared       uint64 `json:"all_blocks_cleared"`
	Dropped       uint64 `json:"dropped"`
}

// GroupCounts are one KV cache group's figures. The pool, the prefix
// cache's lookups and the counters above are shared by all groups; these
// are the ones that differ.
type GroupCounts struct {
	// Group is the group's index (paged.Event.Group) and Kind its field
	// of the layout ("full", "window:128", "state:34", ...).
	Group int    `json:"group"`
	Kind  string `json:"kind"`
	// BatchBlocks counts the non-null block table entries of the last
	// step's batch in this group (paged.Batch.Tables for group 0,
	// GroupTables for the others; a block two forks share counts twice):
	// what the step's kernels read. A window group's stay within its
	// window, a state group's are its pages per sequence, a shared
	// group's repeat its target's.
	BatchBlocks int `json:"batch_blocks"`
	// StoredBlocks and RemovedBlocks count the blocks that the group's
	// BlockStored and BlockRemoved events named: for a state group, whole
	// checkpoints (one hash each).
	StoredBlocks  uint64 `json:"stored_blocks"`
	RemovedBlocks uint64 `json:"removed_blocks"`
	// Checkpoints counts the state checkpoints the manager handed out in
	// this group (sched.Step.Checkpoints; State groups only).
	Checkpoints uint64 `json:"checkpoints"`
}

// ManagerPerStep is the mean manager time per step.
func (sn Snapshot) ManagerPerStep() time.Duration {
	if sn.Steps == 0 {
		return 0
	}
	return sn.ManagerTime / time.Duration(sn.Steps)
}

// nonNull counts the entries of a batch table that name a block.
func nonNull(tab []int32) int {
	n := 0
	for _, b := range tab {
		if b != 0 {
			n++
		}
	}
	return n
}

// Snapshot returns the current statistics.
func (s *Scheduler) Snapshot() Snapshot {
	st := s.m.Stats()
	ss := s.s.Stats()
	c := &s.c
	waiting := 0
	for _, r := range s.live {
		if r.r.State() != sched.Running {
			waiting++ // preempted ones included: they hold no blocks
		}
	}
	sn := Snapshot{
		Manager:   st,
		BlockSize: st.BlockSize,
		Blocks: BlockCounts{Usable: st.UsableBlocks, Free: st.FreeBlocks, Cached: st.CachedBlocks,
			Used: st.UsedBlocks, PeakUsed: max(c.peakUsed, st.UsedBlocks)},
		Usage:   st.Usage(),
		HitRate: st.HitRate(),
		Prefix:  PrefixCounts{QueryTokens: st.PrefixQueryTokens, HitTokens: st.PrefixHitTokens, Stored: st.BlocksStored},
		Requests: RequestCounts{Submitted: c.submitted, Finished: c.finished, Cancelled: c.cancelled, Aborted: c.aborted,
			Parallel: c.parallel, Waiting: waiting, Running: len(s.live) - waiting,
			Queued: s.queued, MaxQueued: s.cfg.MaxQueued},
		Sequences: SequenceCounts{Running: st.Running, Waiting: st.Waiting, PeakRunning: ss.PeakRunning},
		Tokens: TokenCounts{Prompt: c.promptTokens, Prefill: uint64(ss.PrefillTokens), Cached: uint64(ss.CachedTokens),
			Generated: uint64(ss.Outputs), Drafted: uint64(ss.DraftsAccepted + ss.DraftsRejected), Accepted: uint64(ss.DraftsAccepted)},
		Steps:       c.steps,
		Preemptions: st.Preemptions,
		Copies:      st.Copies,
		Forks:       st.Forks,
		Evictions:   st.Evictions,
		Events:      c.events,
		ManagerTime: c.managerTime,
	}
	sn.Events.Dropped = st.EventsDropped
	groups := s.m.Config().Groups
	sn.Layout = LayoutString(st.BlockSize, groups)
	if len(groups) > 0 {
		sn.Groups = make([]GroupCounts, len(groups))
		for g := range groups {
			tab := s.batch.Tables
			if g > 0 && g-1 < len(s.batch.GroupTables) {
				tab = s.batch.GroupTables[g-1]
			} else if g > 0 {
				tab = nil // no batch built yet
			}
			gc := &s.c.groups[g]
			sn.Groups[g] = GroupCounts{Group: g, Kind: groupName(groups[g]), BatchBlocks: nonNull(tab),
				StoredBlocks: gc.stored, RemovedBlocks: gc.removed, Checkpoints: gc.checkpoints}
		}
	}
	// Every reason is listed, zeros included, so a dashboard finds each.
	sn.Requests.RejectedBy = make(map[string]uint64, numReasons)
	for r, n := range c.rejected {
		sn.Requests.addRejected(Reason(r), n)
	}
	return sn
}
