// Package attention is a reference paged attention: a host-side paged KV
// store written through the block manager's slot mapping and copy
// directives, a grouped-query decode attention that reads keys and values
// only through block tables and runs a Flash-Decoding split plan, and the
// KV storage formats (FP16/BF16, FP8, INT8/INT4/INT2 with group-wise or
// per-channel scales, llama.cpp's q8_0 and q4_0, NVFP4) it dequantizes on
// the fly.
//
// It is not part of the library core and is not fast. It exists for two
// jobs: to prove the manager's metadata end to end (paged attention over
// any history of creates, appends, forks, copy-on-write, truncations and
// prefix hits equals dense attention over each sequence's own contiguous
// keys and values), and to measure what quantizing the KV cache costs in
// attention-output error (kvbench quant).
//
// # Numerics
//
// Quantized formats keep one code per byte and float32 parameters rounded
// to the precision a real layout stores them in (per-channel formats also
// keep the float32 values of the block being filled), so the arithmetic is
// exact while memory is not: bytes per token come from the KV element
// types of package kvmem, and a test checks every codec's codes and
// parameters against them (Codec.Storage, TestCodecStorageMatchesLayout).
// Attention accumulates in float64.
//
// # Concurrency
//
// Store and Attention are not safe for concurrent use.
package attention
