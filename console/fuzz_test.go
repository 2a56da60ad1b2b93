package console

import (
	"bytes"
	"net/http"
	"net/http/httptest"
	"strings"
	"testing"
	"time"

	"github.com/livehooks/livehooks"
	"github.com/livehooks/livehooks/auth"
)

// FuzzSessionCookie: a cookie value is untrusted input; opening one never
// panics and only a sealed session opens.
func FuzzSessionCookie(f *testing.F) {
	s, err := newSealer(bytes.Repeat([]byte{1}, 32))
	if err != nil {
		f.Fatal(err)
	}
	now := time.Unix(1_800_000_000, 0)
	valid, _ := s.seal(&session{ID: "0123", ProjectID: "p1", Token: "t", Expires: now.Unix() + 60})
	for _, seed := range []string{valid, "", "x", strings.Repeat("A", 200), valid[:len(valid)-2], "%%%"} {
		f.Add(seed)
	}
	f.Fuzz(func(t *testing.T, value string) {
		sess, err := s.open(value, now)
		// Only what this key sealed opens (the workers seal the seed
		// afresh, so the bytes differ; the content does not).
		if err == nil && (sess.ID != "0123" || sess.ProjectID != "p1") {
			t.Fatalf("opened %q as %+v", value, sess)
		}
		if err != nil && livehooks.ErrorCode(err) != livehooks.EUNAUTHORIZED {
			t.Fatalf("error %v", err)
		}
	})
}

// FuzzSignIn: any sign-in body gets a 2xx or a 4xx in the API's format,
// never a 5xx or a panic.
func FuzzSignIn(f *testing.F) {
	v := auth.NewVerifier([]auth.AccessKey{{AK: "AKFUZZ", SK: "skfuzz", Projects: []string{"p1"}}},
		[]auth.Token{{Token: "fuzztoken", Projects: []string{"p1"}}}, nil)
	c, err := New(Options{Auth: v, MasterKey: bytes.Repeat([]byte{2}, 32), FailDelay: time.Microsecond})
	if err != nil {
		f.Fatal(err)
	}
	for _, seed := range []string{`{"project_id":"p1","token":"fuzztoken"}`, `{"project_id":"p1","access_key":"AKFUZZ","secret_key":"skfuzz"}`,
		`{"project_id":"p/../1","token":"x"}`, `{}`, `[]`, `{"project_id":1}`, "", "{"} {
		f.Add(seed)
	}
	f.Fuzz(func(t *testing.T, body string) {
		req := httptest.NewRequest("POST", "/console/session", strings.NewReader(body))
		req.Header.Set("Content-Type", "application/json")
		rec := httptest.NewRecorder()
		c.ServeHTTP(rec, req)
		if rec.Code >= 500 || (rec.Code != http.StatusOK && !strings.Contains(rec.Body.String(), `"error_code"`)) {
			t.Fatalf("%q: %d %s", body, rec.Code, rec.Body)
		}
	})
}
