// Package delivery sends callbacks: the Dispatcher takes deliveries from the
// outbox (at once for new events, by lease for retries and recovery), keeps
// each (config, stream) lane in order, isolates destinations with concurrency
// limits and circuit breakers, and records every attempt; the Sender signs and
// posts one callback through an SSRF-guarded HTTP client.
package delivery
