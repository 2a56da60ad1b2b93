package api_test

import (
	"bufio"
	"context"
	"encoding/json"
	"net/http"
	"net/http/httptest"
	"net/url"
	"strings"
	"testing"
	"time"
)

// sseEvent is one server-sent event.
type sseEvent struct {
	name string
	data map[string]any
}

// openFeed reads the project's live feed into a channel until the test ends.
func openFeed(t *testing.T, base string) <-chan sseEvent {
	t.Helper()
	ctx, cancel := context.WithCancel(context.Background())
	t.Cleanup(cancel)
	req, _ := http.NewRequestWithContext(ctx, "GET", base+"/v1/proja/record/feed", nil)
	req.Header.Set("X-Auth-Token", tokenA)
	resp, err := http.DefaultClient.Do(req)
	if err != nil {
		t.Fatal(err)
	}
	if resp.StatusCode != 200 || resp.Header.Get("Content-Type") != "text/event-stream" {
		t.Fatalf("feed: %d %s", resp.StatusCode, resp.Header.Get("Content-Type"))
	}
	out := make(chan sseEvent, 100)
	go func() {
		defer resp.Body.Close()
		sc := bufio.NewScanner(resp.Body)
		var ev sseEvent
		for sc.Scan() {
			line := sc.Text()
			switch {
			case strings.HasPrefix(line, "event: "):
				ev.name = strings.TrimPrefix(line, "event: ")
			case strings.HasPrefix(line, "data: "):
				_ = json.Unmarshal([]byte(strings.TrimPrefix(line, "data: ")), &ev.data)
			case line == "" && ev.name != "":
				out <- ev
				ev = sseEvent{}
			}
		}
	}()
	return out
}

func next(t *testing.T, feed <-chan sseEvent, what string, match func(sseEvent) bool) sseEvent {
	t.Helper()
	timeout := time.After(10 * time.Second)
	for {
		select {
		case ev := <-feed:
			if match(ev) {
				return ev
			}
		case <-timeout:
			t.Fatalf("no %s on the feed", what)
		}
	}
}

func TestLiveFeedAndDestinations(t *testing.T) {
	t.Parallel()
	fs := newFullServer(t)
	c := create(t, fs.testServer, with(validConfig(), "notify_callback_url", fs.receiver.URL+"/cb", "key", testKey))
	// Served with read and write timeouts, as serve does: a feed outlives them.
	timed := httptest.NewUnstartedServer(fs.Config.Handler)
	timed.Config.ReadTimeout, timed.Config.WriteTimeout = 300*time.Millisecond, 300*time.Millisecond
	timed.Start()
	t.Cleanup(timed.Close) // after the feed's request ends (cleanups run last first)
	feed := openFeed(t, timed.URL)
	time.Sleep(700 * time.Millisecond) // past both timeouts
	ingest := func(domain, stream string) {
		t.Helper()
		r := fs.do(t, "POST", eventsPath, tokenA, `{"event_type":"RECORD_FILE_COMPLETE","publish_domain":"`+domain+`","app":"live","stream":"`+stream+`"}`)
		if r.status != 202 {
			t.Fatalf("ingest: %d %s", r.status, r.body)
		}
	}
	ingest("push.example.com", "cam1")
	ev := next(t, feed, "stored event", func(e sseEvent) bool { return e.name == "event" && e.data["stream"] == "cam1" })
	if ev.data["deliveries"] != float64(1) || ev.data["event_type"] != "RECORD_FILE_COMPLETE" {
		t.Fatalf("event: %v", ev.data)
	}
	att := next(t, feed, "attempt", func(e sseEvent) bool { return e.name == "delivery" && e.data["kind"] == "attempt" })
	if att.data["status"] != "succeeded" || att.data["status_code"] != float64(200) || att.data["callback_id"] != c["id"] || att.data["stream"] != "cam1" {
		t.Fatalf("attempt: %v", att.data)
	}
	// An event no config takes says so.
	ingest("nobody.example.com", "cam2")
	ev = next(t, feed, "unmatched event", func(e sseEvent) bool { return e.name == "event" && e.data["stream"] == "cam2" })
	if ev.data["deliveries"] != float64(0) {
		t.Fatalf("unmatched event: %v", ev.data)
	}

	u, _ := url.Parse(fs.receiver.URL)
	var dests struct {
		Destinations []struct {
			Destination string   `json:"destination"`
			Breaker     string   `json:"breaker"`
			CallbackIDs []string `json:"callback_ids"`
			Minutes     []struct {
				Succeeded, Failed int
				LatencyMSAvg      float64 `json:"latency_ms_avg"`
			} `json:"minutes"`
		} `json:"destinations"`
	}
	waitUntil(t, "the destination's attempt", func() bool {
		r := fs.do(t, "GET", "/v1/proja/record/destinations", tokenA, nil)
		_ = json.Unmarshal(r.body, &dests)
		return len(dests.Destinations) == 1 && dests.Destinations[0].Minutes[59].Succeeded == 1
	})
	d := dests.Destinations[0]
	if d.Destination != "http://"+u.Host || d.Breaker != "closed" || len(d.Minutes) != 60 || d.Minutes[59].LatencyMSAvg <= 0 || len(d.CallbackIDs) != 1 {
		t.Fatalf("destination: %+v", d)
	}
	// Another project sees none of it.
	if r := fs.do(t, "GET", "/v1/projb/record/destinations", tokenA, nil); r.status != 403 {
		t.Fatalf("other project: %d", r.status)
	}
}

// TestDeliveryShowsWhatWasSent: the log rebuilds each attempt's request to
// the byte, signatures included.
func TestDeliveryShowsWhatWasSent(t *testing.T) {
	t.Parallel()
	fs := newFullServer(t)
	create(t, fs.testServer, with(validConfig(), "notify_callback_url", fs.receiver.URL+"/cb", "key", testKey))
	if r := fs.do(t, "POST", eventsPath, tokenA, `{"event_type":"RECORD_FILE_COMPLETE","publish_domain":"push.example.com","app":"live","stream":"cam1","download_url":"https://cdn.example.com/a.flv"}`); r.status != 202 {
		t.Fatalf("ingest: %d %s", r.status, r.body)
	}
	var d struct {
		Attempts []struct {
			Request struct {
				URL     string            `json:"url"`
				Headers map[string]string `json:"headers"`
				Body    string            `json:"body"`
			} `json:"request"`
		} `json:"attempt_list"`
	}
	waitUntil(t, "the attempt in the log", func() bool {
		r := fs.do(t, "GET", "/v1/proja/record/deliveries/1", tokenA, nil)
		_ = json.Unmarshal(r.body, &d)
		return len(d.Attempts) == 1
	})
	got := fs.received()[0]
	sent := d.Attempts[0].Request
	if sent.Body != got["_raw"] {
		t.Errorf("body shown:\n%s\nbody sent:\n%s", sent.Body, got["_raw"])
	}
	if sent.Headers["Webhook-Signature"] != got["_webhook_signature"] || sent.Headers["Webhook-Id"] != got["_webhook_id"] || sent.URL != fs.receiver.URL+"/cb" {
		t.Errorf("headers shown %v, sent signature %v", sent.Headers, got["_webhook_signature"])
	}
	if strings.Contains(sent.Body, testKey) {
		t.Error("the key is in the response")
	}
}

func TestRecordingStreamsAndTasks(t *testing.T) {
	t.Parallel()
	fs := newFullServer(t)
	post := func(body string) {
		t.Helper()
		if r := fs.do(t, "POST", eventsPath, tokenA, body); r.status != 202 {
			t.Fatalf("ingest: %d %s", r.status, r.body)
		}
	}
	ev := func(typ, stream, extra string) string {
		return `{"event_type":"` + typ + `","publish_domain":"push.example.com","app":"live","stream":"` + stream + `"` + extra + `}`
	}
	post("[" + ev("RECORD_START", "cam1", "") + "," + ev("RECORD_NEW_FILE_START", "cam1", "") + "," +
		ev("RECORD_FILE_COMPLETE", "cam1", `,"file_size":2048,"record_duration":61,"width":1280,"height":720,"download_url":"https://cdn.example.com/cam1.flv"`) + "," +
		ev("RECORD_OVER", "cam1", "") + "]")
	post("[" + ev("RECORD_START", "cam2", "") + "," + ev("RECORD_NEW_FILE_START", "cam2", "") + "]")

	r := fs.do(t, "GET", "/v1/proja/record/domains/push.example.com/streams", tokenA, nil)
	var streams struct {
		Streams []struct{ Stream, State, TaskID string } `json:"streams"`
	}
	_ = json.Unmarshal(r.body, &streams)
	if r.status != 200 || len(streams.Streams) != 1 || streams.Streams[0].Stream != "cam2" || streams.Streams[0].State != "live" {
		t.Fatalf("streams: %d %s", r.status, r.body)
	}
	r = fs.do(t, "GET", "/v1/proja/record/domains/push.example.com/tasks", tokenA, nil)
	var tasks struct {
		Tasks []struct {
			TaskID, Stream, State string
			Files                 []struct {
				FileSize       int64  `json:"file_size"`
				RecordDuration int64  `json:"record_duration"`
				Width          int    `json:"width"`
				DownloadURL    string `json:"download_url"`
			} `json:"files"`
		} `json:"tasks"`
	}
	_ = json.Unmarshal(r.body, &tasks)
	if r.status != 200 || len(tasks.Tasks) != 2 {
		t.Fatalf("tasks: %d %s", r.status, r.body)
	}
	cam2, cam1 := tasks.Tasks[0], tasks.Tasks[1]
	if cam2.Stream != "cam2" || cam2.State != "recording" || cam2.TaskID != streams.Streams[0].TaskID || len(cam2.Files) != 0 {
		t.Errorf("newest task: %+v", cam2)
	}
	if cam1.Stream != "cam1" || cam1.State != "over" || len(cam1.Files) != 1 || cam1.Files[0].FileSize != 2048 || cam1.Files[0].RecordDuration != 61 ||
		cam1.Files[0].Width != 1280 || cam1.Files[0].DownloadURL != "https://cdn.example.com/cam1.flv" {
		t.Errorf("finished task: %+v", cam1)
	}
	wantError(t, fs.do(t, "GET", "/v1/proja/record/domains/not_a_domain/tasks", tokenA, nil), 400, "LIVE.100011001")
	wantError(t, fs.do(t, "GET", "/v1/proja/record/domains/push.example.com/tasks?limit=0", tokenA, nil), 400, "LIVE.100011001")
}
