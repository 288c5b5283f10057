// Package kvmem answers how much memory a model's KV cache takes and how
// many sequences of what length fit in it: KV element types with their
// scale overhead counted exactly, model KV layouts (including hybrid ones
// that mix full attention with sliding windows, chunked local attention,
// fixed-size recurrent state and shared layers), presets for well-known
// models, and capacity plans for a set of GPUs under tensor and context
// parallelism.
//
// It holds no manager state and imports only the standard library; the
// block manager in package paged does not import it. A plan's NumBlocks
// and BlockSize are the two numbers a paged.Config needs.
//
// # Element types
//
// Type is a storage format (fp32 down to int2, GGML's q8_0 and q4_0,
// NVFP4, MXFP4) and, for the group-wise integer formats, a group size;
// RowBytes gives the bytes of one head row with its scales and zero points.
// ParseType reads the names the kvbench command takes.
//
// # Layouts
//
// Spec is one layer's KV per token (KV heads x head dim in a key and a
// value type, or an MLA latent row) and the layers that keep it. A model
// whose layers are all full attention sets Layers:
//
//	kvmem.Spec{Layers: 32, KVHeads: 8, HeadDim: 128, Key: kvmem.BF16}
//
// A hybrid model lists groups of one Kind each instead:
//
//	kvmem.Spec{KVHeads: 16, HeadDim: 128, Key: kvmem.BF16, Groups: []kvmem.Group{
//		{Kind: kvmem.Full, Layers: 10},
//		{Kind: kvmem.Window, Layers: 52, Window: 1024},
//	}}
//
// A sequence of T tokens then holds, with blocks of bs tokens,
//
//	full layers    x ceil(T/bs) blocks
//	window layers  x min(ceil(T/bs), ceil((W-1)/bs)+1) blocks
//	chunked layers x min(ceil(T/bs), the blocks one chunk of C spans, at least 2) blocks
//	state layers   x ceil(StateBytes / one layer's block) blocks
//	shared layers  x 0
//
// of one layer's KV each: the usual estimate "full layers x T + window
// layers x min(T, W) + chunked layers x min(T, C) + state bytes", with the
// slack of the blocks actually allocated. A window of W positions starting anywhere
// in a block spans at most ceil((W-1)/bs)+1 blocks (ceil(W/bs)+1 when bs
// divides W), and a manager that gives back each block once no later query
// can read it (paged's window release, vLLM's sliding-window manager) holds
// exactly that many at its peak. The figures are peaks over the sequence's
// growth to T a token at a time, so a decoding sequence never holds more
// on its way there. A step that computes c tokens at once (a prompt's
// prefill chunk; the whole prompt when it is admitted whole) holds the
// blocks of W+c-1 positions in a window group, and of C+c-1 in a chunked
// one, until it is computed: Deployment.PrefillChunk plans with that peak.
//
// A manager that keeps hybrid prefix hits alive (paged's default mode)
// also pins, for each running sequence, the window blocks before its
// branch point and up to two checkpoints of its state; a plan charges
// them to each sequence unless Deployment.NoHybridPins says the manager
// pins nothing (vLLM, paged's compatible mode, no prefix caching).
//
// # One pool for every group
//
// All groups draw blocks from one pool of equal blocks, as vLLM's hybrid
// manager does. A block spans LayersPerBlock layers: the greatest common
// divisor of the groups' layer counts (Shared groups aside), so each group
// is a whole number of slices and nothing is padded (vLLM instead uses the
// smallest group's count and pads the others' last slice; for Gemma 3's 10
// full and 52 window layers that pads 8 window layers). Each of a block's
// LayersPerBlock per-layer slots holds blockSize tokens of one layer's KV.
// A state layer's state is laid out in the same per-layer slots: it takes
// ceil(StateBytes / (blockSize x LayerBytes)) of them, the last partly
// empty, so a slice of state layers takes that many whole blocks per
// sequence, whatever the sequence's length. For Qwen3-Next at BF16 and 16
// tokens a block, a layer's 1,097,728 bytes of DeltaNet state take 34
// slots of 32,768 bytes: 1.5% slack.
//
// # Plans
//
// Plan splits each device's memory into weights (every MoE expert
// resident), a reserve and KV, and counts blocks, sequences and the
// longest context with the arithmetic above; LookupModel has presets whose
// sources are cited in models.go. The kvbench plan command prints the same
// figures (docs/plan.md).
//
// # Concurrency
//
// Every value here is immutable once built, and every function is safe
// for concurrent use. Presets are copied out: editing a Model's Groups
// never changes the preset.
package kvmem
