// Package metrics holds livehooks' Prometheus collectors: ingest rate, pending
// depth, delivery latency, attempts by outcome and destinations by breaker
// state, all in one registry served at /metrics. /metrics needs no
// credentials, so no label holds tenant data: destinations (the hosts of
// projects' callback URLs) are counted, never named.
package metrics

import (
	"context"
	"net/http"
	"sync"
	"time"

	"github.com/prometheus/client_golang/prometheus"
	"github.com/prometheus/client_golang/prometheus/collectors"
	"github.com/prometheus/client_golang/prometheus/promhttp"
)

// Metrics is the set of collectors. A nil *Metrics records nothing.
type Metrics struct {
	Registry       *prometheus.Registry
	EventsIngested *prometheus.CounterVec // by source
	IngestForwards *prometheus.CounterVec // ingests sent on to their home node, by outcome
	Attempts       *prometheus.CounterVec // by outcome
	Latency        prometheus.Histogram   // ingest to 2xx, seconds
	AttemptLatency prometheus.Histogram   // one HTTP attempt, seconds
	Breakers       *prometheus.GaugeVec   // destinations by breaker state: closed, half_open, open
	CommitBatch    prometheus.Histogram   // operations per store transaction
	CommitTime     prometheus.Histogram   // a store transaction's start to acknowledgement
	RoundTrips     prometheus.Counter     // database round trips of group-commit transactions
	InFlight       prometheus.Gauge       // group commits that may be in flight at once
	Downloads      *prometheus.CounterVec // answers to download links, by outcome
	DownloadBytes  prometheus.Counter     // recording bytes served
	pending        func(context.Context) (int64, error)
	mu             sync.Mutex
	lastPending    float64
	lastPendingAt  time.Time
	breakerMu      sync.Mutex
	breakers       map[string]int // destination → state, to count them
}

// breakerStates name the breaker states (0 closed, 1 half-open, 2 open).
var breakerStates = []string{"closed", "half_open", "open"}

// New returns the collectors registered in a new registry. pending reads the
// number of pending deliveries; it is called at most once a second.
func New(pending func(context.Context) (int64, error)) *Metrics {
	m := &Metrics{
		Registry: prometheus.NewRegistry(),
		EventsIngested: prometheus.NewCounterVec(prometheus.CounterOpts{
			Name: "livehooks_events_ingested_total", Help: "Recording events acknowledged (committed to the store).",
		}, []string{"source"}),
		IngestForwards: prometheus.NewCounterVec(prometheus.CounterOpts{
			Name: "livehooks_ingest_forwards_total",
			Help: "Ingest requests sent on to the node that is home to their streams' lanes (several nodes), by outcome: forwarded, unreachable (ingested here), failed (answered 503).",
		}, []string{"outcome"}),
		Attempts: prometheus.NewCounterVec(prometheus.CounterOpts{
			Name: "livehooks_delivery_attempts_total", Help: "Delivery attempts by outcome.",
		}, []string{"outcome"}),
		Latency: prometheus.NewHistogram(prometheus.HistogramOpts{
			Name:    "livehooks_delivery_latency_seconds",
			Help:    "Time from ingest to the receiver's 2xx answer.",
			Buckets: []float64{.001, .0025, .005, .01, .025, .05, .1, .25, .5, 1, 2.5, 5, 10, 30, 60, 300, 3600},
		}),
		AttemptLatency: prometheus.NewHistogram(prometheus.HistogramOpts{
			Name:    "livehooks_delivery_attempt_seconds",
			Help:    "Duration of one HTTP attempt.",
			Buckets: prometheus.ExponentialBuckets(0.0005, 2.5, 14),
		}),
		Breakers: prometheus.NewGaugeVec(prometheus.GaugeOpts{
			Name: "livehooks_destinations",
			Help: "Destinations (scheme://host:port of callback URLs) with deliveries waiting or a breaker not closed, by circuit-breaker state. Destinations are projects' data, so they are counted here, never named.",
		}, []string{"breaker"}),
		CommitBatch: prometheus.NewHistogram(prometheus.HistogramOpts{
			Name: "livehooks_store_commit_ops", Help: "Write operations per store transaction (group commit).",
			Buckets: []float64{1, 2, 4, 8, 16, 32, 64, 128, 256, 512},
		}),
		CommitTime: prometheus.NewHistogram(prometheus.HistogramOpts{
			Name:    "livehooks_store_commit_seconds",
			Help:    "Time from the start of a group-commit transaction to the acknowledgement of its writers: its statements, its commit and (SQLite) the fsync that makes it durable.",
			Buckets: prometheus.ExponentialBuckets(0.0002, 2, 16),
		}),
		RoundTrips: prometheus.NewCounter(prometheus.CounterOpts{
			Name: "livehooks_store_round_trips_total",
			Help: "Database round trips made by group-commit transactions, BEGIN and COMMIT included (PostgreSQL; 0 with SQLite, which runs in-process).",
		}),
		InFlight: prometheus.NewGauge(prometheus.GaugeOpts{
			Name: "livehooks_store_concurrent_commits",
			Help: "Group commits that may be in flight at once: --concurrent-commits, or what its default chose from the database's round trip at start (1 with SQLite).",
		}),
		Downloads: prometheus.NewCounterVec(prometheus.CounterOpts{
			Name: "livehooks_recording_downloads_total",
			Help: "Answers to the download links of recordings livehooks serves, by outcome: served, not_modified, bad_range, unsigned, bad_signature, expired, not_found.",
		}, []string{"outcome"}),
		DownloadBytes: prometheus.NewCounter(prometheus.CounterOpts{
			Name: "livehooks_recording_download_bytes_total", Help: "Bytes of recordings livehooks served (bodies of download answers).",
		}),
		pending:  pending,
		breakers: map[string]int{},
	}
	for _, st := range breakerStates {
		m.Breakers.WithLabelValues(st).Set(0)
	}
	m.Registry.MustRegister(m.EventsIngested, m.IngestForwards, m.Attempts, m.Latency, m.AttemptLatency, m.Breakers, m.CommitBatch, m.CommitTime, m.RoundTrips,
		m.InFlight, m.Downloads, m.DownloadBytes,
		prometheus.NewGaugeFunc(prometheus.GaugeOpts{
			Name: "livehooks_deliveries_pending", Help: "Deliveries waiting or in flight.",
		}, m.pendingValue),
		collectors.NewGoCollector(), collectors.NewProcessCollector(collectors.ProcessCollectorOpts{}))
	return m
}

func (m *Metrics) pendingValue() float64 {
	m.mu.Lock()
	defer m.mu.Unlock()
	if m.pending != nil && time.Since(m.lastPendingAt) >= time.Second {
		ctx, cancel := context.WithTimeout(context.Background(), 2*time.Second)
		defer cancel()
		if n, err := m.pending(ctx); err == nil {
			m.lastPending, m.lastPendingAt = float64(n), time.Now()
		}
	}
	return m.lastPending
}

// Handler serves the registry.
func (m *Metrics) Handler() http.Handler {
	return promhttp.HandlerFor(m.Registry, promhttp.HandlerOpts{})
}

// Ingested counts n acknowledged events from source.
func (m *Metrics) Ingested(source string, n int) {
	if m != nil {
		m.EventsIngested.WithLabelValues(source).Add(float64(n))
	}
}

// Forwarded counts an ingest request sent on to another node, by outcome.
func (m *Metrics) Forwarded(outcome string) {
	if m != nil {
		m.IngestForwards.WithLabelValues(outcome).Inc()
	}
}

// Attempt records one attempt's outcome and duration.
func (m *Metrics) Attempt(outcome string, d time.Duration) {
	if m != nil {
		m.Attempts.WithLabelValues(outcome).Inc()
		m.AttemptLatency.Observe(d.Seconds())
	}
}

// Delivered records the ingest-to-2xx latency of a delivery.
func (m *Metrics) Delivered(d time.Duration) {
	if m != nil {
		m.Latency.Observe(d.Seconds())
	}
}

// BreakerState sets a destination's breaker state (0 closed, 1 half-open,
// 2 open).
func (m *Metrics) BreakerState(destination string, state int) {
	if m == nil || state < 0 || state >= len(breakerStates) {
		return
	}
	m.breakerMu.Lock()
	defer m.breakerMu.Unlock()
	old, known := m.breakers[destination]
	if known && old == state {
		return
	}
	if known {
		m.Breakers.WithLabelValues(breakerStates[old]).Dec()
	}
	m.breakers[destination] = state
	m.Breakers.WithLabelValues(breakerStates[state]).Inc()
}

// ForgetDestination stops counting an idle destination.
func (m *Metrics) ForgetDestination(destination string) {
	if m == nil {
		return
	}
	m.breakerMu.Lock()
	defer m.breakerMu.Unlock()
	if old, known := m.breakers[destination]; known {
		m.Breakers.WithLabelValues(breakerStates[old]).Dec()
		delete(m.breakers, destination)
	}
}

// BreakerStates returns the breaker state of each destination the
// dispatcher tracks (0 closed, 1 half-open, 2 open), for the console's
// destination view (authenticated, per project), never for /metrics.
func (m *Metrics) BreakerStates() map[string]int {
	out := map[string]int{}
	if m == nil {
		return out
	}
	m.breakerMu.Lock()
	defer m.breakerMu.Unlock()
	for d, st := range m.breakers {
		out[d] = st
	}
	return out
}

// Commit records the size of one group commit, the database round trips it
// took, and how long its writers waited from its start.
func (m *Metrics) Commit(ops, roundTrips int, took time.Duration) {
	if m != nil {
		m.CommitBatch.Observe(float64(ops))
		m.CommitTime.Observe(took.Seconds())
		m.RoundTrips.Add(float64(roundTrips))
	}
}

// ConcurrentCommits records how many group commits may be in flight at once.
func (m *Metrics) ConcurrentCommits(n int) {
	if m != nil {
		m.InFlight.Set(float64(n))
	}
}

// RecordingServed counts one answer to a download link and the recording
// bytes it sent.
func (m *Metrics) RecordingServed(outcome string, bytes int64) {
	if m != nil {
		m.Downloads.WithLabelValues(outcome).Inc()
		m.DownloadBytes.Add(float64(bytes))
	}
}
