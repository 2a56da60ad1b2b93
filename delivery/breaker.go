package delivery

import "time"

// BreakerState is the state of a destination's circuit breaker.
type BreakerState int

// Breaker states, as exported in metrics (0 closed, 1 half-open, 2 open).
const (
	BreakerClosed BreakerState = iota
	BreakerHalfOpen
	BreakerOpen
)

func (s BreakerState) String() string {
	return [...]string{"closed", "half-open", "open"}[s]
}

// breaker opens after Threshold consecutive failures of a destination, stays
// open for a period that doubles (up to MaxOpen) while half-open probes fail,
// and closes on the first success. It is owned by the dispatcher loop.
type breaker struct {
	threshold int
	minOpen   time.Duration
	maxOpen   time.Duration

	state     BreakerState
	failures  int
	openFor   time.Duration
	openUntil time.Time
	probing   bool
}

// allow reports whether a request may start now. In half-open state a single
// probe is allowed at a time.
func (b *breaker) allow(now time.Time) bool {
	switch b.state {
	case BreakerOpen:
		if now.Before(b.openUntil) {
			return false
		}
		b.state = BreakerHalfOpen
		fallthrough
	case BreakerHalfOpen:
		if b.probing {
			return false
		}
		b.probing = true
		return true
	}
	return true
}

// result records the end of a request; healthy is false for network errors,
// timeouts, 429 and 5xx.
func (b *breaker) result(healthy bool, now time.Time) {
	b.probing = false
	if healthy {
		b.state, b.failures, b.openFor = BreakerClosed, 0, 0
		return
	}
	b.failures++
	if b.state == BreakerHalfOpen || (b.state == BreakerClosed && b.failures >= b.threshold) {
		if b.openFor == 0 {
			b.openFor = b.minOpen
		} else {
			b.openFor = min(2*b.openFor, b.maxOpen)
		}
		b.state, b.openUntil = BreakerOpen, now.Add(b.openFor)
	}
}
