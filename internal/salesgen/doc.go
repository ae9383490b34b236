// Package salesgen generates sales-shaped JSON lines (~160 bytes each) for
// tests and benchmarks, deterministically from a seed, with optional bad
// records, and reports what a correct pipeline must make of them.
package salesgen
