package sqlite

import (
	"fmt"
	"path/filepath"
	"testing"
	"time"

	"github.com/livehooks/livehooks"
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
