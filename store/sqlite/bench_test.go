package sqlite

import (
	"database/sql"
	"fmt"
	"os"
	"path/filepath"
	"strconv"
	"testing"
	"time"

	"github.com/livehooks/livehooks"
	"github.com/livehooks/livehooks/store/storetest"
)

// BenchmarkEnqueue measures durable ingest: one Write (one transaction, one
// fsync with synchronous=FULL) per iteration carrying batch events, each
// matched to a config and given a delivery. Compare events/s across batch
// sizes to see what group commit buys.
func BenchmarkEnqueue(b *testing.B) {
	for _, sync := range []string{"FULL", "NORMAL"} {
		for _, batch := range []int{1, 10, 100} {
			b.Run(fmt.Sprintf("sync=%s/batch=%d", sync, batch), func(b *testing.B) {
				db := openTest(b, filepath.Join(b.TempDir(), "bench.db"), Options{Synchronous: sync})
				c := testConfig("p1", "live")
				c.Key = secretKey
				c.NotifyEventSubscription = livehooks.EventTypes
				if err := db.CreateCallback(ctx, c); err != nil {
					b.Fatal(err)
				}
				n := 0
				events := make([]*livehooks.Event, batch)
				b.ResetTimer()
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
					err := db.Write(ctx, func(tx livehooks.OutboxTx) error {
						_, err := tx.Enqueue(ctx, "node", time.Now(), events)
						return err
					})
					if err != nil {
						b.Fatal(err)
					}
				}
				b.ReportMetric(float64(b.N*batch)/b.Elapsed().Seconds(), "events/s")
			})
		}
	}
}

// BenchmarkRecord measures recording successful attempts, batch results per
// transaction, synchronous=FULL.
func BenchmarkRecord(b *testing.B) {
	for _, batch := range []int{1, 10, 100} {
		b.Run(fmt.Sprintf("batch=%d", batch), func(b *testing.B) {
			db := openTest(b, filepath.Join(b.TempDir(), "bench.db"), Options{})
			c := testConfig("p1", "live")
			if err := db.CreateCallback(ctx, c); err != nil {
				b.Fatal(err)
			}
			// Enough pending deliveries for every iteration, in 100 lanes.
			var ds []*livehooks.Delivery
			total := 0
			for total < b.N*batch {
				var events []*livehooks.Event
				for i := 0; i < 1000; i++ {
					events = append(events, &livehooks.Event{ProjectID: "p1", Type: livehooks.RecordFileComplete,
						PublishDomain: "d1.example.com", App: "live", Stream: fmt.Sprintf("s%d", i%100)})
				}
				err := db.Write(ctx, func(tx livehooks.OutboxTx) error {
					got, err := tx.Enqueue(ctx, "node", time.Now(), events)
					ds = append(ds, got...)
					return err
				})
				if err != nil {
					b.Fatal(err)
				}
				total += len(events)
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
				err := db.Write(ctx, func(tx livehooks.OutboxTx) error {
					_, err := tx.Record(ctx, "node", time.Now(), results)
					return err
				})
				if err != nil {
					b.Fatal(err)
				}
			}
			b.ReportMetric(float64(b.N*batch)/b.Elapsed().Seconds(), "results/s")
		})
	}
}

// BenchmarkBacklog measures the dispatcher's and the log's reads against a
// backlog of pending deliveries (LIVEHOOKS_BENCH_BACKLOG, default 200000, in
// 1000 lanes), built with bulk SQL. Run with -benchtime=100x or so; building
// 1,000,000 rows takes a while.
func BenchmarkBacklog(b *testing.B) {
	rows := 200000
	if v := os.Getenv("LIVEHOOKS_BENCH_BACKLOG"); v != "" {
		n, err := strconv.Atoi(v)
		if err != nil {
			b.Fatal(err)
		}
		rows = n
	}
	db := openTest(b, filepath.Join(b.TempDir(), "bench.db"), Options{Synchronous: "NORMAL"})
	c := testConfig("p1", "live")
	if err := db.CreateCallback(ctx, c); err != nil {
		b.Fatal(err)
	}
	now := time.Now()
	start := time.Now()
	err := db.writeTx(ctx, func(tx *sql.Tx) error {
		for _, q := range []string{
			`WITH RECURSIVE n(i) AS (SELECT 1 UNION ALL SELECT i+1 FROM n WHERE i < ?1)
			 INSERT INTO events (uid, project_id, type, publish_domain, app, stream, occurred_at, created_at)
			 SELECT printf('%032x', i), 'p1', 'RECORD_FILE_COMPLETE', 'd1.example.com', 'live', 's' || (i % 1000), ?2, ?2 FROM n`,
			`INSERT INTO deliveries (webhook_id, project_id, config_id, lane, event_pk, event_type, stream, status, next_attempt, created_at, updated_at)
			 SELECT 'msg_' || uid, project_id, ?3, ?3 || '/' || stream, pk, type, stream, 'pending', ?2, ?2, ?2 FROM events ORDER BY pk`,
		} {
			if _, err := tx.ExecContext(ctx, q, rows, micros(now), c.ID); err != nil {
				return err
			}
		}
		return nil
	})
	if err != nil {
		b.Fatal(err)
	}
	if _, err := db.write.Exec("ANALYZE"); err != nil {
		b.Fatal(err)
	}
	// The rows were written behind the write path's back: its id counters
	// continue after them and its lanes are read from them, as after a
	// reopen.
	if err := db.loadIDs(ctx); err != nil {
		b.Fatal(err)
	}
	built := time.Since(start)
	start = time.Now()
	if err := db.lanes.load(ctx, db); err != nil {
		b.Fatal(err)
	}
	b.Logf("backlog of %d pending deliveries built in %v, its lanes loaded in %v", rows,
		built.Round(time.Millisecond), time.Since(start).Round(time.Millisecond))
	storetest.BenchBacklog(b, db, c.ID, rows, now)
}
