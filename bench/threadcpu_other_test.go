//go:build !linux

package bench

// threadCPU is unknown here: 0, and the benchmarks leave out their CPU
// time metric.
func threadCPU() int64 { return 0 }
