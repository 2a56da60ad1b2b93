package reliability

import (
	"bytes"
	"encoding/json"
	"io"
	"net/http"
	"net/http/httptest"
	"net/url"
	"os"
	"path/filepath"
	"strings"
	"sync"
	"testing"
	"time"

	"github.com/johannesboyne/gofakes3"
	"github.com/johannesboyne/gofakes3/backend/s3mem"
)

// stallingS3 is an in-memory S3 server whose object PUTs hang, without
// reading the body, while stalled is set: an upload that never ends.
type stallingS3 struct {
	srv     *httptest.Server
	backend *s3mem.Backend

	mu      sync.Mutex
	stalled bool
	puts    int           // object PUTs seen
	hung    chan struct{} // closed at the first stalled PUT
	flowing chan struct{} // closed by release
}

func newStallingS3(t *testing.T, bucket string) *stallingS3 {
	t.Helper()
	s := &stallingS3{backend: s3mem.New(), stalled: true, hung: make(chan struct{}), flowing: make(chan struct{})}
	if err := s.backend.CreateBucket(bucket); err != nil {
		t.Fatal(err)
	}
	fake := gofakes3.New(s.backend).Server()
	s.srv = httptest.NewServer(http.HandlerFunc(func(w http.ResponseWriter, r *http.Request) {
		if r.Method == http.MethodPut {
			s.mu.Lock()
			s.puts++
			stalled := s.stalled
			if stalled && s.puts == 1 {
				close(s.hung)
			}
			s.mu.Unlock()
			if stalled {
				// The server notices a client that went away only once
				// the body is read: hang until released.
				select {
				case <-r.Context().Done():
				case <-s.flowing:
				}
				http.Error(w, "stalled", http.StatusServiceUnavailable)
				return
			}
		}
		fake.ServeHTTP(w, r)
	}))
	t.Cleanup(s.srv.Close)
	return s
}

func (s *stallingS3) release() {
	s.mu.Lock()
	s.stalled = false
	s.mu.Unlock()
	close(s.flowing)
}

func (s *stallingS3) object(t *testing.T, bucket, key string) []byte {
	t.Helper()
	obj, err := s.backend.GetObject(bucket, key, nil)
	if err != nil {
		t.Fatalf("object %s: %v", key, err)
	}
	defer obj.Contents.Close()
	b, _ := io.ReadAll(obj.Contents)
	return b
}

// api sends an authenticated JSON request to livehooks' API.
func (s *server) api(method, path string, body any) {
	s.t.Helper()
	b, _ := json.Marshal(body)
	req, _ := http.NewRequest(method, s.base()+path, bytes.NewReader(b))
	req.Header.Set("Content-Type", "application/json")
	req.Header.Set("X-Auth-Token", token)
	resp, err := http.DefaultClient.Do(req)
	if err != nil {
		s.t.Fatalf("%s %s: %v", method, path, err)
	}
	defer resp.Body.Close()
	if resp.StatusCode/100 != 2 {
		out, _ := io.ReadAll(resp.Body)
		s.t.Fatalf("%s %s: %s: %s", method, path, resp.Status, out)
	}
}

// nginxHook posts an nginx-rtmp notification for stream cam of app live.
func (s *server) nginxHook(call string, fields ...string) {
	s.t.Helper()
	form := url.Values{"call": {call}, "app": {"live"}, "name": {"cam"}, "clientid": {"7"}, "tcurl": {"rtmp://" + domain + "/live"}}
	for _, f := range fields {
		k, v, _ := strings.Cut(f, "=")
		form.Set(k, v)
	}
	resp, err := http.PostForm(s.base()+"/hooks/nginx-rtmp/"+project+"?secret=rel-ingest-secret", form)
	if err != nil {
		s.t.Fatalf("%s: %v", call, err)
	}
	resp.Body.Close()
	if resp.StatusCode != http.StatusOK {
		s.t.Fatalf("%s: %s", call, resp.Status)
	}
}

// recordingServer starts livehooks reading recorder files from recDir,
// with a hook secret.
func recordingServer(t *testing.T, recDir string) *server {
	t.Helper()
	s := newServer(t, t.TempDir(), "--record-dir", recDir, "--ingest-secret", project+":rel-ingest-secret")
	s.start()
	return s
}

// s3Storage is a domain's storage settings for bucket on the S3 endpoint
// at url (http://host:port).
func s3Storage(url, bucket string) map[string]any {
	return map[string]any{
		"endpoint": strings.TrimPrefix(url, "http://"), "secure": false, "region": "us-east-1", "bucket": bucket,
		"access_key": "AKIDRELIABILITY", "secret_key": "reliability-secret-key",
	}
}

// bodies is a receiver that keeps the JSON bodies of the callbacks it gets.
type bodies struct {
	srv *httptest.Server
	mu  sync.Mutex
	got []map[string]any
}

func newBodies(t *testing.T) *bodies {
	b := &bodies{}
	b.srv = httptest.NewServer(http.HandlerFunc(func(w http.ResponseWriter, r *http.Request) {
		var m map[string]any
		_ = json.NewDecoder(r.Body).Decode(&m)
		b.mu.Lock()
		b.got = append(b.got, m)
		b.mu.Unlock()
	}))
	t.Cleanup(b.srv.Close)
	return b
}

func (b *bodies) all() []map[string]any {
	b.mu.Lock()
	defer b.mu.Unlock()
	return append([]map[string]any(nil), b.got...)
}

// TestKillMidUpload: nginx-rtmp reports a finished file, livehooks answers
// at once and uploads it to S3, whose PUT hangs; livehooks is killed with
// SIGKILL in the middle of the upload. After the restart the upload runs
// again and RECORD_FILE_COMPLETE arrives once, with the object's URL; the
// object is the file, byte for byte.
func TestKillMidUpload(t *testing.T) {
	t.Parallel()
	const bucket = "recordings"
	s3 := newStallingS3(t, bucket)
	rcv := newBodies(t)
	recDir := t.TempDir()
	s := recordingServer(t, recDir)
	s.createConfig("live", rcv.srv.URL)
	storage := s3Storage(s3.srv.URL, bucket)
	storage["prefix"] = "rec"
	s.api("PUT", "/v1/"+project+"/record/domains/"+domain, map[string]any{"storage": storage})
	video, err := os.ReadFile(filepath.Join("..", "media", "testdata", "video.flv"))
	if err != nil {
		t.Fatal(err)
	}
	file := filepath.Join(recDir, "cam-1.flv")
	if err := os.WriteFile(file, video, 0o644); err != nil {
		t.Fatal(err)
	}

	s.nginxHook("publish")
	answered := time.Now()
	s.nginxHook("record_done", "path="+file)
	if d := time.Since(answered); d > 2*time.Second {
		t.Fatalf("record_done answered after %v: the upload ran in the request", d)
	}
	select {
	case <-s3.hung:
	case <-time.After(20 * time.Second):
		t.Fatal("no upload started")
	}
	s.kill()
	s3.release()
	s.start()

	deadline := time.Now().Add(30 * time.Second)
	for len(rcv.all()) == 0 {
		if time.Now().After(deadline) {
			t.Fatal("no RECORD_FILE_COMPLETE after the restart")
		}
		time.Sleep(20 * time.Millisecond)
	}
	// A second callback would come within moments: give it the time.
	time.Sleep(2 * time.Second)
	complete := rcv.all()
	if len(complete) != 1 {
		t.Fatalf("%d callbacks, want 1: %v", len(complete), complete)
	}
	key := "rec/live/cam/cam-1.flv"
	if got, want := complete[0]["download_url"], s3.srv.URL+"/"+bucket+"/"+key; got != want {
		t.Fatalf("download_url %v, want %s", got, want)
	}
	if complete[0]["file_size"] != float64(len(video)) {
		t.Fatalf("file_size %v, want %d", complete[0]["file_size"], len(video))
	}
	if !bytes.Equal(s3.object(t, bucket, key), video) {
		t.Fatal("the object differs from the file")
	}
}

// TestNodeKilledMidUploadPostgres: two nodes share PostgreSQL and the
// record directory; the node that answered record_done is killed with
// SIGKILL in the middle of the upload, and the other node takes the file's
// job over once its lease runs out: the callback arrives once, with the
// object's URL.
func TestNodeKilledMidUploadPostgres(t *testing.T) {
	t.Parallel()
	const bucket = "recordings"
	s3 := newStallingS3(t, bucket)
	rcv := newBodies(t)
	recDir := t.TempDir()
	nodes := newPostgresNodes(t, 2, "--record-dir", recDir, "--ingest-secret", project+":rel-ingest-secret")
	a, b := nodes[0], nodes[1]
	a.createConfig("live", rcv.srv.URL)
	a.api("PUT", "/v1/"+project+"/record/domains/"+domain, map[string]any{"storage": s3Storage(s3.srv.URL, bucket)})
	video, err := os.ReadFile(filepath.Join("..", "media", "testdata", "video.flv"))
	if err != nil {
		t.Fatal(err)
	}
	file := filepath.Join(recDir, "cam-1.flv")
	if err := os.WriteFile(file, video, 0o644); err != nil {
		t.Fatal(err)
	}
	a.nginxHook("publish")
	a.nginxHook("record_done", "path="+file)
	select {
	case <-s3.hung:
	case <-time.After(20 * time.Second):
		t.Fatal("no upload started")
	}
	a.kill()
	s3.release()

	deadline := time.Now().Add(40 * time.Second)
	for len(rcv.all()) == 0 {
		if time.Now().After(deadline) {
			t.Fatalf("no RECORD_FILE_COMPLETE from the other node\n%s", b.log.tail(4<<10))
		}
		time.Sleep(50 * time.Millisecond)
	}
	time.Sleep(2 * time.Second)
	complete := rcv.all()
	if len(complete) != 1 || complete[0]["download_url"] != s3.srv.URL+"/"+bucket+"/live/cam/cam-1.flv" {
		t.Fatalf("callbacks %v", complete)
	}
	if !bytes.Equal(s3.object(t, bucket, "live/cam/cam-1.flv"), video) {
		t.Fatal("the object differs from the file")
	}
}
