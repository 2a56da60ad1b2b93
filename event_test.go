package livehooks_test

import (
	"encoding/json"
	"reflect"
	"sort"
	"strings"
	"testing"
	"time"

	"github.com/livehooks/livehooks"
)

func sampleEvent(t livehooks.EventType) *livehooks.Event {
	return &livehooks.Event{
		ID: "0123456789abcdef0123456789abcdef", ProjectID: "proj", Type: t,
		PublishDomain: "push.example.com", App: "live", Stream: "cam1",
		TaskID: "task1", JobID: "job1", RecordFormat: livehooks.FormatFLV,
		DownloadURL: "https://cdn.example.com/live/cam1.flv", AssetID: "asset1",
		FileSize: 3957964, RecordDuration: 120,
		StartTime: time.Date(2020, 3, 8, 14, 10, 25, 0, time.FixedZone("CST", 8*3600)),
		EndTime:   time.Date(2020, 3, 8, 6, 12, 25, 0, time.UTC),
		Width:     1280, Height: 720, ErrorMessage: "upload failed",
	}
}

func keys(m map[string]any) []string {
	var out []string
	for k := range m {
		out = append(out, k)
	}
	sort.Strings(out)
	return out
}

// TestMessageFieldsPerType checks seed 002: each field is present only for the
// event types the seed names it for.
func TestMessageFieldsPerType(t *testing.T) {
	common := []string{"app", "event_type", "project_id", "publish_domain", "record_format", "stream", "task_id"}
	fileFields := []string{"asset_id", "download_url", "end_time", "file_size", "height", "record_duration", "start_time", "width"}
	want := map[livehooks.EventType][]string{
		livehooks.RecordStart:        common,
		livehooks.RecordNewFileStart: append([]string{"job_id"}, common...),
		livehooks.RecordFileComplete: append(append([]string{"job_id"}, common...), fileFields...),
		livehooks.RecordOver:         common,
		livehooks.RecordFailed:       append([]string{"error_message"}, common...),
	}
	for typ, fields := range want {
		var m map[string]any
		if err := json.Unmarshal(sampleEvent(typ).Message(nil), &m); err != nil {
			t.Fatalf("%s: %v", typ, err)
		}
		sort.Strings(fields)
		if got := keys(m); !reflect.DeepEqual(got, fields) {
			t.Errorf("%s fields = %v, want %v", typ, got, fields)
		}
	}
}

func TestMessageValues(t *testing.T) {
	e := sampleEvent(livehooks.RecordFileComplete)
	e.PlayURL = "https://play.example.com/live/cam1.m3u8"
	body := e.Message(&livehooks.Signature{AuthSign: "abc", AuthTimestamp: 1583676745})
	var m map[string]any
	if err := json.Unmarshal(body, &m); err != nil {
		t.Fatal(err)
	}
	// Integers are JSON numbers, times are UTC in the seed's format.
	if m["file_size"] != float64(3957964) || m["record_duration"] != float64(120) || m["width"] != float64(1280) || m["height"] != float64(720) {
		t.Fatalf("numbers: %s", body)
	}
	if m["start_time"] != "2020-03-08T06:10:25Z" || m["end_time"] != "2020-03-08T06:12:25Z" {
		t.Fatalf("times: %s", body)
	}
	if m["auth_sign"] != "abc" || m["auth_timestamp"] != float64(1583676745) || m["play_url"] != e.PlayURL {
		t.Fatalf("signature/play_url: %s", body)
	}
	// Strings are escaped properly.
	e.Stream = `a"b\c` + "\n<>&"
	if err := json.Unmarshal(e.Message(nil), &m); err != nil || m["stream"] != e.Stream {
		t.Fatalf("escaping: %v %v", err, m["stream"])
	}
}

func TestNormalizeAndValidate(t *testing.T) {
	c := livehooks.CallbackConfig{PublishDomain: "push.example.com", App: "live"}
	c.Normalize()
	if err := c.Validate(); err != nil {
		t.Fatal(err)
	}
	if !reflect.DeepEqual(c.NotifyEventSubscription, []livehooks.EventType{livehooks.RecordFileComplete}) || c.SignType != livehooks.SignHMACSHA256 {
		t.Fatalf("defaults: %+v", c)
	}
	c.NotifyEventSubscription = []livehooks.EventType{"RECORD_OVER", "RECORD_START", "RECORD_OVER"}
	c.Normalize()
	if !reflect.DeepEqual(c.NotifyEventSubscription, []livehooks.EventType{"RECORD_OVER", "RECORD_START"}) {
		t.Fatalf("dedup: %v", c.NotifyEventSubscription)
	}
	for _, key := range []string{"a1", "abcdefghijabcdefghijabcdefghijab", "12345678901234567890123456789012", "abcdefghij0123456789abcdefghij0-"} {
		if livehooks.ValidateKey(key) == nil {
			t.Errorf("key %q accepted", key)
		}
	}
	if err := livehooks.ValidateKey("abcdefghij0123456789abcdefghij01"); err != nil {
		t.Errorf("32-char key refused: %v", err)
	}
	if err := livehooks.ValidateKey("abcdefghij0123456789abcdefghij01!"); err == nil || strings.Contains(err.Error(), "abcdefghij") {
		t.Errorf("error repeats the key or is nil: %v", err)
	}
}

func TestMatches(t *testing.T) {
	c := livehooks.CallbackConfig{PublishDomain: "d.example.com", App: "*"}
	if !c.Matches("d.example.com", "anything") || c.Matches("e.example.com", "anything") {
		t.Fatal("wildcard matching")
	}
	c.App = "live"
	if !c.Matches("d.example.com", "live") || c.Matches("d.example.com", "other") {
		t.Fatal("exact matching")
	}
}

func BenchmarkMessage(b *testing.B) {
	e := sampleEvent(livehooks.RecordFileComplete)
	sig := &livehooks.Signature{AuthSign: "0123456789abcdef0123456789abcdef0123456789abcdef0123456789abcdef", AuthTimestamp: 1583676745}
	b.ReportAllocs()
	for b.Loop() {
		e.Message(sig)
	}
}
