package api_test

import (
	"context"
	"encoding/json"
	"fmt"
	"io"
	"log/slog"
	"net/http"
	"net/http/httptest"
	"net/netip"
	"strings"
	"sync"
	"testing"
	"time"

	"github.com/livehooks/livehooks"
	"github.com/livehooks/livehooks/api"
	"github.com/livehooks/livehooks/auth"
	"github.com/livehooks/livehooks/delivery"
	"github.com/livehooks/livehooks/groupcommit"
	"github.com/livehooks/livehooks/livefeed"
	"github.com/livehooks/livehooks/recording"
)

// fullServer is the API with the whole delivery path behind it, as serve
// wires it.
type fullServer struct {
	*testServer
	receiver *httptest.Server
	mu       sync.Mutex
	got      []map[string]any
	status   int
}

func newFullServer(t *testing.T) *fullServer {
	t.Helper()
	db := openStore(t)
	fs := &fullServer{status: 200}
	fs.receiver = httptest.NewServer(http.HandlerFunc(func(w http.ResponseWriter, r *http.Request) {
		b, _ := io.ReadAll(r.Body)
		var m map[string]any
		_ = json.Unmarshal(b, &m)
		m["_webhook_id"] = r.Header.Get("webhook-id")
		m["_webhook_signature"], m["_raw"] = r.Header.Get("webhook-signature"), string(b)
		fs.mu.Lock()
		fs.got = append(fs.got, m)
		status := fs.status
		fs.mu.Unlock()
		w.WriteHeader(status)
		_, _ = w.Write([]byte(`{"ok":true}`))
	}))
	t.Cleanup(fs.receiver.Close)
	sender := delivery.NewSender(delivery.SenderOptions{AllowCIDRs: []netip.Prefix{netip.MustParsePrefix("127.0.0.0/8")}})
	var d *delivery.Dispatcher
	feed := livefeed.New(livefeed.Options{Configs: db})
	gc := groupcommit.New(db, groupcommit.Options{Node: "n1", Observe: true, OnCommit: func(e []groupcommit.Effect) { feed.OnCommit(e); d.OnCommit(e) }})
	d = delivery.New(delivery.Options{Outbox: db, Writer: gc, Configs: db, Sender: sender, Node: "n1", PollInterval: 20 * time.Millisecond,
		Policy: delivery.Policy{Base: time.Hour, Cap: time.Hour, Window: 48 * time.Hour, MaxRetryAfter: time.Hour}})
	machine := recording.New(recording.Options{Committer: gc, Domains: db})
	ctx, cancel := context.WithCancel(context.Background())
	cctx, ccancel := context.WithCancel(context.Background())
	ddone, cdone := make(chan struct{}), make(chan struct{})
	go func() { gc.Run(cctx); close(cdone) }()
	go func() { _ = d.Run(ctx, time.Second); close(ddone) }()
	go feed.Run(ctx)
	t.Cleanup(func() { cancel(); <-ddone; ccancel(); <-cdone })
	logs := &syncBuffer{}
	srv, err := api.NewServer(api.Config{
		Callbacks: db, Logger: slog.New(slog.NewJSONHandler(logs, nil)), Hostname: "testhost", Ready: db.Ping,
		Auth:     auth.NewVerifier(nil, []auth.Token{{Token: tokenA, Projects: []string{"proja"}}}, nil),
		Ingester: machine, Outbox: db, Requeuer: gc, Sender: sender, Feed: feed, RecordingLog: db,
	})
	if err != nil {
		t.Fatal(err)
	}
	ts := httptest.NewServer(srv)
	t.Cleanup(ts.Close)
	fs.testServer = &testServer{Server: ts, logs: logs, store: db}
	return fs
}

func (fs *fullServer) received() []map[string]any {
	fs.mu.Lock()
	defer fs.mu.Unlock()
	return append([]map[string]any(nil), fs.got...)
}

func waitUntil(t *testing.T, what string, cond func() bool) {
	t.Helper()
	deadline := time.Now().Add(10 * time.Second)
	for !cond() {
		if time.Now().After(deadline) {
			t.Fatalf("timed out waiting for %s", what)
		}
		time.Sleep(5 * time.Millisecond)
	}
}

const eventsPath = "/v1/proja/record/events"

func TestIngestDeliversAndAssignsIDs(t *testing.T) {
	t.Parallel()
	fs := newFullServer(t)
	c := create(t, fs.testServer, with(validConfig(), "notify_callback_url", fs.receiver.URL+"/cb", "notify_event_subscription", livehooks.EventTypes, "key", testKey))
	r := fs.do(t, "POST", eventsPath, tokenA, `[
		{"event_type":"RECORD_START","publish_domain":"push.example.com","app":"live","stream":"cam1"},
		{"event_type":"RECORD_NEW_FILE_START","publish_domain":"push.example.com","app":"live","stream":"cam1"},
		{"event_type":"RECORD_FILE_COMPLETE","publish_domain":"push.example.com","app":"live","stream":"cam1","file_size":100,"record_duration":6,"width":1280,"height":720,"record_format":"mp4","download_url":"https://cdn.example.com/a.mp4","unknown":1},
		{"event_type":"RECORD_OVER","publish_domain":"push.example.com","app":"live","stream":"cam1"}]`)
	if r.status != 202 {
		t.Fatalf("ingest: %d %s", r.status, r.body)
	}
	var resp struct {
		Events []struct {
			EventID string `json:"event_id"`
			TaskID  string `json:"task_id"`
			JobID   string `json:"job_id"`
		} `json:"events"`
	}
	_ = json.Unmarshal(r.body, &resp)
	if len(resp.Events) != 4 || resp.Events[0].TaskID == "" || resp.Events[3].TaskID != resp.Events[0].TaskID || resp.Events[1].JobID == "" || resp.Events[2].JobID != resp.Events[1].JobID {
		t.Fatalf("ids: %s", r.body)
	}
	waitUntil(t, "four callbacks", func() bool { return len(fs.received()) == 4 })
	got := fs.received()
	for i, want := range []string{"RECORD_START", "RECORD_NEW_FILE_START", "RECORD_FILE_COMPLETE", "RECORD_OVER"} {
		if got[i]["event_type"] != want || got[i]["task_id"] != resp.Events[0].TaskID || got[i]["auth_sign"] == nil {
			t.Fatalf("callback %d: %v", i, got[i])
		}
	}
	if fc := got[2]; fc["record_format"] != "MP4" || fc["file_size"] != float64(100) || fc["asset_id"] == "" || fc["start_time"] == "" || fc["job_id"] != resp.Events[1].JobID {
		t.Fatalf("file complete: %v", fc)
	}

	// The delivery log shows them, newest first, with filters. A callback is
	// received a moment before its result is committed: wait for the log.
	var list response
	waitUntil(t, "four succeeded deliveries in the log", func() bool {
		list = fs.do(t, "GET", base+"/"+c["id"].(string)+"/deliveries?status=succeeded&limit=2", tokenA, nil)
		return strings.Contains(string(list.body), `"total":4`)
	})
	if list.status != 200 {
		t.Fatalf("deliveries: %d %s", list.status, list.body)
	}
	var log struct {
		Total      int `json:"total"`
		Deliveries []struct {
			Status    string `json:"status"`
			EventType string `json:"event_type"`
		} `json:"deliveries"`
	}
	_ = json.Unmarshal(list.body, &log)
	if log.Total != 4 || len(log.Deliveries) != 2 || log.Deliveries[0].EventType != "RECORD_OVER" || log.Deliveries[1].EventType != "RECORD_FILE_COMPLETE" || log.Deliveries[0].Status != "succeeded" {
		t.Fatalf("log: %s", list.body)
	}
	if r := fs.do(t, "GET", base+"/"+c["id"].(string)+"/deliveries?event_type=RECORD_START", tokenA, nil); !strings.Contains(string(r.body), `"total":1`) {
		t.Fatalf("event filter: %s", r.body)
	}
	for _, q := range []string{"?status=nope", "?event_type=X", "?since=yesterday", "?limit=0"} {
		wantError(t, fs.do(t, "GET", base+"/"+c["id"].(string)+"/deliveries"+q, tokenA, nil), 400, "LIVE.100011001")
	}
	wantError(t, fs.do(t, "GET", base+"/"+strings.Repeat("0", 32)+"/deliveries", tokenA, nil), 404, "LIVE.100011001")

	// Attempt details, without the key.
	var first struct {
		Deliveries []struct {
			ID string `json:"delivery_id"`
		} `json:"deliveries"`
	}
	_ = json.Unmarshal(list.body, &first)
	detail := fs.do(t, "GET", "/v1/proja/record/deliveries/"+first.Deliveries[0].ID, tokenA, nil)
	if detail.status != 200 || !strings.Contains(string(detail.body), `"attempt_list":[{"attempt":1`) || !strings.Contains(string(detail.body), `"response_body":"{\"ok\":true}"`) {
		t.Fatalf("detail: %s", detail.body)
	}
	if strings.Contains(string(detail.body), testKey) || strings.Contains(fs.logs.String(), testKey) {
		t.Fatal("the key leaked")
	}
	wantError(t, fs.do(t, "GET", "/v1/proja/record/deliveries/999999", tokenA, nil), 404, "LIVE.100011001")
	wantError(t, fs.do(t, "GET", "/v1/proja/record/deliveries/x", tokenA, nil), 404, "LIVE.100011001")
}

func TestIngestValidation(t *testing.T) {
	t.Parallel()
	fs := newFullServer(t)
	good := `{"event_type":"RECORD_START","publish_domain":"push.example.com","app":"live","stream":"cam1"}`
	for _, body := range []string{
		``, `[]`, `{`, `"x"`, `{"event_type":"RECORD_PAUSE","publish_domain":"push.example.com","app":"live","stream":"s"}`,
		`{"event_type":"RECORD_START","app":"live","stream":"s"}`,
		`{"event_type":"RECORD_START","publish_domain":"push.example.com","app":"*","stream":"s"}`,
		`{"event_type":"RECORD_START","publish_domain":"push.example.com","app":"live","stream":"a/b"}`,
		`{"event_type":"RECORD_START","publish_domain":"push.example.com","app":"live","stream":"s","file_size":-1}`,
		`{"event_type":"RECORD_START","publish_domain":"push.example.com","app":"live","stream":"s","file_size":"12"}`,
		`{"event_type":"RECORD_START","publish_domain":"push.example.com","app":"live","stream":"s","start_time":"now"}`,
		`{"event_type":"RECORD_START","publish_domain":"push.example.com","app":"live","stream":"s","record_format":"AVI"}`,
		`{"event_type":"RECORD_START","publish_domain":"push.example.com","app":"live","stream":"s","download_url":"ftp://x"}`,
		`[` + good + `,{"event_type":"RECORD_START"}]`,
		`[` + strings.Repeat(good+",", livehooks.MaxEventsPerBatch) + good + `]`,
	} {
		wantError(t, fs.do(t, "POST", eventsPath, tokenA, body), 400, "LIVE.100011001")
	}
	// Nothing of a refused batch was stored.
	if n, _ := fs.store.PendingCount(context.Background()); n != 0 {
		t.Fatalf("pending %d", n)
	}
	wantError(t, fs.do(t, "POST", eventsPath, "", good), 401, "APIGW.0301")
	wantError(t, fs.do(t, "POST", "/v1/projb/record/events", tokenA, good), 403, "APIGW.0302")
	if r := fs.do(t, "POST", eventsPath, tokenA, good); r.status != 202 {
		t.Fatalf("good event: %d %s", r.status, r.body)
	}
}

func TestRetryReplayAndTest(t *testing.T) {
	t.Parallel()
	fs := newFullServer(t)
	fs.status = 400 // fails at once
	c := create(t, fs.testServer, with(validConfig(), "notify_callback_url", fs.receiver.URL+"/cb", "notify_event_subscription", []string{"RECORD_START", "RECORD_OVER"}))
	id := c["id"].(string)
	start := time.Now().UTC().Add(-time.Second).Format(livehooks.TimeFormat)
	for i := range 3 {
		fs.do(t, "POST", eventsPath, tokenA, fmt.Sprintf(`{"event_type":"RECORD_START","publish_domain":"push.example.com","app":"live","stream":"s%d"}`, i))
	}
	// Not subscribed: never sent, not replayed.
	fs.do(t, "POST", eventsPath, tokenA, `{"event_type":"RECORD_FAILED","publish_domain":"push.example.com","app":"live","stream":"s0","error_message":"x"}`)
	waitUntil(t, "three failed deliveries", func() bool {
		return strings.Contains(string(fs.do(t, "GET", base+"/"+id+"/deliveries?status=failed", tokenA, nil).body), `"total":3`)
	})
	var log struct {
		Deliveries []struct {
			ID        string `json:"delivery_id"`
			WebhookID string `json:"webhook_id"`
		} `json:"deliveries"`
	}
	_ = json.Unmarshal(fs.do(t, "GET", base+"/"+id+"/deliveries", tokenA, nil).body, &log)

	fs.mu.Lock()
	fs.status = 200
	fs.mu.Unlock()
	// Manual retry: a new delivery with the same webhook-id.
	r := fs.do(t, "POST", "/v1/proja/record/deliveries/"+log.Deliveries[0].ID+"/retry", tokenA, nil)
	if r.status != 202 {
		t.Fatalf("retry: %d %s", r.status, r.body)
	}
	waitUntil(t, "the retried callback", func() bool {
		for _, m := range fs.received() {
			if m["_webhook_id"] == log.Deliveries[0].WebhookID && len(fs.received()) == 4 {
				return true
			}
		}
		return false
	})
	wantError(t, fs.do(t, "POST", "/v1/proja/record/deliveries/999999/retry", tokenA, nil), 404, "LIVE.100011001")

	// Replay the range: the three subscribed events again.
	before := len(fs.received())
	r = fs.do(t, "POST", base+"/"+id+"/replay?since="+start, tokenA, nil)
	if r.status != 202 || !strings.Contains(string(r.body), `"queued":3`) {
		t.Fatalf("replay: %d %s", r.status, r.body)
	}
	waitUntil(t, "replayed callbacks", func() bool { return len(fs.received()) == before+3 })
	wantError(t, fs.do(t, "POST", base+"/"+id+"/replay", tokenA, nil), 400, "LIVE.100011001")
	wantError(t, fs.do(t, "POST", base+"/"+id+"/replay?since="+start+"&until="+start, tokenA, nil), 400, "LIVE.100011001")
	wantError(t, fs.do(t, "POST", base+"/"+strings.Repeat("0", 32)+"/replay?since="+start, tokenA, nil), 404, "LIVE.100011001")

	// Test-send: the receiver's answer comes back; nothing is stored.
	r = fs.do(t, "POST", base+"/"+id+"/test?event_type=RECORD_OVER", tokenA, nil)
	var tr struct {
		StatusCode   int             `json:"status_code"`
		ResponseBody string          `json:"response_body"`
		RequestBody  json.RawMessage `json:"request_body"`
	}
	_ = json.Unmarshal(r.body, &tr)
	if r.status != 200 || tr.StatusCode != 200 || tr.ResponseBody != `{"ok":true}` || !strings.Contains(string(tr.RequestBody), `"RECORD_OVER"`) {
		t.Fatalf("test: %d %s", r.status, r.body)
	}
	wantError(t, fs.do(t, "POST", base+"/"+id+"/test?event_type=NOPE", tokenA, nil), 400, "LIVE.100011001")
	// A receiver that cannot be reached is described, not a 5xx.
	unreachable := create(t, fs.testServer, with(validConfig(), "app", "other", "notify_callback_url", "http://127.0.0.1:1/cb"))
	r = fs.do(t, "POST", base+"/"+unreachable["id"].(string)+"/test", tokenA, nil)
	if r.status != 200 || !strings.Contains(string(r.body), `"status_code":0`) || !strings.Contains(string(r.body), `"error":"`) {
		t.Fatalf("unreachable test: %d %s", r.status, r.body)
	}
}
