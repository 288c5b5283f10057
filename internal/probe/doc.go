// Package probe measures two properties of the machine a benchmark runs on,
// so that a figure can be stated as a ratio to them and compared across
// machines: the time of one SHA-256 of 96 bytes (the input of one block
// hash: a 32-byte parent and sixteen 4-byte tokens), for compute-bound
// figures, and the latency of one dependent load at a random address of a
// buffer much larger than the caches, for memory-bound ones.
//
// Each probe runs a few rounds and returns the median, in nanoseconds. A
// probe takes a few milliseconds; measure it in the same run as the figure
// it normalises, since a shared machine can be twice as slow from one
// minute to the next.
package probe
