package srs_test

import (
	"encoding/json"
	"io"
	"net/http"
	"net/http/httptest"
	"os"
	"path/filepath"
	"strings"
	"testing"

	"github.com/livehooks/livehooks"
	"github.com/livehooks/livehooks/source"
	"github.com/livehooks/livehooks/source/sourcetest"
	"github.com/livehooks/livehooks/source/srs"
)

// SRS is not packaged in Debian: these tests replay requests written from
// SRS's documented callback format (testdata/README.md), not captured ones.

type hook struct {
	t   *testing.T
	srv *httptest.Server
}

func newHook(t *testing.T, h http.Handler) *hook {
	mux := http.NewServeMux()
	mux.Handle("POST /hooks/srs/{project_id}", h)
	srv := httptest.NewServer(mux)
	t.Cleanup(srv.Close)
	return &hook{t: t, srv: srv}
}

// want posts body and checks the HTTP status and SRS code of the answer.
func (h *hook) want(query, body string, status int) {
	h.t.Helper()
	resp, err := http.Post(h.srv.URL+"/hooks/srs/p"+query, "application/json", strings.NewReader(body))
	if err != nil {
		h.t.Fatal(err)
	}
	defer resp.Body.Close()
	b, _ := io.ReadAll(resp.Body)
	var ans struct {
		Code *int `json:"code"`
	}
	if err := json.Unmarshal(b, &ans); err != nil || ans.Code == nil {
		h.t.Fatalf("answer %q is not {\"code\":N}", b)
	}
	wantCode := 0
	if status != 200 {
		wantCode = status
	}
	if resp.StatusCode != status || *ans.Code != wantCode {
		h.t.Fatalf("%s: %d %s, want %d code %d", body, resp.StatusCode, b, status, wantCode)
	}
}

func dvrFile(t *testing.T, dir, fixtureName, rel string) {
	t.Helper()
	p := filepath.Join(dir, rel)
	if err := os.MkdirAll(filepath.Dir(p), 0o755); err != nil {
		t.Fatal(err)
	}
	sourcetest.CopyFixture(t, fixtureName, filepath.Dir(p), filepath.Base(p))
}

func TestDefaultVhost(t *testing.T) {
	t.Parallel()
	src, rec, dir := sourcetest.New(t)
	hk := newHook(t, srs.New(src))
	dvrFile(t, dir, "video.flv", "objs/nginx/html/live/livestream.1420254068776.flv")
	hk.want("?secret=S", sourcetest.JSONFixture(t, "on_publish.json", nil), 200)
	hk.want("", sourcetest.JSONFixture(t, "on_unpublish.json", nil), 200)
	hk.want("", sourcetest.JSONFixture(t, "on_dvr.json", map[string]any{"cwd": dir}), 200)
	// An absolute file, and one that escapes cwd.
	hk.want("", sourcetest.JSONFixture(t, "on_dvr.json", map[string]any{"file": filepath.Join(dir, "objs/nginx/html/live/livestream.1420254068776.flv")}), 200)
	rec.Drain(t) // the files' jobs report them
	hk.want("", sourcetest.JSONFixture(t, "on_dvr.json", map[string]any{"cwd": dir, "file": "../../../etc/passwd"}), 200)
	// SRS 5 and 6 send tcUrl on every hook: a livehooks restarted in the
	// middle of a publish (no memory of it) still knows the domain.
	restarted := newHook(t, srs.New(src))
	restarted.want("", sourcetest.JSONFixture(t, "on_dvr.json", map[string]any{"cwd": dir, "param": ""}), 200)
	rec.Drain(t)
	restarted.want("", sourcetest.JSONFixture(t, "on_unpublish.json", map[string]any{"param": ""}), 200)
	const s = "p/push.example.com/live/livestream"
	rec.Want(t, "publish "+s, "unpublish "+s,
		"file_done "+s+" livestream.1420254068776.flv FLV 25168B 2.02s 320x240",
		"file_done "+s+" livestream.1420254068776.flv FLV 25168B 2.02s 320x240",
		`failure `+s+` "file outside the record directories"`,
		"file_done "+s+" livestream.1420254068776.flv FLV 25168B 2.02s 320x240",
		"unpublish "+s)
}

// SRS 4 sends tcUrl with on_publish only: the domain of on_unpublish and
// on_dvr is the one the stream published under, remembered in memory.
func TestSRS4RemembersThePublishDomain(t *testing.T) {
	t.Parallel()
	src, rec, dir := sourcetest.New(t)
	hk := newHook(t, srs.New(src))
	dvrFile(t, dir, "video.flv", "objs/nginx/html/live/livestream.1420254068776.flv")
	hk.want("", sourcetest.JSONFixture(t, "on_publish.json", nil), 200)
	hk.want("", sourcetest.JSONFixture(t, "v4_on_unpublish.json", nil), 200)
	hk.want("", sourcetest.JSONFixture(t, "v4_on_dvr.json", map[string]any{"cwd": dir}), 200)
	rec.Drain(t)
	hk.want("", sourcetest.JSONFixture(t, "v4_on_unpublish.json", map[string]any{"stream": "s2"}), 400) // never published
	// After a restart livehooks cannot tell: ?domain= on the hook URL can.
	restarted := newHook(t, srs.New(src))
	restarted.want("", sourcetest.JSONFixture(t, "v4_on_unpublish.json", nil), 400)
	restarted.want("?domain=push.example.com", sourcetest.JSONFixture(t, "v4_on_unpublish.json", nil), 200)
	const s = "p/push.example.com/live/livestream"
	rec.Want(t, "publish "+s, "unpublish "+s,
		"file_done "+s+" livestream.1420254068776.flv FLV 25168B 2.02s 320x240",
		"unpublish "+s)
}

func TestDomains(t *testing.T) {
	t.Parallel()
	src, rec, dir := sourcetest.New(t)
	hk := newHook(t, srs.New(src))
	dvrFile(t, dir, "video.mp4", "objs/nginx/html/live/livestream.1420254068776.mp4")
	hk.want("", sourcetest.JSONFixture(t, "on_publish_vhost.json", nil), 200)                 // a named vhost
	hk.want("", sourcetest.JSONFixture(t, "v3_on_dvr.json", map[string]any{"cwd": dir}), 200) // SRS 3, numeric client_id
	rec.Drain(t)
	hk.want("?domain=Other.Example.com", sourcetest.JSONFixture(t, "on_publish_vhost.json", nil), 200) // ?domain= wins
	// The publisher's ?vhost= (or ?domain=) wins over tcUrl's host, as in SRS.
	hk.want("", sourcetest.JSONFixture(t, "on_unpublish.json", map[string]any{"param": "?vhost=p.example.com&token=x"}), 200)
	hk.want("", sourcetest.JSONFixture(t, "on_unpublish.json", map[string]any{"param": "?domain=q.example.com"}), 200)
	hk.want("", sourcetest.JSONFixture(t, "on_unpublish.json", map[string]any{"param": "?vhost=__defaultVhost__"}), 200)
	hk.want("", sourcetest.JSONFixture(t, "on_unpublish.json", map[string]any{"tcUrl": "rtmp://203.0.113.7/live"}), 200) // an IP
	hk.want("?domain=-x-", sourcetest.JSONFixture(t, "on_publish.json", nil), 400)
	hk.want("", sourcetest.JSONFixture(t, "on_publish_vhost.json", map[string]any{"vhost": "bad_vhost"}), 400)
	rec.Want(t,
		"publish p/video.test.com/live/livestream",
		"file_done p/video.test.com/live/livestream livestream.1420254068776.mp4 MP4 24935B 2s 320x240",
		"publish p/other.example.com/live/livestream",
		"unpublish p/p.example.com/live/livestream",
		"unpublish p/q.example.com/live/livestream",
		"unpublish p/push.example.com/live/livestream",
		"unpublish p/203.0.113.7/live/livestream")
}

func TestOtherActionsAndBadInput(t *testing.T) {
	t.Parallel()
	src, rec, _ := sourcetest.New(t)
	hk := newHook(t, srs.New(src))
	hk.want("", sourcetest.JSONFixture(t, "on_publish.json", map[string]any{"action": "on_play"}), 200)
	hk.want("", sourcetest.JSONFixture(t, "on_publish.json", map[string]any{"action": "on_hls"}), 200)
	hk.want("", sourcetest.JSONFixture(t, "on_publish.json", map[string]any{"action": "on_everything"}), 400)
	hk.want("", sourcetest.JSONFixture(t, "on_publish.json", map[string]any{"stream": "a/b"}), 400)
	hk.want("", sourcetest.JSONFixture(t, "on_publish.json", map[string]any{"app": 7}), 400)
	hk.want("", `{"action":`, 400)
	hk.want("", `[]`, 400)
	rec.Want(t)
}

func TestRejectUnknownStreams(t *testing.T) {
	t.Parallel()
	cfg := &livehooks.CallbackConfig{ID: "c", ProjectID: "p", PublishDomain: "push.example.com", App: "other"}
	src, rec, _ := sourcetest.New(t, func(o *source.Options) { o.Callbacks = sourcetest.Callbacks{cfg} })
	rec.PutDomain(&livehooks.DomainSettings{ProjectID: "p", PublishDomain: "push.example.com", RejectUnknownStreams: true})
	hk := newHook(t, srs.New(src))
	hk.want("", sourcetest.JSONFixture(t, "on_publish.json", nil), 403)
	hk.want("", sourcetest.JSONFixture(t, "on_publish.json", map[string]any{"app": "other"}), 200)
	rec.Want(t, "publish p/push.example.com/other/livestream")
}

// FuzzCallback: any body and hook query gets an answer below 500 with a
// code, and never a panic.
func FuzzCallback(f *testing.F) {
	for _, name := range []string{"on_publish.json", "on_unpublish.json", "on_dvr.json", "on_publish_vhost.json", "v4_on_unpublish.json", "v4_on_dvr.json", "v3_on_dvr.json"} {
		f.Add("", sourcetest.JSONFixture(f, name, nil))
	}
	f.Add("domain=a.example.com", `{"action":"on_dvr","app":"live","stream":"s","cwd":"/","file":"../../etc/shadow"}`)
	f.Add("", `{"action":"on_publish","vhost":"__defaultVhost__","tcUrl":"rtmp://[::1]/live","app":"live","stream":"s"}`)
	f.Add("", `{"client_id":{"a":1},"action":null}`)
	src, rec, _ := sourcetest.New(f, func(o *source.Options) { o.RecordDirs = []string{f.TempDir()} })
	h := srs.New(src)
	f.Fuzz(func(t *testing.T, query, body string) {
		req := httptest.NewRequest(http.MethodPost, "/hooks/srs/p", strings.NewReader(body))
		req.URL.RawQuery = query
		req.SetPathValue("project_id", "p")
		w := httptest.NewRecorder()
		before := len(rec.Signals())
		h.ServeHTTP(w, req)
		if w.Code >= 500 {
			t.Fatalf("status %d for %q %q: %s", w.Code, query, body, w.Body)
		}
		var ans struct {
			Code *int `json:"code"`
		}
		if err := json.Unmarshal(w.Body.Bytes(), &ans); err != nil || ans.Code == nil || (*ans.Code == 0) != (w.Code == 200) {
			t.Fatalf("answer %d %q", w.Code, w.Body)
		}
		for _, s := range rec.Signals()[before:] {
			if err := s.Stream.Validate(); err != nil {
				t.Fatalf("signal for an invalid stream %+v: %v", s.Stream, err)
			}
		}
	})
}
