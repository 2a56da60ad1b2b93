package source_test

import (
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
	"time"

	"github.com/livehooks/livehooks"
	"github.com/livehooks/livehooks/media"
	"github.com/livehooks/livehooks/signature"
	"github.com/livehooks/livehooks/source"
	"github.com/livehooks/livehooks/source/sourcetest"
)

var cam1 = livehooks.StreamKey{ProjectID: "p", PublishDomain: "push.example.com", App: "live", Stream: "cam1"}

const stream = "p/push.example.com/live/cam1"

func TestFilePipeline(t *testing.T) {
	t.Parallel()
	outside := filepath.Join(t.TempDir(), "outside")
	if err := os.Mkdir(outside, 0o755); err != nil {
		t.Fatal(err)
	}
	secret := filepath.Join(outside, "secret.flv")
	if err := os.WriteFile(secret, []byte("not for livehooks"), 0o644); err != nil {
		t.Fatal(err)
	}
	for _, tc := range []struct {
		name string
		path func(t *testing.T, dir string) string
		want string
	}{
		{"flv", func(t *testing.T, dir string) string {
			return sourcetest.CopyFixture(t, "video.flv", dir, "cam1-1.flv")
		},
			"file_done " + stream + " cam1-1.flv FLV 25168B 2.02s 320x240"},
		{"mp4 in a subdirectory", func(t *testing.T, dir string) string {
			_ = os.Mkdir(filepath.Join(dir, "live"), 0o755)
			return sourcetest.CopyFixture(t, "video.mp4", filepath.Join(dir, "live"), "cam1.mp4")
		}, "file_done " + stream + " cam1.mp4 MP4 24935B 2s 320x240"},
		{"trailing file without media", func(t *testing.T, dir string) string {
			return sourcetest.CopyFixture(t, "trailing.flv", dir, "cam1-2.flv")
		}, "file_done " + stream + " cam1-2.flv FLV 92B 0s 0x0 empty"},
		{"corrupt", func(t *testing.T, dir string) string {
			p := filepath.Join(dir, "bad.flv")
			_ = os.WriteFile(p, []byte("this is not a video file"), 0o644)
			return p
		}, `failure ` + stream + ` "recording file bad.flv could not be read: media: corrupt file`},
		{"missing inside", func(t *testing.T, dir string) string { return filepath.Join(dir, "gone.flv") },
			`failure ` + stream + ` "recording file not found"`},
		{"outside", func(t *testing.T, dir string) string { return secret }, `failure ` + stream + ` "file outside the record directories"`},
		{"etc", func(t *testing.T, dir string) string { return "/etc/passwd" }, `failure ` + stream + ` "file outside the record directories"`},
		{"dot-dot escape", func(t *testing.T, dir string) string {
			return dir + "/../../" + filepath.Base(filepath.Dir(outside)) + "/outside/secret.flv"
		},
			`failure ` + stream + ` "file outside the record directories"`},
		{"relative", func(t *testing.T, dir string) string { return "cam1.flv" }, `failure ` + stream + ` "file outside the record directories"`},
		{"the directory itself", func(t *testing.T, dir string) string { return dir }, `failure ` + stream + ` "file outside the record directories"`},
		{"symlink pointing outside", func(t *testing.T, dir string) string {
			p := filepath.Join(dir, "link.flv")
			_ = os.Symlink(secret, p)
			return p
		}, `failure ` + stream + ` "file outside the record directories"`},
		{"sibling with the directory's name as prefix", func(t *testing.T, dir string) string {
			sib := dir + "-evil"
			_ = os.Mkdir(sib, 0o755)
			return sourcetest.CopyFixture(t, "video.flv", sib, "x.flv")
		}, `failure ` + stream + ` "file outside the record directories"`},
	} {
		t.Run(tc.name, func(t *testing.T) {
			t.Parallel()
			var probed []string
			var mu sync.Mutex
			src, rec, dir := sourcetest.New(t, func(o *source.Options) {
				o.Probe = func(p string) (media.Info, error) {
					mu.Lock()
					probed = append(probed, p)
					mu.Unlock()
					return media.Probe(p)
				}
			})
			if err := src.FileDone(context.Background(), cam1, tc.path(t, dir), source.FileHint{}); err != nil {
				t.Fatal(err)
			}
			rec.Drain(t)
			lines := rec.Lines()
			if len(lines) != 1 || !strings.HasPrefix(lines[0], tc.want) {
				t.Fatalf("signals %q, want one starting with %q", lines, tc.want)
			}
			if strings.Contains(tc.want, "outside") || strings.Contains(tc.want, "not found") {
				if len(probed) != 0 {
					t.Fatalf("a refused file was read: %v", probed)
				}
			}
		})
	}
}

func TestRecordDirIsASymlink(t *testing.T) {
	t.Parallel()
	real := t.TempDir()
	link := filepath.Join(t.TempDir(), "rec")
	if err := os.Symlink(real, link); err != nil {
		t.Fatal(err)
	}
	src, rec, _ := sourcetest.New(t, func(o *source.Options) { o.RecordDirs = []string{link} })
	sourcetest.CopyFixture(t, "video.flv", real, "a.flv")
	// nginx reports the path under the configured (symlinked) directory.
	if err := src.FileDone(context.Background(), cam1, filepath.Join(link, "a.flv"), source.FileHint{}); err != nil {
		t.Fatal(err)
	}
	rec.Want(t, "file_done "+stream+" a.flv FLV 25168B 2.02s 320x240")
}

func TestNoRecordDirsRefusesEverything(t *testing.T) {
	t.Parallel()
	src, rec, dir := sourcetest.New(t, func(o *source.Options) { o.RecordDirs = nil })
	p := sourcetest.CopyFixture(t, "video.flv", dir, "a.flv")
	if err := src.FileDone(context.Background(), cam1, p, source.FileHint{}); err != nil {
		t.Fatal(err)
	}
	rec.Want(t, `failure `+stream+` "file outside the record directories"`)
}

// The recorder's duration (MediaMTX's MTX_SEGMENT_DURATION) stands in when
// the probe finds none: a TS segment's timestamps win over it, a segment
// without timestamps takes it, and a file of an unknown format is no
// recording, with or without it (issue 11: it would let a hook report any
// file, a text file included, as a segment).
func TestRecordersDurationWhenTheProbeHasNone(t *testing.T) {
	t.Parallel()
	src, rec, dir := sourcetest.New(t)
	p := sourcetest.CopyFixture(t, "hls/seg0.ts", dir, "seg.ts")
	ts, err := os.ReadFile(p)
	if err != nil {
		t.Fatal(err)
	}
	// The SDT, PAT and PMT packets only: a program, no timestamp.
	head := filepath.Join(dir, "head.ts")
	unknown := filepath.Join(dir, "seg.bin")
	if err := os.WriteFile(head, ts[:3*188], 0o644); err != nil {
		t.Fatal(err)
	}
	if err := os.WriteFile(unknown, []byte("neither FLV nor MP4 nor TS"), 0o644); err != nil {
		t.Fatal(err)
	}
	hint := source.FileHint{Duration: 1500 * time.Millisecond}
	for _, f := range []struct {
		path string
		hint source.FileHint
	}{{p, hint}, {head, hint}, {unknown, hint}, {unknown, source.FileHint{}}} {
		if err := src.FileDone(context.Background(), cam1, f.path, f.hint); err != nil {
			t.Fatal(err)
		}
	}
	rec.Want(t, "file_done "+stream+" seg.ts HLS 16544B 1s 320x180",
		"file_done "+stream+" head.ts HLS 564B 1.5s 0x0",
		`failure `+stream+` "recording file seg.bin could not be read: media: unsupported file: unrecognised file format"`,
		`failure `+stream+` "recording file seg.bin could not be read: media: unsupported file: unrecognised file format"`)
}

func TestUpload(t *testing.T) {
	t.Parallel()
	storage := &livehooks.DomainSettings{ProjectID: "p", PublishDomain: "push.example.com",
		Storage: &livehooks.StorageSettings{Endpoint: "s3.example.com", Bucket: "b", Prefix: "rec/", AccessKey: "ak", SecretKey: "sk"}}
	for _, tc := range []struct {
		name  string
		fail  int
		nilUp bool
		calls int
		want  string
	}{
		{"first time", 0, false, 1, "file_done " + stream + " a.flv FLV 25168B 2.02s 320x240 url=https://cdn.example.com/rec/live/cam1/a.flv"},
		{"after two failures", 2, false, 3, "file_done " + stream + " a.flv FLV 25168B 2.02s 320x240 url=https://cdn.example.com/rec/live/cam1/a.flv"},
		{"never", 5, false, 3, `failure ` + stream + ` "upload of a.flv to storage failed after 3 attempts: bucket b unreachable"`},
		{"no uploader", 0, true, 0, `failure ` + stream + ` "upload of a.flv failed: the domain has object storage but this livehooks has no uploader"`},
	} {
		t.Run(tc.name, func(t *testing.T) {
			t.Parallel()
			up := &sourcetest.Uploader{Fail: tc.fail, URL: "https://cdn.example.com/"}
			src, rec, dir := sourcetest.New(t, func(o *source.Options) {
				if !tc.nilUp {
					o.Uploader = up
				}
			})
			rec.PutDomain(storage)
			p := sourcetest.CopyFixture(t, "video.flv", dir, "a.flv")
			if err := src.FileDone(context.Background(), cam1, p, source.FileHint{}); err != nil {
				t.Fatal(err)
			}
			rec.Want(t, tc.want)
			if len(up.Calls) != tc.calls || (tc.calls > 0 && up.Calls[0] != "rec/live/cam1/a.flv <- "+p) {
				t.Fatalf("uploads %q", up.Calls)
			}
		})
	}
	// A file without media is not uploaded.
	up := &sourcetest.Uploader{URL: "https://cdn.example.com/"}
	src, rec, dir := sourcetest.New(t, func(o *source.Options) { o.Uploader = up })
	rec.PutDomain(storage)
	p := sourcetest.CopyFixture(t, "trailing.flv", dir, "b.flv")
	if err := src.FileDone(context.Background(), cam1, p, source.FileHint{}); err != nil {
		t.Fatal(err)
	}
	rec.Want(t, "file_done "+stream+" b.flv FLV 92B 0s 0x0 empty")
	if len(up.Calls) != 0 {
		t.Fatalf("uploaded an empty file: %q", up.Calls)
	}
}

// TestLink: a domain with neither storage nor a URL template gets a link to
// the file livehooks serves, valid for the domain's lifetime (the default
// without settings); a template or storage wins.
func TestLink(t *testing.T) {
	t.Parallel()
	for _, tc := range []struct {
		name   string
		domain *livehooks.DomainSettings
		want   string
	}{
		{"no settings", nil, "url=link:168h0m0s:"},
		{"no expiry", &livehooks.DomainSettings{DownloadURLExpiry: 0}, "url=link:0s:"},
		{"an hour", &livehooks.DomainSettings{DownloadURLExpiry: time.Hour}, "url=link:1h0m0s:"},
		{"template", &livehooks.DomainSettings{DownloadURLTemplate: "https://dl.example.com/{file}"}, "320x240"},
		{"storage", &livehooks.DomainSettings{Storage: &livehooks.StorageSettings{Bucket: "b"}}, "url=https://cdn.example.com/live/cam1/a.flv"},
	} {
		t.Run(tc.name, func(t *testing.T) {
			t.Parallel()
			src, rec, dir := sourcetest.New(t, func(o *source.Options) {
				o.Uploader = &sourcetest.Uploader{URL: "https://cdn.example.com/"}
				o.Link = func(key livehooks.StreamKey, real string, expiry time.Duration) string {
					return "link:" + expiry.String() + ":" + key.ProjectID + real
				}
			})
			if tc.domain != nil {
				tc.domain.ProjectID, tc.domain.PublishDomain = "p", "push.example.com"
				rec.PutDomain(tc.domain)
			}
			p := sourcetest.CopyFixture(t, "video.flv", dir, "a.flv")
			if err := src.FileDone(context.Background(), cam1, p, source.FileHint{}); err != nil {
				t.Fatal(err)
			}
			rec.Drain(t)
			lines := rec.Lines()
			if len(lines) != 1 || !strings.HasSuffix(lines[0], tc.want+func() string {
				if strings.HasPrefix(tc.want, "url=link:") {
					real, _ := filepath.EvalSymlinks(p)
					return "p" + real
				}
				return ""
			}()) {
				t.Fatalf("signals %q, want one ending with %q", lines, tc.want)
			}
		})
	}
}

func TestResolveFile(t *testing.T) {
	t.Parallel()
	src, _, dir := sourcetest.New(t)
	p := sourcetest.CopyFixture(t, "video.flv", dir, "a.flv")
	real, _ := filepath.EvalSymlinks(p)
	if got, err := src.ResolveFile("p", p); err != nil || got != real {
		t.Fatalf("inside: %q %v", got, err)
	}
	for _, bad := range []string{"/etc/passwd", dir, dir + "/../a.flv", "a.flv", dir + "/gone.flv"} {
		if _, err := src.ResolveFile("p", bad); livehooks.ErrorCode(err) != livehooks.ENOTFOUND {
			t.Errorf("%q: %v", bad, err)
		}
	}
	// A link names its project: a file of another project's directory is
	// not served, even with a valid signature.
	pDir, qDir := t.TempDir(), t.TempDir()
	src, _, _ = sourcetest.New(t, func(o *source.Options) { o.RecordDirs = []string{"p:" + pDir, "q:" + qDir} })
	pFile := sourcetest.CopyFixture(t, "video.flv", pDir, "a.flv")
	if _, err := src.ResolveFile("p", pFile); err != nil {
		t.Fatalf("p's own file: %v", err)
	}
	if _, err := src.ResolveFile("q", pFile); livehooks.ErrorCode(err) != livehooks.ENOTFOUND {
		t.Fatalf("p's file asked for q: %v", err)
	}
}

func TestRejectUnknownStreams(t *testing.T) {
	t.Parallel()
	cfg := &livehooks.CallbackConfig{ID: "c1", ProjectID: "p", PublishDomain: "push.example.com", App: "live"}
	src, rec, _ := sourcetest.New(t, func(o *source.Options) { o.Callbacks = sourcetest.Callbacks{cfg} })
	rec.PutDomain(&livehooks.DomainSettings{ProjectID: "p", PublishDomain: "push.example.com", RejectUnknownStreams: true})
	ctx := context.Background()
	other := cam1
	other.App = "other"
	for _, tc := range []struct {
		key  livehooks.StreamKey
		want source.Admission
	}{{cam1, source.Recorded}, {other, source.Refused}} {
		got, err := src.Publish(ctx, tc.key, "")
		if err != nil || got != tc.want {
			t.Fatalf("%s: %v %v, want %v", tc.key.App, got, err, tc.want)
		}
	}
	rec.Want(t, "publish "+stream)

	// Bad names are an EINVALID error.
	bad := cam1
	bad.Stream = "cam 1"
	if _, err := src.Publish(ctx, bad, ""); livehooks.ErrorCode(err) != livehooks.EINVALID {
		t.Fatalf("bad stream name: %v", err)
	}
}

func TestOnDemand(t *testing.T) {
	t.Parallel()
	const key = "abcdefghijklmnopqrstuvwxyz012345"
	var mu sync.Mutex
	var bodies []source.OnDemandRequest
	srv := httptest.NewServer(http.HandlerFunc(func(w http.ResponseWriter, r *http.Request) {
		body, _ := io.ReadAll(r.Body)
		if err := signature.VerifyWebhook(key, r.Header, body, time.Now(), time.Minute); err != nil {
			t.Errorf("on-demand request signature: %v", err)
		}
		var req source.OnDemandRequest
		if err := json.Unmarshal(body, &req); err != nil {
			t.Errorf("on-demand body %s: %v", body, err)
		}
		mu.Lock()
		bodies = append(bodies, req)
		mu.Unlock()
		switch req.Stream {
		case "yes":
			_, _ = io.WriteString(w, `{"record": true}`)
		case "no":
			_, _ = io.WriteString(w, `{"record": false}`)
		case "garbage":
			_, _ = io.WriteString(w, `{"record": "yes"}`)
		case "error":
			w.WriteHeader(500)
			_, _ = io.WriteString(w, `{"record": true}`)
		case "slow":
			select {
			case <-r.Context().Done():
			case <-time.After(5 * time.Second):
			}
		}
	}))
	t.Cleanup(srv.Close)
	cfg := &livehooks.CallbackConfig{ID: "c1", ProjectID: "p", PublishDomain: "push.example.com", App: "*", Key: key,
		OnDemandCallbackURL: srv.URL + "/ondemand"}
	src, rec, dir := sourcetest.New(t, func(o *source.Options) {
		o.Callbacks = sourcetest.Callbacks{cfg}
		o.HTTPClient = srv.Client()
		o.OnDemandTimeout = 200 * time.Millisecond
	})
	ctx := context.Background()
	for _, tc := range []struct {
		stream string
		want   source.Admission
	}{{"yes", source.Recorded}, {"no", source.NotRecorded}, {"garbage", source.NotRecorded}, {"error", source.NotRecorded}, {"slow", source.NotRecorded}} {
		k := cam1
		k.Stream = tc.stream
		got, err := src.Publish(ctx, k, "")
		if err != nil || got != tc.want {
			t.Fatalf("%s: %v %v, want %v", tc.stream, got, err, tc.want)
		}
	}
	rec.Want(t, "publish p/push.example.com/live/yes")
	// The slow question's handler may still be running after the client gave
	// up on it: wait for all five, reading under the lock.
	deadline := time.Now().Add(5 * time.Second)
	for {
		mu.Lock()
		n, first := len(bodies), source.OnDemandRequest{}
		if n > 0 {
			first = bodies[0]
		}
		mu.Unlock()
		if n == 5 {
			if first != (source.OnDemandRequest{PublishDomain: "push.example.com", App: "live", Stream: "yes", ProjectID: "p", Event: "on_demand"}) {
				t.Fatalf("first on-demand request %+v", first)
			}
			break
		}
		if time.Now().After(deadline) {
			t.Fatalf("%d on-demand requests, want 5", n)
		}
		time.Sleep(5 * time.Millisecond)
	}

	// The declined stream's files are ignored; a later publish that is
	// recorded lifts that.
	no := cam1
	no.Stream = "no"
	p := sourcetest.CopyFixture(t, "video.flv", dir, "no.flv")
	if err := src.FileDone(ctx, no, p, source.FileHint{}); err != nil {
		t.Fatal(err)
	}
	rec.Want(t, "publish p/push.example.com/live/yes")
}

func TestOnDemandWithoutClientDoesNotRecord(t *testing.T) {
	t.Parallel()
	cfg := &livehooks.CallbackConfig{ID: "c1", ProjectID: "p", PublishDomain: "push.example.com", App: "*", OnDemandCallbackURL: "http://127.0.0.1:1/x"}
	src, rec, _ := sourcetest.New(t, func(o *source.Options) { o.Callbacks = sourcetest.Callbacks{cfg} })
	if got, err := src.Publish(context.Background(), cam1, ""); err != nil || got != source.NotRecorded {
		t.Fatalf("%v %v", got, err)
	}
	rec.Want(t)
}

// TestFilesOfAStreamKeepTheirOrder: a slow upload of one file holds the next
// file of the same stream back, not files of other streams.
func TestFilesOfAStreamKeepTheirOrder(t *testing.T) {
	t.Parallel()
	release := make(chan struct{})
	slow := &blockingUploader{release: release, started: make(chan string, 4)}
	src, rec, dir := sourcetest.New(t, func(o *source.Options) { o.Uploader = slow })
	ctx, stop := context.WithCancel(context.Background())
	worker := make(chan struct{})
	go func() { src.RunFileJobs(ctx); close(worker) }()
	defer func() { stop(); <-worker }()
	rec.PutDomain(&livehooks.DomainSettings{ProjectID: "p", PublishDomain: "push.example.com", Storage: &livehooks.StorageSettings{Bucket: "b"}})
	a := sourcetest.CopyFixture(t, "video.flv", dir, "a.flv")
	b := sourcetest.CopyFixture(t, "video.mp4", dir, "b.mp4")
	done := make(chan error, 2)
	go func() { done <- src.FileDone(ctx, cam1, a, source.FileHint{}) }()
	if got := <-slow.started; got != "a.flv" {
		t.Fatalf("first upload %s", got)
	}
	go func() { done <- src.FileDone(ctx, cam1, b, source.FileHint{}) }()
	other := cam1
	other.Stream = "cam2"
	// Another stream is not held back by cam1's slow upload.
	if err := src.FileDone(ctx, other, sourcetest.CopyFixture(t, "video.flv", dir, "c.flv"), source.FileHint{}); err != nil {
		t.Fatal(err)
	}
	// cam2's file is reported while cam1's first upload hangs.
	for deadline := time.Now().Add(10 * time.Second); len(rec.Signals()) == 0 && time.Now().Before(deadline); {
		time.Sleep(time.Millisecond)
	}
	close(release)
	for range 2 {
		if err := <-done; err != nil {
			t.Fatal(err)
		}
	}
	for deadline := time.Now().Add(10 * time.Second); len(rec.Signals()) < 3 && time.Now().Before(deadline); {
		time.Sleep(time.Millisecond)
	}
	var names []string
	for _, s := range rec.Signals() {
		names = append(names, s.Stream.Stream+":"+s.File.Name)
	}
	if strings.Join(names, ",") != "cam2:c.flv,cam1:a.flv,cam1:b.mp4" {
		t.Fatalf("order %v", names)
	}
}

type blockingUploader struct {
	release chan struct{}
	started chan string
}

func (u *blockingUploader) Upload(ctx context.Context, _ *livehooks.StorageSettings, objectKey, path string) (string, error) {
	if strings.HasPrefix(objectKey, "live/cam2/") {
		return "u", nil
	}
	u.started <- filepath.Base(path)
	<-u.release
	return "u", nil
}

// TestHungUploadIsBounded: an upload attempt that never returns by itself
// (a peer that stops answering) ends at its deadline, is retried, and the
// file is a RECORD_FAILED after the last attempt; the stream's next file
// is not held behind it for longer.
func TestHungUploadIsBounded(t *testing.T) {
	t.Parallel()
	src, rec, dir := sourcetest.New(t, func(o *source.Options) {
		o.Uploader = hungUploader{}
		o.UploadAttempts, o.UploadTimeout, o.UploadMinRate = 2, 50*time.Millisecond, 1<<40
	})
	rec.PutDomain(&livehooks.DomainSettings{ProjectID: "p", PublishDomain: "push.example.com", Storage: &livehooks.StorageSettings{Bucket: "b"}})
	start := time.Now()
	if err := src.FileDone(context.Background(), cam1, sourcetest.CopyFixture(t, "video.flv", dir, "a.flv"), source.FileHint{}); err != nil {
		t.Fatal(err)
	}
	rec.Want(t, `failure `+stream+` "upload of a.flv to storage failed after 2 attempts: no upload within 50ms: context deadline exceeded"`)
	if d := time.Since(start); d > 5*time.Second {
		t.Fatalf("two bounded attempts took %v", d)
	}
}

type hungUploader struct{}

func (hungUploader) Upload(ctx context.Context, _ *livehooks.StorageSettings, _, _ string) (string, error) {
	<-ctx.Done()
	return "", ctx.Err()
}
