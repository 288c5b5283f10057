package probe

import (
	"crypto/sha256"
	"math/rand/v2"
	"runtime"
	"slices"
	"time"
)

// SHA256 returns the nanoseconds one SHA-256 of 96 bytes takes (median of
// five rounds of 4,000).
func SHA256() float64 {
	const n = 4000
	var buf [96]byte
	var sink byte
	rounds := make([]float64, 5)
	for r := range rounds {
		t := time.Now()
		for i := range n {
			buf[0] = byte(i)
			s := sha256.Sum256(buf[:])
			sink ^= s[0]
		}
		rounds[r] = float64(time.Since(t)) / n
	}
	buf[1] = sink // keep the sums live
	return median(rounds)
}

// WalkBytes is the size of the buffer MemoryWalk chases pointers through:
// larger than the last-level cache of the machines this project runs on.
const WalkBytes = 64 << 20

// MemoryWalk returns the nanoseconds of one dependent load at a random
// address of a WalkBytes buffer (median of five rounds of 50,000 loads),
// the cost of a cache miss to memory. The buffer is built once per call
// (about 100 ms): a single random cycle through every 64-byte line, so the
// hardware prefetcher cannot guess the next address.
func MemoryWalk() float64 {
	const stride = 8 // uint64s per 64-byte line
	lines := WalkBytes / 64
	next := make([]uint64, lines*stride)
	order := rand.New(rand.NewPCG(1, 2)).Perm(lines)
	for i, l := range order {
		next[l*stride] = uint64(order[(i+1)%lines] * stride)
	}
	const n = 50000
	rounds := make([]float64, 5)
	p := uint64(order[0] * stride)
	for r := range rounds {
		t := time.Now()
		for range n {
			p = next[p]
		}
		rounds[r] = float64(time.Since(t)) / n
	}
	runtime.KeepAlive(p) // keep the chase live
	return median(rounds)
}

func median(xs []float64) float64 {
	slices.Sort(xs)
	return xs[len(xs)/2]
}
