package storetest

import (
	"testing"
	"time"

	"github.com/livehooks/livehooks"
)

// batchTests hold several operations in one Write, as a group committer
// does: a store may send them together when fn returns, and what they return
// is complete when Write returns.
var batchTests = map[string]func(t *testing.T, s livehooks.Store){
	"MixedOperations": func(t *testing.T, s livehooks.Store) {
		create(t, s, config("p1", "d1.example.com", "live"))
		old := enqueue(t, s, "A", at(0), event("live", "s2", livehooks.RecordFileComplete))
		equal(t, "old deliveries", len(old), 1)
		key := livehooks.StreamKey{ProjectID: "p1", PublishDomain: "d1.example.com", App: "live", Stream: "s1"}
		var (
			first, second []*livehooks.Delivery
			states        []livehooks.LaneState
			st            *livehooks.StreamState
		)
		write(t, s, func(tx livehooks.OutboxTx) (err error) {
			if first, err = tx.Enqueue(ctx, "A", at(1), []*livehooks.Event{
				event("live", "s1", livehooks.RecordFileComplete), event("live", "s1", livehooks.RecordFileComplete)}); err != nil {
				return err
			}
			if err := tx.PutStream(ctx, &livehooks.StreamState{StreamKey: key, State: livehooks.StreamLive, TaskID: "t1", UpdatedAt: at(1)}); err != nil {
				return err
			}
			// The last delivery of s2 succeeds, then s2 gets a new one.
			if states, err = tx.Record(ctx, "A", at(1), []livehooks.Result{succeeded(old[0], at(1))}); err != nil {
				return err
			}
			if second, err = tx.Enqueue(ctx, "A", at(1), []*livehooks.Event{
				event("live", "s2", livehooks.RecordFileComplete), event("live", "s1", livehooks.RecordFileComplete)}); err != nil {
				return err
			}
			st, err = tx.Stream(ctx, key)
			return err
		})
		equal(t, "first call's deliveries", len(due(first)), 2)
		equal(t, "second call's deliveries", len(due(second)), 2)
		all := append(append([]*livehooks.Delivery{}, first...), second...)
		for i, d := range all {
			if d.ID <= 0 || i > 0 && d.ID <= all[i-1].ID {
				t.Fatalf("delivery ids %v: want increasing in call order", ids(all))
			}
		}
		equal(t, "LanePending of s1 after the first call", first[0].LanePending, 2)
		equal(t, "LanePending of s1 after the second call", second[1].LanePending, 3)
		equal(t, "LanePending of s2 after the second call", second[0].LanePending, 1)
		equalSlice(t, "s1 in order", ids(laneDeliveries(t, s, first[0].Lane)), []int64{first[0].ID, first[1].ID, second[1].ID})
		equalSlice(t, "s2 holds the new delivery", ids(laneDeliveries(t, s, second[0].Lane)), []int64{second[0].ID})
		// The lane of s2 has a pending delivery at the end, owned by A.
		equalSlice(t, "state of s2 at the end", states, []livehooks.LaneState{{Lane: old[0].Lane, Open: true}})
		if st == nil || st.TaskID != "t1" {
			t.Fatalf("stream read after its put in the same Write: %+v", st)
		}
		equal(t, "status of the old delivery", findDelivery(t, s, "p1", old[0].ID).Status, livehooks.DeliverySucceeded)
		equal(t, "pending", pending(t, s), 4)
	},
	"DuplicateEventIDs": func(t *testing.T, s livehooks.Store) {
		create(t, s, config("p1", "d1.example.com", "live"))
		e := event("live", "s1", livehooks.RecordFileComplete)
		e.ID = newID()
		copy1, copy2 := *e, *e
		var a, b []*livehooks.Delivery
		write(t, s, func(tx livehooks.OutboxTx) (err error) {
			if a, err = tx.Enqueue(ctx, "A", at(0), []*livehooks.Event{e, &copy1}); err != nil {
				return err
			}
			b, err = tx.Enqueue(ctx, "A", at(0), []*livehooks.Event{&copy2})
			return err
		})
		equal(t, "deliveries of one event sent three times in one Write", len(due(a))+len(due(b)), 1)
		equal(t, "pending", pending(t, s), 1)
		// Stored already: enqueued again with new events, it is skipped.
		fresh := event("live", "s1", livehooks.RecordFileComplete)
		again := *e
		ds := enqueue(t, s, "A", at(1), &again, fresh)
		equal(t, "deliveries", len(ds), 1)
		equal(t, "the new event's", ds[0].EventID, fresh.ID)
		equal(t, "pending", pending(t, s), 2)
		es, err := s.FindEvents(ctx, config("p1", "d1.example.com", "live"), time.Time{}, time.Time{}, 10)
		if err != nil {
			t.Fatal(err)
		}
		equal(t, "events stored", len(es), 2)
	},
	"GoneThenEnqueue": func(t *testing.T, s livehooks.Store) {
		c := create(t, s, config("p1", "d1.example.com", "live"))
		other := create(t, s, config("p1", "d1.example.com", "vod"))
		ds := enqueue(t, s, "A", at(0), event("live", "s1", livehooks.RecordFileComplete))
		var later, kept []*livehooks.Delivery
		var states []livehooks.LaneState
		write(t, s, func(tx livehooks.OutboxTx) (err error) {
			if states, err = tx.Record(ctx, "A", at(1), []livehooks.Result{{Delivery: ds[0], Attempt: livehooks.Attempt{N: 1, At: at(1), StatusCode: 410},
				Outcome: livehooks.OutcomeGone, Reason: "config disabled: 410 Gone"}}); err != nil {
				return err
			}
			if later, err = tx.Enqueue(ctx, "A", at(1), []*livehooks.Event{event("live", "s2", livehooks.RecordFileComplete)}); err != nil {
				return err
			}
			kept, err = tx.Enqueue(ctx, "A", at(1), []*livehooks.Event{event("vod", "s1", livehooks.RecordFileComplete)})
			return err
		})
		equal(t, "state of the gone lane", states[0].Open, false)
		equal(t, "deliveries to the disabled config to send", len(due(later)), 0)
		equal(t, "deliveries to the other config", len(due(kept)), 1)
		equal(t, "other config", kept[0].ConfigID, other.ID)
		got, err := s.FindCallbackByID(ctx, "p1", c.ID)
		if err != nil {
			t.Fatal(err)
		}
		equal(t, "disabled", got.DisabledReason, "config disabled: 410 Gone")
		ps, _, err := s.FindDeliveries(ctx, livehooks.DeliveryFilter{ProjectID: "p1", ConfigID: c.ID, Status: livehooks.DeliveryPending})
		if err != nil {
			t.Fatal(err)
		}
		equal(t, "pending deliveries of the disabled config", len(ps), 0)
		equal(t, "pending", pending(t, s), 1)
		equal(t, "only the other config's lane to claim", len(claim(t, s, "B", at(3600), 10)), 1)
	},
	"RequeueSeesEnqueued": func(t *testing.T, s livehooks.Store) {
		c := create(t, s, config("p1", "d1.example.com", "live"))
		e := event("live", "s1", livehooks.RecordFileComplete)
		var first, re []*livehooks.Delivery
		write(t, s, func(tx livehooks.OutboxTx) (err error) {
			if first, err = tx.Enqueue(ctx, "A", at(0), []*livehooks.Event{e}); err != nil {
				return err
			}
			re, err = tx.Requeue(ctx, "A", at(0), []*livehooks.Delivery{{ConfigID: c.ID, EventID: e.ID}})
			return err
		})
		equal(t, "enqueued", len(due(first)), 1)
		equal(t, "requeued", len(due(re)), 1)
		equal(t, "same webhook id", re[0].WebhookID, first[0].WebhookID)
		if re[0].ID <= first[0].ID {
			t.Fatalf("requeued id %d, want above %d", re[0].ID, first[0].ID)
		}
		equal(t, "LanePending after the requeue", re[0].LanePending, 2)
		equalSlice(t, "lane", ids(laneDeliveries(t, s, first[0].Lane)), []int64{first[0].ID, re[0].ID})
	},
	"RetryThenEnqueueInOneWrite": func(t *testing.T, s livehooks.Store) {
		create(t, s, config("p1", "d1.example.com", "live"))
		ds := enqueue(t, s, "A", at(0), event("live", "s1", livehooks.RecordFileComplete))
		var later []*livehooks.Delivery
		var states []livehooks.LaneState
		write(t, s, func(tx livehooks.OutboxTx) (err error) {
			if states, err = tx.Record(ctx, "A", at(1), []livehooks.Result{retry(ds[0], at(1), at(60))}); err != nil {
				return err
			}
			later, err = tx.Enqueue(ctx, "A", at(1), []*livehooks.Event{event("live", "s1", livehooks.RecordFileComplete)})
			return err
		})
		equal(t, "state after the retry", states[0].Open, false)
		equal(t, "a delivery behind a retry is not sent now", len(due(later)), 0)
		equal(t, "pending", pending(t, s), 2)
		equal(t, "not claimable before the retry", len(claim(t, s, "B", at(59), 10)), 0)
		equalSlice(t, "claimable at the retry", laneKeys(claim(t, s, "B", at(60), 10)), []string{ds[0].Lane})
	},
	"DomainErrorAmidBatch": func(t *testing.T, s livehooks.Store) {
		create(t, s, config("p1", "d1.example.com", "live"))
		var ds []*livehooks.Delivery
		write(t, s, func(tx livehooks.OutboxTx) (err error) {
			if ds, err = tx.Enqueue(ctx, "A", at(0), []*livehooks.Event{event("live", "s1", livehooks.RecordFileComplete)}); err != nil {
				return err
			}
			_, err = tx.Requeue(ctx, "A", at(0), []*livehooks.Delivery{{ConfigID: ds[0].ConfigID, EventID: newID()}})
			wantCode(t, err, livehooks.ENOTFOUND)
			_, err = tx.Enqueue(ctx, "A", at(0), []*livehooks.Event{event("live", "s1", livehooks.RecordFileComplete)})
			return err
		})
		equal(t, "pending", pending(t, s), 2)
		equal(t, "sent now", len(due(ds)), 1)
	},
}
