// Package figure draws the studies' figures with gonum/plot: the
// fragmentation study's stacked bars, the prefix-cache hit rate against
// capacity, the quantization study's memory against error, and the hybrid
// study's prefix hits against the sliding window.
//
// It is kept apart from package bench and the kvbench command so that
// neither links gonum/plot and its font, PDF and SVG packages; the kvplot
// command (bench/cmd/kvplot) turns kvbench's -json output into these
// figures.
package figure
