package storetest

import (
	"regexp"
	"strings"
	"testing"
	"time"

	"github.com/livehooks/livehooks"
)

var (
	hex32     = regexp.MustCompile(`^[0-9a-f]{32}$`)
	webhookID = regexp.MustCompile(`^msg_[0-9A-Za-z]{26,32}$`)
)

var outboxTests = map[string]func(t *testing.T, s livehooks.Store){
	"EnqueueMatchesSubscription": func(t *testing.T, s livehooks.Store) {
		c := create(t, s, config("p1", "d1.example.com", "live", livehooks.RecordFileComplete, livehooks.RecordOver))
		start := event("live", "s1", livehooks.RecordStart)
		done := event("live", "s1", livehooks.RecordFileComplete)
		done.JobID, done.DownloadURL, done.FileSize, done.RecordDuration = "job1", "https://cdn.example/f.flv", 123456, 61
		done.StartTime, done.EndTime, done.Width, done.Height = at(-61), at(0), 1280, 720
		done.RecordFormat, done.AssetID, done.PlayURL = livehooks.FormatFLV, "asset1", "rtmp://play.example/live/s1"
		done.OccurredAt = at(-1).Add(250 * time.Microsecond)
		ds := enqueue(t, s, "A", at(0), start, done)
		equal(t, "deliveries", len(ds), 1)
		if !hex32.MatchString(start.ID) || !hex32.MatchString(done.ID) || start.ID == done.ID {
			t.Fatalf("event ids %q %q, want distinct 32 lowercase hex", start.ID, done.ID)
		}
		equalTime(t, "OccurredAt defaults to now", start.OccurredAt, at(0))
		d := ds[0]
		if d.ID <= 0 || !webhookID.MatchString(d.WebhookID) {
			t.Fatalf("delivery id %d, webhook id %q", d.ID, d.WebhookID)
		}
		equal(t, "WebhookID", d.WebhookID, livehooks.WebhookID(done.ID, c.ID))
		equal(t, "ProjectID", d.ProjectID, "p1")
		equal(t, "ConfigID", d.ConfigID, c.ID)
		equal(t, "Lane", d.Lane, livehooks.LaneKey(c.ID, "s1"))
		equal(t, "EventID", d.EventID, done.ID)
		equal(t, "EventType", d.EventType, livehooks.RecordFileComplete)
		equal(t, "Stream", d.Stream, "s1")
		equal(t, "Status", d.Status, livehooks.DeliveryPending)
		equal(t, "Attempts", d.Attempts, 0)
		equal(t, "LanePending", d.LanePending, 1)
		equalTime(t, "CreatedAt", d.CreatedAt, at(0))
		equalTime(t, "NextAttempt", d.NextAttempt, at(0))
		if d.Event == nil || d.Event.ID != done.ID {
			t.Fatalf("delivery event = %+v", d.Event)
		}

		// The stored delivery and event read back the same.
		ld := laneDeliveries(t, s, d.Lane)
		equalSlice(t, "lane", ids(ld), []int64{d.ID})
		equal(t, "stored webhook id", ld[0].WebhookID, d.WebhookID)
		e := ld[0].Event
		equalTime(t, "IngestedAt", e.IngestedAt, at(0))
		stored := *e
		stored.IngestedAt = time.Time{}
		equal(t, "stored event", stored, *done)
		equalTime(t, "StartTime", e.StartTime, done.StartTime)
		equalTime(t, "OccurredAt", e.OccurredAt, done.OccurredAt)
		equal(t, "pending", pending(t, s), 1)

		// Both events are kept for replay, subscribed or not.
		es, err := s.FindEvents(ctx, c, time.Time{}, time.Time{}, 10)
		if err != nil {
			t.Fatal(err)
		}
		equal(t, "stored events", len(es), 2)
		equal(t, "unsubscribed event kept", es[0].ID, start.ID)
	},
	"EnqueueExactThenWildcard": func(t *testing.T, s livehooks.Store) {
		exact := create(t, s, config("p1", "d1.example.com", "live", livehooks.RecordStart))
		wild := create(t, s, config("p1", "d1.example.com", "*", livehooks.RecordStart, livehooks.RecordOver))
		ds := enqueue(t, s, "A", at(0),
			event("live", "s1", livehooks.RecordStart),
			event("vod", "s1", livehooks.RecordStart),
			event("live", "s1", livehooks.RecordOver), // exact config not subscribed: no fallback
			event("vod", "s1", livehooks.RecordOver))
		var got []string
		for _, d := range ds {
			got = append(got, d.ConfigID+" "+string(d.EventType))
		}
		equalSlice(t, "deliveries", got, []string{
			exact.ID + " RECORD_START",
			wild.ID + " RECORD_START",
			wild.ID + " RECORD_OVER",
		})
		equal(t, "one lane per (config, stream)", ds[1].Lane, ds[2].Lane)
		equal(t, "LanePending after the call", ds[1].LanePending, 2)
	},
	"EnqueueWithoutConfig": func(t *testing.T, s livehooks.Store) {
		e := event("live", "s1", livehooks.RecordFileComplete)
		other := event("live", "s1", livehooks.RecordFileComplete)
		other.ProjectID = "p2"
		equal(t, "deliveries", len(enqueue(t, s, "A", at(0), e, other)), 0)
		equal(t, "pending", pending(t, s), 0)
		c := create(t, s, config("p1", "d1.example.com", "live"))
		es, err := s.FindEvents(ctx, c, time.Time{}, time.Time{}, 10)
		if err != nil {
			t.Fatal(err)
		}
		equal(t, "events stored without a config", len(es), 1)
		equal(t, "event", es[0].ID, e.ID)
	},
	"EnqueueIdempotentEventID": func(t *testing.T, s livehooks.Store) {
		create(t, s, config("p1", "d1.example.com", "live"))
		e := event("live", "s1", livehooks.RecordFileComplete)
		e.ID = newID()
		first := enqueue(t, s, "A", at(0), e)
		again := *e
		second := enqueue(t, s, "A", at(1), &again, &again)
		equal(t, "first", len(first), 1)
		equal(t, "repeated event id", len(second), 0)
		equal(t, "pending", pending(t, s), 1)
	},
	"EnqueueRollsBackWithWrite": func(t *testing.T, s livehooks.Store) {
		create(t, s, config("p1", "d1.example.com", "live"))
		err := s.Write(ctx, func(tx livehooks.OutboxTx) error {
			if _, err := tx.Enqueue(ctx, "A", at(0), []*livehooks.Event{event("live", "s1", livehooks.RecordFileComplete)}); err != nil {
				return err
			}
			return errBoom
		})
		if err != errBoom && (err == nil || !strings.Contains(err.Error(), "boom")) {
			t.Fatalf("Write = %v, want fn's error", err)
		}
		equal(t, "pending after rollback", pending(t, s), 0)
		equal(t, "lanes after rollback", len(claim(t, s, "A", at(3600), 10)), 0)
		// Many calls in one Write commit together.
		write(t, s, func(tx livehooks.OutboxTx) error {
			for i := 0; i < 5; i++ {
				if _, err := tx.Enqueue(ctx, "A", at(i), []*livehooks.Event{event("live", "s1", livehooks.RecordFileComplete)}); err != nil {
					return err
				}
			}
			return nil
		})
		equal(t, "pending after a batch", pending(t, s), 5)
	},
	"LaneOwnership": func(t *testing.T, s livehooks.Store) {
		c := create(t, s, config("p1", "d1.example.com", "live"))
		a := enqueue(t, s, "A", at(0), event("live", "s1", livehooks.RecordFileComplete))
		equal(t, "A's deliveries", len(a), 1)
		b := enqueue(t, s, "B", at(1), event("live", "s1", livehooks.RecordFileComplete))
		equal(t, "B's deliveries into A's lane", len(b), 0)
		a2 := enqueue(t, s, "A", at(2), event("live", "s1", livehooks.RecordFileComplete))
		equal(t, "A's deliveries into its own lane", len(a2), 1)
		equal(t, "LanePending counts B's delivery", a2[0].LanePending, 3)
		b2 := enqueue(t, s, "B", at(3), event("live", "s2", livehooks.RecordFileComplete))
		equal(t, "B's deliveries into a new lane", len(b2), 1)
		equal(t, "B's lane", b2[0].Lane, livehooks.LaneKey(c.ID, "s2"))
		lane := laneDeliveries(t, s, a[0].Lane)
		equal(t, "deliveries in A's lane", len(lane), 3)
		if !(lane[0].ID == a[0].ID && lane[0].ID < lane[1].ID && lane[1].ID < lane[2].ID && lane[2].ID == a2[0].ID) {
			t.Fatalf("lane order %v", ids(lane))
		}
		equal(t, "pending", pending(t, s), 4)
		equal(t, "lanes claimable while leased", len(claim(t, s, "C", at(4), 10)), 0)
	},
	"RecordInLaneOrder": func(t *testing.T, s livehooks.Store) {
		create(t, s, config("p1", "d1.example.com", "live"))
		ds := enqueue(t, s, "A", at(0),
			event("live", "s1", livehooks.RecordFileComplete),
			event("live", "s1", livehooks.RecordFileComplete),
			event("live", "s1", livehooks.RecordFileComplete))
		equal(t, "deliveries", len(ds), 3)
		lane := ds[0].Lane
		st := record(t, s, "A", at(2), succeeded(ds[0], at(1)))
		equal(t, "lane open after the first success", st[0], livehooks.LaneState{Lane: lane, Open: true})
		equalSlice(t, "lane", ids(laneDeliveries(t, s, lane)), ids(ds[1:]))
		st = record(t, s, "A", at(3), failed(ds[1], at(3), 400, livehooks.OutcomeFailed), failed(ds[2], at(3), 0, livehooks.OutcomeDead))
		equalSlice(t, "states after the last deliveries", st, []livehooks.LaneState{{Lane: lane}, {Lane: lane}})
		equal(t, "lane deleted", len(laneDeliveries(t, s, lane)), 0)
		equal(t, "pending", pending(t, s), 0)
		equal(t, "no lane to claim", len(claim(t, s, "A", at(3600), 10)), 0)

		d := findDelivery(t, s, "p1", ds[0].ID)
		equal(t, "status", d.Status, livehooks.DeliverySucceeded)
		equal(t, "attempts", d.Attempts, 1)
		equal(t, "last status", d.LastStatus, 200)
		equal(t, "latency ms (ingest to 2xx)", d.LatencyMS, int64(2000))
		equalTime(t, "updated", d.UpdatedAt, at(2))
		d = findDelivery(t, s, "p1", ds[1].ID)
		equal(t, "status", d.Status, livehooks.DeliveryFailed)
		equal(t, "last status", d.LastStatus, 400)
		equal(t, "latency of a failure", d.LatencyMS, int64(0))
		equal(t, "dead", findDelivery(t, s, "p1", ds[2].ID).Status, livehooks.DeliveryDead)

		// Results for final deliveries change nothing.
		st = record(t, s, "A", at(4), failed(ds[0], at(4), 500, livehooks.OutcomeFailed))
		equal(t, "state of a final delivery's lane", st[0].Open, false)
		d = findDelivery(t, s, "p1", ds[0].ID)
		equal(t, "status kept", d.Status, livehooks.DeliverySucceeded)
		equal(t, "attempts kept", len(d.AttemptsList), 1)
	},
	"RecordStatesPerResult": func(t *testing.T, s livehooks.Store) {
		create(t, s, config("p1", "d1.example.com", "live"))
		ds := enqueue(t, s, "A", at(0),
			event("live", "s1", livehooks.RecordFileComplete),
			event("live", "s1", livehooks.RecordFileComplete),
			event("live", "s2", livehooks.RecordFileComplete),
			event("live", "s2", livehooks.RecordFileComplete),
			event("live", "s3", livehooks.RecordFileComplete))
		// s1: a success then a retry of the next delivery: the lane is
		// released, and both results say so. s2 goes on; s3 is done.
		st := record(t, s, "A", at(1),
			succeeded(ds[0], at(1)),
			succeeded(ds[2], at(1)),
			retry(ds[1], at(1), at(60)),
			succeeded(ds[4], at(1)))
		equalSlice(t, "states", st, []livehooks.LaneState{
			{Lane: ds[0].Lane}, {Lane: ds[2].Lane, Open: true}, {Lane: ds[0].Lane}, {Lane: ds[4].Lane},
		})
		equal(t, "pending", pending(t, s), 2)
	},
	"RetryReleasesLane": func(t *testing.T, s livehooks.Store) {
		create(t, s, config("p1", "d1.example.com", "live"))
		ds := enqueue(t, s, "A", at(0), event("live", "s1", livehooks.RecordFileComplete), event("live", "s1", livehooks.RecordFileComplete))
		lane := ds[0].Lane
		st := record(t, s, "A", at(1), retry(ds[0], at(1), at(30)))
		equal(t, "state after retry", st[0], livehooks.LaneState{Lane: lane, Open: false})
		d := findDelivery(t, s, "p1", ds[0].ID)
		equal(t, "status", d.Status, livehooks.DeliveryPending)
		equal(t, "attempts", d.Attempts, 1)
		equal(t, "last status", d.LastStatus, 503)
		equalTime(t, "next attempt", d.NextAttempt, at(30))
		if !strings.Contains(d.LastError, "retry") {
			t.Fatalf("last error %q, want the reason", d.LastError)
		}
		equalSlice(t, "lane keeps its order", ids(laneDeliveries(t, s, lane)), ids(ds))
		equal(t, "pending", pending(t, s), 2)

		equal(t, "enqueue into a waiting lane returns nothing", len(enqueue(t, s, "A", at(2), event("live", "s1", livehooks.RecordFileComplete))), 0)
		equal(t, "not claimable before next attempt", len(claim(t, s, "B", at(29), 10)), 0)
		equalSlice(t, "claimable at next attempt", laneKeys(claim(t, s, "B", at(30), 10)), []string{lane})
		equal(t, "claimed once", len(claim(t, s, "A", at(31), 10)), 0)
		st = record(t, s, "B", at(31), succeeded(ds[0], at(31)))
		equal(t, "B's lane stays open", st[0], livehooks.LaneState{Lane: lane, Open: true})
		st = record(t, s, "A", at(31), succeeded(ds[1], at(31)))
		equal(t, "A no longer owns it", st[0], livehooks.LaneState{Lane: lane, Open: false})
		equal(t, "pending", pending(t, s), 1)
	},
	"Requeue": func(t *testing.T, s livehooks.Store) {
		c := create(t, s, config("p1", "d1.example.com", "live"))
		ds := enqueue(t, s, "A", at(0), event("live", "s1", livehooks.RecordFileComplete))
		record(t, s, "A", at(1), failed(ds[0], at(1), 404, livehooks.OutcomeFailed))
		orig := findDelivery(t, s, "p1", ds[0].ID)

		re := requeue(t, s, "A", at(10), orig)
		equal(t, "requeued", len(re), 1)
		r := re[0]
		if r.ID <= orig.ID {
			t.Fatalf("requeued id %d, want above %d", r.ID, orig.ID)
		}
		equal(t, "webhook id kept", r.WebhookID, orig.WebhookID)
		equal(t, "event kept", r.EventID, orig.EventID)
		equal(t, "config", r.ConfigID, c.ID)
		equal(t, "lane", r.Lane, orig.Lane)
		equal(t, "status", r.Status, livehooks.DeliveryPending)
		equal(t, "attempts", r.Attempts, 0)
		equal(t, "LanePending", r.LanePending, 1)
		if r.Event == nil || r.Event.ID != orig.EventID || r.Event.JobID != orig.Event.JobID {
			t.Fatalf("requeued event %+v", r.Event)
		}
		equal(t, "original untouched", findDelivery(t, s, "p1", orig.ID).Status, livehooks.DeliveryFailed)

		// Requeue into a lane owned by another node: stored, not returned.
		equal(t, "requeue by B into A's lane", len(requeue(t, s, "B", at(11), orig)), 0)
		equal(t, "pending", pending(t, s), 2)
		lane := laneDeliveries(t, s, orig.Lane)
		equal(t, "same webhook id twice in the lane", lane[0].WebhookID == lane[1].WebhookID, true)

		// Replay: a delivery built from a stored event and a config.
		es, err := s.FindEvents(ctx, c, time.Time{}, time.Time{}, 10)
		if err != nil {
			t.Fatal(err)
		}
		// Without a WebhookID it is livehooks.WebhookID(event, config).
		rp := requeue(t, s, "A", at(12), &livehooks.Delivery{ConfigID: c.ID, EventID: es[0].ID})
		equal(t, "replayed", len(rp), 1)
		equal(t, "replay webhook id", rp[0].WebhookID, livehooks.WebhookID(es[0].ID, c.ID))
		equal(t, "replay webhook id is the original's", rp[0].WebhookID, orig.WebhookID)

		// Unknown event or config, or a config of another project, fail.
		err = s.Write(ctx, func(tx livehooks.OutboxTx) error {
			_, err := tx.Requeue(ctx, "A", at(13), []*livehooks.Delivery{{ConfigID: c.ID, EventID: newID()}})
			return err
		})
		wantCode(t, err, livehooks.ENOTFOUND)
		foreign := create(t, s, config("p2", "d1.example.com", "live"))
		err = s.Write(ctx, func(tx livehooks.OutboxTx) error {
			_, err := tx.Requeue(ctx, "A", at(13), []*livehooks.Delivery{{ConfigID: foreign.ID, EventID: orig.EventID}})
			return err
		})
		wantCode(t, err, livehooks.ENOTFOUND)
		// A disabled config takes no requeue.
		if err := s.DisableCallback(ctx, "p1", c.ID, "gone"); err != nil {
			t.Fatal(err)
		}
		err = s.Write(ctx, func(tx livehooks.OutboxTx) error {
			_, err := tx.Requeue(ctx, "A", at(14), []*livehooks.Delivery{orig})
			return err
		})
		if err == nil {
			t.Fatal("requeue to a disabled config succeeded")
		}
	},
	"DomainErrorsWriteNothing": func(t *testing.T, s livehooks.Store) {
		// A group committer drops an operation that fails with a domain error
		// and commits the rest of the batch: such an error must have written
		// nothing.
		create(t, s, config("p1", "d1.example.com", "live"))
		ds := enqueue(t, s, "A", at(0), event("live", "s1", livehooks.RecordFileComplete))
		write(t, s, func(tx livehooks.OutboxTx) error {
			_, err := tx.Requeue(ctx, "A", at(1), []*livehooks.Delivery{ds[0], {ConfigID: ds[0].ConfigID, EventID: newID()}})
			wantCode(t, err, livehooks.ENOTFOUND)
			_, err = tx.Record(ctx, "A", at(1), []livehooks.Result{succeeded(ds[0], at(1)), {}})
			wantCode(t, err, livehooks.EINVALID)
			_, err = tx.Enqueue(ctx, "A", at(1), []*livehooks.Event{event("live", "s2", livehooks.RecordFileComplete), nil})
			wantCode(t, err, livehooks.EINVALID)
			return nil
		})
		equal(t, "pending", pending(t, s), 1)
		d := findDelivery(t, s, "p1", ds[0].ID)
		equal(t, "status", d.Status, livehooks.DeliveryPending)
		equal(t, "attempts", len(d.AttemptsList), 0)
		equalSlice(t, "lane", ids(laneDeliveries(t, s, ds[0].Lane)), ids(ds))
	},
	"GoneDisablesConfig": func(t *testing.T, s livehooks.Store) {
		c := create(t, s, config("p1", "d1.example.com", "live"))
		other := create(t, s, config("p1", "d1.example.com", "vod"))
		ds := enqueue(t, s, "A", at(0),
			event("live", "s1", livehooks.RecordFileComplete),
			event("live", "s1", livehooks.RecordFileComplete),
			event("live", "s2", livehooks.RecordFileComplete),
			event("vod", "s1", livehooks.RecordFileComplete))
		st := record(t, s, "A", at(1),
			succeeded(ds[2], at(1)),
			livehooks.Result{Delivery: ds[0], Attempt: livehooks.Attempt{N: 1, At: at(1), StatusCode: 410}, Outcome: livehooks.OutcomeGone, Reason: "config disabled: 410 Gone"})
		equalSlice(t, "states", st, []livehooks.LaneState{{Lane: ds[2].Lane}, {Lane: ds[0].Lane}})
		got, err := s.FindCallbackByID(ctx, "p1", c.ID)
		if err != nil {
			t.Fatal(err)
		}
		equal(t, "disabled reason", got.DisabledReason, "config disabled: 410 Gone")
		d := findDelivery(t, s, "p1", ds[0].ID)
		equal(t, "gone delivery", d.Status, livehooks.DeliveryFailed)
		equal(t, "gone status", d.LastStatus, 410)
		equal(t, "gone reason in the log", strings.Contains(d.LastError, "410 Gone"), true)
		equal(t, "sibling failed", findDelivery(t, s, "p1", ds[1].ID).Status, livehooks.DeliveryFailed)
		equal(t, "earlier success kept", findDelivery(t, s, "p1", ds[2].ID).Status, livehooks.DeliverySucceeded)
		equal(t, "other config untouched", findDelivery(t, s, "p1", ds[3].ID).Status, livehooks.DeliveryPending)
		equal(t, "pending", pending(t, s), 1)
		equal(t, "no delivery to a disabled config", len(enqueue(t, s, "A", at(2), event("live", "s1", livehooks.RecordFileComplete))), 0)
		equal(t, "other config still delivers", len(enqueue(t, s, "A", at(2), event("vod", "s1", livehooks.RecordFileComplete))), 1)
		_ = other
	},
	"ResponseTruncated": func(t *testing.T, s livehooks.Store) {
		create(t, s, config("p1", "d1.example.com", "live"))
		ds := enqueue(t, s, "A", at(0), event("live", "s1", livehooks.RecordFileComplete))
		r := failed(ds[0], at(1), 500, livehooks.OutcomeDead)
		r.Attempt.Response = strings.Repeat("é", 1000) // 2000 bytes
		r.Attempt.Error = ""
		record(t, s, "A", at(1), r)
		a := findDelivery(t, s, "p1", ds[0].ID).AttemptsList[0]
		if len(a.Response) > 1024 || len(a.Response) < 1022 || !strings.HasPrefix(r.Attempt.Response, a.Response) {
			t.Fatalf("stored response of %d bytes, want the first KiB", len(a.Response))
		}
	},
}
