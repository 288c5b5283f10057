package paged

import (
	"fmt"
	"math"
	"unsafe"

	"github.com/pagedkv/pagedkv/allocator"
)

// Reserve is memory New sets aside, and writes once so that the operating
// system maps it then, for the sequences a manager will hold at once: their
// records, and the token copies, block hashes and block tables Add makes
// for each from its MaxTokens hint (SeqOptions). A fresh process otherwise takes those
// from heap memory it never touched, and pays a page fault (mapping and
// zeroing a page, a microsecond or more; about 12 on a virtual machine)
// for every 4 KB inside the Add and Admit calls of its first requests;
// with a reserve, that cost falls in New, before the server takes its
// first request, as vLLM v1 makes all its block objects when its block
// pool is made. The reserve never changes a decision, only where buffers
// come from, and it is spent once: a buffer taken from it stays with its
// sequence record and is reused by later sequences in that record, as any
// buffer is (newSeq), and once it runs out buffers come from the heap as
// without it. The zero value reserves nothing.
//
// Cost at New, in bytes on 64-bit platforms (less on 32-bit ones, whose
// records are smaller; TestReserveBytes): Sequences x (452 + 88 per KV
// cache group beyond the first) for the records and their free list;
// for the buffers, 4 per token of Tokens (Add's copy), 32 per block of
// Tokens (a hash) plus 4 per block of
// Tokens in each full attention or window group (a table entry; a State
// group 4 x Pages per sequence), plus one table entry per sequence and
// group for rounding; and, with any reserve, the SHA-256 hasher's state
// (made at New instead of at the first hash) and the prefix lookup's scratch:
// 4 per group and block of the longest sequence (MaxModelLen, at most the
// pool), 4 more with a window or chunked group. At block size 16, one
// group: 456 bytes a sequence and 6.25 a token, plus 4 bytes a pool
// block.
type Reserve struct {
	// Sequences is how many sequences (waiting, running and swapped out
	// together) the records are made for: adding the first Sequences
	// sequences never grows the record array. At most MaxReserveSequences.
	Sequences int
	// Tokens is the sum of the MaxTokens hints (a sequence without a
	// hint: its prompt's length) of the sequences the token, hash and
	// table buffers are made for: Add and AddOwned take a new sequence's
	// hash buffer and table from them while they last, and Add (AddHashed,
	// Fork) its copy of the tokens (AddOwned makes none when the prompt
	// has room for the hint). At most
	// MaxReserveTokens, and the block-table entries made, every group's
	// (a State group's Pages for each of Sequences), at most 2^31-1.
	Tokens int
}

// Bounds on Config.Reserve, so that a typo fails New with ErrInvalid
// instead of taking the process down: 2^20 sequences (470 MB of records),
// 2^30 tokens (6.7 GB of buffers at block size 16 with one group). New
// also refuses, with ErrInvalid, a reserve whose records and buffers,
// with the prefix lookup's scratch, would take more than 4 GiB (1 GiB
// where int is 32 bits), which smaller blocks or more groups reach within
// these bounds (the scratch of 255 groups over a pool of 2^21 blocks is
// 2 GiB alone), or whose block tables would pass 2^31-1 entries.
const (
	MaxReserveSequences = 1 << 20
	MaxReserveTokens    = 1 << 30
)

// check validates the reserve's fields.
func (r Reserve) check() error {
	if r.Sequences < 0 || r.Sequences > MaxReserveSequences {
		return fmt.Errorf("%w: Config.Reserve.Sequences %d must be in [0, MaxReserveSequences=%d]", ErrInvalid, r.Sequences, MaxReserveSequences)
	}
	if r.Tokens < 0 || r.Tokens > MaxReserveTokens {
		return fmt.Errorf("%w: Config.Reserve.Tokens %d must be in [0, MaxReserveTokens=%d]", ErrInvalid, r.Tokens, MaxReserveTokens)
	}
	return nil
}

// reserved holds what is left of Config.Reserve's buffers: each a slab
// handed out from its front, a piece at a time, never taken back.
type reserved struct {
	tokens []int32
	hashes []Hash
	blocks []allocator.BlockID
	ext    []groupTable
}

// reserveSizes returns the lengths of the slabs Config.Reserve asks for:
// tokens, hashes, table entries (every group's) and group tables of
// records beyond the first group's, in 64 bits (a reserve of many groups
// or pages may count past a 32-bit int before New refuses it: a State
// group takes its Pages for every sequence). It runs after initGroups
// (the groups' table sizes).
func (m *Manager) reserveSizes() (tokens, hashes, blocks, ext int64) {
	r := m.cfg.Reserve
	seqs := int64(r.Sequences)
	tokens = int64(r.Tokens)
	if m.hybrid() {
		ext = seqs * int64(len(m.cfg.Groups)-1)
	}
	if tokens == 0 {
		return 0, 0, 0, ext
	}
	if m.hashing {
		hashes = int64(m.fullBlocks(r.Tokens))
	}
	blocks = int64(m.ceilBlocks(r.Tokens)) + seqs
	if m.hybrid() {
		blocks = 0
		for g := range m.cfg.Groups {
			blocks += int64(m.groupNeed(g, r.Tokens)) + seqs*int64(m.groupNeed(g, 1))
		}
	}
	return tokens, hashes, blocks, ext
}

// scratchSizes returns the prefix lookup's scratch that any
// Config.Reserve makes at New: rows tables of hits (group 0's, one per
// other group, the window lookup's with a window or chunked group), each
// of most entries, the longest hit: a sequence's blocks, at most the
// pool's.
func (m *Manager) scratchSizes() (most, rows int) {
	rows = 1 + len(m.ghits)
	if m.anyLocal {
		rows++
	}
	return min(m.ceilBlocks(m.fullLen), m.bp.pool.Usable()), rows
}

// reserveBytes is what Config.Reserve takes at New, in bytes: its
// records and slabs, and the lookup's scratch (scratchSizes). With 255
// groups the scratch alone is a kilobyte per pool block: 2 GiB at the
// longest sequence of blocks of 16 tokens.
func (m *Manager) reserveBytes() float64 {
	if m.cfg.Reserve == (Reserve{}) {
		return 0
	}
	tokens, hashes, blocks, ext := m.reserveSizes()
	most, rows := m.scratchSizes()
	blocks += int64(most) * int64(rows)
	seqs := float64(m.cfg.Reserve.Sequences)
	return seqs*float64(unsafe.Sizeof(sequence{})+4) + float64(ext)*float64(unsafe.Sizeof(groupTable{})) +
		float64(tokens)*4 + float64(hashes)*float64(unsafe.Sizeof(Hash{})) +
		float64(blocks)*float64(unsafe.Sizeof(allocator.BlockID(0)))
}

// maxReserveBytes bounds what Config.Reserve may take at New: 4 GiB, or
// 1 GiB where int is 32 bits. MaxReserveSequences and MaxReserveTokens
// alone let a small block size or many groups ask for far more (2^30
// tokens of blocks of one token: 36 GB of hashes and table).
const maxReserveBytes = min(1<<32, math.MaxInt/2)

// maxReserveEntries bounds the block-table entries of a reserve, every
// group's: 2^31-1, an int on every platform.
const maxReserveEntries = 1<<31 - 1

// checkReserve refuses a Config.Reserve whose block tables would pass
// maxReserveEntries or whose records and slabs would take more than
// maxReserveBytes (reserveBytes: the lookup's scratch included). It runs
// after initGroups.
func (m *Manager) checkReserve() error {
	r := m.cfg.Reserve
	if _, _, n, _ := m.reserveSizes(); n > maxReserveEntries {
		return fmt.Errorf("%w: Config.Reserve (%d sequences, %d tokens) makes %d block-table entries in its %d groups (a State group's Pages for every sequence), more than 2^31-1",
			ErrInvalid, r.Sequences, r.Tokens, n, m.ntables())
	}
	if b := m.reserveBytes(); b > maxReserveBytes {
		most, rows := m.scratchSizes()
		return fmt.Errorf("%w: Config.Reserve of %d sequences and %d tokens takes %.3g bytes at block size %d with %d groups (the prefix lookup's scratch %d of them: %d tables of %d blocks), more than %d",
			ErrInvalid, r.Sequences, r.Tokens, b, m.bs, max(1, len(m.cfg.Groups)), 4*int64(most)*int64(rows), rows, most, int64(maxReserveBytes))
	}
	return nil
}

// initReserve makes and faults in the record array and the slabs of
// Config.Reserve. It runs after initGroups (the groups' table sizes) and
// checkReserve (the sizes fit an int).
func (m *Manager) initReserve() {
	r := m.cfg.Reserve
	if r == (Reserve{}) {
		return
	}
	if h, ok := m.cfg.Hasher.(*SHA256Hasher); ok && m.hashing {
		h.sha96() // its state, made at the first hash otherwise
	}
	// The prefix lookup's scratch, one table of hits per group, sized for
	// the longest hit (scratchSizes).
	most, _ := m.scratchSizes()
	m.hits = make([]allocator.BlockID, 0, most)
	prefault(m.hits[:most])
	for g := range m.ghits {
		m.ghits[g] = make([]allocator.BlockID, 0, most)
		prefault(m.ghits[g][:most])
	}
	if m.anyLocal {
		m.wids = make([]allocator.BlockID, 0, most) // the window lookup's
		prefault(m.wids[:most])
	}
	tokens, hashes, blocks, ext := m.reserveSizes()
	if r.Sequences > 0 {
		m.seqs = make([]sequence, 0, r.Sequences)
		prefault(m.seqs[:r.Sequences])
		m.freeSeqs = make([]uint32, 0, r.Sequences)
		if ext > 0 {
			m.res.ext = make([]groupTable, ext)
			prefault(m.res.ext)
		}
	}
	if tokens > 0 {
		m.res.tokens = make([]int32, tokens) // Add's copies (setTokens)
		prefault(m.res.tokens)
	}
	if hashes > 0 {
		m.res.hashes = make([]Hash, hashes)
		prefault(m.res.hashes)
	}
	if blocks > 0 {
		m.res.blocks = make([]allocator.BlockID, blocks)
		prefault(m.res.blocks)
	}
}

// hashBuffer returns an empty hash buffer with room for n hashes: the
// front of the reserve while it has that many, else a new one.
func (m *Manager) hashBuffer(n int) []Hash {
	if n <= len(m.res.hashes) {
		b := m.res.hashes[:0:n]
		m.res.hashes = m.res.hashes[n:]
		return b
	}
	return make([]Hash, 0, n)
}

// growTable returns t with room for n entries, its entries kept: t
// itself if it has the room, else a copy in a piece of the reserve while
// the reserve has n entries, else in a new slice.
func (m *Manager) growTable(t []allocator.BlockID, n int) []allocator.BlockID {
	if n <= cap(t) {
		return t
	}
	if n <= len(m.res.blocks) {
		b := append(m.res.blocks[:0:n], t...)
		m.res.blocks = m.res.blocks[n:]
		return b
	}
	return append(make([]allocator.BlockID, 0, n), t...)
}

// reserveTable gives s's table room for n entries from the reserve, when
// the reserve has them and the table has not: a sequence whose prompt is
// longer than its MaxTokens hint (or has none) takes its prompt's share,
// as Reserve.Tokens counts it. Without a reserve it changes nothing: the
// table grows at Admit.
func (m *Manager) reserveTable(s *sequence, n int) {
	if cap(s.blocks) < n && n <= len(m.res.blocks) {
		s.blocks = m.growTable(s.blocks, n)
	}
}

// extTables returns the group tables of a new sequence record: k empty
// tables, from the reserve while it has them.
func (m *Manager) extTables(k int) []groupTable {
	if k <= len(m.res.ext) {
		b := m.res.ext[:k:k]
		m.res.ext = m.res.ext[k:]
		return b
	}
	return make([]groupTable, k)
}
