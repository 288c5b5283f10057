// Command kvbench runs pagedkv's studies and planners.
//
// Usage:
//
//	kvbench NAME [flags]
//
// Commands:
//
//	frag      fragmentation study: memory waste of paged vs contiguous KV (the main job)
//	cache     prefix-cache study: eviction policies on real traces
//	overhead  manager overhead on vLLM's workload W1
//	plan      KV capacity planning for a model on a set of GPUs
//	quant     KV quantization accuracy through a reference paged attention
//	fleet     routing over a fleet of managers: hit rate, balance, waits and makespan per router
//	hybrid    prefix hits on hybrid models (windows, state layers, layouts of several kinds): vLLM vs default mode
//
// Every command takes -json (machine-readable output), -cpuprofile and
// -memprofile, and prints its flags with -h. Long runs show their progress
// on stderr when it is a terminal (never with -json). The exit code is 0
// on success and for -h, 1 when the run fails, 2 for bad flags. As with
// the go command, kvbench without a command prints this list of commands
// on stderr and exits 2; "kvbench help" (or -h) prints it on stdout and
// exits 0, and "kvbench help NAME" is "kvbench NAME -h".
//
// Figures are drawn by a separate command, so kvbench links no plotting
// code: "kvbench frag -json | go run ./bench/cmd/kvplot frag -o frag.png".
package main
