// Package storetest is the behaviour suite every livehooks.Store must pass
// (SQLite, PostgreSQL): one set of tests, run against each backend by its own
// package's tests with Run.
package storetest

import (
	"context"
	"crypto/rand"
	"encoding/hex"
	"errors"
	"fmt"
	"testing"
	"time"

	"github.com/livehooks/livehooks"
)

// Run runs the whole suite. open returns a new, empty store; it is called once
// per subtest and should arrange (with t.Cleanup) for the store to be closed.
// Subtests run in parallel.
//
// Conventions the suite fixes for every backend, beyond the interface docs:
//   - times are kept to the microsecond and returned in UTC;
//   - a zero or negative Limit (and FindEvents' limit) means livehooks.DefaultLimit;
//   - Enqueue skips an event whose ID is already stored (idempotent ingest);
//   - a delivery's WebhookID is livehooks.WebhookID(event, config), kept by
//     Requeue;
//   - an OutboxTx method that fails with EINVALID or ENOTFOUND wrote nothing
//     (a group committer drops that operation and commits the others);
//   - Record returns one LaneState per result: its lane's state after the call;
//   - an exact-app config that is disabled or not subscribed to an event's type
//     takes the event anyway (no fallback to the `*` config): it gets no delivery;
//   - DeleteCallback keeps final deliveries for the log; Purge removes them;
//   - Purge returns deliveries plus events deleted and is called until it returns 0.
func Run(t *testing.T, open func(t *testing.T) livehooks.Store) {
	suites := []struct {
		name  string
		tests map[string]func(t *testing.T, s livehooks.Store)
	}{
		{"Callbacks", callbackTests},
		{"Outbox", outboxTests},
		{"Lanes", laneTests},
		{"Log", logTests},
		{"Recording", recordingTests},
		{"FileJobs", fileJobTests},
		{"RecordingLog", recordingLogTests},
		{"Batch", batchTests},
	}
	for _, suite := range suites {
		t.Run(suite.name, func(t *testing.T) {
			t.Parallel()
			for name, test := range suite.tests {
				t.Run(name, func(t *testing.T) {
					t.Parallel()
					test(t, open(t))
				})
			}
		})
	}
}

// base is the suite's "now": a whole second, so that every backend keeps it
// exactly.
var base = time.Date(2026, 3, 4, 5, 6, 7, 0, time.UTC)

func at(seconds int) time.Time { return base.Add(time.Duration(seconds) * time.Second) }

// Keys of the suite: letters and digits, 32 or more.
const (
	key1 = "k3yOneABCDEFGHIJKLMNOPQRSTUVWXYZ0123456789"
	key2 = "anotherKey0123456789abcdefghijklmnopqrstuv"
)

func newID() string {
	var b [16]byte
	if _, err := rand.Read(b[:]); err != nil {
		panic(err)
	}
	return hex.EncodeToString(b[:])
}

var ctx = context.Background()

// config returns a valid, normalized config of project for (domain, app).
func config(project, domain, app string, subs ...livehooks.EventType) *livehooks.CallbackConfig {
	c := &livehooks.CallbackConfig{
		ID:                      newID(),
		ProjectID:               project,
		PublishDomain:           domain,
		App:                     app,
		NotifyCallbackURL:       "https://receiver.example/hooks/" + app,
		NotifyEventSubscription: subs,
		CreateTime:              base,
		UpdateTime:              base,
	}
	c.Normalize()
	return c
}

func create(t *testing.T, s livehooks.Store, c *livehooks.CallbackConfig) *livehooks.CallbackConfig {
	t.Helper()
	if err := s.CreateCallback(ctx, c); err != nil {
		t.Fatalf("CreateCallback: %v", err)
	}
	return c
}

// event returns an event of project p1 on domain d1.
func event(app, stream string, typ livehooks.EventType) *livehooks.Event {
	return &livehooks.Event{
		ProjectID:     "p1",
		Type:          typ,
		PublishDomain: "d1.example.com",
		App:           app,
		Stream:        stream,
		TaskID:        "task-" + stream,
	}
}

func write(t *testing.T, s livehooks.Store, fn func(tx livehooks.OutboxTx) error) {
	t.Helper()
	if err := s.Write(ctx, fn); err != nil {
		t.Fatalf("Write: %v", err)
	}
}

func enqueue(t *testing.T, s livehooks.Store, node string, now time.Time, events ...*livehooks.Event) []*livehooks.Delivery {
	t.Helper()
	var ds []*livehooks.Delivery
	write(t, s, func(tx livehooks.OutboxTx) (err error) {
		ds, err = tx.Enqueue(ctx, node, now, events)
		return err
	})
	return due(ds)
}

// due keeps the deliveries the caller should dispatch now: a store completes
// what Enqueue and Requeue return when Write returns.
func due(ds []*livehooks.Delivery) []*livehooks.Delivery {
	var out []*livehooks.Delivery
	for _, d := range ds {
		if d.Due {
			out = append(out, d)
		}
	}
	return out
}

func requeue(t *testing.T, s livehooks.Store, node string, now time.Time, originals ...*livehooks.Delivery) []*livehooks.Delivery {
	t.Helper()
	var ds []*livehooks.Delivery
	write(t, s, func(tx livehooks.OutboxTx) (err error) {
		ds, err = tx.Requeue(ctx, node, now, originals)
		return err
	})
	return due(ds)
}

func record(t *testing.T, s livehooks.Store, node string, now time.Time, results ...livehooks.Result) []livehooks.LaneState {
	t.Helper()
	var states []livehooks.LaneState
	write(t, s, func(tx livehooks.OutboxTx) (err error) {
		states, err = tx.Record(ctx, node, now, results)
		return err
	})
	if len(states) != len(results) {
		t.Fatalf("Record returned %d lane states for %d results", len(states), len(results))
	}
	return states
}

// claim claims lanes for node with a lease of an hour.
func claim(t *testing.T, s livehooks.Store, node string, now time.Time, max int) []livehooks.Lane {
	t.Helper()
	lanes, err := s.ClaimLanes(ctx, node, now, time.Hour, max)
	if err != nil {
		t.Fatalf("ClaimLanes: %v", err)
	}
	return lanes
}

func laneKeys(lanes []livehooks.Lane) []string {
	keys := make([]string, len(lanes))
	for i, l := range lanes {
		keys[i] = l.Key
	}
	return keys
}

func laneDeliveries(t *testing.T, s livehooks.Store, lane string) []*livehooks.Delivery {
	t.Helper()
	ds, err := s.LaneDeliveries(ctx, lane, 0, 100)
	if err != nil {
		t.Fatalf("LaneDeliveries: %v", err)
	}
	return ds
}

func ids(ds []*livehooks.Delivery) []int64 {
	out := make([]int64, len(ds))
	for i, d := range ds {
		out[i] = d.ID
	}
	return out
}

func succeeded(d *livehooks.Delivery, now time.Time) livehooks.Result {
	return livehooks.Result{
		Delivery: d,
		Attempt:  livehooks.Attempt{N: d.Attempts + 1, At: now, StatusCode: 200, Latency: 12 * time.Millisecond, Response: "ok"},
		Outcome:  livehooks.OutcomeSucceeded,
	}
}

func retry(d *livehooks.Delivery, now, next time.Time) livehooks.Result {
	return livehooks.Result{
		Delivery:    d,
		Attempt:     livehooks.Attempt{N: d.Attempts + 1, At: now, StatusCode: 503, Latency: time.Millisecond, Response: "busy"},
		Outcome:     livehooks.OutcomeRetry,
		NextAttempt: next,
		Reason:      "503: retry",
	}
}

func failed(d *livehooks.Delivery, now time.Time, code int, outcome livehooks.Outcome) livehooks.Result {
	return livehooks.Result{
		Delivery: d,
		Attempt:  livehooks.Attempt{N: d.Attempts + 1, At: now, StatusCode: code, Latency: time.Millisecond},
		Outcome:  outcome,
	}
}

func pending(t *testing.T, s livehooks.Store) int64 {
	t.Helper()
	n, err := s.PendingCount(ctx)
	if err != nil {
		t.Fatalf("PendingCount: %v", err)
	}
	return n
}

func findDelivery(t *testing.T, s livehooks.Store, project string, id int64) *livehooks.Delivery {
	t.Helper()
	d, err := s.FindDelivery(ctx, project, id)
	if err != nil {
		t.Fatalf("FindDelivery(%s, %d): %v", project, id, err)
	}
	return d
}

func wantCode(t *testing.T, err error, code string) {
	t.Helper()
	if got := livehooks.ErrorCode(err); got != code {
		t.Fatalf("error = %v (code %q), want code %q", err, got, code)
	}
}

func equal[T comparable](t *testing.T, what string, got, want T) {
	t.Helper()
	if got != want {
		t.Fatalf("%s = %v, want %v", what, got, want)
	}
}

func equalSlice[T comparable](t *testing.T, what string, got, want []T) {
	t.Helper()
	if fmt.Sprint(got) != fmt.Sprint(want) || len(got) != len(want) {
		t.Fatalf("%s = %v, want %v", what, got, want)
	}
	for i := range got {
		if got[i] != want[i] {
			t.Fatalf("%s = %v, want %v", what, got, want)
		}
	}
}

func equalTime(t *testing.T, what string, got, want time.Time) {
	t.Helper()
	if !got.Equal(want) {
		t.Fatalf("%s = %v, want %v", what, got, want)
	}
	if got.Location() != time.UTC {
		t.Fatalf("%s is in %v, want UTC", what, got.Location())
	}
}

var errBoom = errors.New("boom")
