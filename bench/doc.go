// Package bench holds pagedkv's workloads, trace readers, simulators and
// studies: the fragmentation and sharing study, the prefix-cache study
// (with a prefill queue model), the manager overhead replays of vLLM's
// workloads W1 and W1-H, the hybrid, quantization and fleet studies, and
// the baselines that exist only for comparison (contiguous reservation over
// buddy, first-fit and compacting allocators, a Belady oracle, the fleet's
// hit bound FleetHitBound). Bad study configurations are refused with
// errors (ErrFragInvalid, ErrCacheStudy, ErrHybridStudy, ErrFleetInvalid,
// ...). The kvbench command under bench/cmd/kvbench prints their tables.
//
// Two public traces are embedded with their attribution (see
// bench/traces/README.md): the Azure LLM conversation trace of 2023
// (CC-BY-4.0) and the Mooncake FAST'25 synthetic trace (Apache-2.0).
package bench
