package source_test

import (
	"context"
	"crypto/rand"
	"encoding/json"
	"fmt"
	"net/http"
	"net/http/httptest"
	"net/url"
	"os"
	"path/filepath"
	"strings"
	"testing"
	"time"

	"github.com/livehooks/livehooks"
	"github.com/livehooks/livehooks/aesgcm"
	"github.com/livehooks/livehooks/groupcommit"
	"github.com/livehooks/livehooks/media"
	"github.com/livehooks/livehooks/recording"
	"github.com/livehooks/livehooks/source"
	"github.com/livehooks/livehooks/source/mediamtx"
	"github.com/livehooks/livehooks/source/nginxrtmp"
	"github.com/livehooks/livehooks/source/sourcetest"
	"github.com/livehooks/livehooks/source/srs"
	"github.com/livehooks/livehooks/store/sqlite"
)

// rig is the whole recording path of one test: the three adapters' hooks
// over HTTP, the Source with its file-job worker, the recording machine and
// an SQLite store.
type rig struct {
	t   *testing.T
	db  *sqlite.DB
	cfg *livehooks.CallbackConfig
	dir string
	srv *httptest.Server
}

// newRig starts the path with a maximum pause of 0 and a grace of 500 ms
// for late files; probes take probeDelay; mod changes the Source's options
// and the domain's settings.
func newRig(t *testing.T, probeDelay time.Duration, mod ...func(*source.Options, *livehooks.DomainSettings)) *rig {
	t.Helper()
	key := make([]byte, 32)
	_, _ = rand.Read(key)
	c, _ := aesgcm.New(key)
	ctx := context.Background()
	db, err := sqlite.Open(ctx, sqlite.Options{Path: filepath.Join(t.TempDir(), "db"), Cipher: c, Synchronous: "NORMAL"})
	if err != nil {
		t.Fatal(err)
	}
	gc := groupcommit.New(db, groupcommit.Options{Node: "n1"})
	m := recording.New(recording.Options{Committer: gc, Domains: db, TimerInterval: 10 * time.Millisecond,
		NextFileDelay: 50 * time.Millisecond, LateFileGrace: 500 * time.Millisecond, SettingsTTL: time.Millisecond})
	now := time.Now()
	domain := &livehooks.DomainSettings{ProjectID: "p", PublishDomain: "push.example.com", RecordFormat: "FLV",
		MaxPause: 0, CreateTime: now, UpdateTime: now}
	cfg := &livehooks.CallbackConfig{ID: "0123456789abcdef0123456789abcdef", ProjectID: "p", PublishDomain: "push.example.com", App: "*",
		NotifyEventSubscription: livehooks.EventTypes, SignType: "HMACSHA256", CreateTime: now, UpdateTime: now}
	if err := db.CreateCallback(ctx, cfg); err != nil {
		t.Fatal(err)
	}
	dir := t.TempDir()
	o := source.Options{Machine: m, Callbacks: db, Jobs: db, Node: "n1", RecordDirs: []string{dir},
		JobPoll: 10 * time.Millisecond, Probe: func(p string) (media.Info, error) {
			time.Sleep(probeDelay)
			return media.Probe(p)
		}}
	for _, f := range mod {
		f(&o, domain)
	}
	if err := db.PutDomain(ctx, domain); err != nil {
		t.Fatal(err)
	}
	src, err := source.New(o)
	if err != nil {
		t.Fatal(err)
	}
	nginx, err := nginxrtmp.New(nginxrtmp.Options{Source: src})
	if err != nil {
		t.Fatal(err)
	}
	mux := http.NewServeMux()
	mux.Handle("POST /hooks/nginx-rtmp/{project_id}", nginx)
	mux.Handle("POST /hooks/srs/{project_id}", srs.New(src))
	mux.Handle("POST /hooks/mediamtx/{project_id}", mediamtx.New(src))
	srv := httptest.NewServer(mux)

	runCtx, stop := context.WithCancel(ctx)
	gcDone, jobsDone := make(chan struct{}), make(chan struct{})
	go func() { gc.Run(runCtx); close(gcDone) }()
	go m.Run(runCtx)
	go func() { src.RunFileJobs(runCtx); close(jobsDone) }()
	t.Cleanup(func() {
		srv.Close()
		stop()
		<-jobsDone
		<-gcDone
		src.Close()
		db.Close()
	})
	return &rig{t: t, db: db, cfg: cfg, dir: dir, srv: srv}
}

// hook posts what adapter sends for kind ("publish", "unpublish" or "file",
// with a file of the record directory).
func (r *rig) hook(adapter, kind string) {
	r.t.Helper()
	var body, ctype string
	switch adapter {
	case "nginx-rtmp":
		f := url.Values{"app": {"live"}, "name": {"cam1"}, "clientid": {"7"}, "tcurl": {"rtmp://push.example.com/live"}}
		switch kind {
		case "publish":
			f.Set("call", "publish")
		case "unpublish":
			f.Set("call", "publish_done")
		case "file":
			f.Set("call", "record_done")
			f.Set("path", sourcetest.CopyFixture(r.t, "video.flv", r.dir, "cam1-1.flv"))
		}
		body, ctype = f.Encode(), "application/x-www-form-urlencoded"
	case "srs":
		m := map[string]any{"action": map[string]string{"publish": "on_publish", "unpublish": "on_unpublish", "file": "on_dvr"}[kind],
			"client_id": "341w361a", "vhost": "__defaultVhost__", "app": "live", "stream": "cam1", "param": "",
			"tcUrl": "rtmp://push.example.com/live"}
		if kind == "file" {
			m["cwd"], m["file"] = r.dir, "./"+filepath.Base(sourcetest.CopyFixture(r.t, "video.flv", r.dir, "cam1.1420254068776.flv"))
		}
		b, _ := json.Marshal(m)
		body, ctype = string(b), "application/json"
	case "mediamtx":
		m := map[string]any{"event": map[string]string{"publish": "available", "unpublish": "unavailable", "file": "segment-complete"}[kind],
			"path": "live/cam1", "domain": "push.example.com", "source_type": "rtmpConn", "source_id": "4c34a2d6"}
		if kind == "file" {
			m["segment_path"], m["segment_duration"] = sourcetest.CopyFixture(r.t, "fragmented.mp4", r.dir, "2026-03-08_14-10-25-000000.mp4"), "2.0"
		}
		b, _ := json.Marshal(m)
		body, ctype = string(b), "application/json"
	}
	resp, err := http.Post(r.srv.URL+"/hooks/"+adapter+"/p", ctype, strings.NewReader(body))
	if err != nil {
		r.t.Fatal(err)
	}
	resp.Body.Close()
	if resp.StatusCode != http.StatusOK {
		r.t.Fatalf("%s %s: %s", adapter, kind, resp.Status)
	}
}

// events waits until the stream's task is over (or 10 s) and returns its
// events as "TYPE" lines, checking that each FILE_COMPLETE starts no later
// than it ends.
func (r *rig) events() []string {
	r.t.Helper()
	deadline := time.Now().Add(10 * time.Second)
	for {
		evs, err := r.db.FindEvents(context.Background(), r.cfg, time.Time{}, time.Now().Add(time.Hour), 100)
		if err != nil {
			r.t.Fatal(err)
		}
		over := len(evs) > 0 && evs[len(evs)-1].Type == livehooks.RecordOver
		if over || time.Now().After(deadline) {
			if over {
				// Anything after RECORD_OVER would come within moments.
				time.Sleep(300 * time.Millisecond)
				evs, _ = r.db.FindEvents(context.Background(), r.cfg, time.Time{}, time.Now().Add(time.Hour), 100)
			}
			var out []string
			for _, e := range evs {
				out = append(out, string(e.Type))
				if e.Type == livehooks.RecordFileComplete && e.StartTime.After(e.EndTime) {
					r.t.Errorf("start_time %v after end_time %v", e.StartTime, e.EndTime)
				}
				if e.TaskID != evs[0].TaskID {
					r.t.Errorf("%s of task %s, want %s", e.Type, e.TaskID, evs[0].TaskID)
				}
			}
			return out
		}
		time.Sleep(10 * time.Millisecond)
	}
}

// TestFileAndEndRaceOnEveryAdapter: with a maximum pause of 0 the stream's
// last file may be reported before its end or just after it (MediaMTX's
// last segment, SRS's last on_dvr); either way it belongs to the ending
// task and RECORD_OVER is the task's last event, whether the file's job is
// done before the grace for late files runs out or after it.
func TestFileAndEndRaceOnEveryAdapter(t *testing.T) {
	t.Parallel()
	want := "RECORD_START RECORD_NEW_FILE_START RECORD_FILE_COMPLETE RECORD_OVER"
	for _, adapter := range []string{"nginx-rtmp", "srs", "mediamtx"} {
		for _, order := range []string{"file before end", "file after end"} {
			for _, probe := range []time.Duration{0, time.Second} {
				t.Run(fmt.Sprintf("%s/%s/probe %v", adapter, order, probe), func(t *testing.T) {
					t.Parallel()
					r := newRig(t, probe)
					r.hook(adapter, "publish")
					if order == "file before end" {
						r.hook(adapter, "file")
						r.hook(adapter, "unpublish")
					} else {
						r.hook(adapter, "unpublish")
						time.Sleep(10 * time.Millisecond) // MediaMTX: 5-15 ms
						r.hook(adapter, "file")
					}
					if got := strings.Join(r.events(), " "); got != want {
						t.Fatalf("events %s\nwant   %s", got, want)
					}
				})
			}
		}
	}
}

// TestCorruptFileThenNextFile: a file probed as corrupt is one
// RECORD_FAILED, and the stream's next file still records.
func TestCorruptFileThenNextFile(t *testing.T) {
	t.Parallel()
	r := newRig(t, 0)
	r.hook("nginx-rtmp", "publish")
	bad := filepath.Join(r.dir, "cam1-0.flv")
	if err := os.WriteFile(bad, []byte("this is not a video file"), 0o644); err != nil {
		t.Fatal(err)
	}
	form := url.Values{"call": {"record_done"}, "app": {"live"}, "name": {"cam1"}, "clientid": {"7"},
		"tcurl": {"rtmp://push.example.com/live"}, "path": {bad}}
	resp, err := http.PostForm(r.srv.URL+"/hooks/nginx-rtmp/p", form)
	if err != nil {
		t.Fatal(err)
	}
	resp.Body.Close()
	r.hook("nginx-rtmp", "file")
	r.hook("nginx-rtmp", "unpublish")
	if got, want := strings.Join(r.events(), " "), "RECORD_START RECORD_NEW_FILE_START RECORD_FAILED RECORD_FILE_COMPLETE RECORD_OVER"; got != want {
		t.Fatalf("events %s\nwant   %s", got, want)
	}
}

// TestFailedUploadBeforeTheEnd: the upload of a stream's last file is
// refused and retried past the end of the pause; its RECORD_FAILED comes
// before RECORD_OVER, in the same task (observed against MinIO: the
// RECORD_FAILED came 1.6 s after RECORD_OVER).
func TestFailedUploadBeforeTheEnd(t *testing.T) {
	t.Parallel()
	r := newRig(t, 0, func(o *source.Options, d *livehooks.DomainSettings) {
		o.Uploader = &sourcetest.Uploader{Fail: 100}
		o.UploadAttempts, o.UploadBackoff = 3, 400*time.Millisecond
		d.Storage = &livehooks.StorageSettings{Endpoint: "127.0.0.1:1", Bucket: "b"}
	})
	r.hook("nginx-rtmp", "publish")
	r.hook("nginx-rtmp", "file")
	r.hook("nginx-rtmp", "unpublish")
	if got, want := strings.Join(r.events(), " "), "RECORD_START RECORD_NEW_FILE_START RECORD_FAILED RECORD_OVER"; got != want {
		t.Fatalf("events %s\nwant   %s", got, want)
	}
}
