package paged

import (
	"fmt"

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
// 2^30 tokens (6.7 GB of buffers at block size 16 with one group).
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

// maxReserveEntries bounds the block-table entries of a reserve, every
// group's: 2^31-1 (8 GB), an int on every platform.
const maxReserveEntries = 1<<31 - 1

// reserveEntries is the number of block-table entries initReserve makes
// for r, in 64 bits: a State group takes Pages per sequence, and 2^20
// sequences of 2^24 pages wrap an int where it is 32 bits.
func (m *Manager) reserveEntries(r Reserve) int64 {
	if r.Tokens == 0 {
		return 0
	}
	if !m.hybrid() {
		return int64(m.ceilBlocks(r.Tokens)) + int64(r.Sequences)
	}
	n := int64(0)
	for g := range m.cfg.Groups {
		n += int64(m.groupNeed(g, r.Tokens)) + int64(r.Sequences)*int64(m.groupNeed(g, 1))
	}
	return n
}

// initReserve makes and faults in the record array and the slabs of
// Config.Reserve. It runs after initGroups (the groups' table sizes),
// and refuses, before it makes anything, tables past maxReserveEntries.
func (m *Manager) initReserve() error {
	r := m.cfg.Reserve
	if r == (Reserve{}) {
		return nil
	}
	if n := m.reserveEntries(r); n > maxReserveEntries {
		return fmt.Errorf("%w: Config.Reserve (%d sequences, %d tokens) makes %d block-table entries in its %d groups (a State group's Pages for every sequence), more than 2^31-1", ErrInvalid, r.Sequences, r.Tokens, n, m.ntables())
	}
	if h, ok := m.cfg.Hasher.(*SHA256Hasher); ok && m.hashing {
		h.sha96() // its state, made at the first hash otherwise
	}
	// The prefix lookup's scratch, one table of hits per group, sized for
	// the longest hit: a sequence's blocks, at most the pool's.
	most := min(m.ceilBlocks(m.fullLen), m.bp.pool.Usable())
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
	if r.Sequences > 0 {
		m.seqs = make([]sequence, 0, r.Sequences)
		prefault(m.seqs[:r.Sequences])
		m.freeSeqs = make([]uint32, 0, r.Sequences)
		if m.hybrid() {
			m.res.ext = make([]groupTable, r.Sequences*(len(m.cfg.Groups)-1))
			prefault(m.res.ext)
		}
	}
	if r.Tokens == 0 {
		return nil
	}
	m.res.tokens = make([]int32, r.Tokens) // Add's copies (setTokens)
	prefault(m.res.tokens)
	if m.hashing {
		m.res.hashes = make([]Hash, m.fullBlocks(r.Tokens))
		prefault(m.res.hashes)
	}
	m.res.blocks = make([]allocator.BlockID, m.reserveEntries(r))
	prefault(m.res.blocks)
	return nil
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
