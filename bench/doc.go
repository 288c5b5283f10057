// Package bench holds pagedkv's workloads, trace readers, simulators and
// studies: the fragmentation study, the prefix-cache study, the manager
// overhead replay of vLLM's workload W1, and the baselines that exist only
// for comparison (contiguous reservation over a buddy allocator, a Belady
// oracle). The kvbench command under bench/cmd/kvbench prints their tables.
//
// Two public traces are embedded with their attribution (see
// bench/traces/README.md): the Azure LLM conversation trace of 2023
// (CC-BY-4.0) and the Mooncake FAST'25 synthetic trace (Apache-2.0).
package bench
