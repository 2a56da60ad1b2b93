package postgres

import (
	"fmt"
	"os"
	"strconv"
	"testing"
	"time"

	"github.com/jackc/pgx/v5"

	"github.com/livehooks/livehooks"
	"github.com/livehooks/livehooks/store/storetest"
)

// BenchmarkEnqueue measures durable ingest: one Write (one transaction, one
// commit) per iteration carrying batch events, each matched to a config and
// given a delivery.
func BenchmarkEnqueue(b *testing.B) {
	for _, batch := range []int{1, 10, 100} {
		b.Run(fmt.Sprintf("batch=%d", batch), func(b *testing.B) {
			db := openTest(b, testDatabase(b), Options{})
			c := testConfig("p1", "live")
			c.Key = secretKey
			c.NotifyEventSubscription = livehooks.EventTypes
			if err := db.CreateCallback(ctx, c); err != nil {
				b.Fatal(err)
			}
			n := 0
			events := make([]*livehooks.Event, batch)
			for b.Loop() {
				for i := range events {
					n++
					events[i] = &livehooks.Event{
						ProjectID: "p1", Type: livehooks.RecordFileComplete, PublishDomain: "d1.example.com",
						App: "live", Stream: fmt.Sprintf("stream%d", n%100), TaskID: "task", JobID: "job",
						DownloadURL: "https://cdn.example/live/stream/file.flv", FileSize: 123456, RecordDuration: 60,
						StartTime: time.Now(), EndTime: time.Now(), Width: 1280, Height: 720,
					}
				}
				if err := db.Write(ctx, func(tx livehooks.OutboxTx) error {
					_, err := tx.Enqueue(ctx, "node", time.Now(), events)
					return err
				}); err != nil {
					b.Fatal(err)
				}
			}
			b.ReportMetric(float64(b.N*batch)/b.Elapsed().Seconds(), "events/s")
		})
	}
}

// BenchmarkRecord measures recording successful attempts, batch results per
// transaction.
func BenchmarkRecord(b *testing.B) {
	for _, batch := range []int{1, 10, 100} {
		b.Run(fmt.Sprintf("batch=%d", batch), func(b *testing.B) {
			db := openTest(b, testDatabase(b), Options{})
			if err := db.CreateCallback(ctx, testConfig("p1", "live")); err != nil {
				b.Fatal(err)
			}
			var ds []*livehooks.Delivery
			for len(ds) < b.N*batch {
				var events []*livehooks.Event
				for i := range 1000 {
					events = append(events, &livehooks.Event{ProjectID: "p1", Type: livehooks.RecordFileComplete,
						PublishDomain: "d1.example.com", App: "live", Stream: fmt.Sprintf("s%d", i%100)})
				}
				if err := db.Write(ctx, func(tx livehooks.OutboxTx) error {
					got, err := tx.Enqueue(ctx, "node", time.Now(), events)
					ds = append(ds, got...)
					return err
				}); err != nil {
					b.Fatal(err)
				}
			}
			b.ResetTimer()
			i := 0
			for range b.N {
				results := make([]livehooks.Result, batch)
				for j := range results {
					results[j] = livehooks.Result{Delivery: ds[i], Outcome: livehooks.OutcomeSucceeded,
						Attempt: livehooks.Attempt{At: time.Now(), StatusCode: 200, Latency: time.Millisecond, Response: "ok"}}
					i++
				}
				if err := db.Write(ctx, func(tx livehooks.OutboxTx) error {
					_, err := tx.Record(ctx, "node", time.Now(), results)
					return err
				}); err != nil {
					b.Fatal(err)
				}
			}
			b.ReportMetric(float64(b.N*batch)/b.Elapsed().Seconds(), "results/s")
		})
	}
}

// BenchmarkBacklog measures the dispatcher's and the log's reads against a
// backlog of pending deliveries (LIVEHOOKS_BENCH_BACKLOG, default 200000, in
// 1000 lanes), built with bulk SQL.
func BenchmarkBacklog(b *testing.B) {
	rows := 200000
	if v := os.Getenv("LIVEHOOKS_BENCH_BACKLOG"); v != "" {
		n, err := strconv.Atoi(v)
		if err != nil {
			b.Fatal(err)
		}
		rows = n
	}
	db := openTest(b, testDatabase(b), Options{})
	c := testConfig("p1", "live")
	if err := db.CreateCallback(ctx, c); err != nil {
		b.Fatal(err)
	}
	now := ts(time.Now())
	start := time.Now()
	err := db.writeTx(ctx, func(tx pgx.Tx) error {
		for _, q := range []struct {
			sql  string
			args []any
		}{
			{`SET LOCAL lock_timeout = 0`, nil},
			{`INSERT INTO events (uid, project_id, type, publish_domain, app, stream, occurred_at, created_at)
			 SELECT lpad(to_hex(i), 32, '0'), 'p1', 'RECORD_FILE_COMPLETE', 'd1.example.com', 'live', 's' || (i % 1000), $2, $2
			 FROM generate_series(1, $1::integer) i`, []any{rows, now}},
			{`INSERT INTO deliveries (webhook_id, project_id, config_id, lane, event_pk, event_type, stream, status, next_attempt, created_at, updated_at)
			 SELECT 'msg_' || uid, project_id, $2, $2 || '/' || stream, pk, type, stream, 'pending', $1, $1, $1 FROM events ORDER BY pk`, []any{now, c.ID}},
			{`INSERT INTO lanes (lane, config_id, pending, next_at)
			 SELECT lane, $2, COUNT(*), $1 FROM deliveries GROUP BY lane`, []any{now, c.ID}},
		} {
			if _, err := tx.Exec(ctx, q.sql, q.args...); err != nil {
				return err
			}
		}
		return nil
	})
	if err != nil {
		b.Fatal(err)
	}
	if _, err := db.pool.Exec(ctx, "ANALYZE"); err != nil {
		b.Fatal(err)
	}
	b.Logf("backlog of %d pending deliveries built in %v", rows, time.Since(start).Round(time.Millisecond))
	storetest.BenchBacklog(b, db, c.ID, rows, now)
}
