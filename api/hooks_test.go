package api_test

import (
	"io"
	"log/slog"
	"net/http"
	"net/http/httptest"
	"strings"
	"testing"

	"github.com/livehooks/livehooks"
	"github.com/livehooks/livehooks/api"
)

func TestHookRequiresIngestSecret(t *testing.T) {
	t.Parallel()
	db := openStore(t)
	var got []string
	_, err := api.NewServer(api.Config{
		Callbacks: db, Dev: false, Auth: nil, Logger: slog.New(slog.DiscardHandler),
		Hooks: map[string]http.Handler{"nginx-rtmp": http.HandlerFunc(func(w http.ResponseWriter, r *http.Request) {
			b, _ := io.ReadAll(r.Body)
			got = append(got, r.PathValue("project_id")+":"+string(b))
		})},
		IngestSecrets: func(project, secret string) bool { return project == "p1" && secret == "s3cret" },
	})
	if err == nil {
		t.Fatal("a server without Auth and without Dev was built")
	}
	srv, err := api.NewServer(api.Config{
		Callbacks: db, Auth: denyAll{}, Logger: slog.New(slog.DiscardHandler),
		Hooks: map[string]http.Handler{"nginx-rtmp": http.HandlerFunc(func(w http.ResponseWriter, r *http.Request) {
			b, err := io.ReadAll(r.Body)
			if err != nil {
				w.WriteHeader(413)
				return
			}
			got = append(got, r.PathValue("project_id")+":"+string(b))
		})},
		IngestSecrets: func(project, secret string) bool { return project == "p1" && secret == "s3cret" },
	})
	if err != nil {
		t.Fatal(err)
	}
	post := func(path, header, body string) int {
		req := httptest.NewRequest("POST", path, strings.NewReader(body))
		if header != "" {
			req.Header.Set("X-Livehooks-Secret", header)
		}
		rec := httptest.NewRecorder()
		srv.ServeHTTP(rec, req)
		return rec.Code
	}
	for _, tc := range []struct {
		path, header string
		want         int
	}{
		{"/hooks/nginx-rtmp/p1", "", 401},
		{"/hooks/nginx-rtmp/p1?secret=wrong", "", 401},
		{"/hooks/nginx-rtmp/p2?secret=s3cret", "", 401},
		{"/hooks/nginx-rtmp/p1?secret=s3cret", "", 200},
		{"/hooks/nginx-rtmp/p1", "s3cret", 200},
		{"/hooks/unknown/p1?secret=s3cret", "", 404},
	} {
		if code := post(tc.path, tc.header, "call=publish"); code != tc.want {
			t.Errorf("%s (header %q): %d, want %d", tc.path, tc.header, code, tc.want)
		}
	}
	if len(got) != 2 || got[0] != "p1:call=publish" {
		t.Fatalf("handler saw %v", got)
	}
	if code := post("/hooks/nginx-rtmp/p1?secret=s3cret", "", strings.Repeat("x", api.MaxBodyBytes+1)); code != 413 {
		t.Fatalf("oversized hook body: %d", code)
	}
}

type denyAll struct{}

func (denyAll) Authenticate(*http.Request, []byte) (livehooks.Principal, error) {
	return livehooks.Principal{}, livehooks.Errorf(livehooks.EUNAUTHORIZED, "no")
}
