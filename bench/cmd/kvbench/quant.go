package main

import (
	"encoding/json"
	"errors"
	"fmt"
	"io"
	"math"
	"math/rand/v2"
	"runtime"
	"slices"
	"strconv"
	"strings"
	"sync"
	"sync/atomic"
	"text/tabwriter"

	"github.com/pagedkv/pagedkv/bench/attention"
	"github.com/pagedkv/pagedkv/kvmem"
	"github.com/pagedkv/pagedkv/paged"
)

// quantTypes are the rows of the quant study by default. "kivi-intB-gG"
// is KIVI's recipe: keys per channel over groups of G tokens (one block of
// G tokens), values per token in groups of G channels; "K/V" mixes types,
// as llama.cpp allows.
var quantTypes = []string{
	"fp16", "bf16", "fp8_e4m3", "fp8_e5m2", "int8", "q8_0", "q8_0/q4_0",
	"int4-g32", "int4-g64", "int4-g128", "q4_0", "nvfp4",
	"kivi-int4-g32", "kivi-int4-g64", "kivi-int4-g128",
	"int2-g32", "int2-g64", "int2-g128",
	"kivi-int2-g32", "kivi-int2-g64", "kivi-int2-g128",
}

// quantRow is one storage choice: codecs for keys and values and the block
// size they need.
type quantRow struct {
	name       string
	key, value attention.Codec
	blockSize  int
	// Types of the KV layout spec that give the row's bytes.
	keyType, valueType string
}

func parseQuantRow(name string, blockSize int) (quantRow, error) {
	r := quantRow{name: name, blockSize: blockSize}
	k, v := name, name
	if rest, ok := strings.CutPrefix(name, "kivi-"); ok {
		// KIVI: a per-channel key group is G tokens, one block.
		width, group, ok := strings.Cut(rest, "-g")
		g, err := strconv.Atoi(group)
		if !ok || err != nil || g < 1 || g > 4096 || group != strconv.Itoa(g) {
			return r, fmt.Errorf("quant: type %q: want kivi-intB-gG, G in [1, 4096] in decimal digits", name)
		}
		k, v, r.blockSize = width+"-ch", rest, g
		r.keyType, r.valueType = rest, rest // the same bytes: G values per scale and zero
	} else if a, b, ok := strings.Cut(name, "/"); ok {
		k, v = a, b
	}
	for _, c := range []string{k, v} {
		// A per-channel group is sized as the group type of its width;
		// kvmem has those for int4 and int2 only (its int8 scales a row).
		if w, ok := strings.CutSuffix(c, "-ch"); ok && w != "int4" && w != "int2" {
			return r, fmt.Errorf("quant: type %q: %s has no KV layout type to size it (per-channel groups are sized as int4-gN or int2-gN); use int4-ch or int2-ch", name, c)
		}
	}
	var err error
	if r.key, err = attention.ParseCodec(k); err != nil {
		return r, fmt.Errorf("quant: type %q: %w", name, err)
	}
	if r.value, err = attention.ParseCodec(v); err != nil {
		return r, fmt.Errorf("quant: type %q: %w", name, err)
	}
	if r.keyType == "" {
		r.keyType, r.valueType = layoutType(k, r.blockSize), layoutType(v, r.blockSize)
	}
	return r, nil
}

// layoutType names the layout of a codec: a per-channel group over a
// block's tokens costs what a group of as many channels does.
func layoutType(codec string, blockSize int) string {
	if w, ok := strings.CutSuffix(codec, "-ch"); ok {
		return w + "-g" + strconv.Itoa(blockSize)
	}
	return codec
}

// quantConfig is the study's setting, from the flags.
type quantConfig struct {
	shape          attention.Shape
	layers         int
	lengths        []int
	seqs, queries  int
	units          int
	minChunkTokens int
	seed           uint64
	outliers       string
}

// quantError is the attention-output error of one type at one context
// length, over every (sequence, query, query head) sample: the relative L2
// error ||o - o_ref|| / ||o_ref|| against float32 KV.
type quantError struct {
	Context int     `json:"context"`
	Mean    float64 `json:"mean_rel_err"`
	P99     float64 `json:"p99_rel_err"`
	Max     float64 `json:"max_rel_err"`
}

// quantResult is one row of the table.
type quantResult struct {
	Type          string       `json:"type"`
	Key           string       `json:"key"`
	Value         string       `json:"value"`
	BlockSize     int          `json:"block_size"`
	BytesPerToken int64        `json:"bytes_per_token"`
	BitsPerValue  float64      `json:"bits_per_value"`
	SavedVsFP16   float64      `json:"saved_vs_fp16"`
	Errors        []quantError `json:"errors"`
}

// maxQuantCount bounds -q-heads, -seqs and -queries.
const maxQuantCount = 1 << 16

// maxQuantValues bounds the float32 values the study holds at once for
// one context length: its keys (and as many values), tokens x KV heads x
// head dim, and its queries, queries x sequences x query heads x head
// dim; 2^30 (4 GiB each) admits the default shape at a 2^20-token length.
const maxQuantValues = 1 << 30

func runQuant(args []string, stdout, stderr io.Writer) error {
	fs := newFlags("quant", stderr)
	var cfg quantConfig
	fs.IntVar(&cfg.shape.QueryHeads, "q-heads", 32, "query heads (Llama-3.1-8B: 32)")
	fs.IntVar(&cfg.shape.KVHeads, "kv-heads", 8, "KV heads (Llama-3.1-8B: 8)")
	fs.IntVar(&cfg.shape.HeadDim, "head-dim", 128, "head dimension")
	fs.IntVar(&cfg.layers, "layers", 32, "layers, for bytes per token of the whole model")
	blockSize := fs.Int("block-size", 16, "block size in tokens (KIVI rows use their group size)")
	lengths := fs.String("lengths", "1024,4096,16384", "context lengths, comma-separated")
	fs.IntVar(&cfg.seqs, "seqs", 2, "sequences (independent K/V draws) per context length")
	fs.IntVar(&cfg.queries, "queries", 2, "decode queries per sequence")
	fs.IntVar(&cfg.units, "units", 132, "compute units for the split-KV plan (H100: 132 SMs)")
	fs.IntVar(&cfg.minChunkTokens, "min-chunk", 256, "minimum split-KV chunk in tokens")
	seed := fs.Uint64("seed", 1, "random seed")
	fs.StringVar(&cfg.outliers, "outliers", "bias", `key outlier channels: "bias" (large fixed-sign magnitude) or "spread" (large variance)`)
	types := fs.String("types", strings.Join(quantTypes, ","), "KV types (rows), comma-separated")
	asJSON := fs.Bool("json", false, "print JSON instead of a table")
	if err := fs.Parse(args); err != nil {
		return err
	}
	cfg.seed = *seed
	if cfg.outliers != "bias" && cfg.outliers != "spread" {
		return usageErrorf("-outliers %q: want bias or spread", cfg.outliers)
	}
	cfg.shape.BlockSize = *blockSize
	for _, f := range strings.Split(*lengths, ",") {
		n, err := strconv.Atoi(strings.TrimSpace(f))
		if err != nil || n < 1 || n > 1<<20 {
			return usageErrorf("-lengths: %q is not a length in [1, 2^20]", f)
		}
		cfg.lengths = append(cfg.lengths, n)
	}
	if cfg.seqs < 1 || cfg.queries < 1 || cfg.units < 1 || cfg.minChunkTokens < 1 || cfg.layers < 1 || *blockSize < 1 {
		return usageErrorf("-seqs, -queries, -units, -min-chunk, -layers and -block-size must be positive")
	}
	if cfg.shape.KVHeads < 1 || cfg.shape.HeadDim < 1 || cfg.shape.QueryHeads < 1 || cfg.shape.QueryHeads%cfg.shape.KVHeads != 0 {
		return usageErrorf("-q-heads must be a positive multiple of -kv-heads, -head-dim positive")
	}
	// kvmem bounds -kv-heads by 2^16 and -head-dim by 2^20; these bounds
	// keep the study's buffer sizes (queries x heads x head dim, and the
	// like) from overflowing an int.
	if cfg.shape.QueryHeads > maxQuantCount || cfg.seqs > maxQuantCount || cfg.queries > maxQuantCount {
		return usageErrorf("-q-heads %d, -seqs %d and -queries %d must be at most %d", cfg.shape.QueryHeads, cfg.seqs, cfg.queries, maxQuantCount)
	}
	// The shape's own limits (kvmem's) first, as a usage error: the
	// baseline's bytes failed later with exit status 1.
	fp16Bytes, err := kvTokenBytes(cfg, "fp16", "fp16")
	if err != nil {
		return &usageError{err: err}
	}
	// Then what the study would hold: a shape kvmem takes (2^16 heads of
	// 2^20 values) at a long length asked for terabytes, and the process
	// died of an out-of-memory fatal error instead of refusing it.
	kvValues := float64(cfg.shape.KVHeads) * float64(cfg.shape.HeadDim)
	if n := slices.Max(cfg.lengths); float64(n)*kvValues > maxQuantValues {
		return usageErrorf("-lengths %d x -kv-heads %d x -head-dim %d: %.3g keys to hold, more than %d", n, cfg.shape.KVHeads, cfg.shape.HeadDim, float64(n)*kvValues, maxQuantValues)
	}
	if q := float64(cfg.queries) * float64(cfg.seqs) * float64(cfg.shape.QueryHeads) * float64(cfg.shape.HeadDim); q > maxQuantValues {
		return usageErrorf("-queries %d x -seqs %d x -q-heads %d x -head-dim %d: %.3g query values to hold, more than %d", cfg.queries, cfg.seqs, cfg.shape.QueryHeads, cfg.shape.HeadDim, q, maxQuantValues)
	}
	var rows []quantRow
	for _, name := range strings.Split(*types, ",") {
		r, err := parseQuantRow(strings.TrimSpace(name), *blockSize)
		if err != nil {
			return &usageError{err: err}
		}
		rows = append(rows, r)
	}
	results := make([]quantResult, len(rows))
	for i, r := range rows {
		b, err := kvTokenBytes(cfg, r.keyType, r.valueType)
		if err != nil {
			return &usageError{err: fmt.Errorf("type %s: %w", r.name, err)}
		}
		values := 2 * float64(cfg.layers) * kvValues // past a 32-bit int for large shapes
		results[i] = quantResult{
			Type: r.name, Key: attention.CodecName(r.key), Value: attention.CodecName(r.value),
			BlockSize: r.blockSize, BytesPerToken: b, BitsPerValue: float64(8*b) / values,
			SavedVsFP16: 1 - float64(b)/float64(fp16Bytes),
		}
	}
	// Work is counted in tokens stored and attended to: each (type,
	// sequence, KV head) task at context n is n of them.
	var total int64
	for _, n := range cfg.lengths {
		total += int64(n) * int64(cfg.seqs) * int64(cfg.shape.KVHeads) * int64(len(rows))
	}
	prog := startProgress(stderr, *asJSON, "quant", "tokens", total)
	defer prog.Stop()
	// Each length's K/V is drawn while the one before is measured: the
	// draw is one random stream, so it runs on one core, and the workers
	// leave it a core only now and then. Only the next length's draw is
	// held besides the current one.
	type drawn struct {
		d   *quantDraw
		err error
	}
	draw := func(n int) <-chan drawn {
		c := make(chan drawn, 1)
		go func() {
			d, err := newQuantDraw(cfg, n)
			c <- drawn{d, err}
		}()
		return c
	}
	next := draw(cfg.lengths[0])
	for i, n := range cfg.lengths {
		prog.SetPhase(tokensLabel(n) + " context")
		cur := <-next
		if cur.err != nil {
			return cur.err
		}
		if i+1 < len(cfg.lengths) {
			next = draw(cfg.lengths[i+1])
		}
		rel, err := measureQuant(cfg, cur.d, rows, prog)
		if err != nil {
			return err
		}
		for i := range rows {
			results[i].Errors = append(results[i].Errors, summarize(n, rel[i]))
		}
	}
	prog.Stop() // before the results, so no progress line lands in them
	if *asJSON {
		enc := json.NewEncoder(stdout)
		enc.SetIndent("", "  ")
		return enc.Encode(results)
	}
	return printQuant(stdout, cfg, results)
}

// kvTokenBytes returns the KV bytes per token of the whole model when keys
// and values are stored as the named types, from the KV layout spec.
func kvTokenBytes(cfg quantConfig, key, value string) (int64, error) {
	k, err := kvmem.ParseType(key)
	if err != nil {
		return 0, err
	}
	v, err := kvmem.ParseType(value)
	if err != nil {
		return 0, err
	}
	spec := kvmem.Spec{Layers: cfg.layers, KVHeads: cfg.shape.KVHeads, HeadDim: cfg.shape.HeadDim, Key: k, Value: v}
	return spec.TokenBytes()
}

// quantDraw draws the synthetic K/V of one context length, one sequence
// at a time, and the queries. The distribution, per sequence and KV head:
//
//   - keys: channel c is Normal(mu_c, sigma_c^2), sigma_c log-normal
//     (exp of Normal(0, 0.5^2)), mu_c = 0, except 4 outlier channels per
//     head, fixed across tokens as KIVI and KVQuant observe in real keys.
//     With outliers "bias" (the default) an outlier channel has a large
//     magnitude of fixed sign, mu_c = ±12, and twice the spread; with
//     "spread" it has mu_c = ±8 and ten times the spread, a harder case for
//     per-channel groups;
//   - values: Student's t with 4 degrees of freedom (heavy tails, no
//     channel structure), and one token in 500 scaled by 10 (rare massive
//     tokens);
//   - queries: Normal(0, 1) per channel.
//
// One random stream, seeded by the seed and the length, gives every
// sequence's K/V in turn and then the queries. Only one sequence's K/V is
// held at a time: the stream's state at each sequence is saved while
// skipping ahead to the queries, and the sequences are drawn again from
// there when their turn comes.
type quantDraw struct {
	cfg    quantConfig
	n      int
	rng    *rand.Rand
	pcg    *rand.PCG
	starts [][]byte    // the stream's state at the start of each sequence
	q      [][]float32 // per query: seqs*QueryHeads*HeadDim
	// k and v hold the current sequence head after head: n tokens of
	// HeadDim values for KV head 0, then for head 1, ...
	k, v []float32
	last bool // k and v hold the last sequence, not drawn again
}

func newQuantDraw(cfg quantConfig, n int) (*quantDraw, error) {
	pcg := rand.NewPCG(cfg.seed, uint64(n))
	kv := cfg.shape.KVHeads * cfg.shape.HeadDim
	d := &quantDraw{cfg: cfg, n: n, pcg: pcg, rng: rand.New(pcg), k: make([]float32, n*kv), v: make([]float32, n*kv)}
	for range cfg.seqs {
		st, err := pcg.MarshalBinary()
		if err != nil {
			return nil, err
		}
		d.starts = append(d.starts, st)
		d.drawSeq()
	}
	d.last = true
	width := cfg.shape.QueryHeads * cfg.shape.HeadDim
	for range cfg.queries {
		q := make([]float32, cfg.seqs*width)
		for i := range q {
			q[i] = float32(d.rng.NormFloat64())
		}
		d.q = append(d.q, q)
	}
	return d, nil
}

// seq draws sequence s's K/V into d.k and d.v. The last sequence is
// there already, drawn on the way to the queries.
func (d *quantDraw) seq(s int) error {
	if s == len(d.starts)-1 && d.last {
		d.last = false
		return nil
	}
	if err := d.pcg.UnmarshalBinary(d.starts[s]); err != nil {
		return err
	}
	d.drawSeq()
	return nil
}

func (d *quantDraw) drawSeq() {
	sh, r := d.cfg.shape, d.rng
	kv := sh.KVHeads * sh.HeadDim
	mu, sigma := make([]float64, kv), make([]float64, kv)
	for h := range sh.KVHeads {
		for c := range sh.HeadDim {
			sigma[h*sh.HeadDim+c] = math.Exp(0.5 * r.NormFloat64())
		}
		for _, c := range r.Perm(sh.HeadDim)[:min(4, sh.HeadDim)] {
			sign := float64(1 - 2*r.IntN(2))
			if d.cfg.outliers == "spread" {
				sigma[h*sh.HeadDim+c] *= 10
				mu[h*sh.HeadDim+c] = 8 * sign
			} else {
				sigma[h*sh.HeadDim+c] *= 2
				mu[h*sh.HeadDim+c] = 12 * sign
			}
		}
	}
	dim := sh.HeadDim
	for t := range d.n {
		massive := 1.0
		if r.IntN(500) == 0 {
			massive = 10
		}
		// Drawn token by token, channel by channel, stored by head.
		for h := range sh.KVHeads {
			k, v := d.k[(h*d.n+t)*dim:][:dim], d.v[(h*d.n+t)*dim:][:dim]
			mu, sigma := mu[h*dim:][:dim], sigma[h*dim:][:dim]
			for c := range dim {
				k[c] = float32(mu[c] + sigma[c]*r.NormFloat64())
				var chi2 float64
				for range 4 {
					z := r.NormFloat64()
					chi2 += z * z
				}
				v[c] = float32(massive * r.NormFloat64() / math.Sqrt(chi2/4))
			}
		}
	}
}

// headTask is the data of one sequence and one KV head: its keys and
// values (n tokens of HeadDim), and the queries of its query heads with
// their float32 reference outputs, query after query (per query,
// group*HeadDim values).
type headTask struct {
	n      int
	k, v   []float32
	q, ref []float32
}

// quantCell is a worker's store for one row at one context length, kept
// from one KV head to the next: every head writes all n tokens, which
// leaves the store, and so the attention, as a fresh one would be. The
// queries of a sequence are the query heads of one store: attention
// computes each query head on its own, so one decode of every query gives
// each the same bits as one decode per query, reading and decoding the
// KV once.
type quantCell struct {
	row, n int
	store  *attention.Store
	att    *attention.Attention
	batch  paged.Batch
	plan   paged.SplitPlan
	slots  []int64
	out    []float32
}

// measureQuant returns, for every row, the relative errors of every
// (sequence, query, query head) at the context length of draw d. Attention heads are
// independent, so each (sequence, KV head) runs on its own one-head store,
// and all (row, head) pairs of a sequence run in parallel, a row's heads
// in turn so that each worker reuses its store: the memory held is one
// sequence's K/V and a store per worker (and, in runQuant, the next
// length's draw).
func measureQuant(cfg quantConfig, d *quantDraw, rows []quantRow, prog *progress) ([][]float64, error) {
	n := d.n
	sh := cfg.shape
	group, dim := sh.QueryHeads/sh.KVHeads, sh.HeadDim
	width := sh.QueryHeads * dim
	head := attention.Shape{BlockSize: sh.BlockSize, KVHeads: 1, QueryHeads: cfg.queries * group, HeadDim: dim}
	tasks := make([]headTask, sh.KVHeads)
	for h := range tasks {
		tasks[h].q = make([]float32, cfg.queries*group*dim)
		tasks[h].ref = make([]float32, cfg.queries*group*dim)
	}
	cells := make([]quantCell, workers())
	for w := range cells {
		cells[w].row = -1
	}
	rel := make([][]float64, len(rows))
	errs := make([][]float64, len(rows)*sh.KVHeads)
	// The last sequence first: it is drawn already.
	for s := cfg.seqs - 1; s >= 0; s-- {
		if err := d.seq(s); err != nil {
			return nil, err
		}
		// The float32 reference, dense: paged attention over float32 KV
		// equals it (package attention's tests prove it), so any
		// difference is the quantization's.
		if err := parallel(len(tasks), func(_, h int) error {
			t := &tasks[h]
			t.n, t.k, t.v = n, d.k[h*n*dim:(h+1)*n*dim], d.v[h*n*dim:(h+1)*n*dim]
			for qi, q := range d.q {
				off := s*width + h*group*dim
				copy(t.q[qi*group*dim:], q[off:off+group*dim])
			}
			return attention.Dense(t.ref, t.q, t.k, t.v, n, head)
		}); err != nil {
			return nil, err
		}
		if err := parallel(len(errs), func(w, i int) error {
			r, h := i/sh.KVHeads, i%sh.KVHeads
			var err error
			errs[i], err = cells[w].measure(cfg, r, rows[r], &tasks[h], errs[i][:0])
			prog.Add(int64(n))
			return err
		}); err != nil {
			return nil, err
		}
		// Sequence, then head, then query: the order of the samples does
		// not change their mean or percentiles.
		for i, e := range errs {
			rel[i/sh.KVHeads] = append(rel[i/sh.KVHeads], e...)
		}
	}
	return rel, nil
}

// prepare readies the cell for row r (stored as row) at the task's context
// length: a block manager holding one sequence of n tokens, its batch and
// split plan, and a store and attention of that shape.
func (c *quantCell) prepare(cfg quantConfig, r int, row quantRow, n int) error {
	if c.row == r && c.n == n {
		return nil
	}
	c.row = -1 // until the cell is whole
	group := cfg.shape.QueryHeads / cfg.shape.KVHeads
	sh := attention.Shape{BlockSize: row.blockSize, KVHeads: 1, QueryHeads: cfg.queries * group, HeadDim: cfg.shape.HeadDim}
	numBlocks := (n+sh.BlockSize-1)/sh.BlockSize + 1
	m, err := paged.New(paged.Config{BlockSize: sh.BlockSize, NumBlocks: numBlocks, DisablePrefixCaching: true})
	if err != nil {
		return err
	}
	c.store = nil // let the old one go before the new one is made
	if c.store, err = attention.NewStore(sh, numBlocks, row.key, row.value); err != nil {
		return err
	}
	id, _, err := m.Create(make([]int32, n), nil)
	if err != nil {
		return err
	}
	c.slots = c.slots[:0]
	for t := range n {
		slot, err := m.Slot(id, t)
		if err != nil {
			return err
		}
		c.slots = append(c.slots, slot)
	}
	c.batch = paged.Batch{} // a width of its own, not the last row's
	if err := m.BuildBatch(&c.batch, []paged.Scheduled{{ID: id, NewTokens: 1}}); err != nil {
		return err
	}
	// Rounded up to blocks without adding first: a -min-chunk near MaxInt
	// would wrap around.
	minChunk := cfg.minChunkTokens/sh.BlockSize + min(cfg.minChunkTokens%sh.BlockSize, 1)
	if err := c.plan.Build(c.batch.BlocksPerSeq, cfg.units, minChunk); err != nil {
		return err
	}
	c.att = attention.New(c.store)
	c.out = slices.Grow(c.out[:0], sh.QueryHeads*sh.HeadDim)[:sh.QueryHeads*sh.HeadDim]
	c.row, c.n = r, n
	return nil
}

// measure stores the task's K/V with row r's codecs through the block
// manager's slots, runs split-KV paged attention for every query, and
// appends to rel each query head's relative error against the reference.
func (c *quantCell) measure(cfg quantConfig, r int, row quantRow, w *headTask, rel []float64) ([]float64, error) {
	if err := c.prepare(cfg, r, row, w.n); err != nil {
		return rel, err
	}
	d := cfg.shape.HeadDim
	for t, slot := range c.slots {
		if err := c.store.Write(slot, w.k[t*d:(t+1)*d], w.v[t*d:(t+1)*d]); err != nil {
			return rel, err
		}
	}
	if err := c.att.Decode(c.out, w.q, &c.batch, &c.plan); err != nil {
		return rel, err
	}
	for h := 0; h < len(c.out); h += d {
		var num, den float64
		for i := h; i < h+d; i++ {
			e := float64(c.out[i] - w.ref[i])
			num += e * e
			den += float64(w.ref[i]) * float64(w.ref[i])
		}
		rel = append(rel, math.Sqrt(num/den))
	}
	return rel, nil
}

// summarize returns the mean, 99th percentile and maximum of the relative
// errors at context n.
func summarize(n int, rel []float64) quantError {
	slices.Sort(rel)
	var sum float64
	for _, x := range rel {
		sum += x
	}
	return quantError{
		Context: n,
		Mean:    sum / float64(len(rel)),
		P99:     rel[min(len(rel)-1, int(math.Ceil(0.99*float64(len(rel))))-1)],
		Max:     rel[len(rel)-1],
	}
}

// workers is the number of goroutines parallel runs: GOMAXPROCS.
func workers() int { return runtime.GOMAXPROCS(0) }

// parallel runs f(w, i) for i in 0..n-1, in order of i, on workers()
// goroutines, w being the goroutine's number, and returns the errors
// joined.
func parallel(n int, f func(w, i int) error) error {
	var (
		wg   sync.WaitGroup
		next atomic.Int64
		errs = make([]error, n)
	)
	for w := range min(n, workers()) {
		wg.Add(1)
		go func() {
			defer wg.Done()
			for {
				i := int(next.Add(1) - 1)
				if i >= n {
					return
				}
				errs[i] = f(w, i)
			}
		}()
	}
	wg.Wait()
	return errors.Join(errs...)
}

func printQuant(w io.Writer, cfg quantConfig, results []quantResult) error {
	sh := cfg.shape
	fmt.Fprintf(w, "KV quantization: attention-output error vs float32 KV, and memory (%d layers, %d KV heads x %d, %d query heads)\n",
		cfg.layers, sh.KVHeads, sh.HeadDim, sh.QueryHeads)
	fmt.Fprintf(w, "error = mean (max) relative L2 error of one query head's output over %d sequences x %d queries x %d heads; key outliers %q; split-KV plan on %d units\n\n",
		cfg.seqs, cfg.queries, sh.QueryHeads, cfg.outliers, cfg.units)
	tw := tabwriter.NewWriter(w, 0, 0, 2, ' ', tabwriter.AlignRight)
	fmt.Fprint(tw, "type\tkey\tvalue\tblock\tbits/value\tKiB/token\tsaved vs fp16\t")
	for _, n := range cfg.lengths {
		fmt.Fprintf(tw, "err @%s\t", tokensLabel(n))
	}
	fmt.Fprintln(tw)
	for _, r := range results {
		fmt.Fprintf(tw, "%s\t%s\t%s\t%d\t%.2f\t%.1f\t%.1f%%\t", r.Type, r.Key, r.Value, r.BlockSize,
			r.BitsPerValue, float64(r.BytesPerToken)/1024, 100*r.SavedVsFP16)
		for _, e := range r.Errors {
			fmt.Fprintf(tw, "%.2e (%.1e)\t", e.Mean, e.Max)
		}
		fmt.Fprintln(tw)
	}
	return tw.Flush()
}

func tokensLabel(n int) string {
	if n%1024 == 0 {
		return strconv.Itoa(n/1024) + "K"
	}
	return strconv.Itoa(n)
}
