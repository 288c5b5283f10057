package paged

import (
	"errors"
	"math/rand/v2"
	"slices"
	"testing"
)

// checkOwnHashes fails unless every live sequence's hashes are those of
// its tokens' leading full blocks, computed whole.
func checkOwnHashes(t *testing.T, m *Manager, step int) {
	t.Helper()
	for i := range m.seqs {
		s := &m.seqs[i]
		if s.state == seqUnused || s.unknown {
			continue
		}
		want, err := m.BlockHashes(nil, s.tokens[:len(s.hashes)*m.bs], &s.opts)
		mustOK(t, err)
		if !slices.Equal(s.hashes, want) {
			t.Fatalf("step %d: slot %d (%d tokens): hashes differ from its tokens'", step, i, len(s.tokens))
		}
	}
}

// TestSharedHashesAreTheTokensHashes drives sequences that begin alike
// through every call that changes tokens (appends, speculative tokens,
// truncation, chunked admission, forks, preemption) while new ones are
// added: each new sequence's hashes, partly taken from a live one, must
// be exactly those of its tokens, and so must every live sequence's.
func TestSharedHashesAreTheTokensHashes(t *testing.T) {
	for _, bs := range []int{16, 4} {
		m, err := New(Config{BlockSize: bs, NumBlocks: 96})
		mustOK(t, err)
		r := rand.New(rand.NewPCG(uint64(bs), 9))
		heads := make([][]int32, 5)
		for h := range heads {
			for j := range 4 * bs {
				heads[h] = append(heads[h], int32(h*1000+j))
			}
		}
		var live []SeqID
		for step := range 3000 {
			switch op := r.IntN(10); {
			case op < 3 || len(live) == 0:
				h := heads[r.IntN(len(heads))]
				p := slices.Clone(h[:r.IntN(len(h)+1)])
				for range r.IntN(3 * bs) {
					p = append(p, int32(r.IntN(4)))
				}
				if len(p) == 0 {
					p = append(p, 1)
				}
				var opts *SeqOptions
				if r.IntN(6) == 0 {
					opts = &SeqOptions{LoRA: 1}
				}
				var id SeqID
				switch r.IntN(3) {
				case 0:
					id, err = m.Add(p, opts)
				case 1:
					id, err = m.AddOwned(slices.Clone(p), opts)
				default:
					id, _, err = m.Create(p, opts)
				}
				if errors.Is(err, ErrNoSpace) {
					continue
				}
				mustOK(t, err)
				if got, want := seqHashes(t, m, id), wantHashes(t, m, p, opts); !slices.Equal(got, want) {
					t.Fatalf("step %d: a new sequence's hashes differ from its tokens'", step)
				}
				live = append(live, id)
			default:
				k := r.IntN(len(live))
				id := live[k]
				run, _ := m.Running(id)
				n, _ := m.Len(id)
				switch {
				case op == 3:
					mustOK(t, m.Free(id))
					live = slices.Delete(live, k, k+1)
				case !run && op < 6:
					if _, _, err := m.AdmitChunk(id, 1+r.IntN(n), nil); err != nil && !errors.Is(err, ErrNoSpace) {
						t.Fatal(err)
					}
				case !run:
					if _, err := m.Admit(id); err != nil && !errors.Is(err, ErrNoSpace) {
						t.Fatal(err)
					}
				case op == 4:
					// Cut back and grow again with other tokens: the
					// hashes of the cut blocks must go with them.
					if err := m.Truncate(id, 1+r.IntN(n)); err != nil {
						t.Fatal(err)
					}
				case op == 5:
					if err := m.AppendSpeculative(id, 7, 7, 7, 7, 7); err == nil {
						mustOK(t, m.AcceptSpeculative(id, r.IntN(6)))
					}
				case op == 6:
					if c, err := m.Fork(id); err == nil {
						live = append(live, c)
					}
				case op == 7:
					mustOK(t, m.Preempt(id))
				default:
					for range 1 + r.IntN(bs) {
						if m.Append(id, int32(r.IntN(4))) != nil {
							break
						}
					}
				}
			}
			checkOwnHashes(t, m, step)
		}
		st := m.Stats()
		if st.HashesRecalled < 200 {
			t.Fatalf("block size %d: only %d hashes taken from live sequences (%d hashed)", bs, st.HashesRecalled, st.BlocksHashed)
		}
		mustOK(t, m.Check())
	}
}

// TestSharedHashesCounted: a prompt that begins as a live one does takes
// those hashes (counted as recalled, not hashed); with another hasher, or
// once the first sequence is freed, it hashes them.
func TestSharedHashesCounted(t *testing.T) {
	p := make([]int32, 16*5+3)
	for i := range p {
		p[i] = int32(i)
	}
	q := append(slices.Clone(p[:16*3]), 9, 9, 9, 9)
	m, _ := New(Config{BlockSize: 16, NumBlocks: 32})
	a, _ := m.Add(p, nil)
	b, _ := m.Add(q, nil)
	st := m.Stats()
	if st.BlocksHashed != 5 || st.HashesRecalled != 3 {
		t.Fatalf("hashed %d, recalled %d; want 5 and 3", st.BlocksHashed, st.HashesRecalled)
	}
	mustOK(t, m.Free(a))
	mustOK(t, m.Free(b))
	if _, err := m.Add(q, nil); err != nil {
		t.Fatal(err)
	}
	if st := m.Stats(); st.BlocksHashed != 8 || st.HashesRecalled != 3 {
		t.Fatalf("after the frees: hashed %d, recalled %d; want 8 and 3", st.BlocksHashed, st.HashesRecalled)
	}
	f, _ := New(Config{BlockSize: 16, NumBlocks: 32, Hasher: FastHasher{}})
	_, _ = f.Add(p, nil)
	_, _ = f.Add(q, nil)
	if st := f.Stats(); st.BlocksHashed != 8 || st.HashesRecalled != 0 {
		t.Fatalf("FastHasher: hashed %d, recalled %d; want 8 and 0", st.BlocksHashed, st.HashesRecalled)
	}
}

// TestSharedHashesNoAllocs: adding prompts that share their beginning
// with a live one, and freeing them, allocates nothing once the slots
// have their buffers.
func TestSharedHashesNoAllocs(t *testing.T) {
	m, _ := New(Config{BlockSize: 16, NumBlocks: 256})
	p := make([]int32, 16*20+5)
	for i := range p {
		p[i] = int32(i)
	}
	first, err := m.Add(p, nil)
	mustOK(t, err)
	op := func() {
		id, err := m.Add(p, nil)
		mustOK(t, err)
		mustOK(t, m.Free(id))
	}
	op()
	before := m.Stats().HashesRecalled
	if n := testing.AllocsPerRun(100, op); n != 0 {
		t.Fatalf("%v allocations an Add and Free", n)
	}
	if got := m.Stats().HashesRecalled - before; got != 101*20 {
		t.Fatalf("%d hashes taken from the live sequence, want %d", got, 101*20)
	}
	mustOK(t, m.Free(first))
}
