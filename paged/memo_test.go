package paged

import (
	"crypto/sha256"
	"encoding/binary"
	"errors"
	"runtime"
	"slices"
	"testing"

	"pgregory.net/rapid"
)

// memoTB is what the memo tests need of a *testing.T or a *rapid.T.
type memoTB interface {
	Helper()
	Fatal(args ...any)
	Fatalf(format string, args ...any)
}

// must fails on an error.
func must(t memoTB, err error) {
	t.Helper()
	if err != nil {
		t.Fatal(err)
	}
}

// memoSeq returns n distinct tokens from from on.
func memoSeq(from, n int) []int32 {
	out := make([]int32, n)
	for i := range out {
		out[i] = int32(from + i)
	}
	return out
}

// refHash is SHA-256 of a parent hash and tokens as little-endian int32,
// computed without the package's hashers: what every plain block hash
// must be.
func refHash(parent *Hash, tokens []int32) Hash {
	b := append([]byte(nil), parent[:]...)
	for _, t := range tokens {
		b = binary.LittleEndian.AppendUint32(b, uint32(t))
	}
	return sha256.Sum256(b)
}

// refChain returns the plain chain hashes of the full blocks of tokens
// under root.
func refChain(root Hash, tokens []int32, bs int) []Hash {
	var out []Hash
	parent := root
	for k := 0; (k+1)*bs <= len(tokens); k++ {
		h := refHash(&parent, tokens[k*bs:(k+1)*bs])
		out = append(out, h)
		parent = h
	}
	return out
}

// checkMemo fails unless every memo entry's hash is the SHA-256 of its
// parent hash and tokens.
func checkMemo(t memoTB, m *Manager) {
	t.Helper()
	x := m.bp.memo
	for id, ok := range x.ok {
		if !ok {
			continue
		}
		e := &x.io[id]
		if want := refHash(&e.parent, x.tokens[id*x.bs:(id+1)*x.bs]); e.hash != want {
			t.Fatalf("memo entry of block %d: hash %x is not the SHA-256 of its input (%x)", id, e.hash[:4], want[:4])
		}
	}
}

// memoHashes returns a sequence's hashes, failing on a bad handle.
func memoHashes(t memoTB, m *Manager, id SeqID) []Hash {
	t.Helper()
	s, err := m.seq(id)
	if err != nil {
		t.Fatal(err)
	}
	return slices.Clone(s.hashes)
}

func newMemoManager(t memoTB, bs, blocks int, groups ...Group) *Manager {
	t.Helper()
	m, err := New(Config{BlockSize: bs, NumBlocks: blocks, HashMemo: true, Groups: groups})
	if err != nil {
		t.Fatal(err)
	}
	if m.bp.memo == nil {
		t.Fatal("Config.HashMemo with the default hasher made no memo")
	}
	return m
}

// TestHashMemoWarmPrompt: a prompt that repeats a cached conversation
// and its reply (the next turn of a chat) takes every hash but the first
// from the memo, and they are SHA-256's; so does a chunk of it appended
// to a sequence.
func TestHashMemoWarmPrompt(t *testing.T) {
	for _, bs := range []int{16, 4} {
		m := newMemoManager(t, bs, 200)
		turn := memoSeq(1, 20*bs+3)
		id, _, err := m.Create(turn, nil)
		must(t, err)
		reply := memoSeq(5000, 6*bs)
		for _, tok := range reply { // decode: a block committed every bs tokens
			must(t, m.Append(id, tok))
		}
		must(t, m.Free(id))
		next := append(append(slices.Clone(turn), reply...), memoSeq(9000, 5*bs)...)
		before := m.Stats()
		id, err = m.Add(next, nil)
		must(t, err)
		if got, want := memoHashes(t, m, id), refChain(m.chain.root, next, bs); !slices.Equal(got, want) {
			t.Fatalf("bs %d: the memo's hashes differ from SHA-256's", bs)
		}
		cachedBlocks := (len(turn) + len(reply)) / bs
		st := m.Stats()
		if got := st.HashesRecalled - before.HashesRecalled; got != uint64(cachedBlocks-1) {
			t.Errorf("bs %d: %d hashes recalled, want %d (every cached block but the first)", bs, got, cachedBlocks-1)
		}
		if got, want := st.BlocksHashed-before.BlocksHashed, uint64(len(next)/bs-(cachedBlocks-1)); got != want {
			t.Errorf("bs %d: %d blocks hashed, want %d", bs, got, want)
		}
		must(t, m.Free(id))

		// The same conversation admitted from its first tokens, the rest
		// appended in one chunk: the chunk's blocks come from the memo
		// too, all but the first of them.
		id, _, err = m.Create(next[:bs+1], nil)
		must(t, err)
		before = m.Stats()
		must(t, m.Append(id, next[bs+1:]...))
		if got, want := memoHashes(t, m, id), refChain(m.chain.root, next, bs); !slices.Equal(got, want) {
			t.Fatalf("bs %d: the appended chunk's hashes differ from SHA-256's", bs)
		}
		if got := m.Stats().HashesRecalled - before.HashesRecalled; got != uint64(cachedBlocks-2) {
			t.Errorf("bs %d: %d hashes of the chunk recalled, want %d", bs, got, cachedBlocks-2)
		}
		checkMemo(t, m)
		must(t, m.Check())
	}
}

// TestHashMemoVerifiesParent: a block holding the same tokens under
// another parent, where the memo looks first (the block after the
// previous hit's), must not answer.
func TestHashMemoVerifiesParent(t *testing.T) {
	m := newMemoManager(t, 4, 20)
	y, tt := []int32{1, 2, 3, 4}, []int32{7, 7, 7, 7}
	a, _, err := m.Create(y, nil) // block 1: Y under the root
	must(t, err)
	b, _, err := m.Create(tt, nil) // block 2: T under the root
	must(t, err)
	ta, _ := m.Table(a)
	tb, _ := m.Table(b)
	if tb[0] != ta[0]+1 {
		t.Fatalf("setup: blocks %d and %d are not consecutive", ta[0], tb[0])
	}
	id, err := m.Add(append(slices.Clone(y), tt...), nil)
	must(t, err)
	if got, want := memoHashes(t, m, id), refChain(m.chain.root, append(slices.Clone(y), tt...), 4); !slices.Equal(got, want) {
		t.Fatal("the memo answered for T under Y with T under the root")
	}
	if r := m.Stats().HashesRecalled; r != 0 {
		t.Errorf("%d hashes recalled, want 0", r)
	}
	checkMemo(t, m)
}

// TestHashMemoIgnoresGivenHashes: blocks committed under hashes a caller
// gave (AddHashed, AddFromHashes), or under extra hash keys, are not
// recorded, so a later prompt with their tokens gets SHA-256's hashes
// whatever the caller claimed.
func TestHashMemoIgnoresGivenHashes(t *testing.T) {
	y, tt := []int32{1, 2, 3, 4}, []int32{7, 7, 7, 7}
	prompt := append(slices.Clone(y), tt...)
	for _, tc := range []struct {
		name string
		add  func(m *Manager, yh Hash) (SeqID, error)
	}{
		{"AddHashed", func(m *Manager, yh Hash) (SeqID, error) {
			return m.AddHashed(prompt, []Hash{yh, {9, 9, 9}}, nil)
		}},
		{"AddFromHashes", func(m *Manager, yh Hash) (SeqID, error) {
			id, err := m.AddFromHashes([]Hash{yh, {9, 9, 9}}, 8, nil)
			if err == nil {
				// The tokens are unknown placeholders: zeros.
				copy(m.seqs[uint32(id)].tokens, prompt)
			}
			return id, err
		}},
		{"multimodal", func(m *Manager, _ Hash) (SeqID, error) {
			return m.Add(prompt, &SeqOptions{MM: []MMRange{{Start: 4, End: 8, Hash: "img"}}})
		}},
	} {
		t.Run(tc.name, func(t *testing.T) {
			m := newMemoManager(t, 4, 20)
			a, _, err := m.Create(y, nil)
			must(t, err)
			yh := memoHashes(t, m, a)[0]
			id, err := tc.add(m, yh)
			must(t, err)
			_, err = m.Admit(id)
			must(t, err)
			must(t, m.Free(id))
			id, err = m.Add(prompt, nil)
			must(t, err)
			if got, want := memoHashes(t, m, id), refChain(m.chain.root, prompt, 4); !slices.Equal(got, want) {
				t.Fatalf("a block committed under %s's hash answered a plain prompt", tc.name)
			}
			checkMemo(t, m)
		})
	}
}

// TestHashMemoReusedBlock: a block whose entry was recorded, then
// evicted and committed again under a caller's hash, still answers with
// the entry's hash, SHA-256's, not the block's new one.
func TestHashMemoReusedBlock(t *testing.T) {
	m := newMemoManager(t, 4, 4) // blocks 1-3
	y, tt := []int32{1, 2, 3, 4}, []int32{7, 7, 7, 7}
	prompt := append(slices.Clone(y), tt...)
	a, _, err := m.Create(prompt, nil)
	must(t, err)
	ta, _ := m.Table(a)
	ta = slices.Clone(ta) // the table's buffer goes to the next sequence
	must(t, m.Free(a))    // T's block goes first into the LRU, then Y's
	b, err := m.AddHashed([]int32{5, 5, 5, 5, 6, 6, 6, 6}, []Hash{{1}, {2}}, nil)
	must(t, err)
	_, err = m.Admit(b) // the free block and T's, evicted
	must(t, err)
	tb, _ := m.Table(b)
	if !slices.Contains(tb, ta[1]) || slices.Contains(tb, ta[0]) {
		t.Fatalf("setup: %v did not reuse T's block of %v alone", tb, ta)
	}
	id, err := m.Add(prompt, nil)
	must(t, err)
	if got, want := memoHashes(t, m, id), refChain(m.chain.root, prompt, 4); !slices.Equal(got, want) {
		t.Fatal("a reused block's entry answered with the block's new hash")
	}
	if r := m.Stats().HashesRecalled; r != 1 {
		t.Errorf("%d hashes recalled, want 1 (the evicted block's entry stays true)", r)
	}
	checkMemo(t, m)
}

// TestHashMemoOff: without Config.HashMemo, with another hasher or
// without prefix caching there is no memo.
func TestHashMemoOff(t *testing.T) {
	for _, cfg := range []Config{
		{NumBlocks: 8},
		{NumBlocks: 8, HashMemo: true, Hasher: FastHasher{}},
		{NumBlocks: 8, HashMemo: true, DisablePrefixCaching: true},
	} {
		m, err := New(cfg)
		must(t, err)
		if m.bp.memo != nil {
			t.Errorf("%+v: a memo", cfg)
		}
	}
}

// TestHashMemoAddAllocs: in steady state, adding a warm prompt whose
// hashes come from the memo, admitting and freeing it allocates nothing.
func TestHashMemoAddAllocs(t *testing.T) {
	m := newMemoManager(t, 16, 200)
	prompt := memoSeq(1, 100*16+5)
	id, _, err := m.Create(prompt, nil)
	must(t, err)
	must(t, m.Free(id))
	op := func() {
		id, err := m.Add(prompt, nil)
		if err != nil {
			t.Fatal(err)
		}
		if _, err := m.Admit(id); err != nil {
			t.Fatal(err)
		}
		if err := m.Free(id); err != nil {
			t.Fatal(err)
		}
	}
	op()
	before := m.Stats().HashesRecalled
	if n := testing.AllocsPerRun(50, op); n != 0 {
		t.Errorf("%v allocations per warm Add, Admit and Free", n)
	}
	if m.Stats().HashesRecalled == before {
		t.Error("the warm Adds recalled nothing")
	}
}

// TestHashMemoRapid: whatever mix of prompts (repeating, extending and
// varying earlier ones), decoding, forks, truncations, frees, evictions,
// caller-given hashes and extra keys runs, every plain prompt's hashes
// are SHA-256's and every memo entry is a true SHA-256 input and output.
func TestHashMemoRapid(t *testing.T) {
	var recalled uint64
	runs := 0
	rapid.Check(t, func(t *rapid.T) {
		runs++
		bs := rapid.SampledFrom([]int{2, 3, 16}).Draw(t, "bs")
		var groups []Group
		if rapid.Bool().Draw(t, "hybrid") {
			groups = []Group{{Kind: FullAttention}, {Kind: SlidingWindow, Window: 2 * bs}}
		}
		m := newMemoManager(t, bs, rapid.IntRange(6, 48).Draw(t, "blocks"), groups...)
		var live []SeqID
		history := [][]int32{nil}
		tokens := func(label string) []int32 {
			base := rapid.SampledFrom(history).Draw(t, label+"base")
			n := len(base) - rapid.IntRange(0, len(base)).Draw(t, label+"cut")
			out := append(slices.Clone(base[:n]), rapid.SliceOfN(rapid.Int32Range(0, 2), 0, 8*bs).Draw(t, label+"more")...)
			if len(out) > 0 && rapid.IntRange(0, 4).Draw(t, label+"vary") == 0 {
				out[rapid.IntRange(0, len(out)-1).Draw(t, label+"at")]++
			}
			return out
		}
		admit := func(id SeqID) {
			if _, err := m.Admit(id); err != nil {
				if !errors.Is(err, ErrNoSpace) && !errors.Is(err, ErrNever) {
					t.Fatal(err)
				}
				must(t, m.Free(id))
				return
			}
			live = append(live, id)
		}
		pick := func() (int, SeqID) {
			i := rapid.IntRange(0, len(live)-1).Draw(t, "seq")
			return i, live[i]
		}
		for range rapid.IntRange(8, 40).Draw(t, "ops") {
			switch op := rapid.IntRange(0, 7).Draw(t, "op"); {
			case op <= 1: // a plain prompt
				p := tokens("prompt")
				if len(p) == 0 || len(p) > m.fullLen {
					continue
				}
				id, err := m.Add(p, nil)
				if errors.Is(err, ErrNoSpace) {
					continue
				}
				must(t, err)
				if got, want := memoHashes(t, m, id), refChain(m.chain.root, p, bs); !slices.Equal(got, want) {
					t.Fatalf("Add's %d hashes differ from SHA-256's", len(want))
				}
				history = append(history, p)
				admit(id)
			case op == 2: // hashes a caller gave, right or wrong
				p := tokens("given")
				if len(p) < bs || len(p) > m.fullLen {
					continue
				}
				hs := refChain(m.chain.root, p, bs)
				hs[rapid.IntRange(0, len(hs)-1).Draw(t, "wrong")][0] ^= 1
				var id SeqID
				var err error
				if rapid.Bool().Draw(t, "fromHashes") {
					id, err = m.AddFromHashes(hs, len(p), nil)
				} else {
					id, err = m.AddHashed(p, hs, nil)
				}
				if errors.Is(err, ErrNoSpace) {
					continue
				}
				must(t, err)
				admit(id)
			case op == 3: // extra keys on a later block
				p := tokens("keys")
				if len(p) < 2*bs || len(p) > m.fullLen {
					continue
				}
				id, err := m.Add(p, &SeqOptions{MM: []MMRange{{Start: bs, End: len(p), Hash: "img"}}})
				if errors.Is(err, ErrNoSpace) {
					continue
				}
				must(t, err)
				admit(id)
			case op == 4 && len(live) > 0: // decode, or a chunk of known tokens
				_, id := pick()
				var toks []int32
				if rapid.Bool().Draw(t, "chunk") {
					s, _ := m.seq(id)
					toks = tokens("chunk")
					toks = toks[min(len(s.tokens), len(toks)):]
				} else {
					toks = rapid.SliceOfN(rapid.Int32Range(0, 2), 1, 2*bs).Draw(t, "decode")
				}
				for len(toks) > 0 {
					n := 1
					if rapid.Bool().Draw(t, "together") {
						n = len(toks)
					}
					if err := m.Append(id, toks[:n]...); err != nil {
						if !errors.Is(err, ErrNoSpace) && !errors.Is(err, ErrNever) {
							t.Fatal(err)
						}
						break
					}
					toks = toks[n:]
				}
				if s, _ := m.seq(id); !s.unknown {
					history = append(history, slices.Clone(s.tokens))
				}
			case op == 5 && len(live) > 0:
				i, id := pick()
				must(t, m.Free(id))
				live = slices.Delete(live, i, i+1)
			case op == 6 && len(live) > 0:
				_, id := pick()
				c, err := m.Fork(id)
				if errors.Is(err, ErrNoSpace) {
					continue
				}
				must(t, err)
				live = append(live, c)
			case op == 7 && len(live) > 0:
				_, id := pick()
				if n, _ := m.Len(id); n > 1 {
					// A hybrid sequence cannot go back past its window's
					// released blocks (ErrInvalid, which changes nothing).
					if err := m.Truncate(id, rapid.IntRange(1, n-1).Draw(t, "truncate")); err != nil && !errors.Is(err, ErrInvalid) {
						t.Fatal(err)
					}
				}
			}
			checkMemo(t, m)
			must(t, m.Check())
			for i := range m.seqs {
				s := &m.seqs[i]
				if s.state == seqUnused || !s.plain || !s.ownHashes {
					continue
				}
				if want := refChain(m.chain.root, s.tokens, bs); !slices.Equal(s.hashes, want[:len(s.hashes)]) {
					t.Fatalf("a sequence's %d hashes differ from SHA-256's", len(s.hashes))
				}
			}
		}
		recalled += m.Stats().HashesRecalled
	})
	t.Logf("%d hashes recalled in all", recalled)
	if recalled == 0 && runs >= 100 { // go test's default; CI's 32-bit pass runs 10
		t.Error("no run recalled a hash: the property never exercised the memo")
	}
}

// TestHashMemoFollowsChildren: two conversations decoded in turns hold
// interleaved blocks, so a chain's next block is not the next ID; the
// memo follows each block's recorded child instead, and hashes every
// block but the first of neither.
func TestHashMemoFollowsChildren(t *testing.T) {
	const bs = 4
	m := newMemoManager(t, bs, 100)
	a, _, err := m.Create(memoSeq(1, 3), nil)
	must(t, err)
	b, _, err := m.Create(memoSeq(100, 3), nil)
	must(t, err)
	for i := range 40 {
		must(t, m.Append(a, int32(1000+i)))
		must(t, m.Append(b, int32(2000+i)))
	}
	ta, _ := m.Table(a)
	if ta[2] == ta[1]+1 {
		t.Fatalf("setup: table %v is a run", ta)
	}
	ka, _ := m.Tokens(a)
	prompt := append(slices.Clone(ka), 7, 7, 7, 7, 7)
	must(t, m.Free(a))
	must(t, m.Free(b))
	id, err := m.Add(prompt, nil)
	must(t, err)
	if got, want := memoHashes(t, m, id), refChain(m.chain.root, prompt, bs); !slices.Equal(got, want) {
		t.Fatal("the memo's hashes differ from SHA-256's")
	}
	if got, want := m.Stats().HashesRecalled, uint64(len(ka)/bs-1); got != want {
		t.Errorf("%d hashes recalled, want %d", got, want)
	}
}

// TestHashMemoBytesPerBlock: the memo costs what Config.HashMemo's doc
// says, 4*BlockSize+69 bytes per device block (133 at block size 16).
func TestHashMemoBytesPerBlock(t *testing.T) {
	const n = 1 << 16
	for _, bs := range []int{16, 32} {
		var a, b runtime.MemStats
		runtime.GC()
		runtime.ReadMemStats(&a)
		x := newHashMemo(n, bs)
		runtime.ReadMemStats(&b)
		runtime.KeepAlive(x)
		per := float64(b.TotalAlloc-a.TotalAlloc) / n
		if want := float64(4*bs + 69); per < want-2 || per > want+1 {
			t.Errorf("block size %d: %.1f bytes per block, want %.0f", bs, per, want)
		}
	}
}
