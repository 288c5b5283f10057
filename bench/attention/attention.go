package attention

import (
	"fmt"
	"math"

	"github.com/pagedkv/pagedkv/paged"
)

// Attention is the decode attention of one layer over a paged Store: for
// each sequence of a batch, one query per query head attends to the
// sequence's keys and values, read only through its block table. Work is
// cut as a split-KV plan says (Flash-Decoding): each work item produces a
// partial result, its normalized output and its log-sum-exp, and a
// sequence's partials are merged by their log-sum-exp, as FlashInfer's and
// vLLM's split-KV kernels do. Accumulation is in float64, so the result
// differs from a dense float64 computation only by rounding, and any larger
// difference is a metadata or quantization effect.
//
// An Attention keeps scratch buffers and is not safe for concurrent use.
type Attention struct {
	store  *Store
	whole  paged.SplitPlan
	blocks []int32
	// Partials, per work item and query head: output and log-sum-exp.
	partO   []float64
	partLSE []float64
	kbuf    []float32
	vbuf    []float32
	logits  []float64
	sums    []float64
	q64     []float64 // the queries widened once per work item
}

// New returns the attention of a store.
func New(store *Store) *Attention {
	sh := store.shape
	return &Attention{
		store:  store,
		kbuf:   make([]float32, sh.BlockSize*sh.HeadDim),
		vbuf:   make([]float32, sh.BlockSize*sh.HeadDim),
		logits: make([]float64, sh.QueryHeads/sh.KVHeads*sh.BlockSize),
		sums:   make([]float64, sh.QueryHeads),
		q64:    make([]float64, sh.QueryHeads*sh.HeadDim),
	}
}

// Decode computes, for every sequence i of batch b, the attention output of
// its queries q[i*QueryHeads*HeadDim:...] (query head after query head) over
// its first b.SeqLens[i] tokens, into out (same layout as q). plan cuts the
// work; nil runs each sequence as one item. The plan must have been built
// from the same batch's BlocksPerSeq: Decode refuses, with ErrInvalid, one
// whose items do not tile every sequence's blocks.
func (a *Attention) Decode(out, q []float32, b *paged.Batch, plan *paged.SplitPlan) error {
	sh := a.store.shape
	n := len(b.SeqLens)
	width := sh.QueryHeads * sh.HeadDim
	if len(q) != n*width || len(out) != n*width {
		return fmt.Errorf("%w: %d queries and %d outputs for %d sequences of %d values", ErrInvalid, len(q), len(out), n, width)
	}
	if len(b.Tables) < n*b.Stride {
		return fmt.Errorf("%w: %d table entries for %d rows of %d", ErrInvalid, len(b.Tables), n, b.Stride)
	}
	a.blocks = append(a.blocks[:0], b.BlocksPerSeq...)
	if len(a.blocks) != n {
		// A batch not made by BuildBatch: derive the table lengths.
		a.blocks = a.blocks[:0]
		for _, l := range b.SeqLens {
			a.blocks = append(a.blocks, int32((int(l)+a.store.shape.BlockSize-1)/a.store.shape.BlockSize))
		}
	}
	for i, nb := range a.blocks {
		if int(nb) > b.Stride {
			return fmt.Errorf("%w: sequence %d needs %d blocks, table stride %d", ErrInvalid, i, nb, b.Stride)
		}
		for _, id := range b.Tables[i*b.Stride : i*b.Stride+int(nb)] {
			if id < 0 || int(id) >= a.store.numBlocks {
				return fmt.Errorf("%w: sequence %d names block %d outside the store", ErrInvalid, i, id)
			}
		}
	}
	if plan == nil {
		if err := a.whole.Build(a.blocks, 1, 1); err != nil {
			return err
		}
		plan = &a.whole
	}
	if len(plan.Merge) != n+1 || plan.Merge[0] != 0 || int(plan.Merge[n]) != len(plan.Items) {
		return fmt.Errorf("%w: plan for %d sequences and %d items, batch of %d", ErrInvalid, len(plan.Merge)-1, len(plan.Items), n)
	}
	// Each sequence's items must tile its blocks, or the output would
	// silently leave some KV out.
	for s := range n {
		if plan.Merge[s+1] < plan.Merge[s] || int(plan.Merge[s+1]) > len(plan.Items) {
			return fmt.Errorf("%w: plan merge map %d..%d of %d items", ErrInvalid, plan.Merge[s], plan.Merge[s+1], len(plan.Items))
		}
		next := int32(0)
		for i := plan.Merge[s]; i < plan.Merge[s+1]; i++ {
			if it := plan.Items[i]; it.Seq != int32(s) || it.First != next || it.End <= it.First {
				return fmt.Errorf("%w: plan item %+v does not tile sequence %d", ErrInvalid, it, s)
			}
			next = plan.Items[i].End
		}
		if next != a.blocks[s] {
			return fmt.Errorf("%w: plan covers %d of sequence %d's %d blocks", ErrInvalid, next, s, a.blocks[s])
		}
	}

	items := len(plan.Items)
	a.partO = grow(a.partO, items*width)
	a.partLSE = grow(a.partLSE, items*sh.QueryHeads)
	for i, it := range plan.Items {
		s := int(it.Seq)
		a.partial(i, q[s*width:(s+1)*width], b.Tables[s*b.Stride:(s+1)*b.Stride], int(b.SeqLens[s]), it)
	}
	for s := range n {
		a.merge(out[s*width:(s+1)*width], int(plan.Merge[s]), int(plan.Merge[s+1]))
	}
	return nil
}

// partial computes work item i: every query head over blocks
// [it.First, it.End) of the sequence, leaving the normalized output and the
// log-sum-exp in the item's partial slots.
func (a *Attention) partial(i int, q []float32, table []int32, seqLen int, it paged.SplitItem) {
	sh := a.store.shape
	d, group := sh.HeadDim, sh.QueryHeads/sh.KVHeads
	scale := 1 / math.Sqrt(float64(d))
	o := a.partO[i*sh.QueryHeads*d : (i+1)*sh.QueryHeads*d]
	lse := a.partLSE[i*sh.QueryHeads : (i+1)*sh.QueryHeads]
	clear(o)
	// Online softmax: lse holds the running maximum until the end, sum the
	// running sum of exponentials relative to it.
	for h := range lse {
		lse[h] = math.Inf(-1)
	}
	sums := a.sums
	clear(sums)
	for c, x := range q {
		a.q64[c] = float64(x)
	}
	for j := it.First; j < it.End; j++ {
		blk := int(table[j])
		rows := min(sh.BlockSize, seqLen-int(j)*sh.BlockSize)
		for kh := range sh.KVHeads {
			k := a.store.key.read(a.store, blk, kh, rows, a.kbuf)
			v := a.store.value.read(a.store, blk, kh, rows, a.vbuf)
			a.blockLogits(k, kh*group, group, rows, d, scale)
			for qh := kh * group; qh < (kh+1)*group; qh++ {
				logits := a.logits[(qh-kh*group)*sh.BlockSize:][:rows]
				m := lse[qh]
				for _, l := range logits {
					if l > m { // not max: it also orders NaNs and signed zeros, slowly
						m = l
					}
				}
				if m > lse[qh] { // rescale what came before to the new maximum
					f := math.Exp(lse[qh] - m)
					sums[qh] *= f
					acc := o[qh*d : (qh+1)*d]
					for c := range acc {
						acc[c] *= f
					}
					lse[qh] = m
				}
				// The logits become the softmax weights of this block.
				for t, l := range logits {
					w := math.Exp(l - m)
					sums[qh] += w
					logits[t] = w
				}
			}
			a.blockValues(o, v, kh*group, group, rows, d)
		}
	}
	for qh := range lse {
		acc := o[qh*d : (qh+1)*d]
		for c := range acc {
			acc[c] /= sums[qh]
		}
		lse[qh] += math.Log(sums[qh])
	}
}

// blockLogits sets a.logits[g*BlockSize+t] to the scaled dot product of
// query head first+g with key t of the block, for the group's query heads.
// Four heads go through each key row together: each dot product still adds
// its terms in channel order, so the result is the same to the bit, but
// four independent sums keep the floating-point adder busy where one sum
// waits on its previous addition.
func (a *Attention) blockLogits(k []float32, first, group, rows, d int, scale float64) {
	bs := a.store.shape.BlockSize
	g := 0
	for ; g+4 <= group; g += 4 {
		q0 := a.q64[(first+g)*d:][:d]
		q1 := a.q64[(first+g+1)*d:][:d]
		q2 := a.q64[(first+g+2)*d:][:d]
		q3 := a.q64[(first+g+3)*d:][:d]
		for t := range rows {
			var d0, d1, d2, d3 float64
			for c, x := range k[t*d : (t+1)*d] {
				y := float64(x)
				d0 += q0[c] * y
				d1 += q1[c] * y
				d2 += q2[c] * y
				d3 += q3[c] * y
			}
			a.logits[g*bs+t] = d0 * scale
			a.logits[(g+1)*bs+t] = d1 * scale
			a.logits[(g+2)*bs+t] = d2 * scale
			a.logits[(g+3)*bs+t] = d3 * scale
		}
	}
	for ; g < group; g++ {
		qv := a.q64[(first+g)*d:][:d]
		for t := range rows {
			var dot float64
			for c, x := range k[t*d : (t+1)*d] {
				dot += qv[c] * float64(x)
			}
			a.logits[g*bs+t] = dot * scale
		}
	}
}

// blockValues adds each value row of the block, weighted by a.logits (now
// the softmax weights), to the outputs o of the group's query heads. Four
// heads share each value row; each output channel still sums its terms in
// token order, so the result is the same to the bit.
func (a *Attention) blockValues(o []float64, v []float32, first, group, rows, d int) {
	bs := a.store.shape.BlockSize
	g := 0
	for ; g+4 <= group; g += 4 {
		o0 := o[(first+g)*d:][:d]
		o1 := o[(first+g+1)*d:][:d]
		o2 := o[(first+g+2)*d:][:d]
		o3 := o[(first+g+3)*d:][:d]
		for t := range rows {
			w0, w1, w2, w3 := a.logits[g*bs+t], a.logits[(g+1)*bs+t], a.logits[(g+2)*bs+t], a.logits[(g+3)*bs+t]
			for c, x := range v[t*d : (t+1)*d] {
				y := float64(x)
				o0[c] += w0 * y
				o1[c] += w1 * y
				o2[c] += w2 * y
				o3[c] += w3 * y
			}
		}
	}
	for ; g < group; g++ {
		acc := o[(first+g)*d:][:d]
		for t := range rows {
			w := a.logits[g*bs+t]
			for c, x := range v[t*d : (t+1)*d] {
				acc[c] += w * float64(x)
			}
		}
	}
}

// merge combines partials [from, to) into one sequence's output: weights
// exp(lse_i - lse), where lse is the log-sum-exp of the partials' lse.
func (a *Attention) merge(out []float32, from, to int) {
	sh := a.store.shape
	d := sh.HeadDim
	if from == to { // a sequence of no tokens attends to nothing
		clear(out)
		return
	}
	for qh := range sh.QueryHeads {
		m := math.Inf(-1)
		for i := from; i < to; i++ {
			m = max(m, a.partLSE[i*sh.QueryHeads+qh])
		}
		var total float64
		for i := from; i < to; i++ {
			total += math.Exp(a.partLSE[i*sh.QueryHeads+qh] - m)
		}
		dst := out[qh*d : (qh+1)*d]
		for c := range dst {
			var x float64
			for i := from; i < to; i++ {
				w := math.Exp(a.partLSE[i*sh.QueryHeads+qh]-m) / total
				x += w * a.partO[(i*sh.QueryHeads+qh)*d+c]
			}
			dst[c] = float32(x)
		}
	}
}

// Dense computes the same decode attention over one sequence's contiguous
// keys and values (n tokens of KVHeads*HeadDim values each, token after
// token) with a plain two-pass softmax in float64: the reference the paged
// path is checked against.
func Dense(out, q, k, v []float32, n int, sh Shape) error {
	if err := sh.validate(); err != nil {
		return err
	}
	kv := sh.KVHeads * sh.HeadDim
	if len(q) != sh.QueryHeads*sh.HeadDim || len(out) != len(q) || len(k) < n*kv || len(v) < n*kv {
		return fmt.Errorf("%w: dense attention over %d tokens: wrong vector lengths", ErrInvalid, n)
	}
	d, group := sh.HeadDim, sh.QueryHeads/sh.KVHeads
	scale := 1 / math.Sqrt(float64(d))
	logits := make([]float64, n)
	acc := make([]float64, d)
	qv := make([]float64, d)
	for qh := range sh.QueryHeads {
		kh := qh / group
		for c, x := range q[qh*d : (qh+1)*d] {
			qv[c] = float64(x)
		}
		m := math.Inf(-1)
		for t := range n {
			var dot float64
			for c, x := range k[t*kv+kh*d:][:d] {
				dot += qv[c] * float64(x)
			}
			logits[t] = dot * scale
			m = max(m, logits[t])
		}
		var sum float64
		clear(acc)
		for t := range n {
			w := math.Exp(logits[t] - m)
			sum += w
			for c, x := range v[t*kv+kh*d:][:d] {
				acc[c] += w * float64(x)
			}
		}
		for c := range d {
			if n == 0 {
				out[qh*d+c] = 0
				continue
			}
			out[qh*d+c] = float32(acc[c] / sum)
		}
	}
	return nil
}

func grow(s []float64, n int) []float64 {
	if cap(s) < n {
		return make([]float64, n)
	}
	return s[:n]
}
