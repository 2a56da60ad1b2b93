package sqlite

import (
	"context"
	"path/filepath"
	"strconv"
	"testing"
	"time"

	"github.com/livehooks/livehooks"
)

// TestLanesAfterReopen: lanes live in memory, so a store that opens derives
// them from the pending deliveries: every lane with pending deliveries, free,
// counting them, due when its head is (a retry's next attempt), and none for
// settled or disabled work.
func TestLanesAfterReopen(t *testing.T) {
	t.Parallel()
	ctx := context.Background()
	path := filepath.Join(t.TempDir(), "livehooks.db")
	db := openTest(t, path, Options{})
	c, off := testConfig("p1", "live"), testConfig("p1", "off")
	for _, cfg := range []*livehooks.CallbackConfig{c, off} {
		if err := db.CreateCallback(ctx, cfg); err != nil {
			t.Fatal(err)
		}
	}
	now := time.Now().Truncate(time.Microsecond)
	ev := func(app, stream string) *livehooks.Event {
		return &livehooks.Event{ProjectID: "p1", Type: livehooks.RecordFileComplete, PublishDomain: "d1.example.com", App: app, Stream: stream}
	}
	var ds []*livehooks.Delivery
	err := db.Write(ctx, func(tx livehooks.OutboxTx) error {
		var err error
		ds, err = tx.Enqueue(ctx, "n1", now, []*livehooks.Event{
			ev("live", "a"), ev("live", "a"), ev("live", "b"), ev("live", "b"), ev("live", "c"), ev("off", "x"),
		})
		return err
	})
	if err != nil || len(ds) != 6 {
		t.Fatalf("enqueue: %d deliveries, %v", len(ds), err)
	}
	retryAt := now.Add(time.Hour)
	err = db.Write(ctx, func(tx livehooks.OutboxTx) error {
		_, err := tx.Record(ctx, "n1", now, []livehooks.Result{
			{Delivery: ds[2], Outcome: livehooks.OutcomeRetry, NextAttempt: retryAt, Attempt: livehooks.Attempt{N: 1, At: now, StatusCode: 503}},
			{Delivery: ds[4], Outcome: livehooks.OutcomeSucceeded, Attempt: livehooks.Attempt{N: 1, At: now, StatusCode: 200}},
		})
		return err
	})
	if err != nil {
		t.Fatal(err)
	}
	if err := db.DisableCallback(ctx, "p1", off.ID, "test"); err != nil {
		t.Fatal(err)
	}
	if n, err := db.PendingCount(ctx); err != nil || n != 4 {
		t.Fatalf("pending before the reopen: %d, %v; want 4", n, err)
	}
	before := lanesOf(db)
	db.Close()

	db = openTest(t, path, Options{})
	after := lanesOf(db)
	want := map[string]memLane{
		livehooks.LaneKey(c.ID, "a"): {config: c.ID, pending: 2, nextAt: micros(now)},
		// Due when its head is, not when the delivery behind it was made.
		livehooks.LaneKey(c.ID, "b"): {config: c.ID, pending: 2, nextAt: micros(retryAt)},
	}
	if len(after) != len(want) {
		t.Fatalf("lanes after the reopen: %+v, want %+v", after, want)
	}
	for k, w := range want {
		if after[k] != w {
			t.Errorf("lane %s after the reopen: %+v, want %+v", k, after[k], w)
		}
		// What the store held in memory, less the lease, which went with
		// the process.
		b := before[k]
		b.owned, b.owner, b.leaseUntil = false, "", 0
		if b != w {
			t.Errorf("lane %s before the reopen: %+v, want %+v", k, b, w)
		}
	}
	if n, err := db.PendingCount(ctx); err != nil || n != 4 {
		t.Fatalf("pending after the reopen: %d, %v; want 4", n, err)
	}
	lanes, err := db.ClaimLanes(ctx, "n2", now.Add(time.Second), 2*time.Hour, 10)
	if err != nil || len(lanes) != 1 || lanes[0].Key != livehooks.LaneKey(c.ID, "a") {
		t.Fatalf("claim after the reopen: %v, %v; want only the due lane", lanes, err)
	}
	lanes, err = db.ClaimLanes(ctx, "n2", retryAt, time.Minute, 10)
	if err != nil || len(lanes) != 1 || lanes[0].Key != livehooks.LaneKey(c.ID, "b") {
		t.Fatalf("claim at the retry: %v, %v; want the retried lane", lanes, err)
	}
}

func lanesOf(db *DB) map[string]memLane {
	db.lanes.mu.Lock()
	defer db.lanes.mu.Unlock()
	out := map[string]memLane{}
	for k, l := range db.lanes.m {
		out[k] = *l
	}
	return out
}

// TestLanesFollowTheDeliveries: with group commits, results, claims and
// config changes racing, the lanes in memory end where the pending
// deliveries say (the lanes view): each transaction's lane changes are
// applied in its commit order.
func TestLanesFollowTheDeliveries(t *testing.T) {
	t.Parallel()
	ctx := context.Background()
	db := openTest(t, filepath.Join(t.TempDir(), "livehooks.db"), Options{Synchronous: "NORMAL"})
	const rounds = 40
	done := make(chan error, 3)
	// Configs come and go: each is created, takes events, and is disabled or
	// deleted half-way through them, while the writer below goes on
	// enqueuing to it.
	configs := make(chan *livehooks.CallbackConfig)
	half := make(chan struct{})
	go func() {
		defer close(configs)
		for i := range rounds {
			c := testConfig("p1", "app"+strconv.Itoa(i))
			if err := db.CreateCallback(ctx, c); err != nil {
				done <- err
				return
			}
			configs <- c
			<-half
			var err error
			switch {
			case i == rounds-1: // the last one keeps its lanes
			case i%2 == 0:
				err = db.DisableCallback(ctx, "p1", c.ID, "test")
			default:
				err = db.DeleteCallback(ctx, "p1", c.ID)
			}
			if err != nil {
				done <- err
				return
			}
		}
		done <- nil
	}()
	deliveries := make(chan *livehooks.Delivery, 100000)
	go func() {
		defer close(deliveries)
		for c := range configs {
			for i := range 20 {
				var ds []*livehooks.Delivery
				err := db.Write(ctx, func(tx livehooks.OutboxTx) error {
					var err error
					ds, err = tx.Enqueue(ctx, "n1", time.Now(), []*livehooks.Event{
						{ProjectID: "p1", Type: livehooks.RecordFileComplete, PublishDomain: c.PublishDomain, App: c.App, Stream: string(rune('a' + i%5))},
					})
					return err
				})
				if err != nil {
					done <- err
					return
				}
				for _, d := range ds {
					deliveries <- d
				}
				if i == 10 {
					half <- struct{}{}
				}
			}
		}
		done <- nil
	}()
	go func() {
		n := 0
		for d := range deliveries {
			n++
			outcome := livehooks.OutcomeSucceeded
			if n%3 == 0 {
				outcome = livehooks.OutcomeRetry
			}
			err := db.Write(ctx, func(tx livehooks.OutboxTx) error {
				_, err := tx.Record(ctx, "n1", time.Now(), []livehooks.Result{{Delivery: d, Outcome: outcome,
					NextAttempt: time.Now().Add(time.Minute), Attempt: livehooks.Attempt{N: 1, At: time.Now(), StatusCode: 200}}})
				return err
			})
			if err != nil {
				done <- err
				return
			}
			if _, err := db.ClaimLanes(ctx, "n2", time.Now(), time.Minute, 5); err != nil {
				done <- err
				return
			}
		}
		done <- nil
	}()
	for range 3 {
		if err := <-done; err != nil {
			t.Fatal(err)
		}
	}
	rows, err := db.read.QueryContext(ctx, `SELECT lane, config_id, pending FROM lanes`)
	if err != nil {
		t.Fatal(err)
	}
	defer rows.Close()
	want := map[string]memLane{}
	var total int64
	for rows.Next() {
		var (
			k string
			l memLane
		)
		if err := rows.Scan(&k, &l.config, &l.pending); err != nil {
			t.Fatal(err)
		}
		want[k] = l
		total += int64(l.pending)
	}
	if err := rows.Err(); err != nil {
		t.Fatal(err)
	}
	if len(want) == 0 {
		t.Fatal("no lane left to compare: the last config should keep its lanes")
	}
	got := lanesOf(db)
	for k, l := range got {
		if w := want[k]; l.config != w.config || l.pending != w.pending {
			t.Errorf("lane %s in memory: %s with %d pending; the deliveries say %s with %d", k, l.config, l.pending, w.config, w.pending)
		}
	}
	for k := range want {
		if _, ok := got[k]; !ok {
			t.Errorf("lane %s has pending deliveries but is not in memory", k)
		}
	}
	if n, err := db.PendingCount(ctx); err != nil || n != total {
		t.Errorf("pending count %d (%v), the deliveries say %d", n, err, total)
	}
}

// TestEmptyNodeIDOwnsItsLanes: a lane's lease is held or not whatever the
// holder's id, the empty one included.
func TestEmptyNodeIDOwnsItsLanes(t *testing.T) {
	t.Parallel()
	ctx := context.Background()
	db := openTest(t, filepath.Join(t.TempDir(), "livehooks.db"), Options{})
	c := testConfig("p1", "live")
	if err := db.CreateCallback(ctx, c); err != nil {
		t.Fatal(err)
	}
	now := time.Now()
	var ds []*livehooks.Delivery
	err := db.Write(ctx, func(tx livehooks.OutboxTx) error {
		var err error
		ds, err = tx.Enqueue(ctx, "", now, []*livehooks.Event{{ProjectID: "p1", Type: livehooks.RecordFileComplete,
			PublishDomain: c.PublishDomain, App: c.App, Stream: "s"}})
		return err
	})
	if err != nil || len(ds) != 1 || !ds[0].Due {
		t.Fatalf("enqueue by node \"\": %+v, %v; want one due delivery", ds, err)
	}
	if lanes, err := db.ClaimLanes(ctx, "other", now, time.Minute, 10); err != nil || len(lanes) != 0 {
		t.Fatalf("another node claimed %v (%v) while node \"\" holds the lane", lanes, err)
	}
}
