package delivery

import (
	"testing"
	"time"
)

// TestBreakerStates: opens after the threshold, lets one probe through when
// the open period ends, doubles the period while probes fail (up to the cap)
// and closes on the first success.
func TestBreakerStates(t *testing.T) {
	now := time.Unix(0, 0)
	b := breaker{threshold: 3, minOpen: 10 * time.Second, maxOpen: 30 * time.Second}
	for i := range 3 {
		if !b.allow(now) {
			t.Fatalf("refused before the threshold (failure %d)", i)
		}
		b.result(false, now)
	}
	if b.state != BreakerOpen || b.allow(now.Add(9*time.Second)) {
		t.Fatalf("not open after 3 failures: %v", b.state)
	}
	// Open periods: 10 s, then 20 s, then capped at 30 s.
	for _, period := range []time.Duration{10 * time.Second, 20 * time.Second, 30 * time.Second, 30 * time.Second} {
		if b.allow(now.Add(period - time.Millisecond)) {
			t.Fatalf("allowed before %v", period)
		}
		now = now.Add(period)
		if !b.allow(now) || b.state != BreakerHalfOpen {
			t.Fatalf("no probe after %v", period)
		}
		if b.allow(now) {
			t.Fatal("a second probe while the first is out")
		}
		b.result(false, now)
	}
	now = now.Add(30 * time.Second)
	if !b.allow(now) {
		t.Fatal("no probe")
	}
	b.result(true, now)
	if b.state != BreakerClosed || !b.allow(now) || !b.allow(now) {
		t.Fatalf("not closed after a successful probe: %v", b.state)
	}
	// A success resets the count: two more failures do not open it.
	b.result(false, now)
	b.result(false, now)
	if b.state != BreakerClosed {
		t.Fatal("opened below the threshold after recovering")
	}
}
