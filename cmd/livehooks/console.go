package main

import (
	"net/http"

	"github.com/prometheus/client_golang/prometheus"
	dto "github.com/prometheus/client_model/go"

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

// breakerStates reads the breakers that are not closed from the metric the
// dispatcher keeps (livehooks_destination_breaker_state), by destination.
func breakerStates(m *metrics.Metrics) func() map[string]string {
	return func() map[string]string {
		ch := make(chan prometheus.Metric, 64)
		go func() { m.Breaker.Collect(ch); close(ch) }()
		out := map[string]string{}
		for metric := range ch {
			var pb dto.Metric
			if err := metric.Write(&pb); err != nil || pb.Gauge == nil {
				continue
			}
			st := delivery.BreakerState(pb.Gauge.GetValue())
			if st < delivery.BreakerClosed || st > delivery.BreakerOpen {
				continue
			}
			for _, l := range pb.Label {
				if l.GetName() == "destination" {
					out[l.GetValue()] = st.String()
				}
			}
		}
		return out
	}
}
