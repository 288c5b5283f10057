package main

import (
	"errors"
	"flag"
	"fmt"
	"io"
	"os"
	"runtime"
	"runtime/pprof"
	"sync"
)

// cmdFlags is the flag set every command starts from: the shared usage
// header (usage line, one-line description, example) and the -cpuprofile
// and -memprofile flags. Its Parse starts the CPU profile; run stops the
// profiles when the command returns.
type cmdFlags struct {
	*flag.FlagSet
	name                   string
	cpuProfile, memProfile string
}

// given returns the names of the flags the command line set, a flag set
// to its default value included.
func (f *cmdFlags) given() map[string]bool {
	set := map[string]bool{}
	f.Visit(func(fl *flag.Flag) { set[fl.Name] = true })
	return set
}

// traceName names the trace a command replayed in its summary: the
// embedded one when no -trace file was given, the file otherwise.
func traceName(file string) string {
	if file == "" {
		return "the Azure conversation trace"
	}
	return "the trace " + file
}

// newFlags returns the flag set of the command name, printing to stderr.
func newFlags(name string, stderr io.Writer) *cmdFlags {
	f := &cmdFlags{FlagSet: flag.NewFlagSet("kvbench "+name, flag.ContinueOnError), name: name}
	f.SetOutput(stderr)
	f.StringVar(&f.cpuProfile, "cpuprofile", "", "write a CPU profile to `file`")
	f.StringVar(&f.memProfile, "memprofile", "", "write a heap profile to `file` at the end")
	f.Usage = func() {
		summary, example := "", ""
		for _, c := range commands {
			if c.name == name {
				summary, example = c.summary, c.example
			}
		}
		fmt.Fprintf(stderr, "usage: kvbench %s [flags]\n\n%s\n\nexample:\n  %s\n\nflags:\n", name, summary, example)
		f.PrintDefaults()
	}
	return f
}

// Parse parses args. A bad flag or a positional argument is a usage error
// (exit code 2); -h returns flag.ErrHelp (exit code 0). Then it starts the
// CPU profile if -cpuprofile asks for one.
func (f *cmdFlags) Parse(args []string) error {
	if err := f.FlagSet.Parse(args); err != nil {
		if errors.Is(err, flag.ErrHelp) {
			return err
		}
		return &usageError{err: err, printed: true}
	}
	if f.NArg() > 0 {
		return usageErrorf("unexpected argument %q", f.Arg(0))
	}
	return startProfiles(f.cpuProfile, f.memProfile)
}

// usageError is a bad flag value or argument: kvbench exits with code 2.
type usageError struct {
	err     error
	printed bool // the flag package has printed it and the usage
}

func (e *usageError) Error() string { return e.err.Error() }
func (e *usageError) Unwrap() error { return e.err }

// usageErrorf returns a usageError with a formatted message.
func usageErrorf(format string, args ...any) error {
	return &usageError{err: fmt.Errorf(format, args...)}
}

// The profiles are process-wide, as runtime/pprof's CPU profile is: one
// command runs per process.
var profiles struct {
	sync.Mutex
	cpu *os.File
	mem string
}

func startProfiles(cpu, mem string) error {
	profiles.Lock()
	defer profiles.Unlock()
	profiles.mem = mem
	if cpu == "" {
		return nil
	}
	f, err := os.Create(cpu)
	if err != nil {
		return err
	}
	if err := pprof.StartCPUProfile(f); err != nil {
		f.Close()
		return err
	}
	profiles.cpu = f
	return nil
}

// stopProfiles ends the CPU profile and writes the heap profile, if the
// command asked for them.
func stopProfiles() error {
	profiles.Lock()
	defer profiles.Unlock()
	var errs []error
	if profiles.cpu != nil {
		pprof.StopCPUProfile()
		errs = append(errs, profiles.cpu.Close())
		profiles.cpu = nil
	}
	if profiles.mem != "" {
		f, err := os.Create(profiles.mem)
		if err == nil {
			runtime.GC() // up-to-date statistics
			err = errors.Join(pprof.WriteHeapProfile(f), f.Close())
		}
		errs = append(errs, err)
		profiles.mem = ""
	}
	return errors.Join(errs...)
}
