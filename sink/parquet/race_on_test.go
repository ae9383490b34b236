//go:build race

package parquet

// raceEnabled is true when tests run under the race detector.
const raceEnabled = true
