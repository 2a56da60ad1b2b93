package fileserve

import (
	"bytes"
	"encoding/json"
	"errors"
	"fmt"
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

	"github.com/livehooks/livehooks"
)

type clock struct {
	mu sync.Mutex
	t  time.Time
}

func (c *clock) Now() time.Time { c.mu.Lock(); defer c.mu.Unlock(); return c.t }
func (c *clock) add(d time.Duration) {
	c.mu.Lock()
	defer c.mu.Unlock()
	c.t = c.t.Add(d)
}

type countMetrics struct {
	mu       sync.Mutex
	outcomes map[string]int
	bytes    int64
}

func (m *countMetrics) RecordingServed(outcome string, n int64) {
	m.mu.Lock()
	defer m.mu.Unlock()
	m.outcomes[outcome]++
	m.bytes += n
}

// dirResolver is what the source package's resolver does, reduced for the
// tests: the real path must lie strictly inside dir.
func dirResolver(dir string) Resolver {
	return func(project, p string) (string, error) {
		real, err := filepath.EvalSymlinks(p)
		if err != nil {
			return "", err
		}
		if !strings.HasPrefix(real, dir+"/") {
			return "", errors.New("outside")
		}
		return real, nil
	}
}

type fixture struct {
	rec, outside string
	srv          *Server
	http         *httptest.Server
	clock        *clock
	metrics      *countMetrics
}

var testKey = bytes.Repeat([]byte{7}, 32)

func newFixture(t testing.TB) *fixture {
	t.Helper()
	root, err := filepath.EvalSymlinks(t.TempDir())
	if err != nil {
		t.Fatal(err)
	}
	f := &fixture{rec: filepath.Join(root, "rec"), outside: filepath.Join(root, "secret.txt"),
		clock: &clock{t: time.Date(2026, 5, 1, 12, 0, 0, 0, time.UTC)}, metrics: &countMetrics{outcomes: map[string]int{}}}
	write := func(p string, data []byte) {
		if err := os.MkdirAll(filepath.Dir(p), 0o755); err != nil {
			t.Fatal(err)
		}
		if err := os.WriteFile(p, data, 0o644); err != nil {
			t.Fatal(err)
		}
	}
	write(filepath.Join(f.rec, "live", "cam-1.flv"), pattern("FLV", 5000))
	write(filepath.Join(f.rec, "live", "cam 2.mp4"), pattern("MP4", 3000))
	write(filepath.Join(f.rec, "hls", "seg1.ts"), pattern("TS1", 1880))
	write(filepath.Join(f.rec, "hls", "sub", "seg2.ts"), pattern("TS2", 1880))
	write(filepath.Join(f.rec, "hls", "init.mp4"), pattern("INI", 100))
	write(filepath.Join(f.rec, "hls", "index.m3u8"), []byte("#EXTM3U\r\n#EXT-X-VERSION:7\r\n#EXT-X-MAP:URI=\"init.mp4\"\r\n#EXTINF:6.0,\r\nseg1.ts\r\n# a comment URI=\"x\"\r\n#EXTINF:6.0,\r\nsub/seg2.ts\r\n#EXTINF:6.0,\r\nhttp://cdn.example.com/seg3.ts\r\n#EXT-X-ENDLIST\r\n"))
	write(f.outside, []byte("TOP SECRET"))
	if err := os.Symlink(f.outside, filepath.Join(f.rec, "live", "escape.flv")); err != nil {
		t.Fatal(err)
	}
	f.srv, err = New(Options{PublicURL: "http://placeholder", Key: testKey, Resolve: dirResolver(f.rec), Metrics: f.metrics, Clock: f.clock})
	if err != nil {
		t.Fatal(err)
	}
	mux := http.NewServeMux()
	mux.Handle("GET /recordings/{project_id}/{path...}", handler(f.srv))
	f.http = httptest.NewServer(mux)
	t.Cleanup(f.http.Close)
	f.srv.base = f.http.URL
	return f
}

// handler mounts the Server as the API does, with the error's code as status.
func handler(s *Server) http.Handler {
	return http.HandlerFunc(func(w http.ResponseWriter, r *http.Request) {
		err := s.ServeRecording(w, r, r.PathValue("project_id"), "/"+r.PathValue("path"))
		if err != nil {
			status := map[string]int{livehooks.EDENIED: 403, livehooks.ENOTFOUND: 404}[livehooks.ErrorCode(err)]
			if status == 0 {
				status = 500
			}
			w.Header().Set("Content-Type", "application/json")
			w.WriteHeader(status)
			json.NewEncoder(w).Encode(map[string]string{"error_msg": livehooks.ErrorMessage(err)})
		}
	})
}

func pattern(tag string, n int) []byte {
	var b bytes.Buffer
	for i := 0; b.Len() < n; i++ {
		fmt.Fprintf(&b, "%s-%06d;", tag, i)
	}
	return b.Bytes()[:n]
}

func get(t testing.TB, method, u string, header ...string) (*http.Response, []byte) {
	t.Helper()
	req, err := http.NewRequest(method, u, nil)
	if err != nil {
		t.Fatal(err)
	}
	for i := 0; i+1 < len(header); i += 2 {
		req.Header.Set(header[i], header[i+1])
	}
	resp, err := http.DefaultClient.Do(req)
	if err != nil {
		t.Fatal(err)
	}
	defer resp.Body.Close()
	body, err := io.ReadAll(resp.Body)
	if err != nil {
		t.Fatal(err)
	}
	return resp, body
}

func TestServeContentTypes(t *testing.T) {
	t.Parallel()
	f := newFixture(t)
	for _, c := range []struct{ file, ctype string }{
		{"live/cam-1.flv", "video/x-flv"},
		{"live/cam 2.mp4", "video/mp4"},
		{"hls/seg1.ts", "video/mp2t"},
		{"hls/index.m3u8", "application/vnd.apple.mpegurl"},
	} {
		p := filepath.Join(f.rec, c.file)
		link := f.srv.Link("p1", p, time.Hour)
		resp, body := get(t, "GET", link)
		if resp.StatusCode != 200 || resp.Header.Get("Content-Type") != c.ctype {
			t.Errorf("%s: %d %q, want 200 %q", c.file, resp.StatusCode, resp.Header.Get("Content-Type"), c.ctype)
		}
		if cc := resp.Header.Get("Cache-Control"); cc != "private, max-age=3600, immutable" {
			t.Errorf("%s: Cache-Control %q", c.file, cc)
		}
		if want, _ := os.ReadFile(p); c.ctype != "application/vnd.apple.mpegurl" && !bytes.Equal(body, want) {
			t.Errorf("%s: the body is not the file's", c.file)
		}
	}
	if cc := cacheControl(time.Time{}, time.Now()); cc != "private, max-age=31536000, immutable" {
		t.Errorf("a link that never expires: Cache-Control %q", cc)
	}
}

func TestServeRangeAndHead(t *testing.T) {
	t.Parallel()
	f := newFixture(t)
	p := filepath.Join(f.rec, "live", "cam-1.flv")
	want, _ := os.ReadFile(p)
	link := f.srv.Link("p1", p, 0)
	if strings.Contains(link, "expires=") {
		t.Errorf("a link without expiry carries expires: %s", link)
	}
	resp, body := get(t, "GET", link, "Range", "bytes=1000-1999")
	if resp.StatusCode != 206 || !bytes.Equal(body, want[1000:2000]) || resp.Header.Get("Content-Range") != "bytes 1000-1999/5000" {
		t.Fatalf("range: %d %q, %d bytes", resp.StatusCode, resp.Header.Get("Content-Range"), len(body))
	}
	resp, body = get(t, "GET", link, "Range", "bytes=-10")
	if resp.StatusCode != 206 || !bytes.Equal(body, want[4990:]) {
		t.Fatalf("suffix range: %d, %q", resp.StatusCode, body)
	}
	resp, _ = get(t, "GET", link, "Range", "bytes=9000-")
	if resp.StatusCode != 416 {
		t.Fatalf("unsatisfiable range: %d", resp.StatusCode)
	}
	resp, body = get(t, "HEAD", link)
	if resp.StatusCode != 200 || resp.ContentLength != 5000 || len(body) != 0 || resp.Header.Get("Accept-Ranges") != "bytes" {
		t.Fatalf("HEAD: %d, length %d, %d body bytes", resp.StatusCode, resp.ContentLength, len(body))
	}
	resp, _ = get(t, "GET", link, "If-Modified-Since", resp.Header.Get("Last-Modified"))
	if resp.StatusCode != 304 {
		t.Fatalf("conditional GET: %d", resp.StatusCode)
	}
	f.metrics.mu.Lock()
	defer f.metrics.mu.Unlock()
	if f.metrics.outcomes["served"] != 3 || f.metrics.outcomes["bad_range"] != 1 || f.metrics.outcomes["not_modified"] != 1 || f.metrics.bytes != 1010 {
		t.Fatalf("metrics %v, %d bytes", f.metrics.outcomes, f.metrics.bytes)
	}
}

func TestServeRefuses(t *testing.T) {
	t.Parallel()
	f := newFixture(t)
	flv := filepath.Join(f.rec, "live", "cam-1.flv")
	link := f.srv.Link("p1", flv, time.Hour)
	u, _ := url.Parse(link)
	q := u.Query()
	sig := q.Get("signature")
	alter := func(mod func(u *url.URL, q url.Values)) string {
		v, _ := url.Parse(link)
		vq := v.Query()
		mod(v, vq)
		v.RawQuery = vq.Encode()
		return v.String()
	}
	flip := "A"
	if sig[0] == 'A' {
		flip = "B"
	}
	moved := filepath.Join(f.rec, "live", "gone.flv")
	if err := os.WriteFile(moved, []byte("x"), 0o644); err != nil {
		t.Fatal(err)
	}
	goneLink := f.srv.Link("p1", moved, time.Hour)
	os.Remove(moved)
	for _, c := range []struct {
		name, url string
		status    int
		msg       string
	}{
		{"unsigned", f.http.URL + u.Path, 403, "not signed"},
		{"altered signature", alter(func(_ *url.URL, q url.Values) { q.Set("signature", flip+sig[1:]) }), 403, "altered"},
		{"later expiry", alter(func(_ *url.URL, q url.Values) { q.Set("expires", "99999999999") }), 403, "altered"},
		{"no expiry", alter(func(_ *url.URL, q url.Values) { q.Del("expires") }), 403, "altered"},
		{"other file", alter(func(u *url.URL, _ url.Values) { u.Path = strings.Replace(u.Path, "cam-1.flv", "cam 2.mp4", 1) }), 403, "altered"},
		{"other project", alter(func(u *url.URL, _ url.Values) { u.Path = strings.Replace(u.Path, "/p1/", "/p2/", 1) }), 403, "altered"},
		{"two signatures", alter(func(_ *url.URL, q url.Values) { q.Add("signature", sig) }), 403, "not signed"},
		{"gone", goneLink, 404, "no such recording"},
		{"symlink out of the record dir", f.srv.Link("p1", filepath.Join(f.rec, "live", "escape.flv"), time.Hour), 404, "no such recording"},
		{"signed outside the record dir", f.srv.Link("p1", f.outside, time.Hour), 404, "no such recording"},
		{"record dir itself", f.srv.Link("p1", f.rec, time.Hour), 404, "no such recording"},
		// The mux cleans these paths (a redirect), and the cleaned path does
		// not match the signature: 403 or 404, never the file.
		{"dot dot", f.srv.url(Link{Project: "p1", Path: f.rec + "/../secret.txt"}), 0, ""},
		{"encoded dot dot", strings.Replace(f.srv.url(Link{Project: "p1", Path: f.rec + "/live/%2e%2e/../secret.txt"}), "%252e%252e", "%2e%2e", 1), 0, ""},
		{"encoded slash", strings.Replace(f.srv.url(Link{Project: "p1", Path: f.rec + "/..%2F..%2Fsecret.txt"}), "%252F", "%2F", -1), 404, "no such recording"},
	} {
		resp, body := get(t, "GET", c.url)
		if (resp.StatusCode != c.status && (c.status != 0 || resp.StatusCode != 403 && resp.StatusCode != 404)) || !strings.Contains(string(body), c.msg) || bytes.Contains(body, []byte("TOP SECRET")) {
			t.Errorf("%s: %d %s, want %d %q", c.name, resp.StatusCode, body, c.status, c.msg)
		}
	}
	f.clock.add(time.Hour)
	resp, body := get(t, "GET", link)
	if resp.StatusCode != 403 || !strings.Contains(string(body), "expired at 2026-05-01T13:00:00Z") {
		t.Errorf("expired: %d %s", resp.StatusCode, body)
	}
}

func TestServePlaylistSignsItsSegments(t *testing.T) {
	t.Parallel()
	f := newFixture(t)
	resp, body := get(t, "GET", f.srv.Link("p1", filepath.Join(f.rec, "hls", "index.m3u8"), time.Hour))
	if resp.StatusCode != 200 {
		t.Fatalf("playlist: %d %s", resp.StatusCode, body)
	}
	t.Logf("playlist:\n%s", body)
	lines := strings.Split(string(body), "\r\n")
	want := map[string]string{"seg1.ts": "hls/seg1.ts", "sub/seg2.ts": "hls/sub/seg2.ts", "init.mp4": "hls/init.mp4"}
	fetched := 0
	for _, line := range lines {
		ref := line
		if strings.HasPrefix(line, "#EXT-X-MAP:URI=\"") {
			ref = strings.TrimSuffix(strings.TrimPrefix(line, "#EXT-X-MAP:URI=\""), "\"")
		} else if strings.HasPrefix(line, "#") || line == "" || strings.HasPrefix(line, "http://cdn.") {
			continue
		}
		if !strings.HasPrefix(ref, f.http.URL+"/recordings/p1/") || !strings.Contains(ref, "expires=") {
			t.Fatalf("unsigned reference %q", ref)
		}
		resp, got := get(t, "GET", ref)
		name := ref[strings.Index(ref, "/hls/")+1 : strings.Index(ref, "?")]
		file, _ := os.ReadFile(filepath.Join(f.rec, want[strings.TrimPrefix(name, "hls/")]))
		if resp.StatusCode != 200 || !bytes.Equal(got, file) {
			t.Fatalf("%s: %d, %d bytes, want the file's %d", ref, resp.StatusCode, len(got), len(file))
		}
		fetched++
	}
	if fetched != 3 || !strings.Contains(string(body), "\r\nhttp://cdn.example.com/seg3.ts\r\n") || !strings.Contains(string(body), "# a comment URI=\"x\"") {
		t.Fatalf("fetched %d references; playlist:\n%s", fetched, body)
	}
}

func TestRewritePlaylist(t *testing.T) {
	t.Parallel()
	link := func(ref string) string { return "L(" + ref + ")" }
	for _, c := range []struct{ in, want string }{
		{"a.ts", "L(a.ts)"},
		{"  a.ts  \n", "L(a.ts)\n"},
		{"a%20b.ts?x=1#f", "L(a b.ts)"},
		{"../x/a.ts", "L(../x/a.ts)"},
		{"/abs/a.ts", "/abs/a.ts"},
		{"https://h/a.ts", "https://h/a.ts"},
		{"?only=query", "?only=query"},
		{"#EXT-X-KEY:METHOD=AES-128,URI=\"k.key\",IV=0x1", "#EXT-X-KEY:METHOD=AES-128,URI=\"L(k.key)\",IV=0x1"},
		{"#EXT-X-SESSION-KEY:KEYURI=\"k\",URI=\"k2\"", "#EXT-X-SESSION-KEY:KEYURI=\"k\",URI=\"L(k2)\""},
		{"#EXT-X-MEDIA:NAME=\"a,URI=x\",URI=\"m.m3u8\"", "#EXT-X-MEDIA:NAME=\"a,URI=x\",URI=\"L(m.m3u8)\""},
		{"#EXT-X-MAP:URI=\"unterminated", "#EXT-X-MAP:URI=\"unterminated"},
		{"#comment URI=\"x\"", "#comment URI=\"x\""},
		{"a.ts\r\nb.ts", "L(a.ts)\r\nL(b.ts)"},
		{"\n\n", "\n\n"},
	} {
		if got := string(RewritePlaylist([]byte(c.in), link)); got != c.want {
			t.Errorf("%q: got %q, want %q", c.in, got, c.want)
		}
	}
}

func TestSignerKeyLength(t *testing.T) {
	t.Parallel()
	if _, err := NewSigner(make([]byte, 16)); err == nil {
		t.Fatal("a 16-byte key was taken")
	}
	if _, err := New(Options{PublicURL: "ftp://x", Key: testKey, Resolve: dirResolver("/")}); err == nil {
		t.Fatal("an ftp public URL was taken")
	}
}

func TestLoadKeyIsKeptAndPrivate(t *testing.T) {
	t.Parallel()
	dir := t.TempDir()
	k1, err := LoadKey(dir, func(string) string { return "" })
	if err != nil || len(k1) != 32 {
		t.Fatalf("%d bytes, %v", len(k1), err)
	}
	fi, err := os.Stat(filepath.Join(dir, KeyFile))
	if err != nil || fi.Mode().Perm() != 0o600 {
		t.Fatalf("key file: %v %v", fi.Mode(), err)
	}
	k2, _ := LoadKey(dir, nil)
	if !bytes.Equal(k1, k2) {
		t.Fatal("a second start made another key")
	}
	if _, err := LoadKey(dir, func(string) string { return "short" }); err == nil || !strings.Contains(err.Error(), EnvKey) || strings.Contains(err.Error(), "short") {
		t.Fatalf("bad env key: %v", err)
	}
}
