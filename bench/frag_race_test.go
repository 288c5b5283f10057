//go:build race

package bench

// raceEnabled: the race detector changes allocation counts, so the
// AllocsPerRun tests skip under it.
const raceEnabled = true
