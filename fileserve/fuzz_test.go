package fileserve

import (
	"bytes"
	"net/http"
	"net/http/httptest"
	"strings"
	"testing"
	"time"
)

// FuzzServePath: whatever the path, even one the key signed, nothing outside
// the record directory is served and nothing answers 5xx; the path goes
// through the server directly and through the mux (URL decoding, cleaning).
func FuzzServePath(f *testing.F) {
	fx := newFixture(f)
	for _, s := range []string{
		fx.rec + "/live/cam-1.flv", fx.rec + "/live/escape.flv", fx.outside, fx.rec + "/../secret.txt",
		fx.rec + "/live/%2e%2e/%2e%2e/secret.txt", fx.rec + "/live/..%2f..%2fsecret.txt", fx.rec + "/live/cam-1.flv\x00.txt",
		fx.rec + "//live/./cam-1.flv", fx.rec, "/", "", "relative/path", fx.rec + "/hls/index.m3u8",
	} {
		f.Add(s, true)
		f.Add(s, false)
	}
	mux := http.NewServeMux()
	mux.Handle("GET /recordings/{project_id}/{path...}", handler(fx.srv))
	f.Fuzz(func(t *testing.T, p string, signed bool) {
		query := "signature=AAAA"
		if signed {
			query = fx.srv.signer.Query(Link{Project: "p1", Path: p, Expires: fx.clock.Now().Add(time.Hour)})
		}
		check := func(via string, rec *httptest.ResponseRecorder) {
			if rec.Code >= 500 || bytes.Contains(rec.Body.Bytes(), []byte("TOP SECRET")) {
				t.Fatalf("%s %q: %d %q", via, p, rec.Code, rec.Body.String())
			}
			if rec.Code == 200 && !strings.HasPrefix(p, fx.rec+"/") {
				t.Fatalf("%s %q served", via, p)
			}
		}
		req := httptest.NewRequest("GET", "/x?"+query, nil)
		rec := httptest.NewRecorder()
		if err := fx.srv.ServeRecording(rec, req, "p1", p); err != nil {
			rec.Code = 403
		}
		check("direct", rec)

		req, err := http.NewRequest("GET", "/recordings/p1/"+strings.TrimPrefix(p, "/")+"?"+query, nil)
		if err != nil {
			return
		}
		rec = httptest.NewRecorder()
		mux.ServeHTTP(rec, req)
		check("mux", rec)
	})
}

// FuzzRewritePlaylist: any playlist rewrites without panic, keeps its line
// count and leaves every comment and unknown tag alone.
func FuzzRewritePlaylist(f *testing.F) {
	for _, s := range []string{
		"#EXTM3U\n#EXTINF:6,\nseg1.ts\n#EXT-X-ENDLIST\n",
		"#EXT-X-MAP:URI=\"init.mp4\",BYTERANGE=\"100@0\"\r\nseg.m4s\r\n",
		"#EXT-X-KEY:METHOD=AES-128,URI=\"\",IV=0x0\n../../x\n",
		"#EXT-X-MEDIA:URI=\"a,b\"\nhttp://h/x\n?q\n",
		"\x00\n\r\r\n#\n",
	} {
		f.Add([]byte(s))
	}
	f.Fuzz(func(t *testing.T, body []byte) {
		out := RewritePlaylist(body, func(ref string) string { return "L" })
		if bytes.Count(out, []byte("\n")) != bytes.Count(body, []byte("\n")) {
			t.Fatalf("line count changed: %q -> %q", body, out)
		}
		for _, line := range bytes.Split(body, []byte("\n")) {
			if bytes.HasPrefix(line, []byte("#")) && !bytes.HasPrefix(line, []byte("#EXT")) && !bytes.Contains(out, line) {
				t.Fatalf("comment %q changed", line)
			}
		}
	})
}
