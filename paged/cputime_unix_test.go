//go:build linux || darwin || freebsd

package paged_test

import "syscall"

// cpuTime returns the CPU time the process has used so far, in
// nanoseconds. On a shared machine a benchmark's wall time includes the
// time other processes held its core; its CPU time does not.
func cpuTime() int64 {
	var ru syscall.Rusage
	if syscall.Getrusage(syscall.RUSAGE_SELF, &ru) != nil {
		return 0
	}
	return ru.Utime.Nano() + ru.Stime.Nano()
}
