package paged

import (
	"fmt"
	"slices"
	"unsafe"

	"github.com/pagedkv/pagedkv/allocator"
)

// hashMemo remembers, per device block, the SHA-256 input and output of
// the block's chain hash: the hash before it, its tokens and its hash
// (Config.HashMemo). A prompt that repeats a chain the memo knows (a
// conversation sent again with one more turn) then gets its hashes
// without hashing again: where an entry's parent hash and tokens equal
// those of the prompt's next block, the entry's hash is that block's
// hash, bit for bit, since SHA-256 is a function of its input. SGLang's
// radix tree has the same property (a cached prefix is found by its
// tokens, not by hashing them); here it needs no tree, only the entries.
//
// Exactness rests on three rules. An entry is written only for a block
// committed by commitFull from a sequence whose hashes this manager
// computed itself (sequence.ownHashes) without extra keys (plain): a hash
// a caller gave (AddHashed, AddFromHashes) may not be the SHA-256 of the
// tokens, and one with extra keys is not the SHA-256 of the parent and
// the tokens alone. An entry holds its own copy of the hash, written with
// its input, so it is a true statement about SHA-256 whatever happens to
// the block afterwards (eviction, another commit by any path, a reset):
// nothing has to invalidate it, and nothing stale can be read, since an
// entry is overwritten only whole, by the next record in its slot. And a
// lookup compares the whole input, the 32-byte parent and every token,
// never a fingerprint: a tenant cannot make the memo answer for tokens
// it did not send.
//
// The block ID only places the entry, next to its chain's neighbours:
// the next block of a chain is usually the next ID (a prompt's blocks
// are allocated in a run) or the block recorded after it (child), so a
// warm prompt finds its entries without an index of their own.
type hashMemo struct {
	bs int
	// io[id] is the parent hash and the hash of block id's entry.
	io []memoIO
	// tokens[id*bs:(id+1)*bs] are its tokens.
	tokens []int32
	// child[id] is the block recorded after block id in a chain: a
	// conversation's next turn goes on past its last block from wherever
	// the allocator found room, not at id+1.
	child []allocator.BlockID
	// ok[id]: block id has an entry.
	ok []bool
}

// memoIO is a memo entry's parent hash (the SHA-256 input's first 32
// bytes) and hash (its output), side by side in one cache line.
type memoIO struct {
	parent, hash Hash
}

// newHashMemo returns the memo of a pool of n blocks of bs tokens.
func newHashMemo(n, bs int) *hashMemo {
	return &hashMemo{
		bs:     bs,
		io:     make([]memoIO, n),
		tokens: make([]int32, n*bs),
		child:  make([]allocator.BlockID, n),
		ok:     make([]bool, n),
	}
}

// record writes block id's entry: its parent hash, its tokens (bs of
// them) and its hash, the SHA-256 of the two; after is the block before
// it in its chain (nullBlock or NoBlock for none), whose child it
// becomes. REQUIRES: *h is the SHA-256 of *parent and tokens. Blocks of
// 16 tokens take remember16's loop instead.
func (x *hashMemo) record(id, after allocator.BlockID, parent, h *Hash, tokens []int32) {
	e := &x.io[id]
	e.parent, e.hash = *parent, *h
	copy(x.tokens[int(id)*x.bs:][:x.bs], tokens)
	if after > nullBlock {
		x.child[after] = id
	}
	x.ok[id] = true
}

// holds reports whether block id's entry has the input (*parent, tokens).
func (x *hashMemo) holds(id allocator.BlockID, parent *Hash, tokens []int32) bool {
	if uint(id) >= uint(len(x.ok)) || !x.ok[id] || !equal(&x.io[id].parent, parent) {
		return false
	}
	held := x.tokens[int(id)*x.bs:][:x.bs]
	if len(held) == 16 && len(tokens) == 16 {
		// Sixteen tokens as two 32-byte words compares (equal), without
		// a loop or a call.
		return equal((*Hash)(unsafe.Pointer(&held[0])), (*Hash)(unsafe.Pointer(&tokens[0]))) &&
			equal((*Hash)(unsafe.Pointer(&held[8])), (*Hash)(unsafe.Pointer(&tokens[8])))
	}
	return slices.Equal(held, tokens)
}

// newMemo returns the hash memo cfg asks for, nil without: only the
// SHA-256 hasher has one (FastHasher costs less than the memo's
// comparisons; another hasher need not be a function of its input).
func newMemo(cfg *Config) *hashMemo {
	if !cfg.HashMemo || cfg.DisablePrefixCaching {
		return nil
	}
	if _, ok := cfg.Hasher.(*SHA256Hasher); !ok {
		return nil
	}
	return newHashMemo(cfg.NumBlocks, cfg.BlockSize)
}

// promptHashes is chain.extend for a prompt, on the manager's goroutine:
// a block's hash comes from the memo where it can, SHA-256 otherwise.
// Prompts with extra hash keys (plain false) are hashed as usual. It
// returns how many hashes came from the memo.
func (m *Manager) promptHashes(dst []Hash, tokens []int32, opts *SeqOptions, plain bool, from, to int) ([]Hash, int) {
	if m.bp.memo == nil || !plain || to <= from {
		return m.chain.extend(dst, tokens, opts, from, to), 0
	}
	return m.recall(dst, tokens, from, to)
}

// recall appends the hashes of blocks [k, to) of a plain prompt, taking
// each from the memo while it follows a chain the memo knows, and
// returns how many it took. The first block is hashed, and so is the
// first that the guesses (the block after the previous one's entry, the
// child of that entry) do not answer; the index then names a block
// holding the hash to guess from next. Where the index does not know the
// hash (the cache cannot hit past it either), or a block right after such
// a resynchronisation is not answered, the rest is hashed. So a prompt
// the memo cannot help pays an index probe and a few comparisons more.
func (m *Manager) recall(dst []Hash, tokens []int32, k, to int) (_ []Hash, recalled int) {
	x, bs := m.bp.memo, m.bs
	prev, resynced := allocator.NoBlock, false
	for k < to {
		t := tokens[k*bs : (k+1)*bs]
		if prev != allocator.NoBlock {
			parent := &dst[len(dst)-1]
			id := prev + 1
			if !x.holds(id, parent, t) {
				if id = x.child[prev]; !x.holds(id, parent, t) {
					id = allocator.NoBlock
				}
			}
			if id != allocator.NoBlock {
				dst = append(dst, x.io[id].hash)
				prev, resynced = id, false
				recalled++
				k++
				continue
			}
			if resynced {
				break
			}
		}
		dst = m.chain.extend(dst, tokens, &noKeys, k, k+1)
		k++
		id, ok := m.bp.index.get(&dst[len(dst)-1])
		if !ok {
			break
		}
		prev, resynced = id, true
	}
	return m.chain.extend(dst, tokens, &noKeys, k, to), recalled
}

// remember records blocks [from, limit) of s, just committed, in the
// memo, if s's hashes are its own and plain: then each is the SHA-256 of
// the one before it and the block's tokens. A block a fork committed
// first is recorded too; its hash is the same.
func (m *Manager) remember(s *sequence, from, limit int) {
	if !s.plain || !s.ownHashes {
		return
	}
	x, bs := m.bp.memo, m.bs
	if limit*bs > len(s.tokens) {
		// Slicing within the capacity would record stale tokens.
		panic(fmt.Sprintf("paged: %d hashed blocks of %d tokens but %d tokens", limit, bs, len(s.tokens)))
	}
	blocks, hashes, tokens := s.blocks[:limit], s.hashes[:limit], s.tokens[:limit*bs]
	if bs == 16 {
		m.remember16(blocks, hashes, tokens, from)
		return
	}
	for k := from; k < limit; k++ {
		parent, after := &m.chain.root, allocator.NoBlock
		if k > 0 {
			parent, after = &hashes[k-1], blocks[k-1]
		}
		x.record(blocks[k], after, parent, &hashes[k], tokens[k*bs:(k+1)*bs])
	}
}

// remember16 is remember's loop for blocks of 16 tokens: each entry is
// four 32-byte word copies (copy32) with one bounds check per array,
// about 107 instructions and 8 ns a block against 149 and 10 through
// record, whose token copy is a memmove call.
// REQUIRES: len(blocks) == len(hashes) and len(tokens) == 16*len(blocks).
func (m *Manager) remember16(blocks []allocator.BlockID, hashes []Hash, tokens []int32, from int) {
	x := m.bp.memo
	n := len(x.ok)
	io, child, ok := x.io[:n], x.child[:n], x.ok[:n]
	held := unsafe.Slice((*[2][32]byte)(unsafe.Pointer(unsafe.SliceData(x.tokens))), n)
	given := unsafe.Slice((*[2][32]byte)(unsafe.Pointer(unsafe.SliceData(tokens))), len(blocks))
	for k := from; k < len(blocks); k++ {
		id := blocks[k]
		e, t, src := &io[id], &held[id], &given[k]
		if k > 0 {
			copy32((*[32]byte)(&e.parent), (*[32]byte)(&hashes[k-1]))
			if after := blocks[k-1]; after > nullBlock {
				child[after] = id
			}
		} else {
			copy32((*[32]byte)(&e.parent), (*[32]byte)(&m.chain.root))
		}
		copy32((*[32]byte)(&e.hash), (*[32]byte)(&hashes[k]))
		copy32(&t[0], &src[0])
		copy32(&t[1], &src[1])
		ok[id] = true
	}
}
