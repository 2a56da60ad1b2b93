package main

import (
	"bytes"
	"context"
	"encoding/json"
	"io"
	"net/http"
	"net/http/httptest"
	"os"
	"path/filepath"
	"strings"
	"sync"
	"testing"

	"github.com/livehooks/livehooks/source/mediamtx"
)

func notify(env map[string]string, args ...string) (string, error) {
	var out bytes.Buffer
	err := run(context.Background(), append([]string{"notify"}, args...), func(k string) string { return env[k] }, strings.NewReader(""), &out, &out)
	return out.String(), err
}

// notifySegment puts a copy of the MP4 fixture in recDir and reports it to the
// serve at base (project p1, ingest secret S3cret) as MediaMTX's hooks would:
// ready, then segment-complete. It returns the notify environment and the
// segment's bytes.
func notifySegment(t *testing.T, base, recDir string) (map[string]string, []byte) {
	t.Helper()
	video, err := os.ReadFile("../../media/testdata/video.mp4")
	if err != nil {
		t.Fatal(err)
	}
	seg := filepath.Join(recDir, "seg1.mp4")
	if err := os.WriteFile(seg, video, 0o644); err != nil {
		t.Fatal(err)
	}
	env := map[string]string{"LIVEHOOKS_URL": base, "LIVEHOOKS_PROJECT": "p1", "LIVEHOOKS_INGEST_SECRET": "S3cret", "LIVEHOOKS_DOMAIN": "mtx.example.com",
		"MTX_PATH": "live/cam1", "MTX_SEGMENT_PATH": seg, "MTX_SEGMENT_DURATION": "2"}
	for _, ev := range []string{"available", "segment-complete"} {
		if out, err := notify(env, "mediamtx", ev); err != nil {
			t.Fatalf("%s: %v %s", ev, err, out)
		}
	}
	return env, video
}

func TestNotifyMediaMTXPostsTheEnvironment(t *testing.T) {
	type got struct {
		path, secret, ctype string
		n                   mediamtx.Notification
	}
	var mu sync.Mutex
	var reqs []got
	status := http.StatusOK
	srv := httptest.NewServer(http.HandlerFunc(func(w http.ResponseWriter, r *http.Request) {
		var g got
		g.path, g.secret, g.ctype = r.URL.RequestURI(), r.Header.Get("X-Livehooks-Secret"), r.Header.Get("Content-Type")
		b, _ := io.ReadAll(r.Body)
		if err := json.Unmarshal(b, &g.n); err != nil {
			t.Errorf("body %s: %v", b, err)
		}
		mu.Lock()
		reqs = append(reqs, g)
		mu.Unlock()
		w.WriteHeader(status)
		_, _ = io.WriteString(w, `{"error":"no"}`)
	}))
	defer srv.Close()
	env := map[string]string{
		"LIVEHOOKS_URL": srv.URL + "/", "LIVEHOOKS_PROJECT": "p1", "LIVEHOOKS_INGEST_SECRET": "S3cret",
		"MTX_PATH": "live/cam1", "MTX_QUERY": "token=abc", "MTX_SOURCE_TYPE": "rtmpConn", "MTX_SOURCE_ID": "42", "RTSP_PORT": "8554",
		"MTX_SEGMENT_PATH": "recordings/live/cam1/2026-03-08_14-10-25-000000.mp4", "MTX_SEGMENT_DURATION": "6.02",
	}
	if out, err := notify(env, "mediamtx", "available", "--domain", "push.example.com", "--record-format", "mpegts"); err != nil {
		t.Fatalf("%v %s", err, out)
	}
	if out, err := notify(env, "mediamtx", "segment-complete", "--domain", "push.example.com"); err != nil {
		t.Fatalf("%v %s", err, out)
	}
	env["LIVEHOOKS_DOMAIN"] = "env.example.com"
	if out, err := notify(env, "mediamtx", "unavailable"); err != nil {
		t.Fatalf("%v %s", err, out)
	}
	// The names of the hooks before MediaMTX v1.20 pass as they are.
	if out, err := notify(env, "mediamtx", "not-ready"); err != nil {
		t.Fatalf("%v %s", err, out)
	}
	wd, _ := os.Getwd()
	want := []got{
		{"/hooks/mediamtx/p1", "S3cret", "application/json", mediamtx.Notification{Event: "available", Path: "live/cam1", Domain: "push.example.com",
			RecordFormat: "mpegts", Query: "token=abc", SourceType: "rtmpConn", SourceID: "42", RTSPPort: "8554"}},
		{"/hooks/mediamtx/p1", "S3cret", "application/json", mediamtx.Notification{Event: "segment-complete", Path: "live/cam1", Domain: "push.example.com",
			SegmentPath: filepath.Join(wd, env["MTX_SEGMENT_PATH"]), SegmentDuration: "6.02",
			Query: "token=abc", SourceType: "rtmpConn", SourceID: "42", RTSPPort: "8554"}},
		{"/hooks/mediamtx/p1", "S3cret", "application/json", mediamtx.Notification{Event: "unavailable", Path: "live/cam1", Domain: "env.example.com",
			Query: "token=abc", SourceType: "rtmpConn", SourceID: "42", RTSPPort: "8554"}},
		{"/hooks/mediamtx/p1", "S3cret", "application/json", mediamtx.Notification{Event: "not-ready", Path: "live/cam1", Domain: "env.example.com",
			Query: "token=abc", SourceType: "rtmpConn", SourceID: "42", RTSPPort: "8554"}},
	}
	if len(reqs) != len(want) {
		t.Fatalf("requests %+v", reqs)
	}
	for i := range want {
		if reqs[i] != want[i] {
			t.Errorf("request %d:\n%+v\nwant\n%+v", i, reqs[i], want[i])
		}
	}

	// Refusals and mistakes are errors that say what to do, without the
	// secret.
	status = http.StatusUnauthorized
	_, err := notify(env, "mediamtx", "available")
	if err == nil || !strings.Contains(err.Error(), "livehooks answered 401") || strings.Contains(err.Error(), "S3cret") {
		t.Fatalf("401: %v", err)
	}
	for _, tc := range []struct {
		unset string
		args  []string
		want  string
	}{
		{"MTX_PATH", []string{"mediamtx", "ready"}, "MTX_PATH is not set"},
		{"MTX_SEGMENT_PATH", []string{"mediamtx", "segment-complete"}, "MTX_SEGMENT_PATH is not set"},
		{"LIVEHOOKS_PROJECT", []string{"mediamtx", "ready"}, "--project is required"},
		{"LIVEHOOKS_INGEST_SECRET", []string{"mediamtx", "ready"}, "--secret is required"},
		{"", []string{"mediamtx", "started"}, `event "started"`},
		{"", []string{"mediamtx", "ready", "--url", "ftp://x"}, "--url"},
		{"", []string{"mediamtx", "available", "--record-format", "mp4"}, `--record-format "mp4"`},
	} {
		e := map[string]string{}
		for k, v := range env {
			if k != tc.unset {
				e[k] = v
			}
		}
		if _, err := notify(e, tc.args...); err == nil || !strings.Contains(err.Error(), tc.want) {
			t.Errorf("%v without %s: %v, want %q", tc.args, tc.unset, err, tc.want)
		}
	}
	for _, args := range [][]string{{"--help"}, {"mediamtx", "--help"}} {
		out, err := notify(nil, args...)
		if err != nil || !strings.Contains(out, "LIVEHOOKS_INGEST_SECRET") {
			t.Errorf("%v: %v\n%s", args, err, out)
		}
	}
	if out, _ := notify(nil, "mediamtx", "--help"); !strings.Contains(out, "runOnAvailable: livehooks notify mediamtx available") ||
		!strings.Contains(out, "all_others") || !strings.Contains(out, "runOnReady") || !strings.Contains(out, "exit code") {
		t.Errorf("mediamtx --help lacks the v1.20 hook names, the complete file or the exit code:\n%s", out)
	}
	var out bytes.Buffer
	if err := run(context.Background(), []string{"serve", "--help"}, func(string) string { return "" }, nil, &out, &out); err != nil ||
		!strings.Contains(out.String(), "--nginx-control-url") || !strings.Contains(out.String(), "LIVEHOOKS_NGINX_CONTROL_URL") {
		t.Errorf("serve --help: %v\n%s", err, out.String())
	}
}

// TestNotifyMediaMTXThroughServe: MediaMTX's three hooks through a real
// serve reach a receiver as the recording's callbacks.
func TestNotifyMediaMTXThroughServe(t *testing.T) {
	recDir := t.TempDir()
	rcv := newJSONReceiver(t)
	srv := start(t, map[string]string{"LIVEHOOKS_LOG_FORMAT": "json"}, "serve", "--listen", "127.0.0.1:0", "--data-dir", t.TempDir(),
		"--token", "T:p1", "--ingest-secret", "p1:S3cret", "--record-dir", recDir, "--allow-callback-cidr", "127.0.0.0/8")
	base := srv.serveAddr(t)
	if status, body := request(t, "POST", base+"/v1/p1/record/callbacks", "T", `{"publish_domain":"mtx.example.com","app":"live","notify_callback_url":"`+
		rcv.URL+`/cb","notify_event_subscription":["RECORD_START","RECORD_NEW_FILE_START","RECORD_FILE_COMPLETE","RECORD_OVER","RECORD_FAILED"]}`); status != 201 {
		t.Fatalf("create config: %d %s", status, body)
	}
	env, _ := notifySegment(t, base, recDir)
	// The segment's job reports it; then a file outside the record
	// directories is refused at once.
	rcv.wait(t, 3, srv)
	env["MTX_SEGMENT_PATH"] = "/etc/hostname"
	if out, err := notify(env, "mediamtx", "segment-complete"); err != nil {
		t.Fatalf("outside: %v %s", err, out)
	}
	env["LIVEHOOKS_INGEST_SECRET"] = "wrong"
	if _, err := notify(env, "mediamtx", "unavailable"); err == nil || !strings.Contains(err.Error(), "401") {
		t.Fatalf("wrong secret: %v", err)
	}
	got := rcv.wait(t, 4, srv)
	var types []string
	for _, m := range got {
		types = append(types, m["event_type"].(string))
	}
	if strings.Join(types, " ") != "RECORD_START RECORD_NEW_FILE_START RECORD_FILE_COMPLETE RECORD_FAILED" {
		t.Fatalf("callbacks %v", types)
	}
	// MediaMTX records fmp4 unless told otherwise: MP4 from the start.
	for _, m := range got[:3] {
		if m["record_format"] != "MP4" {
			t.Errorf("%s says record_format %v, want MP4", m["event_type"], m["record_format"])
		}
	}
	fc := got[2]
	if fc["file_size"] != float64(24935) || fc["record_duration"] != float64(2) || fc["width"] != float64(320) || fc["height"] != float64(240) ||
		fc["record_format"] != "MP4" || fc["stream"] != "cam1" || fc["app"] != "live" {
		t.Fatalf("file complete %v", fc)
	}
	if got[3]["error_message"] != "file outside the record directories" {
		t.Fatalf("failed %v", got[3])
	}
	if strings.Contains(srv.stderr.String(), "S3cret") {
		t.Fatal("the ingest secret was logged")
	}
}
