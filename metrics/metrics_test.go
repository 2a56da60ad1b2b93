package metrics

import (
	"io"
	"net/http/httptest"
	"strings"
	"testing"
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
