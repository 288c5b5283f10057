// Package llmd computes KV block keys exactly as llm-d's KV cache indexer
// does, so a fleet index, a paged server and an llm-d router can name the
// same blocks by the same 64-bit keys.
//
// llm-d's token processor (llm-d/llm-d-kv-cache,
// pkg/kvcache/kvblock/token_processor.go, commit 026424fd, algorithm
// "cbor-fnv", its default) keys a block by FNV-64a over the canonical
// CBOR encoding (RFC 8949 core deterministic, via
// github.com/fxamacker/cbor/v2 as llm-d does) of [parent key, token IDs,
// extra], chaining from a root derived from the hash seed and the model
// name. Processor reproduces it; the encoding of parent and tokens is
// written by hand so keys cost no allocation, and tests check it against
// fxamacker/cbor byte for byte and against six request keys a published
// run of llm-d's code logged.
//
// SHA256CBOR computes llm-d's other algorithm, "sha256_cbor", which is
// vLLM's own sha256_cbor prefix-cache hash: SHA-256 over the canonical CBOR
// of [parent digest, token IDs, extra], chained from vLLM's NONE_HASH, each
// key the digest's last 8 bytes, as vLLM publishes integer block hashes.
// Its tests reproduce golden values generated with vLLM's formula for
// llm-d's token processor.
//
// # Sharing keys with llm-d
//
// A router computes a request's keys with AppendKeys (or a manager's
// BlockHashes, given Hasher) and looks them up as HashOf values. A paged
// server built with paged.Config.Hasher set to Processor.Hasher() names its
// blocks by the same keys; its events, published with package fleet/zmq
// and kvevents.HashInt, carry them as the integers llm-d reads, and
// kvevents decodes them back to the same paged.Hash values. Both sides
// must agree on block size, hash seed and model name. Blocks with extra
// keys (LoRA adapters, cache salts, multimodal content) get keys of their
// own that never alias text-only ones, but llm-d cannot compute them from
// paged's extra-key bytes.
//
// A vLLM engine started with prefix_caching_hash_algo "sha256_cbor" and
// PYTHONHASHSEED equal to the hash seed names its text-only blocks by the
// digests SHA256CBOR.AppendDigests returns; when its KV events carry
// integer block hashes they are the keys AppendKeys returns
// (kvevents.HashFromInt of a key is its HashOf value). A router computes
// them from the prompt alone.
//
// Keys are 64 bits and FNV is not collision resistant: fine for routing
// (a collision misroutes a request), not for sharing KV between tenants
// who may choose their tokens; keep paged's default SHA-256 hasher there.
package llmd
