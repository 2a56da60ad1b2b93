package reliability

import (
	"crypto/md5"
	"encoding/hex"
	"fmt"
	"io"
	"net/http"
	"net/http/httptest"
	"os"
	"path/filepath"
	"strconv"
	"strings"
	"sync"
	"sync/atomic"
	"testing"
	"time"
)

// discardS3 is an S3 endpoint that takes objects (single PUTs and multipart
// uploads) and keeps only their sizes: big uploads without a big test.
type discardS3 struct {
	srv   *httptest.Server
	mu    sync.Mutex
	parts map[string]int64 // upload id → bytes received
	sizes map[string]int64 // object key → size, once complete
	n     atomic.Int64
}

func newDiscardS3(t *testing.T) *discardS3 {
	s := &discardS3{parts: map[string]int64{}, sizes: map[string]int64{}}
	s.srv = httptest.NewServer(http.HandlerFunc(s.serve))
	t.Cleanup(s.srv.Close)
	return s
}

func (s *discardS3) serve(w http.ResponseWriter, r *http.Request) {
	q := r.URL.Query()
	key := strings.TrimPrefix(r.URL.Path, "/")
	// A body in aws-chunked encoding (streaming signatures) says how many
	// bytes of the object it carries.
	decoded := func(n int64) int64 {
		if v, err := strconv.ParseInt(r.Header.Get("X-Amz-Decoded-Content-Length"), 10, 64); err == nil {
			return v
		}
		return n
	}
	etag := func(n int64) string {
		sum := md5.Sum([]byte(strconv.FormatInt(n, 10)))
		return `"` + hex.EncodeToString(sum[:]) + `"`
	}
	switch {
	case r.Method == http.MethodPost && q.Has("uploads"):
		id := fmt.Sprintf("upload-%d", s.n.Add(1))
		fmt.Fprintf(w, `<InitiateMultipartUploadResult><Bucket>b</Bucket><Key>%s</Key><UploadId>%s</UploadId></InitiateMultipartUploadResult>`, key, id)
	case r.Method == http.MethodPut && q.Has("uploadId"):
		n, _ := io.Copy(io.Discard, r.Body)
		n = decoded(n)
		s.mu.Lock()
		s.parts[q.Get("uploadId")] += n
		s.mu.Unlock()
		w.Header().Set("ETag", etag(n))
	case r.Method == http.MethodPost && q.Has("uploadId"):
		_, _ = io.Copy(io.Discard, r.Body)
		s.mu.Lock()
		s.sizes[key] = s.parts[q.Get("uploadId")]
		s.mu.Unlock()
		fmt.Fprintf(w, `<CompleteMultipartUploadResult><Bucket>b</Bucket><Key>%s</Key><ETag>"done"</ETag></CompleteMultipartUploadResult>`, key)
	case r.Method == http.MethodPut:
		n, _ := io.Copy(io.Discard, r.Body)
		n = decoded(n)
		s.mu.Lock()
		s.sizes[key] = n
		s.mu.Unlock()
		w.Header().Set("ETag", etag(n))
	default:
		http.Error(w, "not implemented", http.StatusNotImplemented)
	}
}

// peakRSS returns a process's peak resident set (VmHWM), in bytes.
func peakRSS(t *testing.T, pid int) int64 {
	t.Helper()
	b, err := os.ReadFile(fmt.Sprintf("/proc/%d/status", pid))
	if err != nil {
		t.Fatal(err)
	}
	for _, line := range strings.Split(string(b), "\n") {
		if v, ok := strings.CutPrefix(line, "VmHWM:"); ok {
			kb, err := strconv.ParseInt(strings.TrimSuffix(strings.TrimSpace(v), " kB"), 10, 64)
			if err != nil {
				t.Fatal(err)
			}
			return kb << 10
		}
	}
	t.Fatal("no VmHWM")
	return 0
}

// TestBigUploadFlatMemory: a 2 GiB recording (a real MP4 whose tail is a
// sparse 2 GiB free box: the probe reads the boxes it needs and skips the
// rest) is probed and uploaded with livehooks' peak RSS under 100 MB. The
// S3 endpoint keeps only sizes; moving 2 GiB through loopback takes a few
// seconds (skipped with -short).
func TestBigUploadFlatMemory(t *testing.T) {
	if testing.Short() {
		t.Skip("moves 2 GiB through loopback")
	}
	t.Parallel()
	s3 := newDiscardS3(t)
	rcv := newBodies(t)
	recDir := t.TempDir()
	s := recordingServer(t, recDir)
	s.createConfig("live", rcv.srv.URL)
	s.api("PUT", "/v1/"+project+"/record/domains/"+domain, map[string]any{"storage": s3Storage(s3.srv.URL, "big")})

	video, err := os.ReadFile(filepath.Join("..", "media", "testdata", "video.mp4"))
	if err != nil {
		t.Fatal(err)
	}
	const size = 2 << 30
	file := filepath.Join(recDir, "cam-1.mp4")
	f, err := os.Create(file)
	if err != nil {
		t.Fatal(err)
	}
	free := int64(size - len(video))
	hdr := []byte{byte(free >> 24), byte(free >> 16), byte(free >> 8), byte(free), 'f', 'r', 'e', 'e'}
	if _, err := f.Write(append(video, hdr...)); err != nil {
		t.Fatal(err)
	}
	if err := f.Truncate(size); err != nil {
		t.Fatal(err)
	}
	f.Close()

	s.nginxHook("publish")
	start := time.Now()
	s.nginxHook("record_done", "path="+file)
	deadline := time.Now().Add(5 * time.Minute)
	for {
		if got := rcv.all(); len(got) > 0 {
			if got[0]["file_size"] != float64(size) || got[0]["download_url"] != s3.srv.URL+"/big/live/cam/cam-1.mp4" {
				t.Fatalf("callback %v", got[0])
			}
			break
		}
		if time.Now().After(deadline) {
			t.Fatal("no RECORD_FILE_COMPLETE within 5 minutes")
		}
		time.Sleep(100 * time.Millisecond)
	}
	s3.mu.Lock()
	stored := s3.sizes["big/live/cam/cam-1.mp4"]
	s3.mu.Unlock()
	if stored != size {
		t.Fatalf("the object has %d bytes, want %d", stored, size)
	}
	rss := peakRSS(t, s.cmd.Process.Pid)
	t.Logf("2 GiB uploaded in %v; livehooks peak RSS %d MiB", time.Since(start).Round(time.Second), rss>>20)
	if rss >= 100<<20 {
		t.Fatalf("livehooks peak RSS %d MiB, want < 100 MB", rss>>20)
	}
}
