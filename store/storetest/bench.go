package storetest

import (
	"context"
	"fmt"
	"testing"
	"time"

	"github.com/livehooks/livehooks"
)

// BenchBacklog times what the dispatcher and the API do against a store
// holding a backlog of rows pending deliveries of config configID (project
// "p1", domain d1.example.com, app live, streams s0…), built and analyzed by
// the backend's own benchmark: each must stay flat however large the backlog.
func BenchBacklog(b *testing.B, s livehooks.Store, configID string, rows int, now time.Time) {
	ctx := context.Background()
	lane := livehooks.LaneKey(configID, "s7")
	b.Run("PendingCount", func(b *testing.B) {
		for b.Loop() {
			if n, err := s.PendingCount(ctx); err != nil || n != int64(rows) {
				b.Fatal(n, err)
			}
		}
	})
	b.Run("LaneDeliveries", func(b *testing.B) {
		for b.Loop() {
			if ds, err := s.LaneDeliveries(ctx, lane, 0, 100); err != nil || len(ds) == 0 {
				b.Fatal(len(ds), err)
			}
		}
	})
	b.Run("ClaimAndReleaseLanes", func(b *testing.B) {
		for b.Loop() {
			if ls, err := s.ClaimLanes(ctx, "n", now.Add(time.Second), time.Minute, 10); err != nil || len(ls) != 10 {
				b.Fatal(len(ls), err)
			}
			if err := s.ReleaseLanes(ctx, "n"); err != nil {
				b.Fatal(err)
			}
		}
	})
	b.Run("FindDeliveriesPage", func(b *testing.B) {
		for b.Loop() {
			if ds, _, err := s.FindDeliveries(ctx, livehooks.DeliveryFilter{ProjectID: "p1", ConfigID: configID, Limit: 20}); err != nil || len(ds) != 20 {
				b.Fatal(len(ds), err)
			}
		}
	})
	// The console's delivery log: keyset pages (no count) deep in the log,
	// filtered by what an operator looks for. Each must stay flat too.
	var mid int64
	if ds, _, err := s.FindDeliveries(ctx, livehooks.DeliveryFilter{ProjectID: "p1", Limit: 1, Offset: rows / 2}); err != nil || len(ds) != 1 {
		b.Fatal(len(ds), err)
	} else {
		mid = ds[0].ID
	}
	// The API bounds each page to a window of 5000 ids (api.scanWindow) and
	// seeks times by binary search on ids (one-row seeks): a filter that
	// matches nothing costs one window, not a walk of the whole log.
	for _, page := range []struct {
		name  string
		f     livehooks.DeliveryFilter
		limit int
		want  int // rows the page must find; 0 when none match
	}{
		{"LogPageDeep", livehooks.DeliveryFilter{ConfigID: configID, BeforeID: mid}, 20, 20},
		{"LogPageStream", livehooks.DeliveryFilter{Stream: "s7", BeforeID: mid}, 20, 20},
		{"LogSeek", livehooks.DeliveryFilter{ConfigID: configID, BeforeID: mid}, 1, 1},
		{"LogPageStatusNoneInWindow", livehooks.DeliveryFilter{Status: livehooks.DeliveryFailed, BeforeID: mid, MinID: mid - 5000}, 20, 0},
		{"LogPageStatusNoneUnbounded", livehooks.DeliveryFilter{Status: livehooks.DeliveryFailed}, 20, 0},
	} {
		b.Run(page.name, func(b *testing.B) {
			f := page.f
			f.ProjectID, f.Limit, f.NoTotal = "p1", page.limit, true
			for b.Loop() {
				if ds, _, err := s.FindDeliveries(ctx, f); err != nil || len(ds) != page.want {
					b.Fatal(len(ds), err)
				}
			}
		})
	}
	b.Run("Enqueue100", func(b *testing.B) {
		events := make([]*livehooks.Event, 100)
		for b.Loop() {
			for i := range events {
				events[i] = &livehooks.Event{ProjectID: "p1", Type: livehooks.RecordFileComplete,
					PublishDomain: "d1.example.com", App: "live", Stream: fmt.Sprintf("s%d", i*10)}
			}
			if err := s.Write(ctx, func(tx livehooks.OutboxTx) error {
				_, err := tx.Enqueue(ctx, "n", time.Now(), events)
				return err
			}); err != nil {
				b.Fatal(err)
			}
		}
	})
}
