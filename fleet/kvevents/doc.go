// Package kvevents speaks vLLM's KV cache events: the msgspec/msgpack
// KVEventBatch frames a vLLM engine publishes (BlockStored, BlockRemoved,
// AllBlocksCleared) and that llm-d's and NVIDIA Dynamo's KV routers read.
//
// Batch decodes a frame into paged.Event values (plus per-event Meta such
// as group_idx); Stream numbers the events of one engine from vLLM's
// per-batch sequence numbers so a lost batch shows as a gap, which fleet's
// Index turns into a partial server. Encoder does the reverse: it writes a
// paged manager's events as vLLM would, so a Go server built on paged can
// feed a router that speaks vLLM. Package fleet/zmq carries the frames.
//
// # Schema
//
// The field lists follow vllm/distributed/kv_events.py at vllm-project/vllm
// commit 0181ea31 (BlockStored with lora_name, extra_keys, group_idx and
// the kv_cache_spec fields; BlockRemoved with group_idx) and accept the
// older shapes: the five-field BlockStored of early versions (commit
// b4e69e0a), integer or byte hashes, the positional (array_like) layout of
// those versions and the map layout msgspec uses otherwise, in any mix. Fields the index does not use
// are skipped, and fields added later (such as locality) pass unread.
// HashFromInt and HashFromBytes say how vLLM's hashes become paged.Hash
// values, and EncoderConfig.Hashes the way back.
//
// # Layouts
//
// Newer vLLM versions (0181ea31) describe a group's KV cache spec on each
// BlockStored: kv_cache_spec_kind (KVCacheSpecKind's value, SpecKind
// here) and kv_cache_spec_sliding_window, decoded into Meta. A
// LayoutLearner turns them into the fleet.Layout that Index.SetLayout
// takes, for the groups the wire describes fully: full attention (with
// MLA or sinks), sliding windows with their size, mamba as a state
// group. A chunked local group carries no chunk size, and encoder-only,
// cross-attention and unknown groups no prefix rule, so a layout with
// one is not learned (the operator gives it); neither is one whose
// groups differ in block size.
//
// # Errors
//
// A frame that breaks the schema is rejected whole with ErrMalformed:
// nothing of a frame the reader could not fully read is returned. So is a
// frame listing more than MaxFrameHashes hashes or MaxFrameTokens tokens,
// which bounds what decoding holds whatever the frame's size. Events
// vLLM cannot express yield ErrInvalid from the Encoder.
//
// # Costs and concurrency
//
// Decoding and encoding reuse their buffers and allocate nothing in steady
// state; strings and byte hashes are read in place. A Batch or Stream
// belongs to one goroutine; an Encoder is safe for concurrent use.
package kvevents
