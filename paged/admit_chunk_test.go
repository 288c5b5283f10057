package paged

import (
	"errors"
	"math"
	"slices"
	"testing"
)

func chunkPrompt(base int32, n int) []int32 {
	p := make([]int32, n)
	for i := range p {
		p[i] = base + int32(i)
	}
	return p
}

func storedIn(evs []Event) int {
	n := 0
	for _, e := range evs {
		if e.Kind == BlockStored {
			n += len(e.Hashes)
		}
	}
	return n
}

func mustOK(t *testing.T, err error) {
	t.Helper()
	if err != nil {
		t.Fatal(err)
	}
}

// hitsOf admits a probe sequence with prompt and returns its cached
// tokens, then frees it.
func hitsOf(t *testing.T, m *Manager, prompt []int32) int {
	t.Helper()
	id, cached, err := m.Create(prompt, nil)
	mustOK(t, err)
	mustOK(t, m.Free(id))
	return cached
}

// TestAdmitChunkCachesOnlyTheChunk is the reported case: a 64-block pool
// holding 40 cached blocks admits a 40-block prompt in a chunk of 8
// blocks. Only the chunk's 8 blocks are taken (no eviction: 24 are free),
// committed and announced; the rest of the prompt comes back to the
// caller, and a lookup of the same prompt hits the chunk only.
func TestAdmitChunkCachesOnlyTheChunk(t *testing.T) {
	const bs = 4
	m, err := New(Config{BlockSize: bs, NumBlocks: 65, Events: 1024})
	mustOK(t, err)
	hitsOf(t, m, chunkPrompt(1, 40*bs))
	st := m.Stats()
	if st.CachedBlocks != 40 {
		t.Fatalf("%d cached blocks, want 40", st.CachedBlocks)
	}
	m.DrainEvents(nil)
	prompt := chunkPrompt(10000, 40*bs)
	id, err := m.Add(prompt, nil)
	mustOK(t, err)
	cached, rest, err := m.AdmitChunk(id, 8*bs, nil)
	mustOK(t, err)
	if cached != 0 || !slices.Equal(rest, prompt[8*bs:]) {
		t.Fatalf("cached %d, rest %d tokens, want 0 and %d", cached, len(rest), 32*bs)
	}
	if n, _ := m.Len(id); n != 8*bs {
		t.Fatalf("%d tokens admitted, want %d", n, 8*bs)
	}
	if n := storedIn(m.DrainEvents(nil)); n != 8 {
		t.Fatalf("%d blocks announced, want 8", n)
	}
	after := m.Stats()
	if after.Evictions != st.Evictions || after.CachedBlocks != 40 || after.UsedBlocks != 8 {
		t.Fatalf("evictions %d -> %d, cached %d, used %d; want no eviction, 40 cached, 8 used",
			st.Evictions, after.Evictions, after.CachedBlocks, after.UsedBlocks)
	}
	if after.PrefixQueryTokens-st.PrefixQueryTokens != uint64(len(prompt)) {
		t.Fatalf("the lookup counted %d tokens, want the whole prompt's %d", after.PrefixQueryTokens-st.PrefixQueryTokens, len(prompt))
	}
	mustOK(t, m.Check())
	if got := hitsOf(t, m, prompt); got != 8*bs {
		t.Fatalf("a second request hits %d tokens, want the chunk's %d", got, 8*bs)
	}
	// The rest, chunk by chunk, is cached as it comes.
	for len(rest) > 0 {
		k := min(len(rest), 7*bs+1)
		mustOK(t, m.Append(id, rest[:k]...))
		rest = rest[k:]
	}
	toks, _ := m.Tokens(id)
	if !slices.Equal(toks, prompt) {
		t.Fatal("the sequence does not hold its prompt")
	}
	mustOK(t, m.Free(id))
	if got := hitsOf(t, m, prompt); got != 39*bs {
		t.Fatalf("after the whole prompt, hits %d tokens, want %d", got, 39*bs)
	}
	mustOK(t, m.Check())
}

// TestAdmitChunkHits: the chunk starts after the cached prefix, and a
// chunk reaching the end is Admit.
func TestAdmitChunkHits(t *testing.T) {
	const bs = 4
	m, err := New(Config{BlockSize: bs, NumBlocks: 65})
	mustOK(t, err)
	prompt := chunkPrompt(1, 20*bs)
	hitsOf(t, m, prompt[:10*bs+2])
	id, err := m.Add(prompt, nil)
	mustOK(t, err)
	cached, rest, err := m.AdmitChunk(id, 5, make([]int32, 0, 8))
	mustOK(t, err)
	if cached != 10*bs || len(rest) != len(prompt)-10*bs-5 {
		t.Fatalf("cached %d, rest %d", cached, len(rest))
	}
	mustOK(t, m.Free(id))
	id, err = m.Add(prompt, nil)
	mustOK(t, err)
	cached, rest, err = m.AdmitChunk(id, math.MaxInt/2+1, nil)
	mustOK(t, err)
	if n, _ := m.Len(id); cached != 11*bs || rest != nil || n != len(prompt) {
		t.Fatalf("whole chunk: cached %d, rest %v, length %d", cached, rest, n)
	}
	mustOK(t, m.Check())
}

// TestAdmitChunkErrors: bad input and no space change nothing.
func TestAdmitChunkErrors(t *testing.T) {
	const bs = 4
	m, err := New(Config{BlockSize: bs, NumBlocks: 9})
	mustOK(t, err)
	prompt := chunkPrompt(1, 6*bs)
	id, err := m.Add(prompt, nil)
	mustOK(t, err)
	for _, n := range []int{0, -3} {
		if _, _, err := m.AdmitChunk(id, n, nil); !errors.Is(err, ErrInvalid) {
			t.Fatalf("maxNew %d: %v, want ErrInvalid", n, err)
		}
		if _, err := m.CanAdmitChunk(id, n); !errors.Is(err, ErrInvalid) {
			t.Fatalf("CanAdmitChunk maxNew %d: %v, want ErrInvalid", n, err)
		}
	}
	if _, _, err := m.AdmitChunk(SeqID(12345), 4, nil); !errors.Is(err, ErrUnknownSequence) {
		t.Fatalf("unknown sequence: %v", err)
	}
	// Another sequence takes 6 of the 8 blocks: the whole prompt must
	// wait, a chunk of 2 blocks fits.
	other, _, err := m.Create(chunkPrompt(500, 6*bs), nil)
	mustOK(t, err)
	if a, _ := m.CanAdmit(id); a != AdmitLater {
		t.Fatalf("CanAdmit %v", a)
	}
	if a, _ := m.CanAdmitChunk(id, 3*bs); a != AdmitLater {
		t.Fatalf("CanAdmitChunk of 3 blocks: %v, want later", a)
	}
	before := m.Stats()
	_, rest, err := m.AdmitChunk(id, 3*bs, nil)
	if !errors.Is(err, ErrNoSpace) || rest != nil {
		t.Fatalf("3 blocks: %v, rest %v; want ErrNoSpace", err, rest)
	}
	if toks, _ := m.Tokens(id); !slices.Equal(toks, prompt) {
		t.Fatal("a refused AdmitChunk changed the tokens")
	}
	if st := m.Stats(); st.UsedBlocks != before.UsedBlocks || st.PrefixQueryTokens != before.PrefixQueryTokens+uint64(len(prompt)) {
		t.Fatalf("used %d -> %d, query tokens %d -> %d", before.UsedBlocks, st.UsedBlocks, before.PrefixQueryTokens, st.PrefixQueryTokens)
	}
	if a, _ := m.CanAdmitChunk(id, 2*bs); a != AdmitOK {
		t.Fatalf("CanAdmitChunk of 2 blocks: %v, want ok", a)
	}
	_, rest, err = m.AdmitChunk(id, 2*bs, nil)
	mustOK(t, err)
	if !slices.Equal(rest, prompt[2*bs:]) {
		t.Fatal("rest")
	}
	if _, _, err := m.AdmitChunk(id, 4, nil); !errors.Is(err, ErrSequenceState) {
		t.Fatalf("running: %v, want ErrSequenceState", err)
	}
	mustOK(t, m.Free(other))
	mustOK(t, m.Free(id))
	// Longer than the pool: never, whatever the chunk.
	big, err := m.Add(chunkPrompt(1, 9*bs), nil)
	if err == nil {
		if _, _, err := m.AdmitChunk(big, bs, nil); !errors.Is(err, ErrNever) {
			t.Fatalf("too long: %v, want ErrNever", err)
		}
		mustOK(t, m.Free(big))
	}
	// A sequence known by its hashes cannot be cut inside them.
	hs, err := m.Add(prompt, nil)
	mustOK(t, err)
	hashes := slices.Clone(m.seqs[uint32(hs)].hashes)
	mustOK(t, m.Free(hs))
	fh, err := m.AddFromHashes(hashes, len(prompt), nil)
	mustOK(t, err)
	if _, _, err := m.AdmitChunk(fh, bs, nil); !errors.Is(err, ErrInvalid) {
		t.Fatalf("from hashes: %v, want ErrInvalid", err)
	}
	if n, _ := m.Len(fh); n != len(prompt) {
		t.Fatal("a refused AdmitChunk cut the sequence")
	}
	mustOK(t, m.Check())
}

// TestAdmitChunkGroups: a hybrid manager cuts every group alike.
func TestAdmitChunkGroups(t *testing.T) {
	const bs = 4
	m, err := New(Config{BlockSize: bs, NumBlocks: 80, Groups: []Group{{Kind: FullAttention}, {Kind: SlidingWindow, Window: 2 * bs}}})
	mustOK(t, err)
	prompt := chunkPrompt(1, 12*bs)
	hitsOf(t, m, prompt[:4*bs+1])
	id, err := m.Add(prompt, nil)
	mustOK(t, err)
	cached, rest, err := m.AdmitChunk(id, 3*bs, nil)
	mustOK(t, err)
	if cached != 4*bs || len(rest) != 5*bs {
		t.Fatalf("cached %d, rest %d", cached, len(rest))
	}
	mustOK(t, m.Check())
	mustOK(t, m.Append(id, rest...))
	mustOK(t, m.Check())
	mustOK(t, m.Free(id))
	if got := hitsOf(t, m, prompt); got != 11*bs {
		t.Fatalf("hits %d, want %d", got, 11*bs)
	}
}

// TestUncompute: a block whose last slot's KV was never computed leaves
// the prefix cache before a preemption releases it.
func TestUncompute(t *testing.T) {
	const bs = 4
	for _, uncompute := range []bool{false, true} {
		m, err := New(Config{BlockSize: bs, NumBlocks: 17, Events: 64})
		mustOK(t, err)
		prompt := chunkPrompt(1, 2*bs-1)
		id, _, err := m.Create(prompt, nil)
		mustOK(t, err)
		mustOK(t, m.Append(id, 99)) // completes block 1, never computed
		m.DrainEvents(nil)
		if uncompute {
			if err := m.Uncompute(id, 2*bs+1); !errors.Is(err, ErrInvalid) {
				t.Fatalf("past the end: %v", err)
			}
			mustOK(t, m.Uncompute(id, 2*bs-1))
			mustOK(t, m.Check())
			evs := m.DrainEvents(nil)
			if len(evs) != 1 || evs[0].Kind != BlockRemoved {
				t.Fatalf("events %v, want one BlockRemoved", evs)
			}
		}
		mustOK(t, m.Preempt(id))
		if err := m.Uncompute(id, 0); !errors.Is(err, ErrSequenceState) {
			t.Fatalf("waiting: %v", err)
		}
		want := 2 * bs
		if uncompute {
			want = bs
		}
		if got := hitsOf(t, m, append(slices.Clone(prompt), 99, 5)); got != want {
			t.Fatalf("uncompute %v: hits %d, want %d", uncompute, got, want)
		}
		// The preempted sequence resumes and commits the block again.
		cached, err := m.Admit(id)
		mustOK(t, err)
		if cached != bs { // the last token is never a hit
			t.Fatalf("resumed with %d cached", cached)
		}
		mustOK(t, m.Check())
		mustOK(t, m.Free(id))
		if got := hitsOf(t, m, append(slices.Clone(prompt), 99, 5)); got != 2*bs {
			t.Fatalf("after the recompute: hits %d, want %d", got, 2*bs)
		}
	}
}

// TestAdmitChunkAllocs: chunked admission, the chunks that follow, and a
// dropped step allocate nothing once the buffers have grown.
func TestAdmitChunkAllocs(t *testing.T) {
	const bs = 4
	m, err := New(Config{BlockSize: bs, NumBlocks: 65})
	mustOK(t, err)
	prompt := chunkPrompt(1, 30*bs+1)
	other := chunkPrompt(5000, 30*bs+1)
	buf := make([]int32, 0, len(prompt))
	var fail error
	cycle := func() {
		prompt[0]++ // a miss: the chunk is cut from the prompt
		for _, p := range [][]int32{prompt, other} {
			id, err := m.Add(p, nil)
			if err != nil {
				fail = err
				return
			}
			_, rest, err := m.AdmitChunk(id, 9, buf[:0])
			if err == nil && p[0] == prompt[0] && len(rest) != len(p)-9 {
				err = errors.New("the chunk was not cut")
			}
			for err == nil && len(rest) > 0 {
				k := min(9, len(rest))
				err = m.Append(id, rest[:k]...)
				rest = rest[k:]
			}
			if err == nil {
				err = m.Append(id, 7)
			}
			if err == nil {
				err = m.Uncompute(id, len(p))
			}
			if err == nil {
				err = m.Preempt(id)
			}
			if err == nil {
				_, err = m.Admit(id)
			}
			if err == nil {
				err = m.Free(id)
			}
			if err != nil {
				fail = err
				return
			}
		}
	}
	cycle()
	if a := testing.AllocsPerRun(50, cycle); a != 0 || fail != nil {
		t.Fatalf("%v allocations a cycle (%v)", a, fail)
	}
}
