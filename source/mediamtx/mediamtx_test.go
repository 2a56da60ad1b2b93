package mediamtx_test

import (
	"io"
	"net/http"
	"net/http/httptest"
	"strings"
	"testing"
	"time"

	"github.com/livehooks/livehooks/source"
	"github.com/livehooks/livehooks/source/mediamtx"
	"github.com/livehooks/livehooks/source/sourcetest"
)

// MediaMTX is not packaged in Debian: these tests use what "livehooks
// notify mediamtx" posts (testdata/README.md); the notify command itself is
// tested in cmd/livehooks.

func post(t *testing.T, srv *httptest.Server, query, body string, status int) {
	t.Helper()
	resp, err := http.Post(srv.URL+"/hooks/mediamtx/p"+query, "application/json", strings.NewReader(body))
	if err != nil {
		t.Fatal(err)
	}
	defer resp.Body.Close()
	b, _ := io.ReadAll(resp.Body)
	if resp.StatusCode != status {
		t.Fatalf("%s: %d %s, want %d", body, resp.StatusCode, b, status)
	}
}

func server(t *testing.T, h http.Handler) *httptest.Server {
	mux := http.NewServeMux()
	mux.Handle("POST /hooks/mediamtx/{project_id}", h)
	srv := httptest.NewServer(mux)
	t.Cleanup(srv.Close)
	return srv
}

func TestNotifications(t *testing.T) {
	t.Parallel()
	src, rec, dir := sourcetest.New(t)
	srv := server(t, mediamtx.New(src))
	seg := sourcetest.CopyFixture(t, "fragmented.mp4", dir, "2026-03-08_14-10-25-000000.mp4")
	ts := sourcetest.CopyFixture(t, "hls/seg0.ts", dir, "2026-03-08_14-10-27-000000.ts")
	post(t, srv, "", sourcetest.JSONFixture(t, "available.json", nil), 200)
	post(t, srv, "", sourcetest.JSONFixture(t, "segment-complete.json", map[string]any{"segment_path": seg}), 200)
	// An MPEG-TS segment (recordFormat mpegts): the picture size from its
	// SPS, the duration from its timestamps rather than MediaMTX's.
	post(t, srv, "", sourcetest.JSONFixture(t, "segment-complete.json", map[string]any{"segment_path": ts, "segment_duration": "1.5s"}), 200)
	// The segments' jobs report them; a file outside the record directory
	// is refused at once.
	rec.Drain(t)
	post(t, srv, "", sourcetest.JSONFixture(t, "segment-complete.json", nil), 200)
	post(t, srv, "", sourcetest.JSONFixture(t, "unavailable.json", nil), 200)
	const s = "p/push.example.com/live/cam1"
	rec.Want(t, "publish "+s,
		"file_done "+s+" 2026-03-08_14-10-25-000000.mp4 MP4 24857B 2.023s 320x240",
		"file_done "+s+" 2026-03-08_14-10-27-000000.ts HLS 16544B 1s 320x180",
		`failure `+s+` "file outside the record directories"`,
		"unpublish "+s)
}

// MediaMTX before v1.20 runs runOnReady and runOnNotReady; configurations
// written for it say "ready" and "not-ready": the same events.
func TestOlderEventNames(t *testing.T) {
	t.Parallel()
	src, rec, _ := sourcetest.New(t)
	srv := server(t, mediamtx.New(src))
	post(t, srv, "", sourcetest.JSONFixture(t, "available.json", map[string]any{"event": "ready"}), 200)
	post(t, srv, "", sourcetest.JSONFixture(t, "unavailable.json", map[string]any{"event": "not-ready"}), 200)
	post(t, srv, "", sourcetest.JSONFixture(t, "available.json", map[string]any{"event": "Available"}), 400)
	rec.Want(t, "publish p/push.example.com/live/cam1", "unpublish p/push.example.com/live/cam1")
}

// MediaMTX does not put recordFormat in the hooks' environment: notify's
// --record-format says it, and by default it is MediaMTX's default, fmp4.
func TestRecordFormat(t *testing.T) {
	t.Parallel()
	src, rec, _ := sourcetest.New(t)
	srv := server(t, mediamtx.New(src))
	post(t, srv, "", sourcetest.JSONFixture(t, "available.json", nil), 200)
	post(t, srv, "", sourcetest.JSONFixture(t, "available.json", map[string]any{"path": "live/cam2", "record_format": "fmp4"}), 200)
	post(t, srv, "", sourcetest.JSONFixture(t, "available.json", map[string]any{"path": "live/cam3", "record_format": "mpegts"}), 200)
	post(t, srv, "", sourcetest.JSONFixture(t, "available.json", map[string]any{"path": "live/cam4", "record_format": "flv"}), 400)
	var got []string
	for _, s := range rec.Signals() {
		got = append(got, s.Stream.Stream+" "+s.Format)
	}
	if strings.Join(got, ", ") != "cam1 MP4, cam2 MP4, cam3 HLS" {
		t.Fatalf("publish formats: %v", got)
	}
}

func TestPathsDomainsAndBadInput(t *testing.T) {
	t.Parallel()
	src, rec, _ := sourcetest.New(t)
	srv := server(t, mediamtx.New(src))
	post(t, srv, "", sourcetest.JSONFixture(t, "available.json", map[string]any{"path": "cam2"}), 200)                          // no slash: app "live"
	post(t, srv, "?domain=Q.example.com", sourcetest.JSONFixture(t, "available.json", map[string]any{"path": "/tv/cam3"}), 200) // ?domain= wins
	post(t, srv, "", sourcetest.JSONFixture(t, "available.json", map[string]any{"path": "a/b/cam4"}), 400)                      // app "a/b"
	post(t, srv, "", sourcetest.JSONFixture(t, "available.json", map[string]any{"domain": nil}), 400)
	post(t, srv, "", sourcetest.JSONFixture(t, "available.json", map[string]any{"event": "started"}), 400)
	post(t, srv, "", `{"event":`, 400)
	rec.Want(t, "publish p/push.example.com/live/cam2", "publish p/q.example.com/tv/cam3")
}

func TestParseDuration(t *testing.T) {
	t.Parallel()
	for in, want := range map[string]time.Duration{"6.02": 6020 * time.Millisecond, "60": time.Minute, "1m0.5s": 60500 * time.Millisecond} {
		if got, ok := mediamtx.ParseDuration(in); !ok || got != want {
			t.Errorf("%s: %v %v", in, got, ok)
		}
	}
	for _, in := range []string{"", "-1", "NaN", "Inf", "soon", "1e300"} {
		if _, ok := mediamtx.ParseDuration(in); ok {
			t.Errorf("%s accepted", in)
		}
	}
}

// FuzzHandler: any body gets an answer below 500, never a panic.
func FuzzHandler(f *testing.F) {
	for _, name := range []string{"available.json", "unavailable.json", "segment-complete.json"} {
		f.Add("", sourcetest.JSONFixture(f, name, nil))
	}
	f.Add("domain=x.example.com", `{"event":"segment-complete","path":"live/x","segment_path":"../../etc/passwd","segment_duration":"NaN"}`)
	src, rec, _ := sourcetest.New(f, func(o *source.Options) { o.RecordDirs = []string{f.TempDir()} })
	h := mediamtx.New(src)
	f.Fuzz(func(t *testing.T, query, body string) {
		req := httptest.NewRequest(http.MethodPost, "/hooks/mediamtx/p", strings.NewReader(body))
		req.URL.RawQuery = query
		req.SetPathValue("project_id", "p")
		w := httptest.NewRecorder()
		before := len(rec.Signals())
		h.ServeHTTP(w, req)
		if w.Code >= 500 {
			t.Fatalf("status %d for %q: %s", w.Code, body, w.Body)
		}
		for _, s := range rec.Signals()[before:] {
			if err := s.Stream.Validate(); err != nil {
				t.Fatalf("signal for an invalid stream %+v: %v", s.Stream, err)
			}
		}
	})
}
