//go:build !race

package postgres

// raceDetector: see race_on_test.go.
const raceDetector = false
