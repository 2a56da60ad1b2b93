package storetest

import (
	"context"
	"reflect"
	"testing"
	"time"

	"github.com/livehooks/livehooks"
)

var recordingTests = map[string]func(t *testing.T, s livehooks.Store){
	"StreamRoundTrip": func(t *testing.T, s livehooks.Store) {
		ctx := context.Background()
		key := livehooks.StreamKey{ProjectID: "p", PublishDomain: "push.example.com", App: "live", Stream: "cam1"}
		want := &livehooks.StreamState{
			StreamKey: key, State: livehooks.StreamPaused, TaskID: "task1", JobID: "job-1", FileSeq: 3,
			FileStartedAt: base.Add(time.Microsecond), PublishedAt: base, OverAt: base.Add(30 * time.Second),
			NextFileAt: base.Add(time.Second), RecordFormat: livehooks.FormatMP4, PendingFiles: 2, UpdatedAt: base.Add(2 * time.Second),
		}
		err := s.Write(ctx, func(tx livehooks.OutboxTx) error {
			if got, err := tx.Stream(ctx, key); err != nil || got != nil {
				t.Fatalf("unknown stream: %+v, %v", got, err)
			}
			return tx.PutStream(ctx, want)
		})
		if err != nil {
			t.Fatal(err)
		}
		var got *livehooks.StreamState
		if err := s.Write(ctx, func(tx livehooks.OutboxTx) (err error) { got, err = tx.Stream(ctx, key); return err }); err != nil {
			t.Fatal(err)
		}
		if !reflect.DeepEqual(got, want) {
			t.Fatalf("got %+v\nwant %+v", got, want)
		}
		// Replace; zero times stay zero.
		want.State, want.OverAt, want.NextFileAt, want.JobID, want.RecordFormat, want.PendingFiles = livehooks.StreamOver, time.Time{}, time.Time{}, "", livehooks.FormatHLS, 0
		_ = s.Write(ctx, func(tx livehooks.OutboxTx) error { return tx.PutStream(ctx, want) })
		_ = s.Write(ctx, func(tx livehooks.OutboxTx) (err error) { got, err = tx.Stream(ctx, key); return err })
		if !reflect.DeepEqual(got, want) {
			t.Fatalf("after replace: got %+v\nwant %+v", got, want)
		}
	},
	"DueStreams": func(t *testing.T, s livehooks.Store) {
		ctx := context.Background()
		put := func(stream string, over, next time.Time) {
			st := &livehooks.StreamState{StreamKey: livehooks.StreamKey{ProjectID: "p", PublishDomain: "d.example.com", App: "a", Stream: stream},
				State: livehooks.StreamLive, OverAt: over, NextFileAt: next, UpdatedAt: base}
			if err := s.Write(ctx, func(tx livehooks.OutboxTx) error { return tx.PutStream(ctx, st) }); err != nil {
				t.Fatal(err)
			}
		}
		put("none", time.Time{}, time.Time{})
		put("late", base.Add(time.Hour), time.Time{})
		put("over", base.Add(10*time.Second), base.Add(20*time.Second))
		put("next", time.Time{}, base.Add(5*time.Second))
		put("both", base.Add(8*time.Second), base.Add(3*time.Second))
		keys, err := s.DueStreams(ctx, base.Add(10*time.Second), 10)
		if err != nil {
			t.Fatal(err)
		}
		var names []string
		for _, k := range keys {
			names = append(names, k.Stream)
		}
		if !reflect.DeepEqual(names, []string{"both", "next", "over"}) {
			t.Fatalf("due = %v, want [both next over] (earliest timer first)", names)
		}
		if keys, _ := s.DueStreams(ctx, base.Add(10*time.Second), 1); len(keys) != 1 || keys[0].Stream != "both" {
			t.Fatalf("limit: %v", keys)
		}
		// A stream whose timers are cleared is no longer due.
		put("both", time.Time{}, time.Time{})
		if keys, _ := s.DueStreams(ctx, base.Add(10*time.Second), 10); len(keys) != 2 {
			t.Fatalf("after clearing: %v", keys)
		}
	},
	"DomainSettings": func(t *testing.T, s livehooks.Store) {
		ctx := context.Background()
		if _, err := s.FindDomain(ctx, "p", "push.example.com"); livehooks.ErrorCode(err) != livehooks.ENOTFOUND {
			t.Fatalf("missing domain: %v", err)
		}
		if err := s.DeleteDomain(ctx, "p", "push.example.com"); livehooks.ErrorCode(err) != livehooks.ENOTFOUND {
			t.Fatalf("delete missing domain: %v", err)
		}
		d := &livehooks.DomainSettings{
			ProjectID: "p", PublishDomain: "push.example.com", RecordFormat: "MP4", MaxPause: 45 * time.Second,
			DownloadURLTemplate: "https://cdn.example.com/{app}/{file}", PlayURLTemplate: "https://play.example.com/{app}/{stream}.flv",
			RejectUnknownStreams: true, CreateTime: base, UpdateTime: base,
			Storage: &livehooks.StorageSettings{Endpoint: "127.0.0.1:9000", Bucket: "rec", Prefix: "live/", AccessKey: "AK",
				SecretKey: "secretkey0123456789", Presign: true, PresignExpiry: time.Hour, Region: "r1", PublicURL: "https://cdn.example.com"},
		}
		if err := s.PutDomain(ctx, d); err != nil {
			t.Fatal(err)
		}
		other := &livehooks.DomainSettings{ProjectID: "p", PublishDomain: "a.example.com", RecordFormat: "FLV", CreateTime: base, UpdateTime: base}
		_ = s.PutDomain(ctx, other)
		_ = s.PutDomain(ctx, &livehooks.DomainSettings{ProjectID: "q", PublishDomain: "push.example.com", CreateTime: base, UpdateTime: base})
		got, err := s.FindDomain(ctx, "p", "push.example.com")
		if err != nil || !reflect.DeepEqual(got, d) {
			t.Fatalf("got %+v (%+v), %v\nwant %+v (%+v)", got, got.Storage, err, d, d.Storage)
		}
		list, err := s.FindDomains(ctx, "p")
		if err != nil || len(list) != 2 || list[0].PublishDomain != "a.example.com" || list[1].PublishDomain != "push.example.com" {
			t.Fatalf("list: %v %v", list, err)
		}
		// Replace: the create time is kept, the rest replaced.
		d2 := &livehooks.DomainSettings{ProjectID: "p", PublishDomain: "push.example.com", RecordFormat: "HLS", MaxPause: time.Second,
			CreateTime: base.Add(time.Hour), UpdateTime: base.Add(time.Hour)}
		if err := s.PutDomain(ctx, d2); err != nil {
			t.Fatal(err)
		}
		got, _ = s.FindDomain(ctx, "p", "push.example.com")
		if got.RecordFormat != "HLS" || got.Storage != nil || got.MaxPause != time.Second || !got.CreateTime.Equal(base) || !got.UpdateTime.Equal(base.Add(time.Hour)) {
			t.Fatalf("after replace: %+v", got)
		}
		if err := s.DeleteDomain(ctx, "p", "push.example.com"); err != nil {
			t.Fatal(err)
		}
		if _, err := s.FindDomain(ctx, "p", "push.example.com"); livehooks.ErrorCode(err) != livehooks.ENOTFOUND {
			t.Fatalf("after delete: %v", err)
		}
		if _, err := s.FindDomain(ctx, "q", "push.example.com"); err != nil {
			t.Fatalf("other project's domain: %v", err)
		}
	},
	"FindEventsIngestedAt": func(t *testing.T, s livehooks.Store) {
		ctx := context.Background()
		c := &livehooks.CallbackConfig{ID: "00000000000000000000000000000abc", ProjectID: "p", PublishDomain: "push.example.com", App: "*",
			NotifyEventSubscription: livehooks.EventTypes, SignType: livehooks.SignHMACSHA256, CreateTime: base, UpdateTime: base}
		if err := s.CreateCallback(ctx, c); err != nil {
			t.Fatal(err)
		}
		e := &livehooks.Event{ID: "00000000000000000000000000000def", ProjectID: "p", Type: livehooks.RecordStart, PublishDomain: "push.example.com",
			App: "live", Stream: "s", TaskID: "t", OccurredAt: base.Add(-time.Hour)}
		if err := s.Write(ctx, func(tx livehooks.OutboxTx) error {
			_, err := tx.Enqueue(ctx, "n1", base, []*livehooks.Event{e})
			return err
		}); err != nil {
			t.Fatal(err)
		}
		evs, err := s.FindEvents(ctx, c, base, base.Add(time.Second), 10)
		if err != nil || len(evs) != 1 || !evs[0].IngestedAt.Equal(base) || !evs[0].OccurredAt.Equal(base.Add(-time.Hour)) {
			t.Fatalf("events %+v %v", evs, err)
		}
	},
}
