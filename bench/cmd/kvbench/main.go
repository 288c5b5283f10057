// Command kvbench runs pagedkv's studies and planners.
//
// Usage:
//
//	kvbench <command> [flags]
//
// Commands:
//
//	frag      fragmentation study: memory waste of paged vs contiguous KV (the main job)
//	cache     prefix-cache study: eviction policies on real traces
//	overhead  manager overhead on vLLM's workload W1
//	plan      KV capacity planning for a model on a set of GPUs
//	quant     KV quantization accuracy through a reference paged attention
//	fleet     prefix-aware routing over a fleet of managers
//	hybrid    prefix hits on hybrid models (sliding windows, state layers): vLLM vs default mode
//
// Run "kvbench <command> -h" for a command's flags.
package main

import (
	"errors"
	"flag"
	"fmt"
	"io"
	"os"
)

type command struct {
	name, summary string
	run           func(args []string, stdout, stderr io.Writer) error
}

var commands = []command{
	{"frag", "fragmentation study: memory waste of paged vs contiguous KV", runFrag},
	{"cache", "prefix-cache study: eviction policies on real traces", runCache},
	{"overhead", "manager overhead on vLLM's workload W1", runOverhead},
	{"plan", "KV capacity planning for a model on a set of GPUs", runPlan},
	{"quant", "KV quantization accuracy through a reference paged attention", runQuant},
	{"fleet", "prefix-aware routing over a fleet of managers", runFleet},
	{"hybrid", "prefix hits on hybrid models (sliding windows, state layers): vLLM vs default mode", runHybrid},
}

func main() {
	os.Exit(run(os.Args[1:], os.Stdout, os.Stderr))
}

func run(args []string, stdout, stderr io.Writer) int {
	if len(args) == 0 || args[0] == "-h" || args[0] == "-help" || args[0] == "--help" || args[0] == "help" {
		usage(stderr)
		if len(args) == 0 {
			return 2
		}
		return 0
	}
	for _, c := range commands {
		if c.name == args[0] {
			err := c.run(args[1:], stdout, stderr)
			if errors.Is(err, flag.ErrHelp) {
				return 0
			}
			if err != nil {
				fmt.Fprintf(stderr, "kvbench %s: %v\n", c.name, err)
				return 1
			}
			return 0
		}
	}
	fmt.Fprintf(stderr, "kvbench: unknown command %q\n\n", args[0])
	usage(stderr)
	return 2
}

func usage(w io.Writer) {
	fmt.Fprintln(w, "usage: kvbench <command> [flags]\n\ncommands:")
	for _, c := range commands {
		fmt.Fprintf(w, "  %-9s %s\n", c.name, c.summary)
	}
}
