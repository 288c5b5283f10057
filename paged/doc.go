// Package paged is a block manager for the KV cache of a transformer
// inference server, in the manner of PagedAttention (Kwon et al., SOSP
// 2023) and vLLM.
//
// Each sequence's keys and values live in fixed-size physical blocks that
// need not be contiguous; a per-sequence block table maps token position p
// to slot table[p/BlockSize]*BlockSize + p%BlockSize. The package owns no
// tensors: it decides where every token's KV goes and what must move
// (Copy directives for copy-on-write), and the server's kernels do the
// moving. Paging leaves at most one partial block of waste per sequence.
//
// One engine step, as the scheduler drives it:
//
//  1. Admit. Add registers a request (its full prompt blocks are hashed
//     once, as a chain); CanAdmit answers ok, later or never without
//     changing anything; Admit claims the longest cached prefix and
//     allocates the rest, all-or-nothing, and returns how many prompt
//     tokens are already computed. Create does Add and Admit in one call.
//     AdmitChunk (dry run CanAdmitChunk) admits only the cached prefix
//     and the next chunk of a long prompt, for chunked prefill, and hands
//     back the tokens past it to append later.
//  2. Write. The server computes KV for the uncached tokens and writes it
//     at the slots BuildBatch (or Slot) reports.
//  3. Decode. Append adds each step's tokens; a full last block gets a new
//     block; a shared last block is copied first (a Copy directive). A
//     block that becomes full is committed to the prefix index at once.
//     AppendStep appends a decode step's tokens, one per sequence, in one
//     call, and DecodeStep also builds the step's batch as it appends.
//  4. Finish. Free releases a sequence's blocks tail first. A block whose
//     count reaches zero stays in the prefix cache (in the eviction policy)
//     if it holds committed content, else it goes to the free list.
//  5. Run out. Allocation takes the free list first, then the policy's
//     victim, whose hash leaves the index then (lazy eviction). Preempt
//     frees a sequence for recompute and keeps its tokens; Admit resumes it.
//     A step dropped before it ran (its sequence preempted or freed) calls
//     Uncompute first: blocks its uncomputed tokens filled leave the
//     prefix cache; Unadmit takes back an admission of the step being
//     built as if it had not been made.
//
// A step ends when its directives are taken (BuildBatch, DecodeStep,
// TakeSwaps, TakeCopies) or at EndStep: the KV of what it admitted counts
// as computed from then on. Until then SwapOut refuses the sequences it
// admitted or swapped in (ErrUncomputed): their KV is not written yet.
//
// # Prefix caching
//
// It follows vLLM v1: block hashes chain over the parent hash, the block's
// tokens and extra keys (LoRA ID on every block, cache salt on the first,
// multimodal content hashes on the blocks they overlap); only full blocks
// are cached; a lookup stops at the first miss and leaves at least the last
// prompt token to recompute (unless SeqOptions.AllowFullHit); duplicates are kept, so tables stay
// append-only. The default hash is SHA-256; FastHasher is for single-tenant
// use and simulations only. With Config.HashMemo a prompt that repeats a
// chain still held in the pool (the next turn of a long conversation)
// takes its hashes from the blocks holding it, each checked against the
// block's recorded SHA-256 input, instead of hashing them again
// (Stats.HashesRecalled counts them). KV events (BlockStored, one per run
// of newly stored blocks; BlockRemoved; AllBlocksCleared) are queued in a
// bounded buffer for DrainEvents; a whole state checkpoint is one block of
// its state group, named by the hash of the block it follows (see
// Checkpoint). Pin keeps a cached prefix resident for
// a promised time, within a budget (SetPinBudget).
//
// # Batches
//
// BuildBatch turns the scheduled sequences of a step into kernel-ready
// metadata in a reused Batch: padded int32 block tables (persistent rows,
// so a step costs O(changed entries + sequences)), sequence and query
// lengths, the slot mapping of the new tokens, the copy and swap
// directives, and, with Batch.SplitUnits set, a Flash-Decoding split plan
// (SplitPlan) that cuts long sequences into balanced chunks over the
// compute units with the merge map of their partial results, each
// sequence from the first block its queries read (Batch.FirstBlocks: past
// a sliding window's released blocks).
//
// # Tiers
//
// With Config.HostBlocks a host pool backs the device pool. SwapOut and
// SwapIn move whole groups of sequences (a block shared inside the group
// moves once and stays shared); an evicted cached block whose content is
// the last device copy is offloaded to the host instead of dropped, stays
// in the prefix index, and a later hit onboards it. With several KV cache
// groups this works group by group: Swap.Group says which group a transfer
// belongs to and TierStatsGroup counts each group's. Every transfer is a
// Swap directive, drained in order into Batch.Swaps. SeqOptions.Window
// releases the blocks that leave a sliding window and points their table
// entries at the null block; a window is never rolled back past them
// (Truncate refuses, speculative drafts do not slide it), and Check
// verifies that every position the next query reads is a real block. Placement spreads one sequence over several
// devices' managers (ring attention), in contiguous shards or round-robin.
//
// # Capacity planning
//
// How much memory a model's KV takes and how many sequences fit is package
// kvmem's question (KV types, layouts, presets, plans); this package does
// not import it. A plan's BlockSize and NumBlocks are a Config's.
//
// # Internals
//
// The Manager is the coordinator: it owns the sequences and their block
// tables and decides the order of lookups, allocations and releases (the
// vLLM-compatible semantics live there). The device pool with its prefix
// index is one unexported component (blockpool.go, vLLM's BlockPool): the
// block allocator, the eviction policy and the retention shelves beside
// it (shelves.go), the per-block metadata (content hash, group,
// duplicates), the hash index and the KV event buffer, with the
// operations that change them together: allocation with victim choice,
// offloading the victim's content to the host tier (offload.go), claim,
// release, commit, uncache, forget, the prefix lookup of a chain of
// hashes (lookup, walking runs of consecutive blocks) and the lookups of
// a block on the device or the host (the chain guesses, findIn). The Manager holds it by
// value; retention.go decides which shelf a released block goes to, and
// the host tier (tier.go) also keeps swapped-out tables, which the Manager
// drives. Each KV cache group's attention
// kind is one small unexported type behind one internal interface
// (group_kinds.go: full, window, chunked, state, shared), which answers
// how many blocks the group holds, which it may release, what a prefix hit
// needs of it and what Check verifies.
//
// # Ownership
//
// Block IDs in tables, batches and directives belong to the manager; the
// caller reads them and must not assume they stay valid past the next call
// that changes the manager. Slices returned by Table, Tokens and
// DrainEvents are views into the manager's buffers (see each method).
// Errors are all-or-nothing: an operation that returns an error has changed
// nothing, except counters of attempts: Admit's prefix statistics count
// failed attempts, as vLLM's do (AdmitChunk's and Create's too), a Create
// refused for space has hashed its prompt (Stats.BlocksHashed), and a pin
// refused for its budget counts in PinStats.Rejected with a PinRejected
// event. Bad input (unknown handles, out-of-range numbers, nil
// batches or snapshots, negative token IDs) returns an error wrapping ErrInvalid,
// ErrUnknownSequence or ErrSequenceState and never panics; a panic means a
// broken internal invariant and names the block. (A method called on a nil
// *Manager, *Placement or *SplitPlan panics like any nil dereference: the
// receiver is the program's, not input.)
//
// # Limits
//
// New refuses a pool of more than MaxBlocks blocks (its per-block metadata
// is allocated up front), a MaxModelLen above MaxSeqLen and an event buffer
// above MaxEvents, and a Config.Reserve above MaxReserveSequences or
// MaxReserveTokens (the reserve, memory made and faulted in at New for
// the sequences' records and buffers, is optional). A sequence without a sliding window is never longer than
// the pool holds; Add refuses a new sequence while Config.MaxWaiting
// sequences wait (ErrNoSpace, back-pressure); token IDs are non-negative.
//
// # Concurrency
//
// A Manager is not safe for concurrent use. The intended pattern is one
// scheduler goroutine that owns the manager and runs the step loop;
// request goroutines talk to it over channels (see examples/server). Wrap
// it in a mutex only if several goroutines must call it directly.
package paged
