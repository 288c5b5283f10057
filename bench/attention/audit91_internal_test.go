package attention

import (
	"math"
	"testing"
)

// TestAudit91AbsMaxSkipsEveryNaN: absMax never takes a NaN, whatever its
// payload, the smallest (bits 0x7f800001) included, as the plain loop
// comparing a > amax does not.
func TestAudit91AbsMaxSkipsEveryNaN(t *testing.T) {
	for _, bits := range []uint32{0x7f800001, 0xff800001, 0x7fc00000, 0x7fffffff} {
		nan := math.Float32frombits(bits)
		for _, src := range [][]float32{{nan, 2, -3}, {1, nan}, {-0.5, nan, 0.25}} {
			var want float32
			for _, x := range src {
				if a := float32(math.Abs(float64(x))); a > want {
					want = a
				}
			}
			if got := absMax(src); math.Float32bits(got) != math.Float32bits(want) {
				t.Errorf("absMax(%#x in %v) = %v, want %v", bits, src, got, want)
			}
		}
	}
}
