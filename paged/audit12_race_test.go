//go:build race

package paged

// raceOn: the race detector's build, where the long-run tests run fewer
// cycles (it slows them about tenfold).
const raceOn = true
