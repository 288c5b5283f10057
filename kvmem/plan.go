package kvmem

import (
	"fmt"
	"math"
)

// Deployment describes the devices a model is served on.
//
// The GPUs form GPUs/(TP*CP) replicas. Within a replica, tensor parallelism
// splits the weights and the KV heads over TP devices; context parallelism
// (ring attention) spreads each sequence's tokens over CP groups of them,
// each group holding a full copy of its TP shard of the weights. Expert
// parallelism is not modelled separately: an MoE's experts are sharded like
// the other weights, and all of them are resident, not only the active ones.
type Deployment struct {
	// GPUs is the number of devices, at most 2^20. Default 1.
	GPUs int
	// GPUMemory is the memory of one device in bytes. Required.
	GPUMemory int64
	// TP is the tensor parallel degree, at most GPUs. Default GPUs/CP.
	TP int
	// CP is the context parallel degree, at most GPUs. Default 1. TP x CP
	// must divide GPUs (ErrInvalid otherwise).
	CP int
	// Reserve is the fraction of each device's memory kept for
	// activations, CUDA graphs, communication buffers and the runtime, in
	// [0, 1).
	Reserve float64
	// ReserveBytes is kept on each device in addition to Reserve's share.
	ReserveBytes int64
	// BlockSize is the block size in tokens. Default DefaultBlockSize.
	BlockSize int
	// PrefillChunk is the most tokens of one sequence computed in one
	// step: the chunk a long prompt is admitted in (paged's AdmitChunk
	// maxNew, vLLM's long_prefill_token_threshold), or the context length
	// when prompts are admitted whole. A window or chunked group holds the
	// blocks of a whole step's tokens plus the window before it until the
	// step is computed, so its peak grows with the chunk (see
	// Spec.SequenceBlocks). Default 1: sequences grow a token at a time,
	// the decode peak, which no prompt admitted in larger chunks keeps to.
	// At most 2^30.
	PrefillChunk int
	// NoHybridPins plans for a manager that pins nothing for hybrid
	// prefix hits (prefix caching off, or paged's vLLM-compatible mode):
	// each sequence is charged its own blocks only, those
	// Spec.SequenceBlocks counts. By default a spec with Window or State
	// groups also charges each sequence what paged's default mode pins
	// for it while it runs (docs/hybrid.md, "Retention per group" and
	// "State groups"): the max(1, ceil((W-1)/BlockSize)) blocks of every
	// window group before its branch point, and StateCheckpoints checkpoints of
	// every State group (the one its hit copied from and the one taken at
	// its branch point). Sequences that share a short prefix pin them and
	// may share no block, and must still fit.
	NoHybridPins bool
	// SpecTokens is the number of speculative (draft) tokens a running
	// sequence may hold at once (vLLM's num_speculative_tokens, sched's
	// Config.MaxDrafts), at most 2^20. Each sequence is then charged k
	// more tokens of KV (its drafts' slots, on top of its context), a
	// step of 1+k uncomputed tokens in its window and chunked groups
	// (drafts do not slide a window), and k more states in every State
	// group: paged keeps one state per pending draft (docs/hybrid.md,
	// "State groups: drafts"). Default 0: no speculative decoding.
	SpecTokens int
}

// maxSpecTokens bounds Deployment.SpecTokens: far above any drafter.
const maxSpecTokens = 1 << 20

// StateCheckpoints is how many checkpoints of its state a running
// sequence may pin in paged's default mode (see Deployment.NoHybridPins).
const StateCheckpoints = 2

// withDefaults fills defaults and validates d, naming the bad field.
func (d Deployment) withDefaults() (Deployment, error) {
	if d.GPUs == 0 {
		d.GPUs = 1
	}
	if d.CP == 0 {
		d.CP = 1
	}
	if d.BlockSize == 0 {
		d.BlockSize = DefaultBlockSize
	}
	switch {
	case d.GPUs < 0 || d.GPUs > 1<<20:
		return d, fmt.Errorf("%w: Deployment.GPUs %d must be in [1, 2^20]", ErrInvalid, d.GPUs)
	case d.GPUMemory <= 0 || d.GPUMemory > 1<<60:
		return d, fmt.Errorf("%w: Deployment.GPUMemory %d must be in [1, 2^60]", ErrInvalid, d.GPUMemory)
	case d.CP < 0 || d.CP > d.GPUs:
		return d, fmt.Errorf("%w: Deployment.CP %d must be in [1, GPUs=%d]", ErrInvalid, d.CP, d.GPUs)
	case d.TP < 0 || d.TP > d.GPUs:
		return d, fmt.Errorf("%w: Deployment.TP %d must be in [1, GPUs=%d]", ErrInvalid, d.TP, d.GPUs)
	case !(d.Reserve >= 0 && d.Reserve < 1):
		return d, fmt.Errorf("%w: Deployment.Reserve %v must be a fraction in [0, 1)", ErrInvalid, d.Reserve)
	case d.ReserveBytes < 0:
		return d, fmt.Errorf("%w: Deployment.ReserveBytes %d must not be negative", ErrInvalid, d.ReserveBytes)
	case d.BlockSize < 0 || d.BlockSize > 1<<20:
		return d, fmt.Errorf("%w: Deployment.BlockSize %d must be in [1, 2^20]", ErrInvalid, d.BlockSize)
	case d.PrefillChunk < 0 || d.PrefillChunk > maxSpan:
		return d, fmt.Errorf("%w: Deployment.PrefillChunk %d must be in [1, 2^30]", ErrInvalid, d.PrefillChunk)
	case d.SpecTokens < 0 || d.SpecTokens > maxSpecTokens:
		return d, fmt.Errorf("%w: Deployment.SpecTokens %d must be in [0, 2^20]", ErrInvalid, d.SpecTokens)
	}
	if d.PrefillChunk == 0 {
		d.PrefillChunk = 1
	}
	if d.TP == 0 {
		d.TP = max(d.GPUs/d.CP, 1)
	}
	// TP x CP may reach 2^40, past a 32-bit int (where it wrapped to 0
	// and the division panicked): TP x CP divides GPUs exactly when TP
	// does and CP divides the quotient.
	if d.GPUs%d.TP != 0 || d.GPUs/d.TP%d.CP != 0 {
		return d, fmt.Errorf("%w: Deployment.GPUs %d is not a multiple of TP %d x CP %d", ErrInvalid, d.GPUs, d.TP, d.CP)
	}
	return d, nil
}

// Capacity is a capacity plan: how a deployment's memory divides between
// weights, reserve and KV, and how many blocks, tokens and sequences the KV
// part holds. All byte figures are per device. Each device (each TP rank of
// each CP group of each replica) runs one block pool of NumBlocks blocks;
// the pools of one replica's TP ranks move in lockstep, as in vLLM, so one
// Manager drives them. A hybrid spec's groups all draw from that one pool
// (see Spec.SequenceBlocks).
type Capacity struct {
	// Deployment is the deployment planned for, defaults filled in.
	Deployment Deployment
	// Shard is the KV layout one device holds (see Spec.Shard).
	Shard Spec
	// WeightBytes is the weights' share of one device: ceil(total/TP).
	WeightBytes int64
	// ReserveBytes is the memory kept back on one device.
	ReserveBytes int64
	// KVBytes is one device's KV budget: memory - weights - reserve.
	KVBytes int64
	// TokenBytes is one token's KV on one device, over the layers that
	// store KV of their own (see Spec.TokenBytes).
	TokenBytes int64
	// BlockBytes is one block's KV on one device.
	BlockBytes int64
	// NumBlocks is the size of one device's pool, including the null
	// block: the value for paged.Config.NumBlocks.
	NumBlocks int64
	// Replicas is the number of independent model replicas,
	// GPUs/(TP*CP).
	Replicas int
}

// KVBudget returns the KV budget of one device of d serving weightBytes of
// weights (the whole model's): its memory less its share of the weights,
// ceil(weightBytes/TP), less the reserve. It fails with ErrTooSmall, naming
// the field and the sizes, when the weights or the reserve do not fit.
func (d Deployment) KVBudget(weightBytes int64) (int64, error) {
	d, err := d.withDefaults()
	if err != nil {
		return 0, err
	}
	_, _, kv, err := d.budget(weightBytes)
	return kv, err
}

// budget splits one device's memory of a defaulted d into weights, reserve
// and KV.
func (d Deployment) budget(weightBytes int64) (weights, reserve, kv int64, err error) {
	if weightBytes < 0 {
		return 0, 0, 0, fmt.Errorf("%w: weight bytes %d must not be negative", ErrInvalid, weightBytes)
	}
	weights = weightBytes/int64(d.TP) + min(weightBytes%int64(d.TP), 1)
	// Capping ReserveBytes at the memory keeps the sum from overflowing; a
	// capped reserve fails below anyway.
	reserve = int64(math.Ceil(d.Reserve*float64(d.GPUMemory))) + min(d.ReserveBytes, d.GPUMemory)
	if weights > d.GPUMemory {
		return 0, 0, 0, fmt.Errorf("%w: Deployment.GPUMemory %s per device cannot hold the weights' %s per device (%s over TP %d)",
			ErrTooSmall, formatBytes(d.GPUMemory), formatBytes(weights), formatBytes(weightBytes), d.TP)
	}
	if reserve > d.GPUMemory-weights {
		return 0, 0, 0, fmt.Errorf("%w: Deployment.Reserve %s per device does not fit beside the weights' %s per device in %s",
			ErrTooSmall, formatBytes(reserve), formatBytes(weights), formatBytes(d.GPUMemory))
	}
	return weights, reserve, d.GPUMemory - weights - reserve, nil
}

// Plan plans the KV capacity of spec (the whole model's layout, as
// one device would hold it unsplit) with weightBytes of weights on
// deployment d. It fails with ErrTooSmall, naming the sizes, when the weights
// and reserve do not leave room for two blocks on a device, and with
// ErrInvalid for a bad spec or deployment.
func Plan(spec Spec, weightBytes int64, d Deployment) (Capacity, error) {
	d, err := d.withDefaults()
	if err != nil {
		return Capacity{}, err
	}
	shard, err := spec.Shard(d.TP)
	if err != nil {
		return Capacity{}, err
	}
	c := Capacity{Deployment: d, Shard: shard, Replicas: d.GPUs / (d.TP * d.CP)}
	c.TokenBytes, _ = shard.TokenBytes()
	if c.BlockBytes, err = shard.BlockBytes(d.BlockSize); err != nil {
		return Capacity{}, err
	}
	if c.WeightBytes, c.ReserveBytes, c.KVBytes, err = d.budget(weightBytes); err != nil {
		return Capacity{}, err
	}
	c.NumBlocks = c.KVBytes / c.BlockBytes
	if c.NumBlocks < 2 {
		return Capacity{}, fmt.Errorf("%w: the KV budget of %s per device holds %d blocks of %s; a pool needs 2 (block 0 is the null block)",
			ErrTooSmall, formatBytes(c.KVBytes), c.NumBlocks, formatBytes(c.BlockBytes))
	}
	return c, nil
}

// valid reports whether c is a plan its methods can answer for: as Plan
// returns it, or with fields edited to values Plan could return. A
// Capacity built by hand with a zero Deployment, Shard or Replicas made
// them divide by zero (a panic), and a zero BlockSize made MaxContext
// answer Unbounded.
func (c Capacity) valid() bool {
	d := c.Deployment
	return c.NumBlocks >= 2 && c.BlockBytes > 0 && c.Replicas >= 1 &&
		d.CP >= 1 && d.CP <= 1<<20 && d.BlockSize >= 1 && d.BlockSize <= 1<<20 && d.PrefillChunk >= 0 && d.PrefillChunk <= maxSpan &&
		d.SpecTokens >= 0 && d.SpecTokens <= maxSpecTokens &&
		c.Shard.Validate() == nil
}

// UsableBlocks returns the blocks of one pool that can hold KV:
// NumBlocks-1, since block 0 is the null block; 0 for a pool of fewer
// than 2 blocks (the zero Capacity, or one edited below what Plan makes),
// which holds none, as its other methods answer 0 for it.
func (c Capacity) UsableBlocks() int64 { return max(c.NumBlocks-1, 0) }

// seqBlocks returns the blocks one rank holds for a sequence of contextLen
// tokens: with context parallelism each CP rank holds ceil(contextLen/CP)
// of its tokens. A window, chunk or state is counted on every rank, an
// upper bound, since which ranks hold the last window depends on how the
// tokens are placed. Drafts (Deployment.SpecTokens) are counted on every
// rank too. ok is false when the count overflows.
func (c Capacity) seqBlocks(contextLen int64) (int64, bool) {
	k := int64(c.Deployment.SpecTokens)
	tokens := ceilDiv(contextLen, int64(c.Deployment.CP))
	if tokens == 0 {
		return 0, true
	}
	// A decode step with k drafts holds 1+k uncomputed tokens, which a
	// prefill chunk may exceed: the larger step is the peak.
	step := max(c.Deployment.PrefillChunk, 1, 1+c.Deployment.SpecTokens)
	n, err := c.Shard.sequenceBlocks(tokens+k, c.Deployment.BlockSize, step)
	if err != nil {
		return 0, false
	}
	p := int64(c.Shard.layersPerBlock())
	if k > 0 {
		// One state per pending draft beside the sequence's own.
		for _, g := range c.Shard.groups() {
			per, err := mulBytes(int64(g.Layers)/p*k, c.Shard.stateBlocks(g, c.Deployment.BlockSize))
			if err != nil || per > 1<<62-n {
				return 0, false
			}
			n += per
		}
	}
	if n == 0 || c.Deployment.NoHybridPins {
		return n, true
	}
	// The pins (at most 2^12 layers x 2^40 blocks of window or state:
	// no overflow past the 2^62 of sequenceBlocks).
	bs := int64(c.Deployment.BlockSize)
	for _, g := range c.Shard.groups() {
		switch g.Kind {
		case Window:
			// The window before a branch point, which lies within the
			// sequence: no more blocks than its tokens fill. A window of
			// one token still needs the block before the point: a hit's
			// scan stops at a cached block, as vLLM's does.
			need := max((int64(g.Window)-1+bs-1)/bs, 1)
			n += int64(g.Layers) / p * min(need, ceilDiv(tokens, bs))
		case State:
			n += StateCheckpoints * int64(g.Layers) / p * c.Shard.stateBlocks(g, c.Deployment.BlockSize)
		}
	}
	return n, true
}

// SequenceBytes returns the most KV bytes one device holds for a sequence
// of contextLen tokens (see Spec.SequenceBytes; with CP, its share of the
// tokens), with the hybrid pins of paged's default mode unless
// Deployment.NoHybridPins (see there). It returns 0 for contextLen <= 0 or a Capacity that Plan did
// not make (a zero one, or one with a zero Deployment or Shard), and -1
// when the count overflows int64.
func (c Capacity) SequenceBytes(contextLen int) int64 {
	if contextLen <= 0 || !c.valid() {
		return 0
	}
	n, ok := c.seqBlocks(int64(contextLen))
	if !ok {
		return -1
	}
	b, err := mulBytes(n, c.BlockBytes)
	if err != nil {
		return -1
	}
	return b
}

// MaxSequences returns the most sequences of contextLen tokens that fit at
// once over the whole deployment: usable blocks / the blocks one sequence
// holds (Spec.SequenceBlocks, plus the hybrid pins of paged's default mode
// unless Deployment.NoHybridPins), rounded down, on each pool, times the
// replicas. For a spec that is all full attention that is the manager's
// own arithmetic, usable blocks / ceil(tokens/BlockSize). With context
// parallelism each CP rank holds ceil(contextLen/CP) tokens of every
// sequence. Each sequence is charged its peak while it grows
// Deployment.PrefillChunk tokens a step (the decode peak by default), so
// the count holds however the prompts' steps overlap. It returns 0 for
// contextLen <= 0 and for a Capacity that Plan did not make.
func (c Capacity) MaxSequences(contextLen int) int64 {
	if contextLen <= 0 || !c.valid() {
		return 0
	}
	blocks, ok := c.seqBlocks(int64(contextLen))
	if !ok || blocks == 0 {
		return 0
	}
	return c.UsableBlocks() / blocks * int64(c.Replicas)
}

// Unbounded is what MaxContext and Tokens return when no layer's KV grows
// with the context (every group is a window, a chunk, a state or shared):
// any length fits once the sequences' fixed share does.
const Unbounded int64 = math.MaxInt64

// MaxContext returns the longest context that each of numSeqs concurrent
// sequences can reach, spread evenly over the replicas: the longest L for
// which ceil(numSeqs/Replicas) sequences of L tokens fit in one pool
// (MaxSequences' arithmetic, inverted). With one sequence it is the
// longest single context the deployment can hold. It returns 0 for
// numSeqs <= 0, for a Capacity that Plan did not make, or when not even
// the sequences' first token fits, and Unbounded when the sequences fit
// at any length.
func (c Capacity) MaxContext(numSeqs int) int64 {
	if numSeqs <= 0 || !c.valid() {
		return 0
	}
	perReplica := int64(ceilDiv(numSeqs, c.Replicas))
	fits := func(l int64) bool {
		// l in int64, not int: where int has 32 bits a pool can hold
		// more than 2^31 tokens, and int(l) wrapped to a short context
		// that fit, so a full-attention model was planned as unbounded.
		blocks, ok := c.seqBlocks(l)
		return ok && blocks <= c.UsableBlocks()/perReplica
	}
	// Full attention bounds a rank at UsableBlocks x BlockSize tokens, so
	// the longest context is below (that + 1) x CP; past it, a context
	// that still fits can only be one no layer's KV grows with.
	hi := (c.UsableBlocks() + 1) * int64(c.Deployment.BlockSize) // <= 2^61: a pool's bytes are below 2^60
	if cp := int64(c.Deployment.CP); hi > math.MaxInt64/4/cp {
		hi = math.MaxInt64 / 4
	} else {
		hi *= cp
	}
	if fits(hi) {
		return Unbounded
	}
	lo := int64(0) // fits(lo), or lo is 0
	for lo+1 < hi {
		mid := lo + (hi-lo)/2
		if fits(mid) {
			lo = mid
		} else {
			hi = mid
		}
	}
	return lo
}

// Tokens returns how many tokens of KV the whole deployment holds: one
// sequence of MaxContext(1) tokens per replica. For a spec that is all
// full attention that is usable blocks x block size on each device, times
// the CP groups of a replica (which hold different tokens), times the
// replicas. It returns Unbounded when MaxContext(1) does.
func (c Capacity) Tokens() int64 {
	l := c.MaxContext(1)
	if l == Unbounded || l > Unbounded/int64(max(c.Replicas, 1)) {
		return Unbounded
	}
	return l * int64(c.Replicas)
}

// PoolBlocks returns NumBlocks as paged.Config's NumBlocks, failing if the
// pool exceeds the MaxBlocks blocks a Manager takes.
func (c Capacity) PoolBlocks() (int, error) {
	if c.NumBlocks < 2 || c.NumBlocks > MaxBlocks {
		return 0, fmt.Errorf("%w: Capacity.NumBlocks %d must be in [2, MaxBlocks=%d]; use larger blocks", ErrInvalid, c.NumBlocks, MaxBlocks)
	}
	return int(c.NumBlocks), nil
}

// formatBytes formats a byte count in SI units with one decimal ("128.3
// GB"), as GPU memory is sold.
func formatBytes(n int64) string {
	units := []string{"B", "kB", "MB", "GB", "TB", "PB", "EB"}
	f := float64(n)
	i := 0
	for math.Abs(f) >= 1000 && i < len(units)-1 {
		f /= 1000
		i++
	}
	if i == 0 {
		return fmt.Sprintf("%d B", n)
	}
	return fmt.Sprintf("%.1f %s", f, units[i])
}
