package api

import (
	"bytes"
	"context"
	"crypto/rand"
	"encoding/json"
	"log/slog"
	"net/http"
	"net/http/httptest"
	"strings"
	"testing"
	"time"

	"github.com/livehooks/livehooks"
	"github.com/livehooks/livehooks/aesgcm"
	"github.com/livehooks/livehooks/store/sqlite"
)

// panickyStore panics on every call: a bug in a dependency must not take the
// process down or leak a stack to the client.
type panickyStore struct{ livehooks.CallbackStore }

func (panickyStore) FindCallbackByID(context.Context, string, string) (*livehooks.CallbackConfig, error) {
	panic("boom")
}

func TestPanicIsA500InHuaweiFormat(t *testing.T) {
	var logs bytes.Buffer
	s, err := NewServer(Config{Callbacks: panickyStore{}, Dev: true, Logger: slog.New(slog.NewTextHandler(&logs, nil))})
	if err != nil {
		t.Fatal(err)
	}
	rec := httptest.NewRecorder()
	s.ServeHTTP(rec, httptest.NewRequest("GET", "/v1/p/record/callbacks/"+strings.Repeat("a", 32), nil))
	if rec.Code != 500 {
		t.Fatalf("status %d", rec.Code)
	}
	var body errorBody
	if err := json.Unmarshal(rec.Body.Bytes(), &body); err != nil || body.ErrorCode != codeInternal || strings.Contains(rec.Body.String(), "boom") {
		t.Fatalf("body %s", rec.Body)
	}
	if rec.Header().Get(headerRequestID) == "" {
		t.Fatal("no X-request-id")
	}
	if !strings.Contains(logs.String(), "boom") {
		t.Fatal("panic not logged")
	}
}

func fuzzServer(f *testing.F) *Server {
	key := make([]byte, 32)
	_, _ = rand.Read(key)
	c, _ := aesgcm.New(key)
	db, err := sqlite.Open(context.Background(), sqlite.Options{Path: f.TempDir() + "/fuzz.db", Cipher: c, Synchronous: "NORMAL"})
	if err != nil {
		f.Fatal(err)
	}
	f.Cleanup(func() { db.Close() })
	s, err := NewServer(Config{Callbacks: db, Dev: true})
	if err != nil {
		f.Fatal(err)
	}
	return s
}

// FuzzCallbackRequest sends arbitrary bodies to Create and Update: every answer
// is a success or a 4xx in the Huawei format, never a 5xx or a panic.
func FuzzCallbackRequest(f *testing.F) {
	for _, seed := range []string{
		`{"publish_domain":"push.example.com","app":"live","notify_callback_url":"https://h.example.com/x"}`,
		`{"publish_domain":"push.example.com","app":"*","notify_event_subscription":["RECORD_OVER","RECORD_OVER"],"sign_type":"MD5","key":"abcdefghij0123456789ABCDEFGHIJ0123"}`,
		`{"publish_domain":"p","app":"a","notify_callback_url":"http://[::1]:80/"}`,
		`{"publish_domain":"push.example.com","app":"live","notify_event_subscription":[null]}`,
		`{"publish_domain":null,"app":{}}`, `[]`, `{`, `"x"`, `{"a":1}{}`, "\x00", `{"publish_domain":"\u0000.com","app":"x"}`,
	} {
		f.Add([]byte(seed), false)
		f.Add([]byte(seed), true)
	}
	s := fuzzServer(f)
	var lastID string
	f.Fuzz(func(t *testing.T, body []byte, update bool) {
		method, path := "POST", "/v1/proj/record/callbacks"
		if update && lastID != "" {
			method, path = "PUT", path+"/"+lastID
		}
		rec := httptest.NewRecorder()
		s.ServeHTTP(rec, httptest.NewRequest(method, path, bytes.NewReader(body)))
		switch {
		case rec.Code == http.StatusCreated:
			var c callbackResponse
			if err := json.Unmarshal(rec.Body.Bytes(), &c); err != nil || len(c.ID) != 32 {
				t.Fatalf("201 with body %s", rec.Body)
			}
			if _, err := time.Parse(livehooks.TimeFormat, c.CreateTime); err != nil {
				t.Fatalf("create_time %q", c.CreateTime)
			}
			lastID = c.ID
		case rec.Code == http.StatusOK:
		case rec.Code >= 400 && rec.Code < 500:
			var e errorBody
			if err := json.Unmarshal(rec.Body.Bytes(), &e); err != nil || e.ErrorCode == "" || e.ErrorMsg == "" {
				t.Fatalf("%d with a body not in the Huawei format: %s", rec.Code, rec.Body)
			}
		default:
			t.Fatalf("status %d for body %q: %s", rec.Code, body, rec.Body)
		}
	})
}

// FuzzIngestEvents feeds arbitrary bodies to the ingest decoder and validator:
// every body is accepted as valid events or refused with EINVALID, never a
// panic, and accepted events always pass the domain's validation.
func FuzzIngestEvents(f *testing.F) {
	for _, seed := range []string{
		`{"event_type":"RECORD_START","publish_domain":"push.example.com","app":"live","stream":"cam1"}`,
		`[{"event_type":"RECORD_FILE_COMPLETE","publish_domain":"p.example.com","app":"a","stream":"s","file_size":1,"start_time":"2020-03-08T14:10:25Z","end_time":"2020-03-08T14:12:25Z","record_format":"hls"}]`,
		`[{"event_type":"RECORD_FAILED","publish_domain":"p.example.com","app":"a","stream":"s","error_message":"\u00e9"},{}]`,
		`[]`, `{`, `[1]`, `{"file_size":1e99}`, `{"width":-1}`, `null`,
	} {
		f.Add([]byte(seed))
	}
	f.Fuzz(func(t *testing.T, body []byte) {
		reqs, err := decodeEvents(body)
		if err != nil {
			if livehooks.ErrorCode(err) != livehooks.EINVALID {
				t.Fatalf("decode error %v is not EINVALID", err)
			}
			return
		}
		for _, r := range reqs {
			e, err := r.event("proj")
			if err != nil {
				if livehooks.ErrorCode(err) != livehooks.EINVALID {
					t.Fatalf("validation error %v is not EINVALID", err)
				}
				continue
			}
			if err := e.Validate(); err != nil {
				t.Fatalf("accepted event fails validation: %v", err)
			}
			if e.Message(nil) == nil {
				t.Fatal("no message")
			}
		}
	})
}
