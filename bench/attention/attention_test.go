package attention_test

import (
	"errors"
	"math"
	"math/rand/v2"
	"testing"

	"github.com/stretchr/testify/require"

	"github.com/pagedkv/pagedkv/bench/attention"
	"github.com/pagedkv/pagedkv/paged"
)

var testShape = attention.Shape{BlockSize: 4, KVHeads: 2, QueryHeads: 6, HeadDim: 8}

// tokenKV returns the keys and values of the token at the end of prefix:
// a function of the whole prefix, as real KV is, so a prefix-cache hit
// must hand back exactly what recomputation would produce.
func tokenKV(prefix []int32, sh attention.Shape) (k, v []float32) {
	h := uint64(0x9e3779b97f4a7c15)
	for _, t := range prefix {
		h = (h ^ uint64(uint32(t))) * 0x100000001b3
		h ^= h >> 29
	}
	r := rand.New(rand.NewPCG(h, uint64(len(prefix))))
	n := sh.KVHeads * sh.HeadDim
	k, v = make([]float32, n), make([]float32, n)
	for i := range n {
		k[i] = float32(r.NormFloat64())
		v[i] = float32(r.NormFloat64())
	}
	return k, v
}

// denseKV returns a sequence's contiguous keys and values.
func denseKV(tokens []int32, sh attention.Shape) (k, v []float32) {
	for p := range tokens {
		kt, vt := tokenKV(tokens[:p+1], sh)
		k, v = append(k, kt...), append(v, vt...)
	}
	return k, v
}

// world drives a manager and a store together, keeping each sequence's
// tokens as the shadow the dense reference is computed from.
type world struct {
	t      *testing.T
	r      *rand.Rand
	m      *paged.Manager
	store  *attention.Store
	tokens map[paged.SeqID][]int32
	ids    []paged.SeqID
	copies []paged.Copy
	splits int // plans that split some sequence
}

func (w *world) write(id paged.SeqID, from int) {
	toks := w.tokens[id]
	for p := from; p < len(toks); p++ {
		slot, err := w.m.Slot(id, p)
		require.NoError(w.t, err)
		k, v := tokenKV(toks[:p+1], w.store.Shape())
		require.NoError(w.t, w.store.Write(slot, k, v))
	}
}

// flushCopies runs pending copy-on-write directives, as a server does
// before its kernels.
func (w *world) flushCopies() {
	w.copies = w.m.TakeCopies(w.copies[:0])
	require.NoError(w.t, w.store.Copy(w.copies))
}

func (w *world) pick() (paged.SeqID, bool) {
	if len(w.ids) == 0 {
		return 0, false
	}
	return w.ids[w.r.IntN(len(w.ids))], true
}

func (w *world) drop(id paged.SeqID) {
	delete(w.tokens, id)
	for i, x := range w.ids {
		if x == id {
			w.ids = append(w.ids[:i], w.ids[i+1:]...)
			return
		}
	}
}

func (w *world) step(families [][]int32) {
	r := w.r
	switch op := r.IntN(10); {
	case op < 2: // create, often sharing a prefix with earlier prompts
		f := families[r.IntN(len(families))]
		prompt := append([]int32(nil), f[:r.IntN(len(f)+1)]...)
		for range r.IntN(6) {
			prompt = append(prompt, int32(r.IntN(3)))
		}
		if len(prompt) == 0 {
			prompt = append(prompt, 1)
		}
		id, cached, err := w.m.Create(prompt, nil)
		if errors.Is(err, paged.ErrNoSpace) || errors.Is(err, paged.ErrNever) {
			return
		}
		require.NoError(w.t, err)
		w.tokens[id] = prompt
		w.ids = append(w.ids, id)
		w.write(id, cached)
	case op < 6: // append a token
		id, ok := w.pick()
		if !ok {
			return
		}
		tok := int32(r.IntN(3))
		if err := w.m.Append(id, tok); errors.Is(err, paged.ErrNoSpace) {
			return
		} else {
			require.NoError(w.t, err)
		}
		w.tokens[id] = append(w.tokens[id], tok)
		w.flushCopies()
		w.write(id, len(w.tokens[id])-1)
	case op < 7: // fork: the child shares every block
		id, ok := w.pick()
		if !ok {
			return
		}
		child, err := w.m.Fork(id)
		require.NoError(w.t, err)
		w.tokens[child] = append([]int32(nil), w.tokens[id]...)
		w.ids = append(w.ids, child)
	case op < 8: // truncate
		id, ok := w.pick()
		if !ok {
			return
		}
		n := 1 + r.IntN(len(w.tokens[id]))
		require.NoError(w.t, w.m.Truncate(id, n))
		w.tokens[id] = w.tokens[id][:n]
	case op < 9: // free; the blocks stay hittable in the prefix cache
		id, ok := w.pick()
		if !ok {
			return
		}
		require.NoError(w.t, w.m.Free(id))
		w.drop(id)
	default: // preempt and resume: recompute all but the prefix hits
		id, ok := w.pick()
		if !ok {
			return
		}
		require.NoError(w.t, w.m.Preempt(id))
		cached, err := w.m.Admit(id)
		if err != nil {
			require.ErrorIs(w.t, err, paged.ErrNoSpace)
			require.NoError(w.t, w.m.Free(id))
			w.drop(id)
			return
		}
		w.write(id, cached)
	}
}

// checkAttention runs paged attention over every running sequence, whole
// and split, and compares it with dense attention over the shadow.
func (w *world) checkAttention(att *attention.Attention, b *paged.Batch, plan *paged.SplitPlan) {
	sh := w.store.Shape()
	sched := make([]paged.Scheduled, len(w.ids))
	for i, id := range w.ids {
		sched[i] = paged.Scheduled{ID: id, NewTokens: 1}
	}
	require.NoError(w.t, w.m.BuildBatch(b, sched))
	width := sh.QueryHeads * sh.HeadDim
	q := make([]float32, len(w.ids)*width)
	for i := range q {
		q[i] = float32(w.r.NormFloat64())
	}
	want := make([]float32, len(q))
	for i, id := range w.ids {
		k, v := denseKV(w.tokens[id], sh)
		require.Equal(w.t, int32(len(w.tokens[id])), b.SeqLens[i])
		require.NoError(w.t, attention.Dense(want[i*width:(i+1)*width], q[i*width:(i+1)*width], k, v, len(w.tokens[id]), sh))
	}
	got := make([]float32, len(q))
	require.NoError(w.t, att.Decode(got, q, b, nil))
	requireClose(w.t, want, got, 1e-5)

	blocks := b.BlocksPerSeq
	require.NoError(w.t, plan.Build(blocks, 1+w.r.IntN(12), 1+w.r.IntN(3)))
	require.NoError(w.t, plan.Check(blocks))
	if len(plan.Items) > len(blocks) {
		w.splits++
	}
	clear(got)
	require.NoError(w.t, att.Decode(got, q, b, plan))
	requireClose(w.t, want, got, 1e-5)
}

func requireClose(t *testing.T, want, got []float32, tol float64) {
	t.Helper()
	for i := range want {
		// A NaN on either side fails: its difference is never above tol.
		if math.Abs(float64(want[i]-got[i])) > tol || math.IsNaN(float64(got[i])) || math.IsNaN(float64(want[i])) {
			t.Fatalf("element %d: paged %v, dense %v", i, got[i], want[i])
		}
	}
}

// TestPagedEqualsDense: over random histories of create, append, fork,
// copy-on-write, truncate, free, preemption and prefix hits, paged
// attention through the manager's tables equals dense attention over each
// sequence's own contiguous KV, split or not.
func TestPagedEqualsDense(t *testing.T) {
	for seed := range uint64(4) {
		r := rand.New(rand.NewPCG(seed, 99))
		m, err := paged.New(paged.Config{BlockSize: testShape.BlockSize, NumBlocks: 40})
		require.NoError(t, err)
		store, err := attention.NewStore(testShape, 40, nil, nil)
		require.NoError(t, err)
		w := &world{t: t, r: r, m: m, store: store, tokens: map[paged.SeqID][]int32{}}
		families := make([][]int32, 3)
		for i := range families {
			for range 4 + r.IntN(16) {
				families[i] = append(families[i], int32(r.IntN(5)))
			}
		}
		att := attention.New(store)
		var b paged.Batch
		var plan paged.SplitPlan
		for range 300 {
			w.step(families)
			require.NoError(t, m.Check())
			if len(w.ids) > 0 {
				w.checkAttention(att, &b, &plan)
			}
		}
		// The history exercised what it is meant to.
		st := m.Stats()
		require.Positive(t, st.PrefixHitBlocks, "prefix hits")
		require.Positive(t, st.Copies, "copy-on-write")
		require.Positive(t, st.Forks, "forks")
		require.Positive(t, st.Preemptions, "preemptions")
		require.Positive(t, st.Evictions, "evictions")
		require.Positive(t, w.splits, "split plans")
	}
}
