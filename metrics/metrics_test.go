package metrics

import (
	"io"
	"net/http/httptest"
	"strings"
	"testing"
	"time"
)

// TestDestinationsCountedNotNamed: breaker states are counted per state;
// no series names a destination (they are projects' callback hosts, and
// /metrics needs no credentials).
func TestDestinationsCountedNotNamed(t *testing.T) {
	t.Parallel()
	m := New(nil)
	m.BreakerState("https://a.example.com:443", 0)
	m.BreakerState("https://b.example.com:443", 2)
	m.BreakerState("https://c.example.com:443", 2)
	m.BreakerState("https://c.example.com:443", 1)
	m.BreakerState("https://c.example.com:443", 1)
	m.ForgetDestination("https://a.example.com:443")
	m.ForgetDestination("https://never-seen.example.com:443")
	m.BreakerState("https://d.example.com:443", 7) // not a state: ignored

	rec := httptest.NewRecorder()
	m.Handler().ServeHTTP(rec, httptest.NewRequest("GET", "/metrics", nil))
	body, _ := io.ReadAll(rec.Body)
	for _, want := range []string{`livehooks_destinations{breaker="closed"} 0`, `livehooks_destinations{breaker="half_open"} 1`, `livehooks_destinations{breaker="open"} 1`} {
		if !strings.Contains(string(body), want+"\n") {
			t.Errorf("no %s in:\n%s", want, body)
		}
	}
	if strings.Contains(string(body), "example.com") {
		t.Errorf("/metrics names a destination:\n%s", body)
	}
}

// TestCommitRecordsSizeTripsAndTime: one group commit adds to the histogram
// of its operations, the round trips and the histogram of its time.
func TestCommitRecordsSizeTripsAndTime(t *testing.T) {
	t.Parallel()
	m := New(nil)
	m.Commit(12, 1, 3*time.Millisecond)
	m.Commit(4, 2, 5*time.Millisecond)

	rec := httptest.NewRecorder()
	m.Handler().ServeHTTP(rec, httptest.NewRequest("GET", "/metrics", nil))
	body, _ := io.ReadAll(rec.Body)
	for _, want := range []string{
		"livehooks_store_commit_ops_sum 16", "livehooks_store_commit_ops_count 2",
		"livehooks_store_round_trips_total 3",
		"livehooks_store_commit_seconds_sum 0.008", "livehooks_store_commit_seconds_count 2",
		`livehooks_store_commit_seconds_bucket{le="0.0032"} 1`,
	} {
		if !strings.Contains(string(body), want+"\n") {
			t.Errorf("no %s in:\n%s", want, body)
		}
	}
}
