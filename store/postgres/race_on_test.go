//go:build race

package postgres

// raceDetector: the race detector slows everything down several times; the
// multi-node tests' latency bounds allow for it.
const raceDetector = true
