package storetest

import (
	"fmt"
	"sort"
	"sync"
	"testing"
	"time"

	"github.com/livehooks/livehooks"
)

// lanesOf enqueues one event on each of n streams by node at now and returns
// the lane keys in stream order.
func lanesOf(t *testing.T, s livehooks.Store, node string, now time.Time, n int) []string {
	t.Helper()
	var events []*livehooks.Event
	for i := 0; i < n; i++ {
		events = append(events, event("live", fmt.Sprintf("s%03d", i), livehooks.RecordFileComplete))
	}
	ds := enqueue(t, s, node, now, events...)
	if len(ds) != n {
		t.Fatalf("enqueued %d deliveries, want %d", len(ds), n)
	}
	keys := make([]string, n)
	for i, d := range ds {
		keys[i] = d.Lane
	}
	return keys
}

func sorted(keys []string) []string {
	out := append([]string(nil), keys...)
	sort.Strings(out)
	return out
}

var laneTests = map[string]func(t *testing.T, s livehooks.Store){
	"ExpiredLeaseIsClaimable": func(t *testing.T, s livehooks.Store) {
		create(t, s, config("p1", "d1.example.com", "live"))
		keys := lanesOf(t, s, "A", at(0), 3)
		// Enqueue leases new lanes for the store's default lease (30 s or more).
		equal(t, "claimable while A's lease runs", len(claim(t, s, "B", at(1), 10)), 0)
		got := claim(t, s, "B", at(3600), 10)
		equalSlice(t, "claimed after expiry", sorted(laneKeys(got)), sorted(keys))
		for _, l := range got {
			if l.ConfigID == "" || l.Key[:len(l.ConfigID)] != l.ConfigID {
				t.Fatalf("lane %+v: ConfigID does not match the key", l)
			}
		}
		equal(t, "claimed again within B's lease", len(claim(t, s, "A", at(3601), 10)), 0)
		equal(t, "claimable after B's lease", len(claim(t, s, "A", at(7201), 10)), 3)
	},
	"ClaimOrderAndMax": func(t *testing.T, s livehooks.Store) {
		create(t, s, config("p1", "d1.example.com", "live"))
		var keys []string
		// Lanes due at different times: each enqueued, then retried to next.
		for i, next := range []int{50, 10, 40, 20, 30} {
			ds := enqueue(t, s, "A", at(0), event("live", fmt.Sprintf("s%d", i), livehooks.RecordFileComplete))
			record(t, s, "A", at(1), retry(ds[0], at(1), at(next)))
			keys = append(keys, ds[0].Lane)
		}
		equal(t, "nothing due yet", len(claim(t, s, "B", at(9), 10)), 0)
		equalSlice(t, "due lanes, earliest first", laneKeys(claim(t, s, "B", at(35), 2)), []string{keys[1], keys[3]})
		equalSlice(t, "the next due lane", laneKeys(claim(t, s, "C", at(35), 10)), []string{keys[4]})
		equalSlice(t, "the rest", laneKeys(claim(t, s, "C", at(100), 10)), []string{keys[2], keys[0]})
		equal(t, "max 0", len(claim(t, s, "D", at(1000), 0)), 0)
	},
	"RenewLeases": func(t *testing.T, s livehooks.Store) {
		create(t, s, config("p1", "d1.example.com", "live"))
		keys := lanesOf(t, s, "A", at(0), 2)
		lanesOf2 := enqueue(t, s, "B", at(0), event("live", "b1", livehooks.RecordFileComplete))
		if err := s.RenewLeases(ctx, "A", at(7200)); err != nil {
			t.Fatal(err)
		}
		equalSlice(t, "only B's lane expired", laneKeys(claim(t, s, "C", at(3600), 10)), []string{lanesOf2[0].Lane})
		equal(t, "A's lanes within the renewed lease", len(claim(t, s, "D", at(7199), 10)), 0)
		// By then C's lease on B's lane has expired as well.
		equalSlice(t, "A's lanes after the renewed lease", sorted(laneKeys(claim(t, s, "D", at(7201), 10))), sorted(append(keys, lanesOf2[0].Lane)))
	},
	"ReleaseLanes": func(t *testing.T, s livehooks.Store) {
		create(t, s, config("p1", "d1.example.com", "live"))
		keys := lanesOf(t, s, "A", at(0), 2)
		other := enqueue(t, s, "B", at(0), event("live", "b1", livehooks.RecordFileComplete))
		// A retried lane keeps its next attempt when released.
		waiting := enqueue(t, s, "A", at(0), event("live", "w1", livehooks.RecordFileComplete))
		record(t, s, "A", at(1), retry(waiting[0], at(1), at(100)))
		if err := s.ReleaseLanes(ctx, "A"); err != nil {
			t.Fatal(err)
		}
		equalSlice(t, "A's lanes free at once", sorted(laneKeys(claim(t, s, "C", at(2), 10))), sorted(keys))
		equal(t, "B's lane still leased", len(claim(t, s, "C", at(3), 10)), 0)
		equalSlice(t, "waiting lane after its time (and B's expired lease)", sorted(laneKeys(claim(t, s, "C", at(100), 10))),
			sorted([]string{waiting[0].Lane, other[0].Lane}))
	},
	"Defer": func(t *testing.T, s livehooks.Store) {
		create(t, s, config("p1", "d1.example.com", "live"))
		keys := lanesOf(t, s, "A", at(0), 2)
		var st livehooks.LaneState
		write(t, s, func(tx livehooks.OutboxTx) (err error) {
			st, err = tx.Defer(ctx, "A", keys[0], at(20))
			return err
		})
		equal(t, "deferred state", st, livehooks.LaneState{Lane: keys[0], Open: false})
		// Defer by a node that does not own the lane changes nothing.
		write(t, s, func(tx livehooks.OutboxTx) (err error) {
			st, err = tx.Defer(ctx, "B", keys[1], at(1))
			return err
		})
		equal(t, "state of another node's lane", st.Open, false)
		// keys[1] stays leased to A (until at(30) at least).
		equal(t, "deferred lane not due", len(claim(t, s, "B", at(19), 10)), 0)
		equalSlice(t, "deferred lane due", laneKeys(claim(t, s, "B", at(20), 10)), []string{keys[0]})
		equal(t, "deliveries kept", len(laneDeliveries(t, s, keys[0])), 1)
		equal(t, "pending", pending(t, s), 2)
	},
	"LaneDeliveriesPaging": func(t *testing.T, s livehooks.Store) {
		create(t, s, config("p1", "d1.example.com", "live"))
		var events []*livehooks.Event
		for i := 0; i < 7; i++ {
			events = append(events, event("live", "s1", livehooks.RecordFileComplete))
		}
		events = append(events, event("live", "s2", livehooks.RecordFileComplete))
		ds := enqueue(t, s, "A", at(0), events...)
		lane := ds[0].Lane
		record(t, s, "A", at(1), succeeded(ds[0], at(1)))
		var got []int64
		after := int64(0)
		for {
			page, err := s.LaneDeliveries(ctx, lane, after, 4)
			if err != nil {
				t.Fatal(err)
			}
			if len(page) == 0 {
				break
			}
			for _, d := range page {
				if d.Event == nil || d.Status != livehooks.DeliveryPending || d.Lane != lane {
					t.Fatalf("lane delivery %+v", d)
				}
				got = append(got, d.ID)
			}
			after = page[len(page)-1].ID
		}
		equalSlice(t, "pending deliveries of the lane in id order", got, ids(ds[1:7]))
	},
	"ConcurrentClaims": func(t *testing.T, s livehooks.Store) {
		create(t, s, config("p1", "d1.example.com", "live"))
		keys := lanesOf(t, s, "seed", at(0), 40)
		if err := s.ReleaseLanes(ctx, "seed"); err != nil {
			t.Fatal(err)
		}
		var (
			mu  sync.Mutex
			got = map[string]string{}
			wg  sync.WaitGroup
		)
		for _, node := range []string{"A", "B", "C"} {
			wg.Go(func() {
				for {
					lanes, err := s.ClaimLanes(ctx, node, at(1), time.Minute, 3)
					if err != nil {
						t.Error(err)
						return
					}
					if len(lanes) == 0 {
						return
					}
					mu.Lock()
					for _, l := range lanes {
						if prev, ok := got[l.Key]; ok {
							t.Errorf("lane %s claimed by %s and %s", l.Key, prev, node)
						}
						got[l.Key] = node
					}
					mu.Unlock()
				}
			})
		}
		wg.Wait()
		equal(t, "lanes claimed", len(got), len(keys))
	},
}
