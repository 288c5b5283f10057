package probe

import "testing"

// TestAudit174MedianIsTheMiddleOfTheSortedRounds: median returns the
// middle value of the rounds in order, not the middle round as measured
// nor the slowest.
func TestAudit174MedianIsTheMiddleOfTheSortedRounds(t *testing.T) {
	for _, c := range []struct {
		xs   []float64
		want float64
	}{
		{[]float64{5, 1, 4, 2, 3}, 3},
		{[]float64{3, 9, 1, 7, 2}, 3},
		{[]float64{10, 30, 20}, 20},
	} {
		if got := median(append([]float64(nil), c.xs...)); got != c.want {
			t.Errorf("median(%v) = %v, want %v", c.xs, got, c.want)
		}
	}
}
