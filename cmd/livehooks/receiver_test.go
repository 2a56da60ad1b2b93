package main

import (
	"encoding/json"
	"net/http"
	"net/http/httptest"
	"sync"
	"testing"
	"time"

	"github.com/johannesboyne/gofakes3"
	"github.com/johannesboyne/gofakes3/backend/s3mem"
)

// jsonReceiver is a callback receiver that keeps the JSON bodies posted to it.
type jsonReceiver struct {
	*httptest.Server
	mu  sync.Mutex
	got []map[string]any
}

func newJSONReceiver(t *testing.T) *jsonReceiver {
	t.Helper()
	r := &jsonReceiver{}
	r.Server = httptest.NewServer(http.HandlerFunc(func(w http.ResponseWriter, req *http.Request) {
		var m map[string]any
		_ = json.NewDecoder(req.Body).Decode(&m)
		r.mu.Lock()
		r.got = append(r.got, m)
		r.mu.Unlock()
	}))
	t.Cleanup(r.Close)
	return r
}

// wait returns the bodies received once there are at least n; after 15 s it
// fails the test with srv's log.
func (r *jsonReceiver) wait(t *testing.T, n int, srv *running) []map[string]any {
	t.Helper()
	deadline := time.Now().Add(15 * time.Second)
	for {
		r.mu.Lock()
		got := append([]map[string]any(nil), r.got...)
		r.mu.Unlock()
		if len(got) >= n {
			return got
		}
		if time.Now().After(deadline) {
			t.Fatalf("%d callbacks, want %d: %v\n%s", len(got), n, got, srv.stderr.String())
		}
		time.Sleep(20 * time.Millisecond)
	}
}

// fakeS3 runs an in-memory S3 server holding one empty bucket.
func fakeS3(t *testing.T, bucket string) (*s3mem.Backend, *httptest.Server) {
	t.Helper()
	backend := s3mem.New()
	if err := backend.CreateBucket(bucket); err != nil {
		t.Fatal(err)
	}
	s3 := httptest.NewServer(gofakes3.New(backend).Server())
	t.Cleanup(s3.Close)
	return backend, s3
}
