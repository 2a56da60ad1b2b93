package storetest

import (
	"fmt"
	"testing"
	"time"

	"github.com/livehooks/livehooks"
)

var logTests = map[string]func(t *testing.T, s livehooks.Store){
	"FindDeliveries": func(t *testing.T, s livehooks.Store) {
		c1 := create(t, s, config("p1", "d1.example.com", "live", livehooks.EventTypes...))
		c2 := create(t, s, config("p1", "d1.example.com", "*", livehooks.EventTypes...))
		create(t, s, config("p2", "d1.example.com", "live", livehooks.EventTypes...))
		var all []*livehooks.Delivery // in id order
		for i := 0; i < 6; i++ {
			typ := livehooks.RecordFileComplete
			if i%2 == 1 {
				typ = livehooks.RecordStart
			}
			ds := enqueue(t, s, "A", at(i*10), event("live", fmt.Sprintf("s%d", i%3), typ))
			all = append(all, ds...)
		}
		all = append(all, enqueue(t, s, "A", at(60), event("vod", "s0", livehooks.RecordOver))...)
		foreign := event("live", "s0", livehooks.RecordOver)
		foreign.ProjectID = "p2"
		enqueue(t, s, "A", at(60), foreign)
		record(t, s, "A", at(61), succeeded(all[0], at(61)), failed(all[3], at(61), 404, livehooks.OutcomeFailed))

		find := func(f livehooks.DeliveryFilter) ([]int64, int) {
			t.Helper()
			if f.ProjectID == "" {
				f.ProjectID = "p1"
			}
			if f.Limit == 0 {
				f.Limit = 100
			}
			ds, total, err := s.FindDeliveries(ctx, f)
			if err != nil {
				t.Fatal(err)
			}
			for _, d := range ds {
				equal(t, "project", d.ProjectID, f.ProjectID)
			}
			return ids(ds), total
		}
		rev := func(ds ...*livehooks.Delivery) []int64 {
			out := ids(ds)
			for i, j := 0, len(out)-1; i < j; i, j = i+1, j-1 {
				out[i], out[j] = out[j], out[i]
			}
			return out
		}
		got, total := find(livehooks.DeliveryFilter{})
		equalSlice(t, "all, newest first", got, rev(all...))
		equal(t, "total", total, 7)
		got, total = find(livehooks.DeliveryFilter{ConfigID: c1.ID, Limit: 2, Offset: 1})
		equalSlice(t, "config page", got, rev(all[3], all[4]))
		equal(t, "config total", total, 6)
		got, _ = find(livehooks.DeliveryFilter{ConfigID: c2.ID})
		equalSlice(t, "other config", got, rev(all[6]))
		got, total = find(livehooks.DeliveryFilter{Status: livehooks.DeliveryPending})
		equalSlice(t, "pending", got, rev(all[1], all[2], all[4], all[5], all[6]))
		equal(t, "pending total", total, 5)
		got, _ = find(livehooks.DeliveryFilter{Status: livehooks.DeliveryFailed})
		equalSlice(t, "failed", got, rev(all[3]))
		got, _ = find(livehooks.DeliveryFilter{EventType: livehooks.RecordStart})
		equalSlice(t, "event type", got, rev(all[1], all[3], all[5]))
		got, _ = find(livehooks.DeliveryFilter{Stream: "s0"})
		equalSlice(t, "stream", got, rev(all[0], all[3], all[6]))
		got, total = find(livehooks.DeliveryFilter{Since: at(10), Until: at(40)})
		equalSlice(t, "created in [since, until)", got, rev(all[1], all[2], all[3]))
		equal(t, "range total", total, 3)
		got, total = find(livehooks.DeliveryFilter{ConfigID: c1.ID, Stream: "s0", EventType: livehooks.RecordStart})
		equalSlice(t, "combined filters", got, rev(all[3]))
		equal(t, "combined total", total, 1)
		got, total = find(livehooks.DeliveryFilter{ProjectID: "p2"})
		equal(t, "other project", len(got), 1)
		equal(t, "other project total", total, 1)
		// Keyset paging: the page after a delivery id, without counting.
		got, total = find(livehooks.DeliveryFilter{BeforeID: all[4].ID, Limit: 2, NoTotal: true})
		equalSlice(t, "before id", got, rev(all[2], all[3]))
		equal(t, "no total", total, -1)
		got, _ = find(livehooks.DeliveryFilter{BeforeID: all[2].ID, Stream: "s0", Limit: 2, NoTotal: true})
		equalSlice(t, "before id with a filter", got, rev(all[0]))
		got, _ = find(livehooks.DeliveryFilter{BeforeID: all[5].ID, MinID: all[2].ID, NoTotal: true})
		equalSlice(t, "id window", got, rev(all[2], all[3], all[4]))
		ds, total, err := s.FindDeliveries(ctx, livehooks.DeliveryFilter{ProjectID: "p3"})
		if err != nil || len(ds) != 0 || total != 0 {
			t.Fatalf("unknown project: %v %d %v", ds, total, err)
		}
	},
	"FindDeliveryAttempts": func(t *testing.T, s livehooks.Store) {
		create(t, s, config("p1", "d1.example.com", "live"))
		ds := enqueue(t, s, "A", at(0), event("live", "s1", livehooks.RecordFileComplete))
		r1 := retry(ds[0], at(1), at(5))
		r1.Attempt.Error, r1.Attempt.StatusCode, r1.Attempt.Response = "dial tcp: connection refused", 0, ""
		record(t, s, "A", at(1), r1)
		record(t, s, "B", at(6), retry(ds[0], at(6), at(20)))
		ok := succeeded(ds[0], at(21))
		ok.Attempt.Latency = 1500 * time.Microsecond
		record(t, s, "B", at(21), ok)

		d := findDelivery(t, s, "p1", ds[0].ID)
		equal(t, "status", d.Status, livehooks.DeliverySucceeded)
		equal(t, "attempts", d.Attempts, 3)
		equal(t, "latency", d.LatencyMS, int64(21000))
		equal(t, "webhook id", d.WebhookID, ds[0].WebhookID)
		if d.Event == nil || d.Event.ID != ds[0].EventID {
			t.Fatalf("event %+v", d.Event)
		}
		equal(t, "attempts listed", len(d.AttemptsList), 3)
		a := d.AttemptsList
		for i, want := range []struct {
			at     time.Time
			status int
			err    string
			resp   string
		}{
			{at(1), 0, "dial tcp: connection refused", ""},
			{at(6), 503, "", "busy"},
			{at(21), 200, "", "ok"},
		} {
			equal(t, "attempt number", a[i].N, i+1)
			equalTime(t, "attempt time", a[i].At, want.at)
			equal(t, "attempt status", a[i].StatusCode, want.status)
			equal(t, "attempt error", a[i].Error, want.err)
			equal(t, "attempt response", a[i].Response, want.resp)
		}
		equal(t, "attempt latency", a[2].Latency, 1500*time.Microsecond)

		_, err := s.FindDelivery(ctx, "p2", ds[0].ID)
		wantCode(t, err, livehooks.ENOTFOUND)
		_, err = s.FindDelivery(ctx, "p1", ds[0].ID+1000)
		wantCode(t, err, livehooks.ENOTFOUND)
	},
	"FindEvents": func(t *testing.T, s livehooks.Store) {
		exact := create(t, s, config("p1", "d1.example.com", "live"))
		wild := create(t, s, config("p1", "d1.example.com", "*"))
		var live, all []string
		for i := 0; i < 6; i++ {
			app := "live"
			if i%2 == 1 {
				app = "vod"
			}
			e := event(app, "s1", livehooks.RecordStart)
			enqueue(t, s, "A", at(i*10), e)
			all = append(all, e.ID)
			if app == "live" {
				live = append(live, e.ID)
			}
		}
		otherDomain := event("live", "s1", livehooks.RecordStart)
		otherDomain.PublishDomain = "d2.example.com"
		otherProject := event("live", "s1", livehooks.RecordStart)
		otherProject.ProjectID = "p2"
		enqueue(t, s, "A", at(15), otherDomain, otherProject)

		find := func(c *livehooks.CallbackConfig, since, until time.Time, limit int) []string {
			t.Helper()
			es, err := s.FindEvents(ctx, c, since, until, limit)
			if err != nil {
				t.Fatal(err)
			}
			out := make([]string, len(es))
			for i, e := range es {
				out[i] = e.ID
			}
			return out
		}
		equalSlice(t, "exact app, all time", find(exact, time.Time{}, time.Time{}, 100), live)
		equalSlice(t, "wildcard, all time", find(wild, time.Time{}, time.Time{}, 100), all)
		equalSlice(t, "[since, until)", find(wild, at(10), at(40), 100), all[1:4])
		equalSlice(t, "exact app in range", find(exact, at(10), at(40), 100), live[1:2])
		equalSlice(t, "limit, oldest first", find(wild, at(10), time.Time{}, 2), all[1:3])
		equal(t, "empty range", len(find(wild, at(100), at(200), 100)), 0)
	},
	"PendingCount": func(t *testing.T, s livehooks.Store) {
		equal(t, "empty store", pending(t, s), 0)
		create(t, s, config("p1", "d1.example.com", "live"))
		ds := enqueue(t, s, "A", at(0),
			event("live", "s1", livehooks.RecordFileComplete),
			event("live", "s1", livehooks.RecordFileComplete),
			event("live", "s2", livehooks.RecordFileComplete),
			event("live", "s3", livehooks.RecordStart))
		enqueue(t, s, "B", at(1), event("live", "s1", livehooks.RecordFileComplete))
		equal(t, "pending", pending(t, s), 4)
		record(t, s, "A", at(2), succeeded(ds[0], at(2)), retry(ds[1], at(2), at(60)), failed(ds[2], at(2), 400, livehooks.OutcomeFailed))
		equal(t, "pending after results", pending(t, s), 2)
	},
	"Purge": func(t *testing.T, s livehooks.Store) {
		c := create(t, s, config("p1", "d1.example.com", "live"))
		var old []*livehooks.Delivery
		for i := 0; i < 5; i++ {
			old = append(old, enqueue(t, s, "A", at(0), event("live", fmt.Sprintf("s%d", i), livehooks.RecordFileComplete))...)
		}
		for _, d := range old[:4] {
			record(t, s, "A", at(10), succeeded(d, at(10)))
		}
		// old[4] stays pending. An event without deliveries is old too.
		enqueue(t, s, "A", at(0), event("live", "x", livehooks.RecordStart))
		// A recent final delivery of an old event (a replay) keeps the event.
		replay := requeue(t, s, "A", at(100), findDelivery(t, s, "p1", old[3].ID))
		record(t, s, "A", at(100), succeeded(replay[0], at(100)))
		recent := enqueue(t, s, "A", at(100), event("live", "r", livehooks.RecordFileComplete))
		record(t, s, "A", at(101), succeeded(recent[0], at(101)))

		total := 0
		for i := 0; ; i++ {
			n, err := s.Purge(ctx, at(50), 2)
			if err != nil {
				t.Fatal(err)
			}
			if n == 0 {
				break
			}
			if n > 4 {
				t.Fatalf("Purge with limit 2 deleted %d rows", n)
			}
			total += n
			if i > 20 {
				t.Fatal("Purge does not finish")
			}
		}
		// 4 deliveries, the 3 events only they referenced, the event without deliveries.
		equal(t, "rows purged", total, 8)
		for _, d := range old[:4] {
			_, err := s.FindDelivery(ctx, "p1", d.ID)
			wantCode(t, err, livehooks.ENOTFOUND)
		}
		equal(t, "pending delivery kept", findDelivery(t, s, "p1", old[4].ID).Status, livehooks.DeliveryPending)
		equal(t, "replayed delivery kept", findDelivery(t, s, "p1", replay[0].ID).Event.ID, old[3].EventID)
		findDelivery(t, s, "p1", recent[0].ID)
		es, err := s.FindEvents(ctx, c, time.Time{}, time.Time{}, 100)
		if err != nil {
			t.Fatal(err)
		}
		var got []string
		for _, e := range es {
			got = append(got, e.ID)
		}
		equalSlice(t, "events left", got, []string{old[3].EventID, old[4].EventID, recent[0].EventID})
		equal(t, "pending", pending(t, s), 1)
	},
}
