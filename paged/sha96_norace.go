//go:build !race

package paged

// sha96Off: see sha96_race.go.
const sha96Off = false
