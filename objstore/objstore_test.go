package objstore_test

import (
	"context"
	"io"
	"net/http"
	"net/http/httptest"
	"net/netip"
	"net/url"
	"os"
	"path/filepath"
	"strings"
	"testing"
	"time"

	"github.com/johannesboyne/gofakes3"
	"github.com/johannesboyne/gofakes3/backend/s3mem"

	"github.com/livehooks/livehooks"
	"github.com/livehooks/livehooks/objstore"
)

const (
	bucket    = "recordings"
	accessKey = "AKIDTESTACCESSKEY"
	secretKey = "s3cr3t/Secret+Key-For-Tests-0123456789"
)

type fakeS3 struct {
	backend *s3mem.Backend
	host    string // 127.0.0.1:port
}

// newFakeS3 runs an in-memory S3 server on 127.0.0.1 with one bucket.
func newFakeS3(t *testing.T) *fakeS3 {
	t.Helper()
	backend := s3mem.New()
	if err := backend.CreateBucket(bucket); err != nil {
		t.Fatal(err)
	}
	ts := httptest.NewServer(gofakes3.New(backend).Server())
	t.Cleanup(ts.Close)
	return &fakeS3{backend: backend, host: strings.TrimPrefix(ts.URL, "http://")}
}

func (f *fakeS3) settings() *livehooks.StorageSettings {
	return &livehooks.StorageSettings{Endpoint: f.host, Region: "us-east-1", Bucket: bucket, Prefix: "rec/", AccessKey: accessKey, SecretKey: secretKey}
}

// object returns an object's body and content type.
func (f *fakeS3) object(t *testing.T, key string) (string, string) {
	t.Helper()
	obj, err := f.backend.GetObject(bucket, key, nil)
	if err != nil {
		t.Fatalf("object %s: %v", key, err)
	}
	defer obj.Contents.Close()
	b, _ := io.ReadAll(obj.Contents)
	return string(b), obj.Metadata["Content-Type"]
}

// newStore returns a Store that may reach the fake S3 servers on loopback.
func newStore() *objstore.Store {
	return objstore.New(objstore.Options{AllowCIDRs: []netip.Prefix{netip.MustParsePrefix("127.0.0.0/8")}})
}

func writeFile(t *testing.T, dir, name, body string) string {
	t.Helper()
	p := filepath.Join(dir, filepath.FromSlash(name))
	if err := os.MkdirAll(filepath.Dir(p), 0o755); err != nil {
		t.Fatal(err)
	}
	if err := os.WriteFile(p, []byte(body), 0o644); err != nil {
		t.Fatal(err)
	}
	return p
}

func get(t *testing.T, u string) (int, string) {
	t.Helper()
	resp, err := http.Get(u)
	if err != nil {
		t.Fatal(err)
	}
	defer resp.Body.Close()
	b, _ := io.ReadAll(resp.Body)
	return resp.StatusCode, string(b)
}

func TestUploadContentTypesAndURL(t *testing.T) {
	t.Parallel()
	f := newFakeS3(t)
	s := newStore()
	dir := t.TempDir()
	for _, tc := range []struct{ name, ctype string }{
		{"a.flv", "video/x-flv"},
		{"b.mp4", "video/mp4"},
		{"c.ts", "video/mp2t"},
		{"d.bin", "application/octet-stream"},
	} {
		body := "data of " + tc.name
		p := writeFile(t, dir, tc.name, body)
		u, err := s.Upload(context.Background(), f.settings(), "live/cam 1/"+tc.name, p)
		if err != nil {
			t.Fatalf("%s: %v", tc.name, err)
		}
		key := "rec/live/cam 1/" + tc.name
		if want := "http://" + f.host + "/" + bucket + "/rec/live/cam%201/" + tc.name; u != want {
			t.Errorf("url = %s, want %s", u, want)
		}
		got, ctype := f.object(t, key)
		if got != body || ctype != tc.ctype {
			t.Errorf("%s: body %q type %q, want %q %q", tc.name, got, ctype, body, tc.ctype)
		}
		// The path-style URL serves the object (the fake bucket is open).
		if status, b := get(t, u); status != 200 || b != body {
			t.Errorf("GET %s: %d %q", u, status, b)
		}
	}
}

func TestPresignedURLDownloads(t *testing.T) {
	t.Parallel()
	f := newFakeS3(t)
	s := newStore()
	p := writeFile(t, t.TempDir(), "f.mp4", "mp4 bytes")
	for _, tc := range []struct {
		expiry time.Duration
		want   string
	}{
		{0, "604800"},
		{time.Hour, "3600"},
		{30 * 24 * time.Hour, "604800"},
	} {
		st := f.settings()
		st.Presign, st.PresignExpiry = true, tc.expiry
		u, err := s.Upload(context.Background(), st, "live/s/f.mp4", p)
		if err != nil {
			t.Fatal(err)
		}
		parsed, err := url.Parse(u)
		if err != nil {
			t.Fatal(err)
		}
		q := parsed.Query()
		if q.Get("X-Amz-Signature") == "" || q.Get("X-Amz-Expires") != tc.want {
			t.Errorf("presigned url %s: want X-Amz-Expires=%s", u, tc.want)
		}
		if strings.Contains(u, secretKey) || strings.Contains(u, url.QueryEscape(secretKey)) {
			t.Fatal("presigned url contains the secret key")
		}
		if status, b := get(t, u); status != 200 || b != "mp4 bytes" {
			t.Fatalf("GET presigned: %d %q", status, b)
		}
	}
}

func TestPublicURL(t *testing.T) {
	t.Parallel()
	f := newFakeS3(t)
	s := newStore()
	p := writeFile(t, t.TempDir(), "x.flv", "flv")
	st := f.settings()
	st.PublicURL, st.Prefix = "https://cdn.example.com/media/", ""
	u, err := s.Upload(context.Background(), st, "/live/s/x.flv", p)
	if err != nil {
		t.Fatal(err)
	}
	if u != "https://cdn.example.com/media/live/s/x.flv" {
		t.Fatalf("url = %s", u)
	}
	if got, _ := f.object(t, "live/s/x.flv"); got != "flv" {
		t.Fatalf("object = %q", got)
	}
}

func TestHLSUploadsPlaylistAndSegments(t *testing.T) {
	t.Parallel()
	f := newFakeS3(t)
	s := newStore()
	root := t.TempDir()
	dir := filepath.Join(root, "hls")
	writeFile(t, root, "secret.ts", "outside the playlist's directory")
	writeFile(t, dir, "seg-0.ts", "segment 0")
	writeFile(t, dir, "seg-1.ts", "segment 1")
	writeFile(t, dir, "sub/seg-2.ts", "segment 2")
	writeFile(t, dir, "init.mp4", "init")
	if err := os.Symlink(filepath.Join(root, "secret.ts"), filepath.Join(dir, "link.ts")); err != nil {
		t.Fatal(err)
	}
	playlist := "#EXTM3U\n#EXT-X-VERSION:7\n#EXT-X-TARGETDURATION:6\n" +
		"#EXT-X-MAP:URI=\"init.mp4\",BYTERANGE=\"4@0\"\n" +
		"#EXT-X-KEY:METHOD=AES-128,URI=\"key.bin\"\n" +
		"#EXTINF:6.0,\nseg-0.ts\n#EXTINF:6.0,\nseg-1.ts?v=1\n#EXTINF:6.0,\nsub/seg-2.ts\n" +
		"#EXTINF:6.0,\nseg-0.ts\n" + // listed twice: uploaded once
		"#EXTINF:6.0,\n../secret.ts\n#EXTINF:6.0,\n/etc/passwd\n#EXTINF:6.0,\nhttps://other.example.com/x.ts\n" +
		"#EXT-X-ENDLIST\n"
	p := writeFile(t, dir, "index.m3u8", playlist)

	u, err := s.Upload(context.Background(), f.settings(), "live/cam/index.m3u8", p)
	if err != nil {
		t.Fatal(err)
	}
	if want := "http://" + f.host + "/" + bucket + "/rec/live/cam/index.m3u8"; u != want {
		t.Fatalf("url = %s, want %s", u, want)
	}
	for key, want := range map[string][2]string{
		"rec/live/cam/index.m3u8":   {playlist, "application/vnd.apple.mpegurl"},
		"rec/live/cam/seg-0.ts":     {"segment 0", "video/mp2t"},
		"rec/live/cam/seg-1.ts":     {"segment 1", "video/mp2t"},
		"rec/live/cam/sub/seg-2.ts": {"segment 2", "video/mp2t"},
		"rec/live/cam/init.mp4":     {"init", "video/mp4"},
	} {
		body, ctype := f.object(t, key)
		if body != want[0] || ctype != want[1] {
			t.Errorf("%s: %q %q, want %q %q", key, body, ctype, want[0], want[1])
		}
	}
	list, err := f.backend.ListBucket(bucket, &gofakes3.Prefix{}, gofakes3.ListBucketPage{})
	if err != nil {
		t.Fatal(err)
	}
	if len(list.Contents) != 5 {
		var keys []string
		for _, c := range list.Contents {
			keys = append(keys, c.Key)
		}
		t.Fatalf("objects %v, want exactly the playlist, three segments and the init section", keys)
	}

	// A segment that leads out of the directory by a symbolic link fails the
	// upload rather than exposing the file.
	bad := writeFile(t, dir, "bad.m3u8", "#EXTM3U\n#EXTINF:6.0,\nlink.ts\n")
	if _, err := s.Upload(context.Background(), f.settings(), "live/cam/bad.m3u8", bad); err == nil {
		t.Fatal("a symlinked segment outside the directory was uploaded")
	}
	// A listed segment that is missing fails the upload.
	missing := writeFile(t, dir, "missing.m3u8", "#EXTM3U\n#EXTINF:6.0,\nnope.ts\n")
	if _, err := s.Upload(context.Background(), f.settings(), "live/cam/missing.m3u8", missing); err == nil {
		t.Fatal("a playlist with a missing segment uploaded")
	}
}

func TestErrorsNeverContainTheSecret(t *testing.T) {
	t.Parallel()
	f := newFakeS3(t)
	s := newStore()
	p := writeFile(t, t.TempDir(), "f.flv", "flv")

	// A server that echoes the secret in its error message (as a badly
	// written gateway might).
	echo := httptest.NewServer(http.HandlerFunc(func(w http.ResponseWriter, r *http.Request) {
		w.Header().Set("Content-Type", "application/xml")
		w.WriteHeader(http.StatusForbidden)
		_, _ = io.WriteString(w, `<?xml version="1.0" encoding="UTF-8"?><Error><Code>AccessDenied</Code><Message>secret `+secretKey+` refused</Message><Resource>/x</Resource><RequestId>1</RequestId></Error>`)
	}))
	t.Cleanup(echo.Close)

	ctx, cancel := context.WithTimeout(context.Background(), 10*time.Second)
	defer cancel()
	for name, mod := range map[string]func(st *livehooks.StorageSettings){
		"wrong bucket":            func(st *livehooks.StorageSettings) { st.Bucket = "no-such-bucket" },
		"wrong bucket, no region": func(st *livehooks.StorageSettings) { st.Bucket, st.Region = "no-such-bucket", "" },
		"echoing server":          func(st *livehooks.StorageSettings) { st.Endpoint = strings.TrimPrefix(echo.URL, "http://") },
		"bad endpoint":            func(st *livehooks.StorageSettings) { st.Endpoint = "bad endpoint/" + secretKey },
		"missing file":            func(st *livehooks.StorageSettings) {},
	} {
		st := f.settings()
		mod(st)
		file := p
		if name == "missing file" {
			file = filepath.Join(t.TempDir(), secretKey[:6]+".flv")
		}
		_, err := s.Upload(ctx, st, "live/s/f.flv", file)
		if err == nil {
			t.Fatalf("%s: no error", name)
		}
		if strings.Contains(err.Error(), secretKey) {
			t.Fatalf("%s: error contains the secret: %v", name, err)
		}
	}
}

// TestPrivateEndpointsRefusedByDefault: storage endpoints are user input; a
// Store without an allow-list never dials loopback or private addresses.
func TestPrivateEndpointsRefusedByDefault(t *testing.T) {
	t.Parallel()
	f := newFakeS3(t)
	p := writeFile(t, t.TempDir(), "f.flv", "flv")
	ctx, cancel := context.WithTimeout(context.Background(), 20*time.Second)
	defer cancel()
	for _, endpoint := range []string{f.host, "169.254.169.254", "10.0.0.1:9000"} {
		st := f.settings()
		st.Endpoint = endpoint
		_, err := objstore.New(objstore.Options{}).Upload(ctx, st, "f.flv", p)
		if err == nil || !strings.Contains(err.Error(), "prohibited") {
			t.Fatalf("%s: %v, want a refusal", endpoint, err)
		}
	}
	if _, err := f.backend.GetObject(bucket, "rec/f.flv", nil); err == nil {
		t.Fatal("the object was uploaded")
	}
}

// TestFrozenPeerEndsTheAttempt: a storage endpoint that takes the request
// and then stops reading its body (a frozen peer, not a refused connection)
// ends the upload after StallTimeout, with an error that says so, instead
// of holding it until the kernel gives up.
func TestFrozenPeerEndsTheAttempt(t *testing.T) {
	t.Parallel()
	backend := s3mem.New()
	if err := backend.CreateBucket(bucket); err != nil {
		t.Fatal(err)
	}
	fake := gofakes3.New(backend).Server()
	release := make(chan struct{})
	ts := httptest.NewServer(http.HandlerFunc(func(w http.ResponseWriter, r *http.Request) {
		if r.Method == http.MethodPut {
			<-release // never reads the body
			return
		}
		fake.ServeHTTP(w, r)
	}))
	t.Cleanup(func() { close(release); ts.Close() })
	st := &livehooks.StorageSettings{Endpoint: strings.TrimPrefix(ts.URL, "http://"), Region: "us-east-1", Bucket: bucket,
		AccessKey: accessKey, SecretKey: secretKey}
	// Bigger than what the sockets' buffers take in.
	p := filepath.Join(t.TempDir(), "big.flv")
	f, err := os.Create(p)
	if err != nil {
		t.Fatal(err)
	}
	if err := f.Truncate(40 << 20); err != nil {
		t.Fatal(err)
	}
	f.Close()
	s := objstore.New(objstore.Options{AllowCIDRs: []netip.Prefix{netip.MustParsePrefix("127.0.0.0/8")}, StallTimeout: 300 * time.Millisecond, MaxRetries: 1})
	start := time.Now()
	_, err = s.Upload(context.Background(), st, "live/cam/big.flv", p)
	if err == nil || !strings.Contains(err.Error(), "stalled") {
		t.Fatalf("upload to a frozen peer: %v", err)
	}
	if d := time.Since(start); d > 10*time.Second {
		t.Fatalf("the attempt took %v", d)
	}
}
