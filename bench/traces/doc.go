// Package traces reads LLM request traces and embeds two public ones: the
// Azure LLM inference conversation trace of 2023 (CC-BY-4.0) and the
// Mooncake FAST'25 synthetic trace (Apache-2.0); see README.md in this
// directory for their sources and attribution lines.
//
// It is a leaf package (standard library only), so a program that needs
// only a trace, such as an example server, does not link the studies of
// package bench or their dependencies.
//
// # Formats
//
// Azure traces are CSV files with the columns TIMESTAMP, ContextTokens and
// GeneratedTokens (any order, extra columns ignored), as the 2023 and 2024
// releases of the Azure public dataset have them. Mooncake traces are one
// JSON object a line with timestamp (milliseconds), input_length,
// output_length and hash_ids.
//
// # Concurrency
//
// The embedded traces are parsed once and shared: callers must not modify
// the returned slices. The readers keep no state.
package traces
