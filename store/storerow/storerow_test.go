package storerow_test

import (
	"bytes"
	"reflect"
	"testing"
	"testing/fstest"
	"time"

	"github.com/livehooks/livehooks"
	"github.com/livehooks/livehooks/aesgcm"
	"github.com/livehooks/livehooks/store/storerow"
)

func TestMigrations(t *testing.T) {
	ok := fstest.MapFS{
		"m/0002_more.sql": {Data: []byte("B")},
		"m/0001_init.sql": {Data: []byte("A")},
	}
	ms, err := storerow.Migrations(ok, "m")
	if err != nil || len(ms) != 2 || ms[0].Name != "0001_init" || ms[1].Version != 2 || ms[1].SQL != "B" {
		t.Fatalf("%+v %v", ms, err)
	}
	for name, fsys := range map[string]fstest.MapFS{
		"gap":      {"m/0001_a.sql": {}, "m/0003_c.sql": {}},
		"bad name": {"m/init.sql": {}},
		"zero":     {"m/0000_a.sql": {}},
	} {
		if _, err := storerow.Migrations(fsys, "m"); err == nil {
			t.Errorf("%s: accepted", name)
		}
	}
}

func TestSubscriptionColumn(t *testing.T) {
	subs := []livehooks.EventType{livehooks.RecordOver, livehooks.RecordStart}
	if got := storerow.SplitSubscription(storerow.JoinSubscription(subs)); !reflect.DeepEqual(got, subs) {
		t.Fatalf("round trip: %v", got)
	}
	if got := storerow.SplitSubscription(""); got == nil || len(got) != 0 {
		t.Fatalf("empty column: %#v", got)
	}
}

func TestDomainColumnsSealTheSecret(t *testing.T) {
	c, _ := aesgcm.New(make([]byte, 32))
	now := time.Date(2026, 1, 2, 3, 4, 5, 0, time.UTC)
	d := &livehooks.DomainSettings{ProjectID: "p", PublishDomain: "push.example.com", RecordFormat: "HLS", MaxPause: time.Minute,
		DownloadURLExpiry: 0, CreateTime: now, UpdateTime: now,
		Storage: &livehooks.StorageSettings{Endpoint: "s3.example.com", Bucket: "b", AccessKey: "AK", SecretKey: "the-secret-value", PresignExpiry: time.Hour}}
	settings, sealed, err := storerow.EncodeDomain(d, c)
	if err != nil {
		t.Fatal(err)
	}
	if bytes.Contains(settings, []byte("the-secret-value")) || bytes.Contains(sealed, []byte("the-secret-value")) || sealed == nil {
		t.Fatal("the secret is not sealed")
	}
	got, err := storerow.DecodeDomain("p", settings, time.Minute, sealed, now, now, c)
	if err != nil || !reflect.DeepEqual(got, d) {
		t.Fatalf("round trip: %+v %+v %v", got, got.Storage, err)
	}
	other, _ := aesgcm.New(bytes.Repeat([]byte{1}, 32))
	if _, err := storerow.DecodeDomain("p", settings, time.Minute, sealed, now, now, other); err == nil || bytes.Contains([]byte(err.Error()), []byte("the-secret-value")) {
		t.Fatalf("wrong master key: %v", err)
	}
}

func TestDomainDownloadURLExpiry(t *testing.T) {
	c, _ := aesgcm.New(make([]byte, 32))
	now := time.Date(2026, 1, 2, 3, 4, 5, 0, time.UTC)
	for _, expiry := range []time.Duration{0, time.Hour} {
		d := &livehooks.DomainSettings{ProjectID: "p", PublishDomain: "push.example.com", DownloadURLExpiry: expiry}
		settings, sealed, err := storerow.EncodeDomain(d, c)
		if err != nil {
			t.Fatal(err)
		}
		got, err := storerow.DecodeDomain("p", settings, 0, sealed, now, now, c)
		if err != nil || got.DownloadURLExpiry != expiry {
			t.Fatalf("%v: got %v %v", expiry, got.DownloadURLExpiry, err)
		}
	}
	// A row written before the setting existed gets the default.
	got, err := storerow.DecodeDomain("p", []byte(`{"publish_domain":"push.example.com","record_format":"FLV"}`), 0, nil, now, now, c)
	if err != nil || got.DownloadURLExpiry != livehooks.DefaultDownloadURLExpiry {
		t.Fatalf("old row: %v %v", got.DownloadURLExpiry, err)
	}
}
