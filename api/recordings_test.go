package api_test

import (
	"encoding/json"
	"log/slog"
	"net/http"
	"net/http/httptest"
	"testing"

	"github.com/livehooks/livehooks"
	"github.com/livehooks/livehooks/api"
)

type recordings struct{ project, path string }

func (r *recordings) ServeRecording(w http.ResponseWriter, req *http.Request, projectID, filePath string) error {
	r.project, r.path = projectID, filePath
	switch filePath {
	case "/rec/expired.flv":
		return livehooks.Errorf(livehooks.EDENIED, "the download link expired at 2026-01-01T00:00:00Z")
	case "/rec/gone.flv":
		return livehooks.Errorf(livehooks.ENOTFOUND, "no such recording, or it was removed")
	}
	w.Write([]byte("FLV"))
	return nil
}

// TestRecordingsRoute: download links need no credentials; the file path
// reaches the server decoded; its refusals are in the Huawei format. Without
// Config.Recordings the route does not exist.
func TestRecordingsRoute(t *testing.T) {
	t.Parallel()
	db := openStore(t)
	rec := &recordings{}
	srv, err := api.NewServer(api.Config{Callbacks: db, Auth: denyAll{}, Logger: slog.New(slog.DiscardHandler), Recordings: rec})
	if err != nil {
		t.Fatal(err)
	}
	get := func(h http.Handler, method, path string) (int, map[string]string, string) {
		r := httptest.NewRecorder()
		h.ServeHTTP(r, httptest.NewRequest(method, path, nil))
		var body map[string]string
		_ = json.Unmarshal(r.Body.Bytes(), &body)
		return r.Code, body, r.Body.String()
	}
	if code, _, body := get(srv, "GET", "/recordings/p1/rec/a%20b.flv?expires=1&signature=x"); code != 200 || body != "FLV" || rec.project != "p1" || rec.path != "/rec/a b.flv" {
		t.Fatalf("GET: %d %q, served %q %q", code, body, rec.project, rec.path)
	}
	if code, _, _ := get(srv, "HEAD", "/recordings/p1/rec/a.flv"); code != 200 || rec.path != "/rec/a.flv" {
		t.Fatalf("HEAD: %d", code)
	}
	for path, want := range map[string]int{"/recordings/p1/rec/expired.flv": 403, "/recordings/p1/rec/gone.flv": 404} {
		code, body, raw := get(srv, "GET", path)
		if code != want || body["error_code"] != map[int]string{403: "LIVE.100011403", 404: "LIVE.100011001"}[want] || body["error_msg"] == "" {
			t.Errorf("%s: %d %s", path, code, raw)
		}
	}
	if code, _, _ := get(srv, "POST", "/recordings/p1/rec/a.flv"); code != 405 && code != 404 {
		t.Errorf("POST: %d", code)
	}
	without, err := api.NewServer(api.Config{Callbacks: db, Auth: denyAll{}, Logger: slog.New(slog.DiscardHandler)})
	if err != nil {
		t.Fatal(err)
	}
	if code, body, _ := get(without, "GET", "/recordings/p1/rec/a.flv"); code != 404 || body["error_code"] != "APIGW.0101" {
		t.Fatalf("without recordings: %d %v", code, body)
	}
}
