//go:build !(linux || darwin || freebsd)

package paged_test

// cpuTime is unknown here: 0, and the benchmarks leave out their CPU
// time metric.
func cpuTime() int64 { return 0 }
