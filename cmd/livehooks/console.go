package main

import (
	"net/http"

	"github.com/livehooks/livehooks/console"
	"github.com/livehooks/livehooks/delivery"
	"github.com/livehooks/livehooks/metrics"
)

// withConsole serves the web console at /console beside the API.
func withConsole(apiHandler http.Handler, c *console.Console) http.Handler {
	mux := http.NewServeMux()
	mux.Handle("/console", c)
	mux.Handle("/console/", c)
	mux.Handle("/", apiHandler)
	return mux
}

// breakerStates reads the dispatcher's breaker states, by destination.
func breakerStates(m *metrics.Metrics) func() map[string]string {
	return func() map[string]string {
		out := map[string]string{}
		for dest, st := range m.BreakerStates() {
			out[dest] = delivery.BreakerState(st).String()
		}
		return out
	}
}
