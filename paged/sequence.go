package paged

import (
	"encoding/binary"
	"fmt"
	"math"
	"slices"
	"unsafe"

	"github.com/pagedkv/pagedkv/allocator"
)

// SeqID is a handle to a sequence. The zero SeqID names no sequence; a
// handle of a freed sequence stays invalid even after its slot is reused:
// a handle is a slot and a 32-bit generation, and a slot whose generations
// are spent (after 2^31 sequences) is retired rather than reused, so no
// handle is ever issued twice.
type SeqID uint64

func makeSeqID(idx, gen uint32) SeqID { return SeqID(uint64(gen)<<32 | uint64(idx)) }

func (id SeqID) parts() (idx, gen uint32) { return uint32(id), uint32(id >> 32) }

// String formats the handle as "seq<slot>.<generation>".
func (id SeqID) String() string {
	idx, gen := id.parts()
	return fmt.Sprintf("seq%d.%d", idx, gen)
}

// SeqOptions are the per-sequence extras. The zero value means none.
type SeqOptions struct {
	// LoRA is the adapter ID; it enters the hash of every block, so
	// sequences under different adapters never share KV. 0 means none.
	LoRA int32
	// Salt enters the hash of the first block only: sequences with
	// different salts share nothing, which isolates tenants.
	Salt string
	// MM are the multimodal inputs: each range of token positions carries a
	// content hash that enters the hash of every block it overlaps, so an
	// image placeholder only hits the same image.
	MM []MMRange
	// AllowFullHit lets the prefix lookup cover the last prompt token. By
	// default at least one token is recomputed to produce the next token's
	// logits, as in vLLM; simulations that count block references set it.
	AllowFullHit bool
	// Retention asks the eviction policy to keep this sequence's cached
	// blocks: the blocks it commits and the cached blocks it reuses
	// through a prefix hit at admission (the priority policy honours it;
	// see Retention for the rules). nil makes no promise and changes no
	// block's level.
	Retention *Retention
	// Window is the sliding attention window in tokens: the query at
	// position p reads positions [p-Window+1, p], and blocks the window no
	// longer reaches are released (see window.go). A windowed sequence may
	// grow to Config.MaxModelLen, past what the pool holds, if the pool
	// holds the ceil((Window-1)/BlockSize)+1 blocks a window can span
	// (else, like a sequence without a window, no further than the pool:
	// past it, appends fail with ErrNever); Truncate never
	// rolls it back past released blocks. 0 means full attention; it must
	// not exceed MaxModelLen.
	Window int
	// MaxTokens is a hint: the most tokens the sequence is expected to
	// reach, prompt and output together (a request's prompt length plus
	// its max_tokens). Add sizes the sequence's token, block and hash
	// buffers for it, so decoding never grows them. 0 means no hint;
	// values above MaxModelLen count as MaxModelLen. It limits nothing.
	MaxTokens int
}

// MMRange is a multimodal input occupying token positions [Start, End).
type MMRange struct {
	// Start is the first token position of the input and End the position
	// after its last.
	Start, End int
	// Hash identifies the input's content; it is mixed into the hash of
	// every block the range overlaps.
	Hash string
}

// Retention is a priority for cached blocks, in the manner of
// TensorRT-LLM's KvCacheRetentionConfig: levels 0 (give up first) to 100,
// for Ticks of logical time (0: for good), counted from the commit or the
// hit (Manager.Advance moves time).
//
// It is a promise to the request that makes it, and with the priority
// policy (eviction.Priority) every promise in force is kept: a block's
// level is the highest of its own level (the committing request's,
// eviction.DefaultPriority once its ticks run out or without a Retention)
// and the levels of the requests that reused it through a hit and whose
// ticks have not run out. So a hit raises a reused block for the reusing
// request's ticks and never lowers it: a prefix one request cached at 0 and
// another hit at 90 stays at 90 for the second request's ticks, then falls
// back to 0 while the first request's ticks last. (TensorRT-LLM instead
// gives the block the last claimer's level, which lets a later
// low-priority request void an earlier promise.) The policy keeps two
// steps of this per block (a level until a tick, then a lower one; the
// default for good is no step, the level every block ends at); more
// promises merge upwards, keeping a block longer than promised, never
// shorter. Blocks of a chain are kept together: a parent is not evicted
// while its evictable child is cached, and a block whose parent's content
// is gone goes first, whatever its level (it can no longer be hit). A pin
// (Manager.Pin) keeps a prefix whatever its level; when the pin ends its
// blocks are back at the level their promises give them then.
type Retention struct {
	// Priority is the retention level, 0 (give up first) to 100.
	Priority int
	// Ticks is how long, in logical time (Manager.Advance), the priority
	// lasts before reverting; 0 means it never reverts.
	Ticks int64
}

type seqState uint8

const (
	seqUnused seqState = iota
	seqWaiting
	seqRunning
)

// sequence is a slot of Manager.seqs: its fields, padded to whole cache
// lines so that every slot starts a line and the decode fast path, which
// reads the first 56 bytes, touches one line instead of two for every
// other slot.
type sequence struct {
	seqFields
	_ [(64 - unsafe.Sizeof(seqFields{})%64) % 64]byte
}

type seqFields struct {
	// Hot fields first: the decode fast path and BuildBatch touch only
	// these, so they share the struct's first cache line, up to and
	// including the length of blocks (bytes 56-63; TestSequenceHotLine):
	// at 4,096 sequences a second line per sequence and step measured 8%
	// of the step without caching (BenchmarkDecodeStep).
	gen     uint32
	version uint32
	// ownEnd, when not 0, says the last block is partly filled,
	// referenced by this sequence alone and holds no cached content, so
	// the tokens at positions below ownEnd (the block's last slot, or
	// the sequence's limit) can be written in place, Append's inline
	// path; it is valid only while ownVer == version (every change of the
	// table bumps version) and Fork clears it (setOwn).
	ownVer uint32
	ownEnd uint32
	mark   uint32
	state  seqState
	// windowed is opts.Window > 0, here so that BuildBatch reads released
	// (never above 0 without a window) only for sliding-window sequences.
	windowed bool
	// plain: the sequence's blocks hash without extra keys (no LoRA, salt
	// or multimodal input), so hashFull hashes them through noKeys, in
	// the cache already, instead of reading opts from the record's third
	// line.
	plain bool
	// ownHashes: every hash of the sequence was computed by the manager
	// (none was given, AddHashed and AddFromHashes), so the hash memo may
	// record its blocks (memo.go).
	ownHashes bool
	// tokens holds every token of the sequence; for sequences created from
	// hashes, the tokens the caller did not give are zero placeholders.
	tokens []int32
	blocks []allocator.BlockID

	// The second line (after the blocks' capacity): what hashing and
	// committing the block a token filled read (hashFull, commitFull),
	// so that such a block costs the sequence's first two lines, not
	// four (TestSequenceHashLine).
	hashes []Hash
	// hashLimit: blocks at this index and beyond cannot be hashed (their
	// tokens are unknown placeholders).
	hashLimit int
	// committed: blocks[:committed] hold committed content equal to
	// hashes[:committed].
	committed int
	// spec: trailing speculative tokens, never committed.
	spec int
	// pend, once made, holds what AdmitChunk kept of the blocks it cut
	// off: behind a pointer, since few sequences need it and every slot's
	// size counts when BuildBatch walks them, and next to the fields
	// hashFull reads, so that checking it touches no other cache line.
	pend *pending

	// gslow turns a hybrid manager's one-token fast path off: a group's
	// partly filled last block may be shared (Fork, SwapIn) or cached
	// (Truncate), or drafts are pending. The general path clears it.
	gslow bool
	// unknown: the tokens are placeholders (AddFromHashes); AdmitChunk
	// cannot hand them back.
	unknown bool
	// dropNow: Uncompute set the record redo in the step being built,
	// whose kernels have not run, from no earlier record (or Fork copied
	// it, with the record, from a parent so marked): no State group has
	// absorbed a token from redo-1 on (Manager.absorbed). Cleared at the
	// step's end (Manager.drops lists the sequences to clear).
	dropNow bool
	// spares is how many spare draft states (groupTable.spare) the
	// sequence keeps in every State group (groups_ops.go, "State
	// drafts"); an int32 in the bools' padding.
	spares int32
	// released: blocks[:released] fell out of the sliding window and name
	// the null block.
	released int
	opts     SeqOptions
	mm       []MMRange
	// host is the host table of a swapped-out sequence.
	host []allocator.BlockID
	// ext are the tables of KV cache groups 1 and up (Config.Groups).
	ext []groupTable
	// keep is what hybrid retention knows of the sequence (retention.go).
	keep seqRetention
	// arrived is the step (Manager.step) in which the sequence was last
	// admitted or swapped in, outStep the step of its last SwapOut (0:
	// none since a step counter wrap): a sequence whose KV the step
	// being built writes is never swapped out in it (SwapOut, Check).
	arrived, outStep uint32
	// redo, when not 0, is one more than the first position whose KV the
	// caller said was never computed (Uncompute), at a length of redoLen:
	// the next step computes from there, so SwapOut keeps the blocks its
	// query reads (swapFrom), unless the sequence grew past redoLen since,
	// which only an Append does, taking every token before it as computed
	// (a record that outlives its tokens only keeps more); AppendSpeculative
	// and a Truncate that cuts the position forget it. Off the lines
	// Append reads: it is written by Uncompute and read by SwapOut alone.
	redo, redoLen uint32
	// adm is what the admission that made the sequence running counted
	// in the prefix statistics, while Unadmit may still take it back
	// (adm.ok: admitted, not swapped in or forked, in step arrived).
	adm admitRecord
}

// admitRecord is the lookup an admission counted (countQuery: the
// sequence's length, its planned blocks, hits and host hits), the tokens
// it returned as cached, and whether it counted in
// Stats.CheckpointHitsDropped (dropped) and Stats.HitFallbacks (fell),
// for Unadmit. The flags sit in ok's padding (TestReserveBytes).
type admitRecord struct {
	tokens, need, hits, onboard, cached int32
	ok, dropped, fell                   bool
}

// pending is what AdmitChunk keeps of the full blocks it cut off a
// sequence, for hashFull to reuse when their tokens come back
// (reusePending): hashes[j] names block from+j, was computed over
// tokens[j*bs:(j+1)*bs] and chained to parent (j == 0) or hashes[j-1].
// hashes is empty when nothing is kept; the buffers are reused.
type pending struct {
	from   int
	parent Hash
	hashes []Hash
	tokens []int32
}

// seq resolves a handle.
func (m *Manager) seq(id SeqID) (*sequence, error) {
	idx, gen := id.parts()
	if gen == 0 || uint(idx) >= uint(len(m.seqs)) || m.seqs[idx].gen != gen || m.seqs[idx].state == seqUnused {
		return nil, errorf(ErrUnknownSequence, "%v", id)
	}
	return &m.seqs[idx], nil
}

func (m *Manager) running(id SeqID, op string) (*sequence, error) {
	s, err := m.seq(id)
	if err != nil {
		return nil, err
	}
	if s.state != seqRunning {
		return nil, errorf(ErrSequenceState, "%s: %v is %v, not running", op, id, s.state)
	}
	return s, nil
}

// newSeq takes a sequence slot for a sequence that needs want tokens now
// (its length or reserve, the larger). Slots and their buffers are reused,
// so a steady stream of sequences allocates nothing once the buffers have
// grown; but buffers past keepTokens that want would not half fill are
// given up.
func (m *Manager) newSeq(want int) (uint32, *sequence) {
	var idx uint32
	if n := len(m.freeSeqs); n > 0 {
		idx = m.freeSeqs[n-1]
		m.freeSeqs = m.freeSeqs[:n-1]
		s := &m.seqs[idx]
		if c := cap(s.tokens); c > keepTokens {
			m.spare -= c
			if c > 2*want {
				dropBuffers(s)
			}
		}
	} else {
		if len(m.seqs) == cap(m.seqs) {
			// Double: append grows a large slice by a quarter, and every
			// growth copies each slot (with write barriers while the GC
			// marks), which W1's 2,000 waiting sequences pay for.
			m.seqs = slices.Grow(m.seqs, max(len(m.seqs), 16))
		}
		m.seqs = append(m.seqs, sequence{})
		idx = uint32(len(m.seqs) - 1)
	}
	s := &m.seqs[idx]
	s.gen++
	if s.gen == 0 {
		s.gen = 1
	}
	s.blocks, s.tokens, s.hashes, s.mm = s.blocks[:0], s.tokens[:0], s.hashes[:0], s.mm[:0]
	s.hashLimit, s.committed, s.spec, s.version = math.MaxInt, 0, 0, s.version+1
	s.unknown = false
	dropPending(s)
	s.host, s.released = s.host[:0], 0
	s.opts, s.windowed, s.plain, s.ownHashes = SeqOptions{}, false, true, true
	s.keep.reset()
	s.arrived, s.outStep, s.redo, s.adm, s.dropNow = 0, 0, 0, admitRecord{}, false
	m.resetGroups(s)
	s.state = seqWaiting
	m.nlive++
	return idx, s
}

// dropSeq returns a slot whose sequence holds no blocks.
func (m *Manager) dropSeq(idx uint32) {
	s := &m.seqs[idx]
	if s.state == seqRunning {
		m.nrunning--
	}
	s.state = seqUnused
	s.gen++
	// Append's inline path reads ownEnd, not the state: a handle of the
	// new generation, which no live handle has but a caller can make,
	// must not find the slot own.
	s.ownEnd = 0
	m.nlive--
	if s.gen == 0 {
		// The generations are spent: reusing the slot would issue its
		// first handle again. Retire it: only the emptied slot stays.
		*s = sequence{}
		return
	}
	if c := cap(s.tokens); c > keepTokens {
		if m.spare+c > 2*m.cfg.MaxModelLen {
			dropBuffers(s)
		} else {
			m.spare += c
		}
	}
	m.freeSeqs = append(m.freeSeqs, idx)
}

// keepTokens is the buffer size, in tokens, that a slot always keeps for
// the next sequence: 2^16 tokens, about 400 KB of tokens, hashes and
// table. Larger buffers are kept only while they fit what they serve.
// Otherwise every slot that ever held a long sequence would keep its
// buffers for the short ones after it, and memory would grow with the run,
// not with what is live. The free slots keep larger buffers for at most
// twice MaxModelLen tokens in all (Manager.spare), and a slot taken by a
// sequence that needs less than half its buffers gives them up (newSeq).
// Allocating them again costs little beside a long prompt's prefill.
const keepTokens = 1 << 16

// dropBuffers lets the buffers of a free slot go.
func dropBuffers(s *sequence) {
	s.tokens, s.blocks, s.hashes, s.host, s.mm, s.pend = nil, nil, nil, nil, nil, nil
	for g := range s.ext {
		s.ext[g].blocks, s.ext[g].host = nil, nil
	}
}

func (m *Manager) checkOptions(opts *SeqOptions, n int) error {
	if opts == nil {
		return nil
	}
	if opts.LoRA < 0 {
		return errorf(ErrInvalid, "SeqOptions.LoRA %d is negative", opts.LoRA)
	}
	for i, r := range opts.MM {
		if r.Start < 0 || r.End <= r.Start || r.End > n {
			return errorf(ErrInvalid, "SeqOptions.MM[%d] range [%d, %d) is empty or outside the %d-token prompt", i, r.Start, r.End, n)
		}
	}
	if opts.MaxTokens < 0 {
		return errorf(ErrInvalid, "SeqOptions.MaxTokens %d is negative", opts.MaxTokens)
	}
	if opts.Window != 0 && m.hybrid() {
		return errorf(ErrInvalid, "SeqOptions.Window %d: a manager with KV cache groups windows through Config.Groups", opts.Window)
	}
	if opts.Window < 0 || opts.Window > m.cfg.MaxModelLen {
		return errorf(ErrInvalid, "SeqOptions.Window %d must be in [0, MaxModelLen=%d]", opts.Window, m.cfg.MaxModelLen)
	}
	if r := opts.Retention; r != nil && (r.Priority < 0 || r.Priority > 100 || r.Ticks < 0) {
		return errorf(ErrInvalid, "SeqOptions.Retention priority %d must be in [0, 100] and ticks %d not negative", r.Priority, r.Ticks)
	}
	return nil
}

func (m *Manager) setOptions(s *sequence, opts *SeqOptions) {
	if opts == nil {
		return
	}
	s.opts, s.windowed = *opts, opts.Window > 0
	if n := m.reserve(opts); n > 0 {
		// The tokens' buffer is sized by setTokens, which copies them.
		s.blocks = m.growTable(s.blocks, m.ceilBlocks(n))
	}
	s.mm = append(s.mm, opts.MM...)
	s.opts.MM = s.mm
	s.plain = opts.LoRA == 0 && opts.Salt == "" && len(opts.MM) == 0
	if opts.Retention != nil {
		r := *opts.Retention
		s.opts.Retention = &r
	}
}

// noKeys are the options of a sequence whose blocks have no extra hash
// keys (seqFields.plain).
var noKeys SeqOptions

// keys returns the options s's block hashes are computed under: s.opts,
// or noKeys when they add no extra key (the same hashes).
func (s *sequence) keys() *SeqOptions {
	if s.plain {
		return &noKeys
	}
	return &s.opts
}

// reserve is the tokens a sequence's buffers are sized for: its MaxTokens
// hint, at most MaxModelLen (0: no hint).
func (m *Manager) reserve(opts *SeqOptions) int {
	if opts == nil {
		return 0
	}
	return min(opts.MaxTokens, m.cfg.MaxModelLen)
}

// setTokens makes s's tokens a copy of src, in a buffer with room for
// want tokens: s's own, if it has the room, else a piece of
// Config.Reserve's tokens while they last, else a new one. A new buffer is made by appending the reserve to a
// full-capacity view of src: the runtime then copies src and clears only
// the reserve, where making the whole buffer first would clear it all and
// then copy over most of it (W1 adds 2.4M prompt tokens before its first
// step). src itself is never kept: its view has no room, so append must
// allocate.
func (m *Manager) setTokens(s *sequence, src []int32, want int) {
	n := len(src)
	if c := max(n, want); cap(s.tokens) < c && c <= len(m.res.tokens) {
		s.tokens = append(m.res.tokens[:0:c], src...)
		m.res.tokens = m.res.tokens[c:]
		return
	}
	if want <= n || cap(s.tokens) >= want {
		s.tokens = append(s.tokens[:0], src...)
		return
	}
	s.tokens = append(src[:n:n], make([]int32, want-n)...)[:n]
}

// setPromptHashes hashes the full blocks of a new sequence's tokens into
// s.hashes, sized for want tokens. A new buffer is hashed into directly:
// hashing into a scratch buffer and appending the reserve to it, as
// setTokens does, writes every hash twice.
func (m *Manager) setPromptHashes(s *sequence, idx uint32, want int) {
	if !m.hashing {
		return
	}
	k, w := min(m.fullBlocks(len(s.tokens)), s.hashLimit), m.fullBlocks(want)
	dst := s.hashes[:0]
	if w = max(w, k); cap(dst) < w {
		dst = m.hashBuffer(w)
	}
	var shared, recalled int
	if m.sharers != nil && s.plain && k > 0 {
		dst, shared = m.shareHashes(dst, s, idx, k)
	}
	s.hashes, recalled = m.promptHashes(dst, s.tokens, s.keys(), s.plain, shared, k)
	m.stats.hashed += uint64(k - shared - recalled)
	m.stats.recalled += uint64(shared + recalled)
}

// checkTokens refuses negative token IDs: every tokenizer numbers tokens
// from 0, so a negative one is a caller's bug (an unset or sentinel value)
// that would otherwise be hashed and cached like any token.
func checkTokens(op string, tokens []int32) error {
	// OR the tokens sixteen at a time, two to a 64-bit load, into two
	// words, without a branch: a sign bit set anywhere is the rare case,
	// searched for only then. The loads read the tokens' bytes in the
	// machine's order, so each token's sign bit is bit 31 or 63 of its
	// word (a byte view: no alignment is assumed).
	b := unsafe.Slice((*byte)(unsafe.Pointer(unsafe.SliceData(tokens))), 4*len(tokens))
	ne := binary.NativeEndian
	var or0, or1 uint64
	for ; len(b) >= 64; b = b[64:] {
		w := (*[64]byte)(b)
		or0 |= ne.Uint64(w[0:8]) | ne.Uint64(w[8:16]) | ne.Uint64(w[16:24]) | ne.Uint64(w[24:32])
		or1 |= ne.Uint64(w[32:40]) | ne.Uint64(w[40:48]) | ne.Uint64(w[48:56]) | ne.Uint64(w[56:64])
	}
	for ; len(b) >= 8; b = b[8:] {
		or0 |= ne.Uint64(b)
	}
	if len(b) > 0 {
		or1 |= uint64(uint32(tokens[len(tokens)-1]))
	}
	if (or0|or1)&signBits == 0 {
		return nil
	}
	for i, t := range tokens {
		if t < 0 {
			return errorf(ErrInvalid, "%s: token %d at index %d is negative (token IDs start at 0)", op, t, i)
		}
	}
	panic("paged: checkTokens lost a negative token")
}

// signBits are the sign bits of the two tokens a 64-bit load of
// checkTokens reads.
const signBits = 1<<31 | 1<<63

// seqLimit is the most tokens a sequence with window w may hold. A window
// spans at most ceilBlocks(w-1)+1 blocks; if the pool holds that many, the
// sequence may grow to MaxModelLen, else no further than the pool (the
// next token would make its window span more blocks than there are).
func (m *Manager) seqLimit(w int) int {
	if w > 0 && m.ceilBlocks(w-1)+1 <= m.bp.pool.Usable() {
		return m.cfg.MaxModelLen
	}
	return m.fullLen
}

// checkNew validates a new sequence of n tokens: its options, its length
// against MaxModelLen and the pool, and room in the waiting set.
func (m *Manager) checkNew(op string, n int, opts *SeqOptions, waiting bool) error {
	if err := m.checkOptions(opts, n); err != nil {
		return err
	}
	w := 0
	if opts != nil {
		w = opts.Window
	}
	if lim := m.seqLimit(w); n > lim {
		return errorf(ErrNever, "%s: %d tokens exceed the %d a sequence may hold (MaxModelLen %d, pool %d tokens)", op, n, lim, m.cfg.MaxModelLen, m.cfg.poolTokens())
	}
	if waiting && m.nlive-m.nrunning >= m.cfg.MaxWaiting {
		return errorf(ErrNoSpace, "%s: %d sequences wait, as many as Config.MaxWaiting allows", op, m.nlive-m.nrunning)
	}
	return nil
}

// Add registers a waiting sequence for prompt and hashes its full blocks
// once. It holds no blocks until Admit. Tokens are copied. An empty prompt
// or a negative token is ErrInvalid; a prompt longer than a sequence may
// be (see Config.MaxModelLen) ErrNever; a full waiting set (see
// Config.MaxWaiting) ErrNoSpace.
func (m *Manager) Add(prompt []int32, opts *SeqOptions) (SeqID, error) {
	return m.add("Add", prompt, opts, true, false)
}

// add registers a sequence for prompt: a waiting one (Add), or one Create
// admits at once; owned keeps prompt's array when it has room (AddOwned).
func (m *Manager) add(op string, prompt []int32, opts *SeqOptions, waiting, owned bool) (SeqID, error) {
	if err := m.checkPrompt(op, prompt, opts, waiting); err != nil {
		return 0, err
	}
	want := m.reserve(opts)
	idx, s := m.newSeq(max(want, len(prompt)))
	// Before setOptions, which sizes the table for the hint alone: a
	// prompt longer than its hint takes one piece of the reserve.
	m.reserveTable(s, m.ceilBlocks(max(want, len(prompt))))
	m.setOptions(s, opts)
	if owned && cap(prompt) >= want {
		// Only the elements up to the hint are taken: the capacity past
		// them may be memory the caller still uses (an arena of prompts).
		n := len(prompt)
		s.tokens = prompt[:n:max(n, want)]
	} else {
		m.setTokens(s, prompt, want)
	}
	m.setPromptHashes(s, idx, want)
	return makeSeqID(idx, s.gen), nil
}

// AddOwned is Add for a prompt whose memory the caller hands over: when
// prompt's capacity holds the sequence's MaxTokens hint (SeqOptions; a
// caller that makes the prompt with make([]int32, 0, maxTokens) and
// appends its tokens gives such a slice), the manager keeps
// prompt[:max(len(prompt), MaxTokens)] as the sequence's token buffer
// instead of copying the prompt, and later tokens are written into it up
// to the hint (past it, the sequence moves to a buffer of its own).
// Otherwise it copies, as Add does. Once AddOwned succeeds, the elements
// up to max(len(prompt), MaxTokens) are the manager's: the caller must
// neither read nor write them again (Tokens gives the tokens), nor pass
// them, or a slice overlapping them, to another call, as the manager
// writes into them and, once the sequence is freed, reuses them for later
// sequences (keeping the array they belong to alive). A hint above
// Config.MaxModelLen counts as MaxModelLen here too. The capacity past
// them stays the caller's: regions of one arena, each sized for its
// request's hint, may be handed over one by one. The prompt must not be a
// view the manager returned (Tokens). A failed call keeps nothing: the
// memory is the caller's again. It saves a server that builds each prompt
// in its own slice (decoding a request's token IDs, say) the copy, and
// the first touch of the copy's memory. Errors are those of Add.
func (m *Manager) AddOwned(prompt []int32, opts *SeqOptions) (SeqID, error) {
	return m.add("AddOwned", prompt, opts, true, true)
}

// checkPrompt validates Add's arguments.
func (m *Manager) checkPrompt(op string, prompt []int32, opts *SeqOptions, waiting bool) error {
	if len(prompt) == 0 {
		return errorf(ErrInvalid, "%s: empty prompt", op)
	}
	if err := checkTokens(op, prompt); err != nil {
		return err
	}
	return m.checkNew(op, len(prompt), opts, waiting)
}

// AddHashed is Add for a prompt whose block hashes were computed
// elsewhere, by a PromptHasher of this manager, typically on the request's
// own goroutine so that the scheduler goroutine pays only for the copy and,
// at Admit, the lookup. hashes must hold the hash of every full block of
// prompt, in order, under the same opts. The manager trusts them as it
// trusts AddFromHashes: hashes that do not match the tokens make the
// sequence's blocks hit, and be hit by, content other than its own.
func (m *Manager) AddHashed(prompt []int32, hashes []Hash, opts *SeqOptions) (SeqID, error) {
	if err := m.checkPrompt("AddHashed", prompt, opts, true); err != nil {
		return 0, err
	}
	if len(hashes) != len(prompt)/m.bs {
		return 0, errorf(ErrInvalid, "AddHashed: %d hashes for a prompt of %d full blocks", len(hashes), len(prompt)/m.bs)
	}
	want := m.reserve(opts)
	idx, s := m.newSeq(max(want, len(prompt)))
	s.ownHashes = false
	m.setOptions(s, opts)
	m.setTokens(s, prompt, want)
	if m.hashing {
		if w := want / m.bs; cap(s.hashes) < w && w > len(hashes) {
			s.hashes = append(hashes[:len(hashes):len(hashes)], make([]Hash, w-len(hashes))...)[:len(hashes)]
		} else {
			s.hashes = append(s.hashes, hashes...)
		}
	}
	return makeSeqID(idx, s.gen), nil
}

// AddFromHashes registers a waiting sequence of numTokens tokens whose
// leading full blocks are named by precomputed hashes, for callers that hash
// elsewhere and for traces that carry only hashes. The tokens themselves are
// unknown: blocks past the given hashes are committed only if they are
// filled entirely by tokens appended later. Errors are those of Add; the
// placeholders are allocated only once the length is known to fit.
func (m *Manager) AddFromHashes(hashes []Hash, numTokens int, opts *SeqOptions) (SeqID, error) {
	return m.addFromHashes(hashes, numTokens, opts, true)
}

func (m *Manager) addFromHashes(hashes []Hash, numTokens int, opts *SeqOptions, waiting bool) (SeqID, error) {
	if numTokens <= 0 {
		return 0, errorf(ErrInvalid, "AddFromHashes: numTokens %d must be positive", numTokens)
	}
	if len(hashes) > numTokens/m.bs {
		return 0, errorf(ErrInvalid, "AddFromHashes: %d hashes of %d-token blocks exceed numTokens %d", len(hashes), m.bs, numTokens)
	}
	if err := m.checkNew("AddFromHashes", numTokens, opts, waiting); err != nil {
		return 0, err
	}
	want := m.reserve(opts)
	idx, s := m.newSeq(max(want, numTokens))
	m.setOptions(s, opts)
	s.tokens = growZero(s.tokens, numTokens, want)
	s.unknown, s.ownHashes = true, false
	if m.hashing {
		s.hashes = slices.Grow(s.hashes, want/m.bs)
		s.hashes = append(s.hashes, hashes...)
	}
	if numTokens%m.bs != 0 || len(hashes) < numTokens/m.bs {
		s.hashLimit = len(hashes)
	}
	return makeSeqID(idx, s.gen), nil
}

// growZero returns n zero tokens in s's buffer, or a new one with room
// for want.
func growZero(s []int32, n, want int) []int32 {
	if c := max(n, want); cap(s) < c {
		return make([]int32, n, c)
	}
	s = s[:n]
	clear(s)
	return s
}

// Create adds a sequence for prompt and admits it at once: Add followed by
// Admit, all-or-nothing. It returns the handle and the number of leading
// prompt tokens already computed (prefix-cache hits), whose KV the server
// must not recompute. The sequence never waits, so Config.MaxWaiting does
// not apply.
func (m *Manager) Create(prompt []int32, opts *SeqOptions) (id SeqID, cached int, err error) {
	id, err = m.add("Add", prompt, opts, false, false)
	if err != nil {
		return 0, 0, err
	}
	return m.admitOrDrop(id)
}

// CreateFromHashes is AddFromHashes followed by Admit, all-or-nothing.
func (m *Manager) CreateFromHashes(hashes []Hash, numTokens int, opts *SeqOptions) (id SeqID, cached int, err error) {
	id, err = m.addFromHashes(hashes, numTokens, opts, false)
	if err != nil {
		return 0, 0, err
	}
	return m.admitOrDrop(id)
}

func (m *Manager) admitOrDrop(id SeqID) (SeqID, int, error) {
	cached, err := m.Admit(id)
	if err != nil {
		idx, _ := id.parts()
		m.dropSeq(idx)
		return 0, 0, err
	}
	return id, cached, nil
}

// Admission is the answer of a dry run.
type Admission uint8

const (
	// AdmitOK: the request fits now.
	AdmitOK Admission = iota
	// AdmitLater: it does not fit now but could once blocks are released.
	AdmitLater
	// AdmitNever: it can never fit in this pool.
	AdmitNever
)

// String returns "ok", "later" or "never".
func (a Admission) String() string {
	switch a {
	case AdmitOK:
		return "ok"
	case AdmitLater:
		return "later"
	}
	return "never"
}

// plan is the block arithmetic of admitting s.
type plan struct {
	need, hits, evictableHits, alloc int
	// onboard counts hits on offloaded content, each a device block to
	// fill from the host tier.
	onboard int
	// held is the blocks the sequence's tables hold once admitted, in
	// every group (need counts group 0's, released entries included):
	// what the pool must be able to hold (AdmitNever).
	held int
}

func (m *Manager) planAdmit(s *sequence) (plan, Admission) {
	if m.hybrid() {
		return m.planGroups(s)
	}
	n := len(s.tokens)
	p := plan{need: m.ceilBlocks(n)}
	maxHit := m.fullBlocks(n - 1)
	if s.opts.AllowFullHit {
		maxHit = m.fullBlocks(n)
	}
	held := p.need // blocks the table will hold: null entries take none
	if s.opts.Window > 0 {
		m.hits = m.lookupWindow(m.hits[:0], s.hashes, maxHit, s.opts.Window)
		for _, b := range m.hits {
			switch {
			case b == nullBlock: // before the window: no block needed
				held--
			case b < 0:
				p.onboard++
			case m.bp.pool.IsCached(b):
				p.evictableHits++
			}
		}
	} else {
		// No null entries; the lookup counts the rest as it goes.
		m.hits, p.evictableHits, p.onboard = m.lookup(m.hits[:0], s.hashes, maxHit)
	}
	p.hits = len(m.hits)
	p.alloc = p.need - p.hits + p.evictableHits + p.onboard
	p.held = held
	wm := m.watermarkBlocks()
	switch {
	case held > m.bp.pool.Usable()-wm || n > m.seqLimit(s.opts.Window):
		return p, AdmitNever
	case p.alloc > m.available()-wm:
		return p, AdmitLater
	}
	return p, AdmitOK
}

// CanAdmit answers, without changing anything, whether Admit would succeed
// now, counting prefix hits on evictable blocks as consumed and honouring
// the watermark. For a swapped-out sequence it answers for SwapIn.
func (m *Manager) CanAdmit(id SeqID) (Admission, error) {
	s, err := m.seq(id)
	if err != nil {
		return AdmitNever, err
	}
	if s.state == seqSwapped {
		a, _, err := m.CanSwapIn(id)
		return a, err
	}
	if s.state != seqWaiting {
		return AdmitNever, errorf(ErrSequenceState, "CanAdmit: %v is %s", id, s.state)
	}
	a, _ := m.dryAdmit(s)
	return a, nil
}

// dryAdmit plans the admission of waiting sequence s as Admit would make
// it, changing nothing: the answer and the tokens the hit covers.
func (m *Manager) dryAdmit(s *sequence) (Admission, int) {
	p, a := m.planFallback(s, 0)
	m.uncap()
	return a, p.hits * m.bs
}

// CanAdmitCached is CanAdmit for a waiting sequence that also tells the
// tokens its prefix hit covers now: where a is AdmitOK, exactly what Admit
// would return as cached, so len(tokens) - cached are the tokens the
// admission leaves to compute. A scheduler with a token budget reads it
// to admit a prompt whose uncached tokens fit what is left of the step's
// budget though the whole prompt does not (vLLM v1 compares the tokens
// left after its prefix lookup with the budget). It changes nothing. For
// AdmitLater and AdmitNever cached is the hit the refusal was planned
// with. A swapped-out sequence (CanSwapIn answers for it) or a running
// one is ErrSequenceState, a freed or unknown one ErrUnknownSequence.
func (m *Manager) CanAdmitCached(id SeqID) (a Admission, cached int, err error) {
	s, err := m.seq(id)
	if err != nil {
		return AdmitNever, 0, err
	}
	if s.state != seqWaiting {
		return AdmitNever, 0, errorf(ErrSequenceState, "CanAdmitCached: %v is %s", id, s.state)
	}
	a, cached = m.dryAdmit(s)
	return a, cached, nil
}

// CanAdmitTokens answers whether a new sequence of n tokens with no prefix
// hits would fit now, counting the blocks every KV cache group takes at
// admission (a State group's pages, none for a Shared group).
func (m *Manager) CanAdmitTokens(n int) Admission {
	if n <= 0 || n > m.fullLen {
		return AdmitNever
	}
	need := m.ceilBlocks(n)
	if m.hybrid() {
		// Each group's blocks at admission, as planGroups counts them: a
		// State group's pages, none for a Shared group.
		need = 0
		for g := range m.cfg.Groups {
			need += m.groupNeed(g, n)
		}
	}
	wm := m.watermarkBlocks()
	switch {
	case need > m.bp.pool.Usable()-wm:
		return AdmitNever
	case need > m.available()-wm:
		return AdmitLater
	}
	return AdmitOK
}

// Admit makes a waiting sequence running: it looks up the longest cached
// prefix (stopping at the first miss, never covering the last token unless
// AllowFullHit), claims the hits and allocates the rest, all-or-nothing.
// It returns the number of tokens already computed. A sequence preempted
// earlier is resumed this way, its tokens and hashes intact. ErrNoSpace
// means later, ErrNever never; the prefix statistics count every call.
// A state checkpoint hit (State groups, docs/hybrid.md), which costs its
// pages besides the sequence's own, is dropped where computing the
// sequence from scratch fits now and the hit never fits, or does not fit
// now with no sequence running (nothing would give blocks back): the hit
// is then 0 (Stats.CheckpointHitsDropped). Beside running sequences a
// hit that fits later waits (ErrNoSpace), as any admission.
// In the default mode a hybrid manager (Config.Groups) does not take the
// longest hit where it makes the admission refused for good (ErrNever,
// or ErrNoSpace with no sequence running) while a miss is not: it takes
// the longest shorter hit that is not, one every group can end at, or
// the miss (Stats.HitFallbacks; docs/hybrid.md). CanAdmit answers for
// the hit Admit takes. UnifiedFreeQueue keeps vLLM's longest hit.
func (m *Manager) Admit(id SeqID) (cached int, err error) {
	s, err := m.seq(id)
	if err != nil {
		return 0, err
	}
	if s.state != seqWaiting {
		return 0, errorf(ErrSequenceState, "Admit: %v is %s", id, s.state)
	}
	p, a := m.planAdmit(s)
	if a != AdmitOK && m.hybrid() && !m.cfg.UnifiedFreeQueue && !m.ret.capOn {
		// Refused as planned, in the default mode's hybrid managers: a
		// shorter hit may fit (planFallback).
		p, a = m.fallBack(s, p, a, 0)
		defer m.uncap()
	}
	m.countQuery(len(s.tokens), p)
	switch a {
	case AdmitNever:
		return 0, errorf(ErrNever, "%v needs %d blocks, the pool has %d usable (watermark %d)", id, p.held, m.bp.pool.Usable(), m.watermarkBlocks())
	case AdmitLater:
		return 0, m.noSpace(opAdmit, id, p.alloc, m.available(), m.watermarkBlocks())
	}
	if m.hybrid() {
		dropped := m.ret.missed || m.ret.noHit // noHit: AdmitChunk's whole plan dropped it
		if dropped {
			m.stats.ckptDropped++
		}
		if m.ret.fell {
			m.stats.hitFallbacks++
		}
		m.admitGroups(s, p)
		m.retainHits(s)
		m.noteAdmit(s, id)
		s.state = seqRunning
		s.version++
		m.nrunning++
		m.arrive(s, len(s.tokens), p)
		s.adm.dropped, s.adm.fell = dropped, m.ret.fell
		m.commitFull(s)
		m.commitGroups(s)
		m.setOwn(s, false) // appendOne (groups.go) sets it where it holds
		return p.hits * m.bs, nil
	}
	for _, b := range m.hits {
		if b > nullBlock {
			m.claim(b)
		}
	}
	s.blocks = append(s.blocks[:0], m.hits...)
	m.takeHits(s, p.onboard)
	if p.onboard > 0 {
		// The promise reaches the blocks just onboarded too, as in a
		// hybrid admission: the hits are read from the table, where
		// they are device blocks now.
		copy(m.hits, s.blocks)
	}
	m.retainHits(s)
	m.allocBlocks(&s.blocks, p.need)
	m.notePeak()
	s.committed = p.hits
	s.state = seqRunning
	s.version++
	m.nrunning++
	m.arrive(s, len(s.tokens), p)
	m.commitFull(s)
	// A partly filled last block was freshly allocated: hits are full
	// (setOwn leaves a sequence that ends a block not own). A windowed
	// sequence is never own: its next token slides the window (appendTokens).
	m.setOwn(s, !s.windowed)
	return p.hits * m.bs, nil
}

// Append adds tokens to a sequence. For a running sequence it allocates
// their slots (copy-on-write first if the last block is shared) and
// commits every block they fill; all-or-nothing, ErrNoSpace when the pool
// is exhausted (the caller preempts and retries). For a waiting sequence it
// only extends the tokens to compute at admission. A sequence with
// speculative tokens pending (AppendSpeculative) takes no other tokens
// until AcceptSpeculative, or a Truncate that cuts every draft, has settled
// them: ErrSequenceState. With a sliding window (or a window or chunked
// group) Append takes every token before the first appended one as
// computed and releases the blocks whose positions no query from there on
// reads (AppendSpeculative keeps the window of the last accepted token,
// so a step may Append the token sampled last and then its drafts). So
// give a waiting sequence the tokens known before its admission (Append
// before Admit), not right after Admit in the same step: the step still
// computes the prompt, whose queries read what the window released.
func (m *Manager) Append(id SeqID, tokens ...int32) error {
	// The commonest decode step, one token into a partly filled last block
	// that the sequence owns alone and that it does not fill, stays in this
	// small function; everything else is in appendMore.
	if len(tokens) == 1 {
		if idx, gen := id.parts(); uint(idx) < uint(len(m.seqs)) {
			if s := &m.seqs[idx]; s.inPlace(gen, tokens[0]) {
				s.tokens = append(s.tokens, tokens[0])
				return nil
			}
		}
	}
	return m.appendMore(id, tokens)
}

// inPlace reports whether tok may be appended to s, whose handle has
// generation gen, in place: it needs nothing but its slot, since s owns
// its partly filled last block (see seqFields.ownEnd) and tok does not
// fill it. The caller appends it (a predicate, rather than a call that
// appends and reports, lets Append branch on the condition itself: 3
// instructions less per call).
func (s *sequence) inPlace(gen uint32, tok int32) bool {
	// ownVer == version also says s is running: every change of state
	// bumps version but dropSeq's, which bumps gen.
	return uint(len(s.tokens)) < uint(s.ownEnd) && s.ownVer == s.version && s.gen == gen && tok >= 0
}

// setOwn marks s own (see seqFields.ownEnd) for the current version, or
// not: the tokens after the last may then be written in place up to,
// not including, the last slot of their block, within the sequence's
// limit. A sequence that ends a block, or its limit, is never own.
func (m *Manager) setOwn(s *sequence, own bool) {
	s.ownEnd, s.ownVer = 0, s.version
	if n := len(s.tokens); own && n < m.fullLen {
		if _, off := m.split(n); off != 0 {
			// A limit past 32 bits wraps to a smaller one, which only
			// sends tokens to the general path.
			s.ownEnd = uint32(min(n-off+m.bs-1, m.fullLen))
		}
	}
}

// appendMore is Append's other fast paths (a token that fills the last
// block, or starts a fresh one) and the general path.
func (m *Manager) appendMore(id SeqID, tokens []int32) error {
	if len(tokens) == 1 {
		if idx, gen := id.parts(); uint(idx) < uint(len(m.seqs)) {
			s := &m.seqs[idx]
			t0 := len(s.tokens)
			if s.gen == gen && s.state == seqRunning && t0 < m.fullLen && tokens[0] >= 0 {
				switch _, off := m.split(t0); {
				case m.hybrid():
					if m.appendOne(s, t0, off, tokens) { // groups.go
						return nil
					}
				case off != 0 && s.ownEnd != 0 && s.ownVer == s.version:
					s.tokens = append(s.tokens, tokens[0])
					if off == m.bs-1 {
						s.ownEnd = 0
						m.hashFull(s)
						m.commitFull(s)
					}
					return nil
				case off == 0 && !s.windowed && s.spec == 0 && m.available() > 0 && !m.hybrid():
					s.blocks = append(s.blocks, m.allocBlock())
					s.tokens = append(s.tokens, tokens[0])
					// One token in a fresh block fills nothing (bs > 1): with
					// every block before it committed and no hashes
					// AdmitChunk kept, hashing and committing would find
					// nothing to do.
					if m.bs == 1 || s.committed != len(s.blocks)-1 || (s.pend != nil && len(s.pend.hashes) > 0) {
						m.hashFull(s)
						m.commitFull(s)
					}
					m.setOwn(s, m.bs > 1)
					return nil
				}
			}
		}
	}
	return m.appendTokens(id, tokens, false)
}

// AppendSpeculative appends draft tokens that a verifier may still reject:
// they get slots like any token but their blocks are never committed to the
// prefix cache until AcceptSpeculative, and they do not slide a sliding
// window (it slides from the accepted length). In a State group each
// draft gets pages for the state after it (Pages per group per draft, so
// that a rejection can go back to an earlier state; see Batch.StateDrafts
// and TableGroup): the sequence's spare draft states first (what its last
// verdict left; the first drafts of a step give back the spares they do
// not need), then pages allocated here with the other groups' blocks: all
// or nothing, ErrNoSpace when the pool cannot give them, ErrNever when the
// sequence alone could never hold them.
// More drafts may follow drafts; Append waits for the verdict (see Append).
// As Append, it takes every token before the last accepted one as
// computed: the position an Uncompute named is forgotten (see swapFrom).
func (m *Manager) AppendSpeculative(id SeqID, tokens ...int32) error {
	if err := m.appendTokens(id, tokens, true); err != nil {
		return err
	}
	// A rejection that cuts the drafts would bring the sequence back to
	// the length Uncompute's record names, and the record with it: SwapOut
	// would keep the window of a position the speculative step computed.
	s := &m.seqs[uint32(id)]
	s.redo, s.redoLen = 0, 0
	return nil
}

func (m *Manager) appendTokens(id SeqID, tokens []int32, spec bool) error {
	s, err := m.seq(id)
	if err != nil {
		return err
	}
	if err := m.checkAppend(s, id, tokens, spec); err != nil {
		return err
	}
	if s.state == seqWaiting {
		s.tokens = append(s.tokens, tokens...)
		m.hashFull(s)
		return nil
	}
	if m.hybrid() {
		return m.appendGroups(s, id, tokens, spec)
	}
	t0 := len(s.tokens)
	t1 := t0 + len(tokens)
	grow := m.ceilBlocks(t1) - len(s.blocks)
	_, off := m.split(t0)
	partial := off != 0
	var last allocator.BlockID
	cow := false
	if partial {
		last = s.blocks[len(s.blocks)-1]
		cow = m.bp.pool.RefCount(last) > 1
	}
	need := grow
	if cow {
		need++
	}
	if need > m.available()+m.slidable(s, slideFrom(s, spec)) {
		return m.noSpace(opAppend, id, need, m.available(), 0)
	}
	m.slide(s, slideFrom(s, spec))
	if cow {
		dst := m.allocBlock()
		m.queueCopy(last, dst)
		m.bp.release(last)
		s.blocks[len(s.blocks)-1] = dst
		s.version++
		m.stats.copies++
	} else if partial && m.bp.hasContent(last) {
		// Our own block still holds committed content from before a
		// truncation; writing changes it, so it leaves the index first.
		m.bp.forget(last)
	}
	for range grow {
		s.blocks = append(s.blocks, m.allocBlock())
	}
	s.tokens = append(s.tokens, tokens...)
	if spec {
		s.spec += len(tokens)
	}
	m.hashFull(s)
	m.commitFull(s)
	// The last block is now fresh, copied, or ours alone and uncached.
	// Windowed sequences always take this path, which slides the window.
	m.setOwn(s, s.opts.Window == 0 && s.spec == 0) // drafts send Append to its check
	return nil
}

// checkAppend is Append's (or AppendSpeculative's) validation of tokens for
// s: everything that refuses the call before it changes anything, but
// space, which only the append itself knows.
func (m *Manager) checkAppend(s *sequence, id SeqID, tokens []int32, spec bool) error {
	if len(tokens) == 0 {
		return errorf(ErrInvalid, "Append to %v: no tokens", id)
	}
	if err := checkTokens("Append", tokens); err != nil {
		return err
	}
	if !spec && s.spec > 0 {
		// Drafts are the sequence's trailing tokens: a token after them
		// would make them look accepted (their blocks would commit) and a
		// later AcceptSpeculative would cut it instead of them.
		return errorf(ErrSequenceState, "Append to %v: %d speculative tokens pending (AcceptSpeculative or Truncate them first)", id, s.spec)
	}
	if t1 := len(s.tokens) + len(tokens); t1 > m.seqLimit(s.opts.Window) {
		return errorf(ErrNever, "Append to %v: %d tokens would exceed the %d a sequence may hold (MaxModelLen %d, pool %d tokens)", id, t1, m.seqLimit(s.opts.Window), m.cfg.MaxModelLen, m.cfg.poolTokens())
	}
	if s.state == seqSwapped {
		return errorf(ErrSequenceState, "Append to %v: swapped out", id)
	}
	if spec && s.state == seqWaiting {
		return errorf(ErrSequenceState, "AppendSpeculative: %v is not running", id)
	}
	if spec {
		return m.checkSpeculative(s, id, len(tokens))
	}
	return nil
}

// AcceptSpeculative keeps the first n speculative tokens of a running
// sequence, drops the rest (releasing blocks past the new end) and commits
// the blocks the accepted tokens filled. Any n from 0 to the number of
// drafts succeeds on a windowed sequence too: drafts do not slide its
// window, so the accepted tokens' window is still held. In a State group
// the pages of the state after the n-th draft become the sequence's state
// (n = 0: the state stays); the other states' pages stay with the
// sequence as spare draft states (Stats.StateSparePages), which its next
// drafts take instead of the pool's pages: no page changes hands. Spares
// go back when the next drafts are fewer, at Preempt, SwapOut and Free,
// and whenever an allocation needs them (they count as available, so they
// never make another request wait); a Fork's child gets none.
func (m *Manager) AcceptSpeculative(id SeqID, n int) error {
	s, err := m.running(id, "AcceptSpeculative")
	if err != nil {
		return err
	}
	if n < 0 || n > s.spec {
		return errorf(ErrInvalid, "AcceptSpeculative %v: %d of %d speculative tokens", id, n, s.spec)
	}
	m.truncate(s, len(s.tokens)-(s.spec-n))
	if n > 0 && m.spages > 0 {
		m.acceptStates(s, n)
	}
	s.spec = 0
	m.hashFull(s)
	m.commitFull(s)
	m.commitGroups(s)
	return nil
}

// Truncate keeps the first n tokens of a sequence (rollback of rejected
// speculative tokens, or beam pruning) and releases the blocks past the new
// end, tail first. Cached content of a block cut in the middle stays in the
// prefix cache until the sequence writes into it: Truncate is for tokens
// whose KV was computed; for tokens scheduled but never computed, call
// Uncompute first, so their blocks leave the prefix cache. A sliding window is never
// rolled back past the blocks it released (as in vLLM): when the query at
// position n would read a released position, or n falls inside the
// released blocks, Truncate returns ErrInvalid, naming the shortest length
// allowed, and changes nothing. The same holds in every sliding-window and
// chunked KV cache group (Config.Groups); a running sequence of a manager
// with a State group cannot be truncated below its accepted tokens (its
// length less its drafts: ErrInvalid): its state has absorbed them; cut
// drafts' states become spares (see AcceptSpeculative). After Uncompute,
// in the same step (before its directives are taken) and before the next
// Append, it can be cut down to the position Uncompute named: that step
// has not run, so no state absorbed its tokens, and a scheduler gives a
// dropped step back (Uncompute, then Truncate) in every layout; so can a
// Fork of it made in that step, whose states are copied from the
// parent's before the step runs. Drafts (AppendSpeculative) that
// Truncate keeps stay speculative: AcceptSpeculative settles them.
func (m *Manager) Truncate(id SeqID, n int) error {
	s, err := m.seq(id)
	if err != nil {
		return err
	}
	if n < 1 || n > len(s.tokens) {
		return errorf(ErrInvalid, "Truncate %v to %d tokens: want 1 to %d (Free ends a sequence)", id, n, len(s.tokens))
	}
	if s.state == seqSwapped {
		return errorf(ErrSequenceState, "Truncate %v: swapped out", id)
	}
	if lo := m.minTruncate(s); n < lo {
		return errorf(ErrInvalid, "Truncate %v to %d tokens: the sliding window released its first %d positions, which the query at %d would read; truncate to at least %d",
			id, n, s.released*m.bs, n, lo)
	}
	if err := m.checkTruncateGroups(s, id, n); err != nil {
		return err
	}
	m.truncate(s, n)
	return nil
}

func (m *Manager) truncate(s *sequence, n int) {
	dropPending(s)
	if n == len(s.tokens) {
		return
	}
	cut := len(s.tokens) - n
	if s.state == seqRunning {
		keep := (n + m.bs - 1) / m.bs
		m.bp.releaseTail(s.blocks, keep)
		s.blocks = s.blocks[:keep]
		if m.hybrid() {
			m.truncateGroups(s, n, max(0, s.spec-cut))
			// A checkpoint waiting for a later step counts the tokens
			// computed before it: not the ones cut.
			s.keep.pendingLen = min(s.keep.pendingLen, n)
		}
		s.version++
	}
	s.tokens = s.tokens[:n]
	s.hashes = s.hashes[:min(len(s.hashes), n/m.bs)]
	s.committed = min(s.committed, n/m.bs)
	s.spec = max(0, s.spec-cut)
	truncateRedo(s, n)
}

// truncateRedo keeps the record of Uncompute of s true after a cut to n
// tokens: the record expires once an Append grows s past the length it
// names, and the tokens cut no longer count toward it. A cut that
// removes the position it names forgets it (every token kept was
// computed); one that keeps it lowers its length to n, so the next
// Append, which takes every token before it as computed, expires it.
// Else a step given back (Uncompute, then Truncate) and given again
// (Append) left a record that outlived the recompute: SwapOut kept the
// window of a position computed since, and the sequence came back
// holding more than its next step reads.
func truncateRedo(s *sequence, n int) {
	switch {
	case s.redo == 0:
	case uint64(s.redo-1) >= uint64(n):
		s.redo, s.redoLen = 0, 0
	default:
		s.redoLen = uint32(min(uint64(s.redoLen), uint64(n)))
	}
}

// Fork creates a child of a running sequence that shares every block (for
// parallel sampling and beam search). The first write of either into a
// shared block copies it (see Copy), in every KV cache group. The pages of
// a State group are the exception: the child gets a copy of them at once
// (Copy directives), since a state is rewritten by every step; Fork then
// returns ErrNoSpace, changing nothing, when the pool cannot give them.
func (m *Manager) Fork(id SeqID) (SeqID, error) {
	if _, err := m.running(id, "Fork"); err != nil {
		return 0, err
	}
	if p := &m.seqs[uint32(id)]; m.forkPages(p) > m.available() {
		// Alone in the pool (but for its own forks: a request's
		// samples are forked one after another), the parent's own
		// retention pins are released for the room (retention.go).
		if need := m.forkPages(p); len(p.keep.pins) == 0 || need > m.available()+m.pinRoom(p) || !m.aloneInLine(p) {
			return 0, m.noSpace(opFork, id, need, m.available(), 0)
		}
		m.releasePins(p)
	}
	pidx, _ := id.parts()
	p := &m.seqs[pidx]
	idx, c := m.newSeq(max(m.reserve(&p.opts), len(p.tokens)))
	p = &m.seqs[pidx] // newSeq may have moved the slice
	c.blocks = append(c.blocks, p.blocks...)
	for _, b := range c.blocks[p.released:] {
		m.bp.pool.Ref(b)
	}
	c.released = p.released
	m.setOptions(c, &p.opts)
	want := m.reserve(&p.opts)
	m.setTokens(c, p.tokens, want)
	c.hashes = append(slices.Grow(c.hashes, want/m.bs), p.hashes...)
	c.hashLimit, c.committed, c.spec, c.redo, c.redoLen = p.hashLimit, p.committed, p.spec, p.redo, p.redoLen
	if p.dropNow {
		// Forked in the step of the parent's Uncompute: the child's
		// State pages are copies the step's Copy directives make before
		// its kernels run, so they hold no given-back token either, and
		// the child may be cut back as the parent may until the step
		// ends (TestAudit44ForkInheritsDropMark).
		c.dropNow = true
		m.drops = append(m.drops, idx)
	}
	c.unknown, c.ownHashes = p.unknown, p.ownHashes
	c.keep.branch = p.keep.branch // the child shares the parent's prefix
	if p.keep.line == 0 {
		if m.lines++; m.lines == 0 {
			m.lines++ // 0 is none
		}
		p.keep.line = m.lines
	}
	c.keep.line = p.keep.line
	m.forkGroups(p, c)
	// The child holds what the parent holds: KV the step being built
	// writes, if the parent arrived in it. Only an admission is undone.
	c.arrived, c.adm.ok = p.arrived, false
	c.state = seqRunning
	p.ownEnd, c.ownEnd = 0, 0
	dropPending(p)
	m.nrunning++
	m.stats.forks++
	return makeSeqID(idx, c.gen), nil
}

// Preempt stops a running sequence by recompute: its blocks are released
// tail first (their cached content stays hittable) and it becomes waiting,
// keeping its tokens and hashes; Admit resumes it. Speculative tokens are
// dropped.
func (m *Manager) Preempt(id SeqID) error {
	s, err := m.running(id, "Preempt")
	if err != nil {
		return err
	}
	m.preempt(s, false)
	m.stats.preemptions++
	return nil
}

// preempt is Preempt of running s, uncounted; keep keeps the hashes
// AdmitChunk kept for the tokens it cut off (Unadmit: they come back).
func (m *Manager) preempt(s *sequence, keep bool) {
	if !keep || s.spec > 0 {
		m.truncate(s, len(s.tokens)-s.spec)
	}
	m.releaseSeq(s, true)
	s.committed, s.released, s.redo, s.dropNow = 0, 0, 0, false
	s.state = seqWaiting
	s.adm.ok = false
	s.version++
	m.nrunning--
}

// Free ends a sequence: its blocks are released tail first and the handle
// becomes invalid.
func (m *Manager) Free(id SeqID) error {
	s, err := m.seq(id)
	if err != nil {
		return err
	}
	m.unprotect(s)
	if s.state == seqRunning {
		m.draftPages -= m.spages * s.spec
	}
	m.releaseSeq(s, false)
	if s.state == seqSwapped {
		m.dropHost(s)
	}
	idx, _ := id.parts()
	m.dropSeq(idx)
	return nil
}

// Len returns the number of tokens of a sequence.
func (m *Manager) Len(id SeqID) (int, error) {
	s, err := m.seq(id)
	if err != nil {
		return 0, err
	}
	return len(s.tokens), nil
}

// Running reports whether the sequence holds blocks (admitted and not
// preempted).
func (m *Manager) Running(id SeqID) (bool, error) {
	s, err := m.seq(id)
	if err != nil {
		return false, err
	}
	return s.state == seqRunning, nil
}

// Table returns the block table of a sequence: entry i holds tokens
// [i*BlockSize, (i+1)*BlockSize). It is empty for a sequence that holds
// no device blocks (waiting, or swapped out). The slice is a view, valid until the next
// call that changes the manager; do not modify it. Its capacity is its
// length, so appending to it copies it.
func (m *Manager) Table(id SeqID) ([]allocator.BlockID, error) {
	s, err := m.seq(id)
	if err != nil {
		return nil, err
	}
	return s.blocks[:len(s.blocks):len(s.blocks)], nil
}

// Tokens returns the tokens of a sequence (zero placeholders for positions
// created from hashes). The slice is a view, valid until the next call that
// changes the manager; do not modify it. Its capacity is its length, so
// appending to it (the next turn's prompt, say) copies it and never writes
// into the sequence's buffer.
func (m *Manager) Tokens(id SeqID) ([]int32, error) {
	s, err := m.seq(id)
	if err != nil {
		return nil, err
	}
	return s.tokens[:len(s.tokens):len(s.tokens)], nil
}

// Slot returns the KV slot of token pos of a running sequence:
// block*BlockSize + pos%BlockSize.
func (m *Manager) Slot(id SeqID, pos int) (int64, error) {
	s, err := m.running(id, "Slot")
	if err != nil {
		return 0, err
	}
	if pos < 0 || pos >= len(s.tokens) {
		return 0, errorf(ErrInvalid, "Slot of %v: position %d outside [0, %d)", id, pos, len(s.tokens))
	}
	if pos < s.released*m.bs {
		return 0, errorf(ErrInvalid, "Slot of %v: position %d fell out of the sliding window", id, pos)
	}
	return int64(s.blocks[pos/m.bs])*int64(m.bs) + int64(pos%m.bs), nil
}

// TakeCopies appends the pending copy-on-write directives to dst and clears
// them. BuildBatch does this for the caller. Taking them ends the step
// being built, as TakeSwaps does (see SwapOut).
func (m *Manager) TakeCopies(dst []Copy) []Copy {
	m.EndStep()
	return m.takeCopies(dst)
}

// queueCopy queues the copy-on-write directive Copy{src, dst}. src is not
// handed out again before the step ends (EndStep): if its last reference
// goes during the step while dst is held, it is parked until then
// (blockPool.park), so no later directive of the step writes it before
// the copy reads it.
// A src that a pending copy of the step still has to fill (a fork of a
// fork, a copy-on-write of a block just copied) is read from that copy's
// own source instead, which holds the same KV and stays put: no Copy's
// Dst is another's Src, so the copies need no order among them. O(copies).
// Only a copy of the step counts (one the step's list names): a copy a
// caller left untaken past EndStep ran with its step, so its Dst holds the
// KV, and its Src, no longer parked, may be free or handed out again (the
// fleet replay's seed 9927065982788325546 read a free block:
// TestCopyAfterUntakenStepReadsItsOwnSource).
func (m *Manager) queueCopy(src, dst allocator.BlockID) {
	for i := len(m.copies) - 1; i >= 0; i-- {
		if c := m.copies[i]; c.Dst == src {
			if slices.Contains(m.bp.named, c) {
				src = c.Src
			}
			break
		}
	}
	m.copies = append(m.copies, Copy{Src: src, Dst: dst})
	m.bp.named = append(m.bp.named, Copy{Src: src, Dst: dst})
}

// takeCopies is TakeCopies without ending the step.
func (m *Manager) takeCopies(dst []Copy) []Copy {
	dst = append(dst, m.copies...)
	m.copies = m.copies[:0]
	return dst
}

func errorf(sentinel error, format string, args ...any) error {
	return fmt.Errorf("%w: "+format, append([]any{sentinel}, args...)...)
}
