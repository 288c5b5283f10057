// Package sched is a continuous-batching scheduler over a paged.Manager:
// the step loop an inference server runs around the block manager, in the
// manner of vLLM v1's scheduler (Kwon et al., SOSP 2023; Yu et al., Orca,
// OSDI 2022, for iteration-level scheduling).
//
// A server (or a simulation) submits requests, then repeats
//
//	step, err := s.Schedule()   // who runs this step, with how many tokens
//	s.BuildBatch(&batch)        // optional: kernel metadata (paged.Batch)
//	...run the model...         // writing step.Checkpoints (State groups)
//	err = s.Update(tokens)      // the sampled tokens; finished ones freed
//
// while s.Busy(). The scheduler owns no tensors and runs no model: the
// caller samples the tokens, and the scheduler decides what the manager
// must do for them. Schedule takes the step's state checkpoints from the
// manager (Step.Checkpoints), so the caller does not call
// paged.Manager.TakeCheckpoints for the scheduler's sequences.
//
// # One step
//
//  1. Decode. Every running sequence, in admission order, gets a slot for
//     its pending sampled token (or its next prompt chunk) while the token
//     budget (Config.MaxBatchTokens) lasts. When the pool runs out, the
//     victim (the newest running sequence under FCFS, the lowest priority
//     under Priority) is preempted, by recompute or swap
//     (Config.Preemption), until the append succeeds or the sequence
//     itself was the victim; then the sequences after it go on.
//  2. Admit. Unless the step preempted and something still runs
//     (Config.AdmitAfterPreemption), waiting sequences are admitted in
//     queue order while the manager finds blocks for them, fewer than
//     Config.MaxRunning sequences run, and the budget covers their
//     uncached tokens (or, with Config.ChunkedPrefill, a chunk of them).
//     The head of the queue blocks everyone behind it.
//  3. Update. Each scheduled sequence that completed its prompt or decoded
//     a token receives its sampled token, which gets its slot at the next
//     step; a sample that reaches Options.MaxTokens, the manager's
//     MaxModelLen or a stop token is freed. A request with Options.N > 1
//     forks its samples when its prompt completes (paged.Manager.Fork):
//     they share the prompt's blocks and copy on write.
//
// A request with Options.BeamWidth is a beam search: its beams are forked
// like samples, then after each step UpdateBeams (Update with a parent for
// every output) says which beam each new beam extends, and the scheduler
// forks the parents chosen twice and frees the beams no one chose. The
// beams are kept together: side by side in a step, decoded all or none,
// preempted as one group (swapped out together, or restarted from the
// prompt, Hooks.Restarted), and aborted (Hooks.Aborted) when they cannot
// grow even alone in the pool.
//
// A request that can never proceed in this pool is aborted, not reported
// as an error of Schedule: a sequence that cannot grow even alone in the
// pool, a head of the queue that does not fit the pool even when the
// scheduler holds nothing of it, or one the manager says can never be
// admitted or swapped in. The whole request ends (every sample, and a beam
// search's beams), its blocks are freed, Request.Err and Hooks.Aborted say
// why (an error wrapping ErrNever), and the step goes on with the other
// requests; one bad request never stops the loop. Submit refuses up front
// what can never fit, on every layout of KV cache groups (Scheduler.Submit
// says how exactly); only running tells of blocks held beside the
// scheduler, beams, forks of State groups and, with window or
// chunked-local groups, the cache a sequence meets. Blocks held beside the
// scheduler by sequences the caller drives itself count as held for good;
// blocks held by prefix pins with an expiry (paged.Manager.Pin) do not,
// since those pins end: while they hold blocks (and no pin without an
// expiry lives), such a sequence is preempted or waits instead, and
// Schedule may return empty steps until a pin expires
// (paged.Manager.Advance) or is unpinned.
//
// Speculative decoding (Config.MaxDrafts): between steps the server
// proposes draft tokens for a sample (Propose); the next step appends them
// after its pending token (paged.Manager.AppendSpeculative) within the
// budget, the sample's remaining outputs and the pool, never preempting
// for them (they are withdrawn first), and names them in
// Scheduled.Drafts; UpdateSpeculative takes how many each sequence
// accepted and the token sampled after them, keeps the accepted drafts as
// outputs (a stop token among them ends the sample there) and rolls the
// rest back (paged.Manager.AcceptSpeculative), so the prefix cache holds
// only accepted content. Beam searches take no drafts.
//
// Config.AdmitFirst swaps the first two phases, as the PagedAttention
// paper's fragmentation study (bench.Frag) and Orca-style simulations do:
// a step admits first, then decodes the sequences that ran before it.
//
// Preempted sequences go back to the front of the waiting queue (FCFS) or
// to their place by priority. Recompute keeps their tokens (prompt, outputs
// and the pending token) in the manager, and readmission finds what the
// prefix cache still holds (with Config.ResampleAfterRecompute the newest
// sampled token, whose KV was never computed, is dropped and sampled
// again). Swap copies their blocks to the manager's host
// tier and SwapIn brings them back.
//
// Chunked prefill admits a prompt by paged.Manager.AdmitChunk, as vLLM
// allocates only the tokens a step schedules: the prefix lookup covers the
// whole prompt, but only the cached prefix and the first chunk are
// allocated and cached, and the rest stays with the scheduler; each later
// chunk allocates its blocks as a decode does, so a long prompt can be
// preempted between chunks. A sequence preempted in the step that scheduled
// its tokens first withdraws them from the prefix cache
// (paged.Manager.Uncompute), so no hit returns KV that was never computed.
// A chunk is always the sequence's last tokens, so paged.Manager.BuildBatch
// describes it exactly.
//
// Workload W1 (bench.RunW1) is this loop with FCFS, no budget, whole
// prompts, recompute and AdmitAfterPreemption; it reproduces vLLM v1's
// allocation decisions bit for bit.
//
// # Observing a step
//
// Config.Hooks are called as the step happens: Phase at each phase
// boundary (a study times phases with it), Scheduled for each sequence
// given tokens, Preempted, Finished, Restarted and Aborted. Stats counts
// admissions, preemptions, aborts, tokens and manager calls. RunningSeqs
// walks the running sequences. Load sums the outstanding work (running and
// waiting requests, prompt and decode tokens still to compute, KV tokens
// held), what a router in front of several servers reads.
//
// # Costs
//
// A step costs O(scheduled sequences) plus the manager's work; a decode
// step that preempts nothing and admits nothing allocates nothing
// (BenchmarkDecodeStep compares it with the bare manager). A refused
// admission costs the manager's error value unless Config.CheckBeforeAdmit
// asks the dry run first. Cancel and the Priority policy's victim choice
// are O(running).
//
// # Ownership
//
// The scheduler owns the sequences it creates in its manager; the caller
// may read the manager (Stats, Table, DrainEvents, BuildBatch) but must not
// change those sequences. A Step is valid until the next Schedule, and
// read-only: the scheduler reads it back. A Request stays readable after
// it is done.
//
// # Concurrency
//
// A Scheduler, like its manager, is not safe for concurrent use: one
// goroutine owns both and runs the loop; request goroutines talk to it
// over channels (examples/server).
package sched
