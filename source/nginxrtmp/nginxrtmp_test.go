package nginxrtmp_test

import (
	"errors"
	"net/http"
	"net/http/httptest"
	"net/url"
	"strings"
	"sync"
	"testing"
	"time"

	"github.com/livehooks/livehooks"
	"github.com/livehooks/livehooks/source"
	"github.com/livehooks/livehooks/source/nginxrtmp"
	"github.com/livehooks/livehooks/source/sourcetest"
)

// notification builds a body the way nginx-rtmp 1.2.2 does (captured from
// Debian's nginx 1.22 + libnginx-mod-rtmp): its own fields first, then the
// publisher's query arguments appended raw (here a hostile second call=,
// path= and name=).
func notification(call, client string, fields ...string) string {
	b := "app=live&flashver=FMLE/3.0%20(compatible%3B%20Lavf59.27&swfurl=&tcurl=rtmp://Push.Example.com:1935/live&pageurl=&addr=127.0.0.1" +
		"&clientid=" + client + "&call=" + call
	for _, f := range fields {
		b += "&" + f
	}
	return b + "&call=evil&path=/etc/passwd&name=other"
}

type hook struct {
	t   *testing.T
	srv *httptest.Server
}

func newHook(t *testing.T, h http.Handler) *hook {
	mux := http.NewServeMux()
	mux.Handle("POST /hooks/nginx-rtmp/{project_id}", h)
	srv := httptest.NewServer(mux)
	t.Cleanup(srv.Close)
	return &hook{t: t, srv: srv}
}

func (h *hook) post(query, body string) int {
	h.t.Helper()
	resp, err := http.Post(h.srv.URL+"/hooks/nginx-rtmp/p"+query, "application/x-www-form-urlencoded", strings.NewReader(body))
	if err != nil {
		h.t.Fatal(err)
	}
	resp.Body.Close()
	return resp.StatusCode
}

func (h *hook) want(query, body string, status int) {
	h.t.Helper()
	if got := h.post(query, body); got != status {
		h.t.Fatalf("%s: status %d, want %d", body, got, status)
	}
}

const cam1 = "p/push.example.com/live/cam1"

func TestNotifications(t *testing.T) {
	t.Parallel()
	src, rec, dir := sourcetest.New(t)
	h, err := nginxrtmp.New(nginxrtmp.Options{Source: src})
	if err != nil {
		t.Fatal(err)
	}
	hk := newHook(t, h)
	file := sourcetest.CopyFixture(t, "video.flv", dir, "cam1-1.flv")
	tail := sourcetest.CopyFixture(t, "trailing.flv", dir, "cam1-2.flv")

	hk.want("", notification("publish", "7", "name=cam1", "type=live"), 200)
	hk.want("", notification("update_publish", "7", "time=10", "timestamp=10000", "name=cam1"), 200)
	hk.want("", notification("play", "8", "name=cam1", "start=0", "duration=0", "reset=0"), 200)
	// A player's done does not end the publish.
	hk.want("", notification("done", "8", "name=cam1"), 200)
	hk.want("", notification("record_done", "7", "recorder=", "name=cam1", "path="+url.QueryEscape(file)), 200)
	rec.Drain(t) // the file's job reports it
	// The end of the stream: done, publish_done and the last record_done in
	// any order; a single unpublish.
	hk.want("", notification("done", "7", "name=cam1"), 200)
	hk.want("", notification("record_done", "7", "recorder=", "name=cam1", "path="+tail), 200)
	hk.want("", notification("publish_done", "7", "name=cam1"), 200)
	rec.Want(t,
		"publish "+cam1,
		"file_done "+cam1+" cam1-1.flv FLV 25168B 2.02s 320x240",
		"unpublish "+cam1,
		"file_done "+cam1+" cam1-2.flv FLV 92B 0s 0x0 empty",
	)
}

func TestEndsOfAnEarlierPublishAreStale(t *testing.T) {
	t.Parallel()
	src, rec, _ := sourcetest.New(t)
	h, _ := nginxrtmp.New(nginxrtmp.Options{Source: src})
	hk := newHook(t, h)
	hk.want("", notification("publish", "1", "name=cam1", "type=live"), 200)
	hk.want("", notification("publish_done", "1", "name=cam1"), 200)
	hk.want("", notification("publish", "2", "name=cam1", "type=live"), 200)
	// The first publisher's done, late: the second publisher goes on.
	hk.want("", notification("done", "1", "name=cam1"), 200)
	hk.want("", notification("publish_done", "1", "name=cam1"), 200)
	// publish_done then done of the second publisher.
	hk.want("", notification("publish_done", "2", "name=cam1"), 200)
	hk.want("", notification("done", "2", "name=cam1"), 200)
	// Unknown publisher (livehooks restarted meanwhile): publish_done
	// unpublishes, done (maybe a player's) does not.
	hk.want("", notification("done", "9", "name=cam2"), 200)
	hk.want("", notification("publish_done", "9", "name=cam2"), 200)
	rec.Want(t, "publish "+cam1, "unpublish "+cam1, "publish "+cam1, "unpublish "+cam1, "unpublish p/push.example.com/live/cam2")
}

func TestDomainAndBadInput(t *testing.T) {
	t.Parallel()
	src, rec, _ := sourcetest.New(t)
	h, _ := nginxrtmp.New(nginxrtmp.Options{Source: src})
	hk := newHook(t, h)
	hk.want("?secret=S&domain=Live.Example.org", notification("publish", "1", "name=cam1"), 200)
	hk.want("?domain=-bad-", notification("publish", "1", "name=cam1"), 400)
	hk.want("", "call=publish&app=live&name=cam1", 400)                               // no tcurl
	hk.want("", "call=publish&app=live&name=cam1&tcurl=rtmp://[::1]:1935/live", 400)  // not a DNS name
	hk.want("", notification("publish", "1", "name=cam%201"), 400)                    // not a stream name
	hk.want("", "app=live&tcurl=rtmp://a.example.com/live&name=cam1&call=%zz", 400)   // undecodable call
	hk.want("", "call=connect&app=live&tcurl=rtmp://a.example.com/live", 200)         // ignored
	hk.want("", "call=launch_missiles&app=live&tcurl=rtmp://a.example.com/live", 400) // unknown
	rec.Want(t, "publish p/live.example.org/live/cam1")
	if f := rec.Signals()[0].Format; f != livehooks.FormatFLV {
		t.Errorf("publish says the recorder writes %q, want FLV: nginx-rtmp records FLV only", f)
	}
}

func TestRecordDonePathFromThePublisherIsIgnored(t *testing.T) {
	t.Parallel()
	src, rec, _ := sourcetest.New(t)
	h, _ := nginxrtmp.New(nginxrtmp.Options{Source: src})
	hk := newHook(t, h)
	// nginx's own path= is outside the record directories (a misconfigured
	// record_path); the publisher's later path= is never looked at.
	hk.want("", notification("record_done", "1", "recorder=", "name=cam1", "path=/var/rec/cam1.flv"), 200)
	rec.Want(t, `failure `+cam1+` "file outside the record directories"`)
}

func TestRejectUnknownStreamsAnswers403(t *testing.T) {
	t.Parallel()
	cfg := &livehooks.CallbackConfig{ID: "c", ProjectID: "p", PublishDomain: "push.example.com", App: "live"}
	src, rec, _ := sourcetest.New(t, func(o *source.Options) { o.Callbacks = sourcetest.Callbacks{cfg} })
	rec.PutDomain(&livehooks.DomainSettings{ProjectID: "p", PublishDomain: "push.example.com", RejectUnknownStreams: true})
	h, _ := nginxrtmp.New(nginxrtmp.Options{Source: src})
	hk := newHook(t, h)
	hk.want("", notification("publish", "1", "name=cam1"), 200)
	hk.want("", strings.Replace(notification("publish", "2", "name=cam1"), "app=live", "app=other", 1), 403)
	rec.Want(t, "publish "+cam1)
}

func TestStoreOutageAnswers503(t *testing.T) {
	t.Parallel()
	src, rec, _ := sourcetest.New(t)
	rec.Err = errors.New("disk full")
	h, _ := nginxrtmp.New(nginxrtmp.Options{Source: src})
	hk := newHook(t, h)
	hk.want("", notification("publish", "1", "name=cam1"), 503)
}

// fakeControl is nginx's rtmp_control location: record/start answers 204
// until the stream is published, then 200 once.
type fakeControl struct {
	mu      sync.Mutex
	queries []string
	answers []int
}

func (c *fakeControl) ServeHTTP(w http.ResponseWriter, r *http.Request) {
	c.mu.Lock()
	defer c.mu.Unlock()
	c.queries = append(c.queries, r.URL.Path+"?"+r.URL.RawQuery)
	status := c.answers[min(len(c.queries), len(c.answers))-1]
	if status == 200 {
		_, _ = w.Write([]byte("/var/rec/cam1-1.flv"))
		return
	}
	w.WriteHeader(status)
}

func (c *fakeControl) calls() []string {
	c.mu.Lock()
	defer c.mu.Unlock()
	return append([]string(nil), c.queries...)
}

func TestControlStartsTheRecorder(t *testing.T) {
	t.Parallel()
	ctl := &fakeControl{answers: []int{204, 204, 200}}
	nginx := httptest.NewServer(ctl)
	t.Cleanup(nginx.Close)
	src, rec, _ := sourcetest.New(t)
	h, err := nginxrtmp.New(nginxrtmp.Options{Source: src, ControlURL: nginx.URL + "/control?rec=rec1"})
	if err != nil {
		t.Fatal(err)
	}
	hk := newHook(t, h)
	hk.want("", notification("publish", "1", "name=cam1"), 200)
	waitFor(t, func() bool { return len(ctl.calls()) == 3 })
	if calls := ctl.calls(); len(calls) != 3 || calls[2] != "/control/record/start?app=live&name=cam1&rec=rec1" {
		t.Fatalf("control calls %q", calls)
	}
	rec.Want(t, "publish "+cam1)
}

func TestControlFailureIsReported(t *testing.T) {
	t.Parallel()
	ctl := &fakeControl{answers: []int{500}}
	nginx := httptest.NewServer(ctl)
	t.Cleanup(nginx.Close)
	src, rec, _ := sourcetest.New(t)
	h, _ := nginxrtmp.New(nginxrtmp.Options{Source: src, ControlURL: nginx.URL + "/control/", StartWithin: 300 * time.Millisecond})
	hk := newHook(t, h)
	hk.want("", notification("publish", "1", "name=cam1"), 200)
	waitFor(t, func() bool { return len(rec.Lines()) == 2 })
	rec.Want(t, "publish "+cam1, `failure `+cam1+` "nginx-rtmp recorder could not be started: nginx answered 500"`)
	if calls := ctl.calls(); calls[0] != "/control/record/start?app=live&name=cam1&rec=" {
		t.Fatalf("control calls %q", calls)
	}
}

func TestControlURLIsChecked(t *testing.T) {
	t.Parallel()
	src, _, _ := sourcetest.New(t)
	for _, u := range []string{"ftp://x/control", "/control", "http://"} {
		if _, err := nginxrtmp.New(nginxrtmp.Options{Source: src, ControlURL: u}); err == nil {
			t.Errorf("%q accepted", u)
		}
	}
}

func TestParseFormKeepsFirstValues(t *testing.T) {
	t.Parallel()
	f := nginxrtmp.ParseForm("call=record_done&path=%2Fvar%2Frec%2Fa.flv&&x&call=publish&path=/etc/passwd&name=%zz&name=ok&a+b=c+d")
	for k, want := range map[string]string{"call": "record_done", "path": "/var/rec/a.flv", "x": "", "name": "", "a b": "c d"} {
		if got, ok := f[k]; !ok || got != want {
			t.Errorf("%s = %q (%v), want %q", k, got, ok, want)
		}
	}
}

func waitFor(t *testing.T, cond func() bool) {
	t.Helper()
	deadline := time.Now().Add(5 * time.Second)
	for !cond() {
		if time.Now().After(deadline) {
			t.Fatal("condition not met within 5 s")
		}
		time.Sleep(5 * time.Millisecond)
	}
}
