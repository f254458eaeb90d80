//go:build race

package wire

// raceEnabled: under the race detector sync.Pool drops items at random on
// purpose, so allocation counts say nothing about steady state.
const raceEnabled = true
