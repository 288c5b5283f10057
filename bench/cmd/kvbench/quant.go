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
	"text/tabwriter"

	"github.com/pagedkv/pagedkv/bench/attention"
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
		if !ok || err != nil || g < 1 || g > 4096 {
			return r, fmt.Errorf("quant: type %q: want kivi-intB-gG, G in [1, 4096]", name)
		}
		k, v, r.blockSize = width+"-ch", rest, g
		r.keyType, r.valueType = rest, rest // the same bytes: G values per scale and zero
	} else if a, b, ok := strings.Cut(name, "/"); ok {
		k, v = a, b
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
		return fmt.Errorf("-outliers %q: want bias or spread", cfg.outliers)
	}
	cfg.shape.BlockSize = *blockSize
	for _, f := range strings.Split(*lengths, ",") {
		n, err := strconv.Atoi(strings.TrimSpace(f))
		if err != nil || n < 1 || n > 1<<20 {
			return fmt.Errorf("-lengths: %q is not a length in [1, 2^20]", f)
		}
		cfg.lengths = append(cfg.lengths, n)
	}
	if cfg.seqs < 1 || cfg.queries < 1 || cfg.units < 1 || cfg.minChunkTokens < 1 || cfg.layers < 1 || *blockSize < 1 {
		return errors.New("-seqs, -queries, -units, -min-chunk, -layers and -block-size must be positive")
	}
	if cfg.shape.KVHeads < 1 || cfg.shape.HeadDim < 1 || cfg.shape.QueryHeads < 1 || cfg.shape.QueryHeads%cfg.shape.KVHeads != 0 {
		return errors.New("-q-heads must be a positive multiple of -kv-heads, -head-dim positive")
	}
	var rows []quantRow
	for _, name := range strings.Split(*types, ",") {
		r, err := parseQuantRow(strings.TrimSpace(name), *blockSize)
		if err != nil {
			return err
		}
		rows = append(rows, r)
	}
	fp16Bytes, err := kvTokenBytes(cfg, "fp16", "fp16")
	if err != nil {
		return err
	}
	results := make([]quantResult, len(rows))
	for i, r := range rows {
		b, err := kvTokenBytes(cfg, r.keyType, r.valueType)
		if err != nil {
			return fmt.Errorf("type %s: %w", r.name, err)
		}
		values := 2 * cfg.layers * cfg.shape.KVHeads * cfg.shape.HeadDim
		results[i] = quantResult{
			Type: r.name, Key: attention.CodecName(r.key), Value: attention.CodecName(r.value),
			BlockSize: r.blockSize, BytesPerToken: b, BitsPerValue: float64(8*b) / float64(values),
			SavedVsFP16: 1 - float64(b)/float64(fp16Bytes),
		}
	}
	for _, n := range cfg.lengths {
		w := newQuantWorkload(cfg, n)
		errs := make([]quantError, len(rows))
		if err := parallel(len(rows), func(i int) error {
			e, err := w.measure(rows[i])
			errs[i] = e
			return err
		}); err != nil {
			return err
		}
		for i := range rows {
			results[i].Errors = append(results[i].Errors, errs[i])
		}
	}
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
	k, err := paged.ParseKVType(key)
	if err != nil {
		return 0, err
	}
	v, err := paged.ParseKVType(value)
	if err != nil {
		return 0, err
	}
	spec := paged.KVSpec{Layers: cfg.layers, KVHeads: cfg.shape.KVHeads, HeadDim: cfg.shape.HeadDim, Key: k, Value: v}
	return spec.TokenBytes()
}

// quantWorkload is the synthetic K/V of one context length and the float32
// reference outputs.
type quantWorkload struct {
	cfg  quantConfig
	n    int
	k, v [][]float32 // per sequence: n tokens of KVHeads*HeadDim
	q    [][]float32 // per query: seqs*QueryHeads*HeadDim
	ref  [][]float32 // reference outputs, as q
}

// newQuantWorkload draws the K/V. The distribution, per sequence and KV
// head:
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
func newQuantWorkload(cfg quantConfig, n int) *quantWorkload {
	sh := cfg.shape
	r := rand.New(rand.NewPCG(cfg.seed, uint64(n)))
	w := &quantWorkload{cfg: cfg, n: n}
	kv := sh.KVHeads * sh.HeadDim
	for range cfg.seqs {
		mu, sigma := make([]float64, kv), make([]float64, kv)
		for h := range sh.KVHeads {
			for c := range sh.HeadDim {
				sigma[h*sh.HeadDim+c] = math.Exp(0.5 * r.NormFloat64())
			}
			for _, c := range r.Perm(sh.HeadDim)[:min(4, sh.HeadDim)] {
				sign := float64(1 - 2*r.IntN(2))
				if cfg.outliers == "spread" {
					sigma[h*sh.HeadDim+c] *= 10
					mu[h*sh.HeadDim+c] = 8 * sign
				} else {
					sigma[h*sh.HeadDim+c] *= 2
					mu[h*sh.HeadDim+c] = 12 * sign
				}
			}
		}
		k, v := make([]float32, n*kv), make([]float32, n*kv)
		for t := range n {
			massive := 1.0
			if r.IntN(500) == 0 {
				massive = 10
			}
			for i := range kv {
				k[t*kv+i] = float32(mu[i] + sigma[i]*r.NormFloat64())
				var chi2 float64
				for range 4 {
					z := r.NormFloat64()
					chi2 += z * z
				}
				v[t*kv+i] = float32(massive * r.NormFloat64() / math.Sqrt(chi2/4))
			}
		}
		w.k, w.v = append(w.k, k), append(w.v, v)
	}
	width := sh.QueryHeads * sh.HeadDim
	for range cfg.queries {
		q, ref := make([]float32, cfg.seqs*width), make([]float32, cfg.seqs*width)
		for i := range q {
			q[i] = float32(r.NormFloat64())
		}
		w.q, w.ref = append(w.q, q), append(w.ref, ref)
	}
	// The float32 reference, dense: paged attention over float32 KV equals
	// it (package attention's tests prove it), so any difference below is
	// the quantization's.
	var wg sync.WaitGroup
	for qi := range w.q {
		wg.Add(1)
		go func() {
			defer wg.Done()
			for s := range cfg.seqs {
				_ = attention.Dense(w.ref[qi][s*width:(s+1)*width], w.q[qi][s*width:(s+1)*width], w.k[s], w.v[s], n, sh)
			}
		}()
	}
	wg.Wait()
	return w
}

// measure stores the workload's K/V with row's codecs through a block
// manager's slots, runs split-KV paged attention for every query, and
// returns the error against the reference.
func (w *quantWorkload) measure(row quantRow) (quantError, error) {
	sh := w.cfg.shape
	sh.BlockSize = row.blockSize
	blocksPerSeq := (w.n + sh.BlockSize - 1) / sh.BlockSize
	numBlocks := w.cfg.seqs*blocksPerSeq + 1
	m, err := paged.New(paged.Config{BlockSize: sh.BlockSize, NumBlocks: numBlocks, DisablePrefixCaching: true})
	if err != nil {
		return quantError{}, err
	}
	store, err := attention.NewStore(sh, numBlocks, row.key, row.value)
	if err != nil {
		return quantError{}, err
	}
	kv := sh.KVHeads * sh.HeadDim
	prompt := make([]int32, w.n)
	sched := make([]paged.Scheduled, w.cfg.seqs)
	for s := range w.cfg.seqs {
		id, _, err := m.Create(prompt, nil)
		if err != nil {
			return quantError{}, err
		}
		sched[s] = paged.Scheduled{ID: id, NewTokens: 1}
		for t := range w.n {
			slot, err := m.Slot(id, t)
			if err != nil {
				return quantError{}, err
			}
			if err := store.Write(slot, w.k[s][t*kv:(t+1)*kv], w.v[s][t*kv:(t+1)*kv]); err != nil {
				return quantError{}, err
			}
		}
	}
	var b paged.Batch
	if err := m.BuildBatch(&b, sched); err != nil {
		return quantError{}, err
	}
	var plan paged.SplitPlan
	minChunk := (w.cfg.minChunkTokens + sh.BlockSize - 1) / sh.BlockSize
	if err := plan.Build(b.BlocksPerSeq, w.cfg.units, minChunk); err != nil {
		return quantError{}, err
	}
	att := attention.New(store)
	out := make([]float32, len(w.q[0]))
	var rel []float64
	for qi, q := range w.q {
		if err := att.Decode(out, q, &b, &plan); err != nil {
			return quantError{}, err
		}
		ref := w.ref[qi]
		for h := 0; h < len(out); h += sh.HeadDim {
			var num, den float64
			for c := h; c < h+sh.HeadDim; c++ {
				d := float64(out[c] - ref[c])
				num += d * d
				den += float64(ref[c]) * float64(ref[c])
			}
			rel = append(rel, math.Sqrt(num/den))
		}
	}
	slices.Sort(rel)
	var sum float64
	for _, x := range rel {
		sum += x
	}
	return quantError{
		Context: w.n,
		Mean:    sum / float64(len(rel)),
		P99:     rel[min(len(rel)-1, int(math.Ceil(0.99*float64(len(rel))))-1)],
		Max:     rel[len(rel)-1],
	}, nil
}

// parallel runs f(0..n-1) on GOMAXPROCS goroutines and returns the first
// error.
func parallel(n int, f func(i int) error) error {
	var (
		wg   sync.WaitGroup
		mu   sync.Mutex
		next int
		errs = make([]error, n)
	)
	for range min(n, runtime.GOMAXPROCS(0)) {
		wg.Add(1)
		go func() {
			defer wg.Done()
			for {
				mu.Lock()
				i := next
				next++
				mu.Unlock()
				if i >= n {
					return
				}
				errs[i] = f(i)
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
