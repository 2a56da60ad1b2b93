package storetest

import (
	"errors"
	"testing"
	"time"

	"github.com/livehooks/livehooks"
)

func ptr[T any](v T) *T { return &v }

func equalConfig(t *testing.T, got, want *livehooks.CallbackConfig) {
	t.Helper()
	equal(t, "ID", got.ID, want.ID)
	equal(t, "ProjectID", got.ProjectID, want.ProjectID)
	equal(t, "PublishDomain", got.PublishDomain, want.PublishDomain)
	equal(t, "App", got.App, want.App)
	equal(t, "NotifyCallbackURL", got.NotifyCallbackURL, want.NotifyCallbackURL)
	equalSlice(t, "NotifyEventSubscription", got.NotifyEventSubscription, want.NotifyEventSubscription)
	equal(t, "SignType", got.SignType, want.SignType)
	equal(t, "OnDemandCallbackURL", got.OnDemandCallbackURL, want.OnDemandCallbackURL)
	equal(t, "Key == want.Key", got.Key == want.Key, true) // never print a key
	equal(t, "DisabledReason", got.DisabledReason, want.DisabledReason)
	equalTime(t, "CreateTime", got.CreateTime, want.CreateTime)
	equalTime(t, "UpdateTime", got.UpdateTime, want.UpdateTime)
}

var callbackTests = map[string]func(t *testing.T, s livehooks.Store){
	"CreateAndFind": func(t *testing.T, s livehooks.Store) {
		c := config("p1", "d1.example.com", "live", livehooks.RecordOver, livehooks.RecordStart)
		c.Key, c.SignType, c.OnDemandCallbackURL = key1, livehooks.SignMD5, "https://ondemand.example/x"
		c.CreateTime, c.UpdateTime = base.Add(123456*time.Microsecond), base.Add(time.Hour)
		create(t, s, c)
		got, err := s.FindCallbackByID(ctx, "p1", c.ID)
		if err != nil {
			t.Fatal(err)
		}
		equalConfig(t, got, c)

		noKey := create(t, s, config("p1", "d1.example.com", "other"))
		got, err = s.FindCallbackByID(ctx, "p1", noKey.ID)
		if err != nil {
			t.Fatal(err)
		}
		equal(t, "HasKey of a config without key", got.HasKey(), false)
		equalSlice(t, "default subscription", got.NotifyEventSubscription, []livehooks.EventType{livehooks.RecordFileComplete})
	},
	"NotFoundAcrossProjects": func(t *testing.T, s livehooks.Store) {
		c := create(t, s, config("p1", "d1.example.com", "live"))
		_, err := s.FindCallbackByID(ctx, "p2", c.ID)
		wantCode(t, err, livehooks.ENOTFOUND)
		_, err = s.FindCallbackByID(ctx, "p1", newID())
		wantCode(t, err, livehooks.ENOTFOUND)
		_, err = s.UpdateCallback(ctx, "p2", c.ID, livehooks.CallbackUpdate{PublishDomain: "d1.example.com", App: "live"}, at(1), nil)
		wantCode(t, err, livehooks.ENOTFOUND)
		wantCode(t, s.DeleteCallback(ctx, "p2", c.ID), livehooks.ENOTFOUND)
		wantCode(t, s.DisableCallback(ctx, "p2", c.ID, "gone"), livehooks.ENOTFOUND)
		if _, err := s.FindCallbackByID(ctx, "p1", c.ID); err != nil {
			t.Fatalf("config was touched through another project: %v", err)
		}
	},
	"Conflict": func(t *testing.T, s livehooks.Store) {
		create(t, s, config("p1", "d1.example.com", "live"))
		err := s.CreateCallback(ctx, config("p1", "d1.example.com", "live"))
		wantCode(t, err, livehooks.ECONFLICT)
		create(t, s, config("p1", "d1.example.com", "*"))
		create(t, s, config("p1", "d2.example.com", "live"))
		create(t, s, config("p2", "d1.example.com", "live"))
		_, total, err := s.FindCallbacks(ctx, livehooks.CallbackFilter{ProjectID: "p1"})
		if err != nil {
			t.Fatal(err)
		}
		equal(t, "configs of p1", total, 3)
	},
	"ListPagingFiltersOrder": func(t *testing.T, s livehooks.Store) {
		// Created out of order; two share a create time and sort by id.
		var want []*livehooks.CallbackConfig
		for i, app := range []string{"a3", "a1", "a2", "a4", "a0"} {
			c := config("p1", "d1.example.com", app)
			c.CreateTime = at([]int{30, 10, 20, 20, 0}[i])
			create(t, s, c)
			want = append(want, c)
		}
		other := config("p1", "d2.example.com", "a1")
		other.CreateTime = at(40)
		create(t, s, other)
		create(t, s, config("p2", "d1.example.com", "a1"))
		// Expected order: a0 (0), a1 (10), a2/a4 (20, by id), a3 (30), other (40).
		a2, a4 := want[2], want[3]
		if a4.ID < a2.ID {
			a2, a4 = a4, a2
		}
		order := []string{want[4].ID, want[1].ID, a2.ID, a4.ID, want[0].ID, other.ID}

		list := func(f livehooks.CallbackFilter) ([]string, int) {
			t.Helper()
			cs, total, err := s.FindCallbacks(ctx, f)
			if err != nil {
				t.Fatal(err)
			}
			ids := make([]string, len(cs))
			for i, c := range cs {
				ids[i] = c.ID
				equal(t, "project of listed config", c.ProjectID, f.ProjectID)
			}
			return ids, total
		}
		got, total := list(livehooks.CallbackFilter{ProjectID: "p1", Limit: 100})
		equalSlice(t, "order", got, order)
		equal(t, "total", total, 6)
		got, total = list(livehooks.CallbackFilter{ProjectID: "p1", Offset: 2, Limit: 2})
		equalSlice(t, "page 2", got, order[2:4])
		equal(t, "total of a page", total, 6)
		got, total = list(livehooks.CallbackFilter{ProjectID: "p1", Offset: 10, Limit: 2})
		equal(t, "page past the end", len(got), 0)
		equal(t, "total past the end", total, 6)
		got, total = list(livehooks.CallbackFilter{ProjectID: "p1", PublishDomain: "d1.example.com", Limit: 100})
		equalSlice(t, "domain filter", got, order[:5])
		equal(t, "domain total", total, 5)
		got, total = list(livehooks.CallbackFilter{ProjectID: "p1", App: "a1", Limit: 100})
		equalSlice(t, "app filter", got, []string{want[1].ID, other.ID})
		equal(t, "app total", total, 2)
		got, total = list(livehooks.CallbackFilter{ProjectID: "p1", PublishDomain: "d2.example.com", App: "a1"})
		equalSlice(t, "domain and app filter", got, []string{other.ID})
		equal(t, "domain and app total", total, 1)
		got, total = list(livehooks.CallbackFilter{ProjectID: "p1", App: "a"})
		equal(t, "filters are exact", len(got)+total, 0)
		for i := 0; i < 10; i++ {
			create(t, s, config("p3", "d1.example.com", "x"+newID()[:8]))
		}
		got, total = list(livehooks.CallbackFilter{ProjectID: "p3"})
		equal(t, "zero limit gives DefaultLimit", len(got), livehooks.DefaultLimit)
		equal(t, "total with default limit", total, 10)
	},
	"Update": func(t *testing.T, s livehooks.Store) {
		c := config("p1", "d1.example.com", "live", livehooks.RecordStart)
		c.Key = key1
		create(t, s, c)
		create(t, s, config("p1", "d1.example.com", "taken"))

		upd := livehooks.CallbackUpdate{PublishDomain: "d1.example.com", App: "live2", NotifyEventSubscription: []livehooks.EventType{livehooks.RecordOver, livehooks.RecordOver, livehooks.RecordFailed}}
		var validated *livehooks.CallbackConfig
		got, err := s.UpdateCallback(ctx, "p1", c.ID, upd, at(60), func(c *livehooks.CallbackConfig) error {
			validated = c
			return nil
		})
		if err != nil {
			t.Fatal(err)
		}
		if validated == nil || validated.App != "live2" {
			t.Fatalf("validate saw %+v, want the updated config", validated)
		}
		want := *c
		want.App, want.NotifyEventSubscription, want.UpdateTime = "live2", []livehooks.EventType{livehooks.RecordOver, livehooks.RecordFailed}, at(60)
		equalConfig(t, got, &want)
		stored, err := s.FindCallbackByID(ctx, "p1", c.ID)
		if err != nil {
			t.Fatal(err)
		}
		equalConfig(t, stored, &want)

		// A validation error is returned as is and nothing changes.
		_, err = s.UpdateCallback(ctx, "p1", c.ID, livehooks.CallbackUpdate{PublishDomain: "d1.example.com", App: "live3"}, at(61),
			func(*livehooks.CallbackConfig) error { return errBoom })
		if !errors.Is(err, errBoom) {
			t.Fatalf("UpdateCallback with failing validate: %v", err)
		}
		stored, _ = s.FindCallbackByID(ctx, "p1", c.ID)
		equalConfig(t, stored, &want)

		// Moving onto another config's (domain, app) conflicts.
		_, err = s.UpdateCallback(ctx, "p1", c.ID, livehooks.CallbackUpdate{PublishDomain: "d1.example.com", App: "taken"}, at(62), nil)
		wantCode(t, err, livehooks.ECONFLICT)

		// New key, then no key.
		got, err = s.UpdateCallback(ctx, "p1", c.ID, livehooks.CallbackUpdate{PublishDomain: "d1.example.com", App: "live2", Key: ptr(key2), SignType: ptr(livehooks.SignMD5), NotifyCallbackURL: ptr("http://new.example/cb")}, at(63), nil)
		if err != nil {
			t.Fatal(err)
		}
		stored, _ = s.FindCallbackByID(ctx, "p1", c.ID)
		equal(t, "key replaced", stored.Key == key2, true)
		equal(t, "sign type", stored.SignType, livehooks.SignMD5)
		equal(t, "url", stored.NotifyCallbackURL, "http://new.example/cb")
		equalConfig(t, got, stored)
		_, err = s.UpdateCallback(ctx, "p1", c.ID, livehooks.CallbackUpdate{PublishDomain: "d1.example.com", App: "live2", Key: ptr("")}, at(64), nil)
		if err != nil {
			t.Fatal(err)
		}
		stored, _ = s.FindCallbackByID(ctx, "p1", c.ID)
		equal(t, "key removed", stored.HasKey(), false)
		equal(t, "url kept by a partial update", stored.NotifyCallbackURL, "http://new.example/cb")
	},
	"UpdateReenablesDisabled": func(t *testing.T, s livehooks.Store) {
		c := create(t, s, config("p1", "d1.example.com", "live"))
		if err := s.DisableCallback(ctx, "p1", c.ID, "receiver answered 410 Gone"); err != nil {
			t.Fatal(err)
		}
		got, _ := s.FindCallbackByID(ctx, "p1", c.ID)
		equal(t, "DisabledReason", got.DisabledReason, "receiver answered 410 Gone")
		got, err := s.UpdateCallback(ctx, "p1", c.ID, livehooks.CallbackUpdate{PublishDomain: c.PublishDomain, App: c.App}, at(5), nil)
		if err != nil {
			t.Fatal(err)
		}
		equal(t, "DisabledReason after update", got.DisabledReason, "")
		ds := enqueue(t, s, "A", at(6), event("live", "s1", livehooks.RecordFileComplete))
		equal(t, "deliveries after re-enabling", len(ds), 1)
	},
	"Delete": func(t *testing.T, s livehooks.Store) {
		c := create(t, s, config("p1", "d1.example.com", "live"))
		keep := create(t, s, config("p1", "d1.example.com", "*"))
		ds := enqueue(t, s, "A", at(0),
			event("live", "s1", livehooks.RecordFileComplete),
			event("live", "s1", livehooks.RecordFileComplete),
			event("live", "s2", livehooks.RecordFileComplete),
			event("other", "s1", livehooks.RecordFileComplete))
		equal(t, "deliveries", len(ds), 4)
		record(t, s, "A", at(1), succeeded(ds[0], at(1)))
		equal(t, "pending before delete", pending(t, s), 3)

		if err := s.DeleteCallback(ctx, "p1", c.ID); err != nil {
			t.Fatal(err)
		}
		_, err := s.FindCallbackByID(ctx, "p1", c.ID)
		wantCode(t, err, livehooks.ENOTFOUND)
		wantCode(t, s.DeleteCallback(ctx, "p1", c.ID), livehooks.ENOTFOUND)
		equal(t, "pending after delete", pending(t, s), 1)
		for _, d := range ds[1:3] {
			_, err := s.FindDelivery(ctx, "p1", d.ID)
			wantCode(t, err, livehooks.ENOTFOUND)
		}
		equal(t, "final delivery kept", findDelivery(t, s, "p1", ds[0].ID).Status, livehooks.DeliverySucceeded)
		equal(t, "lane of deleted config", len(laneDeliveries(t, s, ds[1].Lane)), 0)
		lanes := claim(t, s, "B", at(3600), 10)
		equalSlice(t, "claimable lanes", laneKeys(lanes), []string{livehooks.LaneKey(keep.ID, "s1")})
		// A late result for a deleted delivery is ignored.
		states := record(t, s, "A", at(2), succeeded(ds[1], at(2)))
		equal(t, "state of a deleted delivery's lane", states[0].Open, false)
	},
	"Match": func(t *testing.T, s livehooks.Store) {
		exact := create(t, s, config("p1", "d1.example.com", "live"))
		wild := create(t, s, config("p1", "d1.example.com", "*"))
		other := create(t, s, config("p1", "d2.example.com", "other"))
		create(t, s, config("p2", "d3.example.com", "*"))
		for _, tc := range []struct {
			project, domain, app string
			want                 string
		}{
			{"p1", "d1.example.com", "live", exact.ID},
			{"p1", "d1.example.com", "vod", wild.ID},
			{"p1", "d2.example.com", "live", ""},
			{"p1", "d2.example.com", "other", other.ID},
			{"p1", "d9.example.com", "live", ""},
			{"p2", "d1.example.com", "live", ""},
			{"p1", "d3.example.com", "x", ""},
		} {
			c, err := s.MatchCallback(ctx, tc.project, tc.domain, tc.app)
			if tc.want == "" {
				wantCode(t, err, livehooks.ENOTFOUND)
				continue
			}
			if err != nil {
				t.Fatalf("MatchCallback(%s,%s,%s): %v", tc.project, tc.domain, tc.app, err)
			}
			equal(t, "matched config", c.ID, tc.want)
		}
	},
	"KeyRoundTripInList": func(t *testing.T, s livehooks.Store) {
		c := config("p1", "d1.example.com", "live")
		c.Key = key2
		create(t, s, c)
		cs, _, err := s.FindCallbacks(ctx, livehooks.CallbackFilter{ProjectID: "p1"})
		if err != nil {
			t.Fatal(err)
		}
		equal(t, "listed key", len(cs) == 1 && cs[0].Key == key2, true)
		m, err := s.MatchCallback(ctx, "p1", "d1.example.com", "live")
		if err != nil {
			t.Fatal(err)
		}
		equal(t, "matched key", m.Key == key2, true)
	},
	"Disable": func(t *testing.T, s livehooks.Store) {
		c := create(t, s, config("p1", "d1.example.com", "live"))
		other := create(t, s, config("p1", "d1.example.com", "*"))
		ds := enqueue(t, s, "A", at(0),
			event("live", "s1", livehooks.RecordFileComplete),
			event("live", "s2", livehooks.RecordFileComplete),
			event("vod", "s1", livehooks.RecordFileComplete))
		equal(t, "deliveries", len(ds), 3)
		if err := s.DisableCallback(ctx, "p1", c.ID, "receiver answered 410 Gone"); err != nil {
			t.Fatal(err)
		}
		for _, d := range ds[:2] {
			got := findDelivery(t, s, "p1", d.ID)
			equal(t, "status of a disabled config's delivery", got.Status, livehooks.DeliveryFailed)
			equal(t, "last error", got.LastError, "receiver answered 410 Gone")
		}
		equal(t, "other config untouched", findDelivery(t, s, "p1", ds[2].ID).Status, livehooks.DeliveryPending)
		equal(t, "pending", pending(t, s), 1)
		lanes := claim(t, s, "B", at(3600), 10)
		equalSlice(t, "lanes left", laneKeys(lanes), []string{livehooks.LaneKey(other.ID, "s1")})
		// A disabled exact config takes its app's events but delivers none,
		// and the `*` config does not stand in for it.
		got := enqueue(t, s, "A", at(1), event("live", "s3", livehooks.RecordFileComplete))
		equal(t, "deliveries to a disabled config", len(got), 0)
		equal(t, "pending after enqueue to a disabled config", pending(t, s), 1)
		m, err := s.MatchCallback(ctx, "p1", "d1.example.com", "live")
		if err != nil {
			t.Fatal(err)
		}
		equal(t, "MatchCallback returns the disabled config", m.DisabledReason, "receiver answered 410 Gone")
	},
}
