package kvmem

import (
	"fmt"
	"strconv"
)

// Kind is the kind of per-sequence cache a group of layers keeps.
type Kind uint8

// The kinds of layer group. The zero Kind is Full.
const (
	// Full is full (global) attention: every token's KV stays while the
	// sequence lives.
	Full Kind = iota
	// Window is sliding-window attention over Group.Window tokens: the
	// query at position p reads positions [p-W+1, p], and blocks wholly
	// before the window are given back (Mistral, Gemma 2 and 3, gpt-oss).
	Window
	// Chunked is chunked local attention over Group.Chunk tokens: the
	// query at position p reads the tokens of its own chunk,
	// [floor(p/C)·C, p], and a chunk's blocks are given back once the
	// next chunk starts (Llama 4's iRoPE layers).
	Chunked
	// State is a fixed-size per-sequence state that does not grow with
	// the context: the recurrent and convolution state of Mamba, Gated
	// DeltaNet or KDA layers, Group.StateBytes per layer.
	State
	// Shared is layers that read another group's KV (cross-layer KV
	// sharing, as in Gemma 3n): they store nothing of their own.
	Shared
)

var kindNames = [...]string{Full: "full", Window: "window", Chunked: "chunked", State: "state", Shared: "shared"}

// String returns the kind's name: "full", "window", "chunked", "state" or
// "shared".
func (k Kind) String() string {
	if int(k) >= len(kindNames) {
		return "Kind(" + strconv.Itoa(int(k)) + ")"
	}
	return kindNames[k]
}

// Group is a set of a model's layers of one kind. A hybrid Spec lists its
// groups; the layers of a group need not be adjacent in the model (Gemma 3
// interleaves five window layers with each full one).
type Group struct {
	// Kind is the group's kind. The zero value is Full.
	Kind Kind
	// Layers is the number of layers in the group. Required.
	Layers int
	// Window is the sliding window in tokens (Kind Window only).
	Window int
	// Chunk is the attention chunk in tokens (Kind Chunked only).
	Chunk int
	// StateBytes is the state of one sequence in one layer, in bytes, as
	// one unsplit device holds it (Kind State only): for Gated DeltaNet,
	// value heads x key dim x value dim recurrent values plus
	// (conv kernel - 1) x conv channels convolution values, each in the
	// state's element type. Spec.Key and Value do not apply to it: a
	// state keeps its own precision whatever the KV cache's.
	StateBytes int64
	// StateHeads is the number of heads the state splits over under tensor
	// parallelism (Kind State only); 0 means the state is not split and
	// every device holds all of it. StateBytes must be a multiple of it.
	StateHeads int
	// Of is the index in Spec.Groups of the group whose KV these layers
	// read (Kind Shared only). It must name a Full, Window or Chunked
	// group.
	Of int
}

// Group limits keep products in range: 2^30 tokens of window or chunk and
// 2^40 bytes of state per layer.
const (
	maxSpan       = 1 << 30
	maxStateBytes = 1 << 40
)

// attention reports whether k keeps per-token KV of its own.
func (k Kind) attention() bool { return k == Full || k == Window || k == Chunked }

// validate checks g as group i of groups, naming the bad field.
func (g Group) validate(i int, groups []Group) error {
	name := "Spec.Groups[" + strconv.Itoa(i) + "]"
	if int(g.Kind) >= len(kindNames) {
		return fmt.Errorf("%w: %s.Kind %v is not a known kind", ErrInvalid, name, g.Kind)
	}
	if g.Layers <= 0 || g.Layers > maxLayers {
		return fmt.Errorf("%w: %s.Layers %d must be in [1, %d]", ErrInvalid, name, g.Layers, maxLayers)
	}
	// A field that only another kind reads is a mistake worth naming: a
	// Window on a Full group silently planned as full attention would
	// overstate memory by the very factor the window exists to save.
	if (g.Window != 0) != (g.Kind == Window) {
		return fmt.Errorf("%w: %s.Window %d: a window must be given exactly for a %v group, this one is %v", ErrInvalid, name, g.Window, Window, g.Kind)
	}
	if (g.Chunk != 0) != (g.Kind == Chunked) {
		return fmt.Errorf("%w: %s.Chunk %d: a chunk must be given exactly for a %v group, this one is %v", ErrInvalid, name, g.Chunk, Chunked, g.Kind)
	}
	if (g.StateBytes != 0) != (g.Kind == State) {
		return fmt.Errorf("%w: %s.StateBytes %d: state bytes must be given exactly for a %v group, this one is %v", ErrInvalid, name, g.StateBytes, State, g.Kind)
	}
	if g.StateHeads != 0 && g.Kind != State {
		return fmt.Errorf("%w: %s.StateHeads %d is only for a %v group, this one is %v", ErrInvalid, name, g.StateHeads, State, g.Kind)
	}
	if g.Of != 0 && g.Kind != Shared {
		return fmt.Errorf("%w: %s.Of %d is only for a %v group, this one is %v", ErrInvalid, name, g.Of, Shared, g.Kind)
	}
	switch g.Kind {
	case Window:
		if g.Window < 0 || g.Window > maxSpan {
			return fmt.Errorf("%w: %s.Window %d must be in [1, 2^30]", ErrInvalid, name, g.Window)
		}
	case Chunked:
		if g.Chunk < 0 || g.Chunk > maxSpan {
			return fmt.Errorf("%w: %s.Chunk %d must be in [1, 2^30]", ErrInvalid, name, g.Chunk)
		}
	case State:
		if g.StateBytes < 0 || g.StateBytes > maxStateBytes {
			return fmt.Errorf("%w: %s.StateBytes %d must be in [1, 2^40]", ErrInvalid, name, g.StateBytes)
		}
		if g.StateHeads < 0 || g.StateHeads > maxKVHeads {
			return fmt.Errorf("%w: %s.StateHeads %d must be in [0, %d]", ErrInvalid, name, g.StateHeads, maxKVHeads)
		}
		if g.StateHeads > 0 && g.StateBytes%int64(g.StateHeads) != 0 {
			return fmt.Errorf("%w: %s.StateBytes %d does not split evenly over StateHeads %d", ErrInvalid, name, g.StateBytes, g.StateHeads)
		}
	case Shared:
		if g.Of < 0 || g.Of >= len(groups) || g.Of == i {
			return fmt.Errorf("%w: %s.Of %d must name another group in [0, %d)", ErrInvalid, name, g.Of, len(groups))
		}
		if k := groups[g.Of].Kind; !k.attention() {
			return fmt.Errorf("%w: %s.Of %d names a %v group; shared layers read a full, window or chunked group's KV", ErrInvalid, name, g.Of, k)
		}
	}
	return nil
}

// blocks returns the most blocks of blockSize tokens that one layer slice
// of an attention group holds for a sequence while it grows to tokens
// tokens, step tokens at a time (1 while decoding; a prompt's prefill
// chunk), under a manager that gives back every block no later query can
// read (as paged's window release and vLLM's sliding-window and
// chunked-local managers do) once a step is computed. For State and Shared
// groups it returns 0.
func (g Group) blocks(tokens int64, blockSize, step int) int64 {
	all := ceilDiv(tokens, int64(blockSize))
	switch g.Kind {
	case Full:
		return all
	case Window:
		// A step appends tokens [q, q+step-1]; the first of them reads
		// back to q-W+1, so W+step-1 consecutive positions are held.
		// n consecutive positions starting r tokens into a block span
		// floor((r+n-1)/bs)+1 blocks, the most at r = bs-1:
		// ceil((n-1)/bs)+1, which for one token at a time is
		// ceil((W-1)/bs)+1 (ceil(W/bs)+1 when bs divides W). A window
		// start slides by one token, so every r occurs once the
		// sequence is bs-1 tokens past W; before that the sequence holds
		// all its blocks, which are fewer.
		//
		// A window of one token is planned as one of two: a prefix hit
		// claims at least one cached block of a window group, even when
		// the window reads none before the hit point (vLLM's
		// find_longest_cache_hit keeps the last cached block it finds;
		// paged follows it), so a sequence admitted on a hit holds that
		// block beside its step's own until its next step.
		n := max(int64(g.Window), 2) + int64(step) - 1
		return min(all, (n-2+int64(blockSize))/int64(blockSize)+1)
	case Chunked:
		// A step's first token reads back to its chunk's start, so the
		// chunk's first C-1 positions and the step's are held: C+step-1
		// positions from the start. A chunk starts at a multiple of C,
		// so its offset r in a block is a multiple of gcd(C, bs), at
		// most bs - gcd(C, bs): they span at most
		// floor((r+C+step-2)/bs)+1 blocks. Exact when bs divides C and
		// the step is one token (C/bs); otherwise an upper bound, since
		// the chunk with the worst offset may lie past the context.
		r := int64(blockSize - gcd(g.Chunk, blockSize))
		n := int64(g.Chunk) + int64(step) - 1
		span := (r+n-1)/int64(blockSize) + 1
		// With prefix caching a manager keeps the last committed block
		// of a chunked group even when the chunk starts after it (vLLM's
		// remove_skipped_blocks keeps num_cached_block-1, and paged does
		// the same): a step that starts in the block where its chunk
		// starts then holds the block before that one as well, at most
		// one block more than the step's own, ceil((bs+step-1)/bs)+1
		// blocks when the step starts in a block's last slot. That
		// exceeds the chunk's span only when the chunk is short beside
		// the block (a chunk that divides the block size: 2 blocks, not
		// 1).
		kept := (int64(blockSize)+int64(step)-2)/int64(blockSize) + 2
		return min(all, max(span, kept))
	}
	return 0
}

// gcd returns the greatest common divisor of two positive ints.
func gcd(a, b int) int {
	for b != 0 {
		a, b = b, a%b
	}
	return a
}
