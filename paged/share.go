package paged

import (
	"slices"
	"unsafe"
)

// Prompts that begin alike (a system prompt, few-shot examples, the
// earlier turns of a conversation) are often added while another sequence
// with the same beginning is still live: waiting, running or preempted.
// Such a sequence already holds the hashes of those blocks, so Add takes
// them from it instead of hashing the blocks again. A block costs a
// comparison of its tokens (64 bytes at block size 16) instead of a
// SHA-256 (about 100 ns), and the hashes are bit for bit the ones hashing
// would give: a block's hash is a function of the tokens of its chain,
// every token of which is compared, never a fingerprint.
//
// Only hashes the manager computed itself, without extra keys
// (sequence.plain and ownHashes, as for the hash memo), are taken, and
// only by a plain prompt, with the SHA-256 hasher (any other need not be a
// function of its input, and FastHasher costs about what the comparison
// does). A live sequence's hashes always name its current tokens' full
// blocks: Truncate, AdmitChunk and speculative tokens cut them with the
// tokens.
//
// The candidates are kept in a small table indexed by a fingerprint of a
// sequence's first block: a plain sequence added with that first block,
// kept while it lives (a long-lived one, a system prompt's first request
// say, is not displaced by the short ones after it) and replaced by the
// next plain sequence added once it is freed (its slot's generation
// changes) or by one that begins with all of its hashed blocks and goes
// on. The fingerprint only picks the candidate, which may begin
// otherwise (two beginnings with one fingerprint, of which the live one
// keeps the entry): the comparison of the tokens decides.

// shareSlots is the size of the candidate table, a power of two: a few
// hundred distinct beginnings live at once before entries displace each
// other, for 2 KB.
const shareSlots = 256

// shareEntry names a candidate: the slot of a sequence and the slot's
// generation when it was recorded (a changed generation means that
// sequence was freed: the entry is replaced).
type shareEntry struct {
	idx, gen uint32
}

// newSharers returns the candidate table cfg allows, nil without hashing,
// with a hasher other than SHA-256, or with the hash memo, which recalls
// such hashes from the pool's blocks instead (Config.HashMemo).
func newSharers(cfg *Config) []shareEntry {
	if cfg.DisablePrefixCaching || cfg.HashMemo {
		return nil
	}
	if _, ok := cfg.Hasher.(*SHA256Hasher); !ok {
		return nil
	}
	return make([]shareEntry, shareSlots)
}

// fingerprint mixes a block's tokens into an index of the candidate
// table. It needs to spread distinct beginnings, nothing more.
func fingerprint(tokens []int32) uint32 {
	h := uint64(len(tokens))
	for _, t := range tokens {
		h = (h ^ uint64(uint32(t))) * 0x100000001b3
	}
	return uint32(h>>32) & (shareSlots - 1)
}

// shareHashes appends to dst the hashes of the leading blocks of new
// sequence s (slot idx, plain, its first k blocks full) that a live
// sequence with the same first block holds, and returns how many; where
// no live candidate is recorded for its first block, it records s.
func (m *Manager) shareHashes(dst []Hash, s *sequence, idx uint32, k int) ([]Hash, int) {
	bs := m.bs
	e := &m.sharers[fingerprint(s.tokens[:bs])]
	q := e.idx
	if int(q) >= len(m.seqs) || q == idx || m.seqs[q].gen != e.gen || m.seqs[q].state == seqUnused || !m.seqs[q].plain || !m.seqs[q].ownHashes {
		*e = shareEntry{idx, s.gen}
		return dst, 0
	}
	c := &m.seqs[q]
	n := min(k, len(c.hashes), c.hashLimit, len(c.tokens)/bs)
	a, b := s.tokens, c.tokens
	j := 0
	if bs == 16 {
		for ; j < n; j++ {
			// Sixteen tokens as two 32-byte compares (equal).
			x, y := a[j*16:][:16], b[j*16:][:16]
			if !equal((*Hash)(unsafe.Pointer(&x[0])), (*Hash)(unsafe.Pointer(&y[0]))) ||
				!equal((*Hash)(unsafe.Pointer(&x[8])), (*Hash)(unsafe.Pointer(&y[8]))) {
				break
			}
		}
	} else {
		for ; j < n && slices.Equal(a[j*bs:(j+1)*bs], b[j*bs:(j+1)*bs]); j++ {
		}
	}
	if j == n && k > n {
		// s begins with all of the candidate's hashed blocks and goes on:
		// it can give more.
		*e = shareEntry{idx, s.gen}
	}
	return append(dst, c.hashes[:j]...), j
}
