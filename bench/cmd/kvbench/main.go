package main

import (
	"errors"
	"flag"
	"fmt"
	"io"
	"os"
)

type command struct {
	name, summary, example string
	run                    func(args []string, stdout, stderr io.Writer) error
}

// commands is set in init: their flag sets read it for the usage header.
var commands []command

func init() {
	commands = []command{
		{"frag", "fragmentation study: memory waste of paged vs contiguous KV", "kvbench frag -trace AzureLLMInferenceTrace_code.csv", runFrag},
		{"cache", "prefix-cache study: eviction policies on real traces", "kvbench cache -policies lru,arc -capacity-tokens 3000000", runCache},
		{"overhead", "manager overhead on vLLM's workload W1", "kvbench overhead -compat vllm -digest", runOverhead},
		{"plan", "KV capacity planning for a model on a set of GPUs", "kvbench plan -model Llama-3-70B -gpus 4 -gpu-mem 80GB", runPlan},
		{"quant", "KV quantization accuracy through a reference paged attention", "kvbench quant -types q8_0,q4_0,nvfp4 -lengths 4096", runQuant},
		{"fleet", "routing over a fleet of managers: hit rate, balance, waits and makespan per router", "kvbench fleet -shared-prefix 1 -json", runFleet},
		{"hybrid", "prefix hits on hybrid models (windows, state layers, layouts of several kinds): vLLM vs default mode", "kvbench hybrid -windows 128,1024", runHybrid},
	}
}

func main() {
	os.Exit(run(os.Args[1:], os.Stdout, os.Stderr))
}

// run runs the command args name and returns the exit code. As the go
// command does, no command at all is a usage error (the usage on stderr,
// status 2), and asking for help is not: "kvbench help" (or -h) prints
// the usage on stdout with status 0, and "kvbench help NAME" is
// "kvbench NAME -h".
func run(args []string, stdout, stderr io.Writer) int {
	switch {
	case len(args) == 0:
		usage(stderr)
		return 2
	case args[0] == "help" && len(args) == 2:
		return run([]string{args[1], "-h"}, stdout, stderr)
	case args[0] == "-h" || args[0] == "-help" || args[0] == "--help" || args[0] == "help":
		if len(args) > 1 {
			fmt.Fprintf(stderr, "kvbench: %s takes at most one command name, got %q\n\n", args[0], args[1:])
			usage(stderr)
			return 2
		}
		usage(stdout)
		return 0
	}
	for _, c := range commands {
		if c.name != args[0] {
			continue
		}
		err := c.run(args[1:], stdout, stderr)
		err = errors.Join(err, stopProfiles())
		var ue *usageError
		switch {
		case errors.Is(err, flag.ErrHelp):
			return 0
		case errors.As(err, &ue):
			if !ue.printed {
				fmt.Fprintf(stderr, "kvbench %s: %v\nrun \"kvbench %s -h\" for the flags\n", c.name, ue.err, c.name)
			}
			return 2
		case err != nil:
			fmt.Fprintf(stderr, "kvbench %s: %v\n", c.name, err)
			return 1
		}
		return 0
	}
	fmt.Fprintf(stderr, "kvbench: unknown command %q\n\n", args[0])
	usage(stderr)
	return 2
}

func usage(w io.Writer) {
	fmt.Fprintln(w, "usage: kvbench NAME [flags]\n\ncommands:")
	for _, c := range commands {
		fmt.Fprintf(w, "  %-9s %s\n", c.name, c.summary)
	}
	fmt.Fprintln(w, "\nRun \"kvbench NAME -h\" for a command's flags.")
}
