package bench

import "syscall"

// rusageThread is Linux's RUSAGE_THREAD, which the syscall package does
// not name.
const rusageThread = 1

// threadCPU returns the CPU time the calling OS thread has used, in
// nanoseconds (0 if unknown). With the goroutine locked to its thread, a
// benchmark's thread CPU time leaves out the time other processes held
// the core, which its wall time includes, and the garbage collector's
// background work on other threads.
func threadCPU() int64 {
	var ru syscall.Rusage
	if syscall.Getrusage(rusageThread, &ru) != nil {
		return 0
	}
	return ru.Utime.Nano() + ru.Stime.Nano()
}
