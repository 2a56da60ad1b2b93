package nginxrtmp_test

import (
	"net/http"
	"net/http/httptest"
	"strings"
	"testing"

	"github.com/livehooks/livehooks/source"
	"github.com/livehooks/livehooks/source/nginxrtmp"
	"github.com/livehooks/livehooks/source/sourcetest"
)

// FuzzHandler: any body and hook query gets an answer below 500 and never a
// panic; every signal names a valid stream; no file outside the record
// directory is read.
func FuzzHandler(f *testing.F) {
	f.Add("", notification("publish", "1", "name=cam1", "type=live"))
	f.Add("domain=x.example.com", notification("record_done", "1", "recorder=", "name=cam1", "path=/tmp/x.flv"))
	f.Add("domain=%zz", notification("publish_done", "1", "name=cam1"))
	f.Add("", notification("done", "2", "name=cam1"))
	f.Add("secret=S&domain=", "call=publish&app=*&name=..&tcurl=rtmp://a.b/c")
	f.Add("", "call=record_done&app=live&name=a&tcurl=rtmp://h/live&path=..%2F..%2Fetc%2Fpasswd")
	f.Add("", "%&=&&==call=publish")
	src, rec, _ := sourcetest.New(f, func(o *source.Options) {
		o.RecordDirs = []string{f.TempDir()}
	})
	h, err := nginxrtmp.New(nginxrtmp.Options{Source: src})
	if err != nil {
		f.Fatal(err)
	}
	f.Fuzz(func(t *testing.T, query, body string) {
		req := httptest.NewRequest(http.MethodPost, "/hooks/nginx-rtmp/p", strings.NewReader(body))
		req.URL.RawQuery = query
		req.SetPathValue("project_id", "p")
		w := httptest.NewRecorder()
		before := len(rec.Signals())
		h.ServeHTTP(w, req)
		if w.Code >= 500 {
			t.Fatalf("status %d for %q %q: %s", w.Code, query, body, w.Body)
		}
		for _, s := range rec.Signals()[before:] {
			if err := s.Stream.Validate(); err != nil {
				t.Fatalf("signal for an invalid stream %+v: %v", s.Stream, err)
			}
			if s.File != nil && !s.File.Empty && s.File.Size > 0 {
				t.Fatalf("a file was read: %+v", s.File)
			}
		}
	})
}
