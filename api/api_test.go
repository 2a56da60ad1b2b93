package api_test

import (
	"bytes"
	"context"
	"crypto/rand"
	"encoding/json"
	"io"
	"log/slog"
	"net/http"
	"net/http/httptest"
	"regexp"
	"strings"
	"sync"
	"testing"

	"github.com/livehooks/livehooks"
	"github.com/livehooks/livehooks/aesgcm"
	"github.com/livehooks/livehooks/api"
	"github.com/livehooks/livehooks/auth"
	"github.com/livehooks/livehooks/store/sqlite"
)

const (
	tokenA   = "tok-project-a-0123456789abcdef"
	tokenAny = "tok-any-project-0123456789abcdef"
	testKey  = "abcdefghij0123456789ABCDEFGHIJ0123456789"
)

// syncBuffer is a log sink safe for concurrent handlers.
type syncBuffer struct {
	mu sync.Mutex
	b  bytes.Buffer
}

func (s *syncBuffer) Write(p []byte) (int, error) {
	s.mu.Lock()
	defer s.mu.Unlock()
	return s.b.Write(p)
}

func (s *syncBuffer) String() string {
	s.mu.Lock()
	defer s.mu.Unlock()
	return s.b.String()
}

type testServer struct {
	*httptest.Server
	logs  *syncBuffer
	store *sqlite.DB
}

func openStore(t testing.TB) *sqlite.DB {
	t.Helper()
	key := make([]byte, 32)
	_, _ = rand.Read(key)
	c, err := aesgcm.New(key)
	if err != nil {
		t.Fatal(err)
	}
	db, err := sqlite.Open(context.Background(), sqlite.Options{Path: t.TempDir() + "/livehooks.db", Cipher: c})
	if err != nil {
		t.Fatal(err)
	}
	t.Cleanup(func() { db.Close() })
	return db
}

func newTestServer(t testing.TB) *testServer {
	t.Helper()
	db := openStore(t)
	logs := &syncBuffer{}
	srv, err := api.NewServer(api.Config{
		Callbacks: db,
		Auth: auth.NewVerifier(nil, []auth.Token{
			{Token: tokenA, Projects: []string{"proja"}},
			{Token: tokenAny, Projects: []string{"*"}},
		}, livehooks.SystemClock{}),
		Logger:   slog.New(slog.NewJSONHandler(logs, &slog.HandlerOptions{Level: slog.LevelDebug})),
		Hostname: "testhost",
		Ready:    db.Ping,
	})
	if err != nil {
		t.Fatal(err)
	}
	ts := httptest.NewServer(srv)
	t.Cleanup(ts.Close)
	return &testServer{Server: ts, logs: logs, store: db}
}

type response struct {
	status int
	header http.Header
	body   []byte
}

func (r response) json(t testing.TB) map[string]any {
	t.Helper()
	var m map[string]any
	if err := json.Unmarshal(r.body, &m); err != nil {
		t.Fatalf("body is not a JSON object: %v: %s", err, r.body)
	}
	return m
}

func (ts *testServer) do(t testing.TB, method, path, token string, body any) response {
	t.Helper()
	var rd io.Reader
	switch b := body.(type) {
	case nil:
	case string:
		rd = strings.NewReader(b)
	case []byte:
		rd = bytes.NewReader(b)
	default:
		enc, _ := json.Marshal(b)
		rd = bytes.NewReader(enc)
	}
	req, err := http.NewRequest(method, ts.URL+path, rd)
	if err != nil {
		t.Fatal(err)
	}
	if token != "" {
		req.Header.Set("X-Auth-Token", token)
	}
	req.Header.Set("Content-Type", "application/json")
	resp, err := http.DefaultClient.Do(req)
	if err != nil {
		t.Fatal(err)
	}
	defer resp.Body.Close()
	b, _ := io.ReadAll(resp.Body)
	return response{resp.StatusCode, resp.Header, b}
}

var requestIDRE = regexp.MustCompile(`^[0-9a-f]{8}-[0-9a-f]{4}-[0-9a-f]{4}-[0-9a-f]{4}-[0-9a-f]{12}-\d{13}-testhost$`)
var idRE = regexp.MustCompile(`^[0-9a-f]{32}$`)
var timeRE = regexp.MustCompile(`^\d{4}-\d\d-\d\dT\d\d:\d\d:\d\dZ$`)

// wantError checks a Huawei error answer.
func wantError(t testing.TB, r response, status int, code string) {
	t.Helper()
	if r.status != status {
		t.Fatalf("status = %d, want %d: %s", r.status, status, r.body)
	}
	m := r.json(t)
	if m["error_code"] != code {
		t.Fatalf("error_code = %v, want %s", m["error_code"], code)
	}
	if msg, _ := m["error_msg"].(string); msg == "" {
		t.Fatalf("error_msg is empty: %s", r.body)
	}
	if !requestIDRE.MatchString(r.header.Get("X-Request-Id")) {
		t.Fatalf("X-request-id = %q", r.header.Get("X-Request-Id"))
	}
}

func validConfig() map[string]any {
	return map[string]any{
		"publish_domain":      "push.example.com",
		"app":                 "live",
		"notify_callback_url": "https://hooks.example.com/record_notify",
	}
}

func with(m map[string]any, kv ...any) map[string]any {
	out := map[string]any{}
	for k, v := range m {
		out[k] = v
	}
	for i := 0; i < len(kv); i += 2 {
		if kv[i+1] == nil {
			delete(out, kv[i].(string))
			continue
		}
		out[kv[i].(string)] = kv[i+1]
	}
	return out
}

const base = "/v1/proja/record/callbacks"

func create(t testing.TB, ts *testServer, body any) map[string]any {
	t.Helper()
	r := ts.do(t, "POST", base, tokenA, body)
	if r.status != http.StatusCreated {
		t.Fatalf("create: status %d: %s", r.status, r.body)
	}
	return r.json(t)
}

func TestCreateDefaultsAndShape(t *testing.T) {
	t.Parallel()
	ts := newTestServer(t)
	r := ts.do(t, "POST", base, tokenA, validConfig())
	if r.status != 201 {
		t.Fatalf("status %d: %s", r.status, r.body)
	}
	if !requestIDRE.MatchString(r.header.Get("X-Request-Id")) {
		t.Fatalf("X-request-id = %q", r.header.Get("X-Request-Id"))
	}
	m := r.json(t)
	if !idRE.MatchString(m["id"].(string)) {
		t.Fatalf("id = %v", m["id"])
	}
	if got := m["notify_event_subscription"].([]any); len(got) != 1 || got[0] != "RECORD_FILE_COMPLETE" {
		t.Fatalf("default subscription = %v", got)
	}
	if m["sign_type"] != "HMACSHA256" {
		t.Fatalf("default sign_type = %v", m["sign_type"])
	}
	for _, f := range []string{"create_time", "update_time"} {
		if !timeRE.MatchString(m[f].(string)) {
			t.Fatalf("%s = %v", f, m[f])
		}
	}
	show := ts.do(t, "GET", base+"/"+m["id"].(string), tokenA, nil)
	if show.status != 200 {
		t.Fatalf("show: %d %s", show.status, show.body)
	}
	if s := show.json(t); s["publish_domain"] != "push.example.com" || s["app"] != "live" || s["notify_callback_url"] != "https://hooks.example.com/record_notify" {
		t.Fatalf("show = %v", s)
	}
}

func TestSubscriptionDedupKeepsOrder(t *testing.T) {
	t.Parallel()
	ts := newTestServer(t)
	m := create(t, ts, with(validConfig(), "notify_event_subscription",
		[]string{"RECORD_OVER", "RECORD_START", "RECORD_OVER", "RECORD_FAILED", "RECORD_START"}))
	got, _ := json.Marshal(m["notify_event_subscription"])
	if string(got) != `["RECORD_OVER","RECORD_START","RECORD_FAILED"]` {
		t.Fatalf("subscription = %s", got)
	}
}

func TestCreateValidation(t *testing.T) {
	t.Parallel()
	ts := newTestServer(t)
	long := func(prefix string, n int) string { return prefix + strings.Repeat("a", n-len(prefix)) }
	cases := []struct {
		name string
		body any
	}{
		{"missing publish_domain", with(validConfig(), "publish_domain", nil)},
		{"empty publish_domain", with(validConfig(), "publish_domain", "")},
		{"publish_domain not DNS", with(validConfig(), "publish_domain", "push_example com")},
		{"publish_domain label too long", with(validConfig(), "publish_domain", strings.Repeat("a", 64)+".com")},
		{"publish_domain hyphen edge", with(validConfig(), "publish_domain", "-push.example.com")},
		{"missing app", with(validConfig(), "app", nil)},
		{"app bad char", with(validConfig(), "app", "live/x")},
		{"app double star", with(validConfig(), "app", "**")},
		{"app too long", with(validConfig(), "app", strings.Repeat("a", 129))},
		{"url ftp", with(validConfig(), "notify_callback_url", "ftp://hooks.example.com/x")},
		{"url no scheme", with(validConfig(), "notify_callback_url", "hooks.example.com/x")},
		{"url no host", with(validConfig(), "notify_callback_url", "http:///x")},
		{"url query", with(validConfig(), "notify_callback_url", "https://hooks.example.com/x?a=1")},
		{"url empty query", with(validConfig(), "notify_callback_url", "https://hooks.example.com/x?")},
		{"url fragment", with(validConfig(), "notify_callback_url", "https://hooks.example.com/x#f")},
		{"url userinfo", with(validConfig(), "notify_callback_url", "https://user:pw@hooks.example.com/x")},
		{"url too long", with(validConfig(), "notify_callback_url", long("https://hooks.example.com/", 2049))},
		{"on demand url bad", with(validConfig(), "on_demand_callback_url", "ftp://x.example.com")},
		{"subscription unknown", with(validConfig(), "notify_event_subscription", []string{"RECORD_FILE_COMPLETE", "RECORD_PAUSE"})},
		{"subscription lowercase", with(validConfig(), "notify_event_subscription", []string{"record_over"})},
		{"subscription not array", with(validConfig(), "notify_event_subscription", "RECORD_OVER")},
		{"subscription numbers", with(validConfig(), "notify_event_subscription", []int{1})},
		{"sign_type", with(validConfig(), "sign_type", "SHA1")},
		{"sign_type lowercase", with(validConfig(), "sign_type", "md5")},
		{"key short", with(validConfig(), "key", "abc123")},
		{"key 31", with(validConfig(), "key", strings.Repeat("a1", 15)+"a")},
		{"key letters only", with(validConfig(), "key", strings.Repeat("a", 40))},
		{"key digits only", with(validConfig(), "key", strings.Repeat("1", 40))},
		{"key symbols", with(validConfig(), "key", strings.Repeat("a1", 20)+"!")},
		{"app number", with(validConfig(), "app", 42)},
		{"malformed json", `{"publish_domain": "push.example.com",`},
		{"not an object", `["a"]`},
		{"trailing data", `{"publish_domain":"push.example.com","app":"live"} {}`},
		{"empty body", ``},
		{"null body", `null`},
	}
	for _, tc := range cases {
		t.Run(tc.name, func(t *testing.T) {
			r := ts.do(t, "POST", base, tokenA, tc.body)
			wantError(t, r, 400, "LIVE.100011001")
			if msg := r.json(t)["error_msg"].(string); !strings.HasPrefix(msg, "Request Illegal") {
				t.Fatalf("error_msg = %q", msg)
			}
		})
	}
	// None of the refused requests stored anything.
	list := ts.do(t, "GET", base, tokenA, nil).json(t)
	if list["total"].(float64) != 0 {
		t.Fatalf("refused creates stored configs: %v", list)
	}
}

func TestCreateAcceptsValidEdges(t *testing.T) {
	t.Parallel()
	ts := newTestServer(t)
	cases := []map[string]any{
		with(validConfig(), "app", "*"),
		with(validConfig(), "app", strings.Repeat("a", 128)),
		with(validConfig(), "app", "A-z_0.9"),
		with(validConfig(), "publish_domain", "a.b", "notify_callback_url", nil),
		with(validConfig(), "publish_domain", "c.example.com", "notify_callback_url", "http://10.0.0.1:8080/"),
		with(validConfig(), "publish_domain", "d.example.com", "sign_type", "MD5", "key", strings.Repeat("a1", 16)),
		with(validConfig(), "publish_domain", "e.example.com", "unknown_field", map[string]any{"x": 1}, "notify_event_subscription", []string{}),
		with(validConfig(), "publish_domain", "f.example.com", "notify_callback_url", "https://hooks.example.com/"+strings.Repeat("a", 2048-len("https://hooks.example.com/"))),
		with(validConfig(), "publish_domain", "g.example.com", "key", strings.Repeat("Z9", 128)),
	}
	for i, body := range cases {
		if r := ts.do(t, "POST", base, tokenA, body); r.status != 201 {
			t.Errorf("case %d: status %d: %s", i, r.status, r.body)
		}
	}
}

func TestDuplicateCreateIs400(t *testing.T) {
	t.Parallel()
	ts := newTestServer(t)
	create(t, ts, validConfig())
	wantError(t, ts.do(t, "POST", base, tokenA, validConfig()), 400, "LIVE.100011001")
	// Same domain, other app; and same (domain, app) in another project: both fine.
	create(t, ts, with(validConfig(), "app", "*"))
	if r := ts.do(t, "POST", "/v1/projb/record/callbacks", tokenAny, validConfig()); r.status != 201 {
		t.Fatalf("other project: %d %s", r.status, r.body)
	}
}

func TestBodyLimit(t *testing.T) {
	t.Parallel()
	ts := newTestServer(t)
	big := `{"publish_domain":"push.example.com","app":"live","pad":"` + strings.Repeat("x", api.MaxBodyBytes) + `"}`
	r := ts.do(t, "POST", base, tokenA, big)
	if r.status != 413 {
		t.Fatalf("status %d", r.status)
	}
	wantError(t, r, 413, "LIVE.100011001")
	// Just under the cap is fine (unknown fields are ignored).
	pad := api.MaxBodyBytes - 200
	ok := `{"publish_domain":"push.example.com","app":"live","pad":"` + strings.Repeat("x", pad) + `"}`
	if r := ts.do(t, "POST", base, tokenA, ok); r.status != 201 {
		t.Fatalf("under the cap: %d %s", r.status, r.body)
	}
}

func TestShowUpdateDeleteMissing(t *testing.T) {
	t.Parallel()
	ts := newTestServer(t)
	c := create(t, ts, validConfig())
	id := c["id"].(string)
	missing := strings.Repeat("0", 32)
	for _, path := range []string{base + "/" + missing, base + "/not-an-id", "/v1/proja/record/callback/" + missing} {
		wantError(t, ts.do(t, "GET", path, tokenA, nil), 404, "LIVE.100011001")
		wantError(t, ts.do(t, "PUT", path, tokenA, validConfig()), 404, "LIVE.100011001")
		wantError(t, ts.do(t, "DELETE", path, tokenA, nil), 404, "LIVE.100011001")
	}
	// Another project's config is not found, even with a credential for both.
	wantError(t, ts.do(t, "GET", "/v1/projb/record/callbacks/"+id, tokenAny, nil), 404, "LIVE.100011001")
	wantError(t, ts.do(t, "DELETE", "/v1/projb/record/callbacks/"+id, tokenAny, nil), 404, "LIVE.100011001")
	// Delete, then it is gone: a second delete is 404.
	if r := ts.do(t, "DELETE", base+"/"+id, tokenA, nil); r.status != 204 || len(r.body) != 0 {
		t.Fatalf("delete: %d %q", r.status, r.body)
	}
	wantError(t, ts.do(t, "GET", base+"/"+id, tokenA, nil), 404, "LIVE.100011001")
	wantError(t, ts.do(t, "DELETE", base+"/"+id, tokenA, nil), 404, "LIVE.100011001")
}

func TestSingularAlias(t *testing.T) {
	t.Parallel()
	ts := newTestServer(t)
	id := create(t, ts, validConfig())["id"].(string)
	alias := "/v1/proja/record/callback/" + id
	if r := ts.do(t, "GET", alias, tokenA, nil); r.status != 200 || r.json(t)["id"] != id {
		t.Fatalf("alias show: %d %s", r.status, r.body)
	}
	if r := ts.do(t, "PUT", alias, tokenA, with(validConfig(), "sign_type", "MD5")); r.status != 200 || r.json(t)["sign_type"] != "MD5" {
		t.Fatalf("alias update: %d %s", r.status, r.body)
	}
	if r := ts.do(t, "DELETE", alias, tokenA, nil); r.status != 204 {
		t.Fatalf("alias delete: %d %s", r.status, r.body)
	}
}

func TestUpdate(t *testing.T) {
	t.Parallel()
	ts := newTestServer(t)
	c := create(t, ts, with(validConfig(), "notify_event_subscription", []string{"RECORD_START", "RECORD_OVER"},
		"on_demand_callback_url", "https://ondemand.example.com/ask", "key", testKey))
	id := c["id"].(string)
	path := base + "/" + id

	// Only publish_domain and app: everything else is kept.
	r := ts.do(t, "PUT", path, tokenA, map[string]any{"publish_domain": "push.example.com", "app": "live"})
	if r.status != 200 {
		t.Fatalf("update: %d %s", r.status, r.body)
	}
	m := r.json(t)
	sub, _ := json.Marshal(m["notify_event_subscription"])
	if string(sub) != `["RECORD_START","RECORD_OVER"]` || m["on_demand_callback_url"] != "https://ondemand.example.com/ask" ||
		m["notify_callback_url"] != "https://hooks.example.com/record_notify" || m["create_time"] != c["create_time"] {
		t.Fatalf("partial update changed fields: %s", r.body)
	}
	stored, err := ts.store.FindCallbackByID(context.Background(), "proja", id)
	if err != nil || stored.Key != testKey {
		t.Fatalf("key not kept by an update without key: err=%v", err)
	}

	// Change fields.
	r = ts.do(t, "PUT", path, tokenA, map[string]any{
		"publish_domain": "push2.example.com", "app": "*", "notify_callback_url": "http://new.example.com/cb",
		"notify_event_subscription": []string{"RECORD_FAILED", "RECORD_FAILED"}, "sign_type": "MD5", "on_demand_callback_url": "", "key": "",
	})
	if r.status != 200 {
		t.Fatalf("update: %d %s", r.status, r.body)
	}
	m = r.json(t)
	sub, _ = json.Marshal(m["notify_event_subscription"])
	if m["publish_domain"] != "push2.example.com" || m["app"] != "*" || m["notify_callback_url"] != "http://new.example.com/cb" ||
		string(sub) != `["RECORD_FAILED"]` || m["sign_type"] != "MD5" || m["on_demand_callback_url"] != nil {
		t.Fatalf("update result: %s", r.body)
	}
	if stored, _ := ts.store.FindCallbackByID(context.Background(), "proja", id); stored.Key != "" {
		t.Fatal(`"key": "" did not remove the key`)
	}
	if show := ts.do(t, "GET", path, tokenA, nil).json(t); show["publish_domain"] != "push2.example.com" {
		t.Fatalf("show after update: %v", show)
	}

	// Required fields and validation on update.
	wantError(t, ts.do(t, "PUT", path, tokenA, map[string]any{"app": "live"}), 400, "LIVE.100011001")
	wantError(t, ts.do(t, "PUT", path, tokenA, map[string]any{"publish_domain": "push.example.com"}), 400, "LIVE.100011001")
	wantError(t, ts.do(t, "PUT", path, tokenA, map[string]any{"publish_domain": "push.example.com", "app": "live", "sign_type": "X"}), 400, "LIVE.100011001")
	wantError(t, ts.do(t, "PUT", path, tokenA, `{"publish_domain":`), 400, "LIVE.100011001")

	// An update may not collide with another config's (domain, app).
	create(t, ts, validConfig())
	wantError(t, ts.do(t, "PUT", path, tokenA, map[string]any{"publish_domain": "push.example.com", "app": "live"}), 400, "LIVE.100011001")
	if show := ts.do(t, "GET", path, tokenA, nil).json(t); show["publish_domain"] != "push2.example.com" || show["app"] != "*" {
		t.Fatalf("failed update changed the config: %v", show)
	}
}

func TestList(t *testing.T) {
	t.Parallel()
	ts := newTestServer(t)
	var ids []string
	for i := range 15 {
		domain := "a.example.com"
		if i%3 == 0 {
			domain = "b.example.com"
		}
		ids = append(ids, create(t, ts, with(validConfig(), "publish_domain", domain, "app", "app"+string(rune('a'+i))))["id"].(string))
	}
	create(t, ts, with(validConfig(), "publish_domain", "a.example.com", "app", "*"))
	// Another project's configs never show up.
	ts.do(t, "POST", "/v1/projb/record/callbacks", tokenAny, validConfig())

	list := func(q string) (int, []string) {
		r := ts.do(t, "GET", base+q, tokenA, nil)
		if r.status != 200 {
			t.Fatalf("list %s: %d %s", q, r.status, r.body)
		}
		m := r.json(t)
		var got []string
		for _, c := range m["callback_config"].([]any) {
			got = append(got, c.(map[string]any)["id"].(string))
		}
		return int(m["total"].(float64)), got
	}
	total, page := list("")
	if total != 16 || len(page) != 10 {
		t.Fatalf("default page: total %d, %d items", total, len(page))
	}
	for i := range 10 {
		if page[i] != ids[i] {
			t.Fatalf("order: item %d = %s, want %s (create order)", i, page[i], ids[i])
		}
	}
	total, page = list("?offset=10&limit=10")
	if total != 16 || len(page) != 6 || page[0] != ids[10] {
		t.Fatalf("second page: total %d, %v", total, page)
	}
	total, page = list("?offset=4096")
	if total != 16 || len(page) != 0 {
		t.Fatalf("offset past the end: total %d, %v", total, page)
	}
	if total, page = list("?publish_domain=b.example.com&limit=2"); total != 5 || len(page) != 2 || page[0] != ids[0] || page[1] != ids[3] {
		t.Fatalf("domain filter: total %d, %v", total, page)
	}
	if total, _ = list("?publish_domain=a.example.com&app=*"); total != 1 {
		t.Fatalf("app filter: total %d", total)
	}
	if total, _ = list("?app=app"); total != 0 {
		t.Fatalf("app filter is exact: total %d", total)
	}
	if total, page = list("?limit=100"); total != 16 || len(page) != 16 {
		t.Fatalf("limit 100: %d %d", total, len(page))
	}
	for _, q := range []string{"?offset=-1", "?offset=4097", "?offset=x", "?limit=0", "?limit=101", "?limit=1.5"} {
		wantError(t, ts.do(t, "GET", base+q, tokenA, nil), 400, "LIVE.100011001")
	}
}

func TestAuth(t *testing.T) {
	t.Parallel()
	ts := newTestServer(t)
	wantError(t, ts.do(t, "GET", base, "", nil), 401, "APIGW.0301")
	wantError(t, ts.do(t, "GET", base, "wrong-token", nil), 401, "APIGW.0301")
	wantError(t, ts.do(t, "POST", base, "", validConfig()), 401, "APIGW.0301")
	// tokenA is bound to proja only.
	wantError(t, ts.do(t, "GET", "/v1/projb/record/callbacks", tokenA, nil), 403, "APIGW.0302")
	wantError(t, ts.do(t, "POST", "/v1/projb/record/callbacks", tokenA, validConfig()), 403, "APIGW.0302")
	if r := ts.do(t, "GET", "/v1/projb/record/callbacks", tokenAny, nil); r.status != 200 {
		t.Fatalf("wildcard token: %d %s", r.status, r.body)
	}
	// Nothing was created by refused requests.
	if m := ts.do(t, "GET", "/v1/projb/record/callbacks", tokenAny, nil).json(t); m["total"].(float64) != 0 {
		t.Fatalf("refused request stored a config: %v", m)
	}
	// Operations routes need no credentials.
	for _, p := range []string{"/healthz", "/readyz", "/openapi.yaml"} {
		if r := ts.do(t, "GET", p, "", nil); r.status != 200 {
			t.Fatalf("%s: %d", p, r.status)
		}
	}
}

func TestUnknownRoutes(t *testing.T) {
	t.Parallel()
	ts := newTestServer(t)
	for _, p := range []string{"/nope", "/v1/proja/record/nothing", "/v2/proja/record/callbacks", "/v1/proja/record/callbacks/a/b"} {
		wantError(t, ts.do(t, "GET", p, tokenA, nil), 404, "APIGW.0101")
	}
	wantError(t, ts.do(t, "PATCH", base, tokenA, nil), 404, "APIGW.0101")
}

func TestInvalidProjectID(t *testing.T) {
	t.Parallel()
	ts := newTestServer(t)
	wantError(t, ts.do(t, "POST", "/v1/"+strings.Repeat("p", 65)+"/record/callbacks", tokenAny, validConfig()), 400, "LIVE.100011001")
}

func TestKeyNeverLeaks(t *testing.T) {
	t.Parallel()
	ts := newTestServer(t)
	var bodies [][]byte
	r := ts.do(t, "POST", base, tokenA, with(validConfig(), "key", testKey))
	bodies = append(bodies, r.body)
	id := r.json(t)["id"].(string)
	for _, rr := range []response{
		ts.do(t, "GET", base+"/"+id, tokenA, nil),
		ts.do(t, "GET", base, tokenA, nil),
		ts.do(t, "PUT", base+"/"+id, tokenA, with(validConfig(), "key", testKey)),
		ts.do(t, "PUT", base+"/"+id, tokenA, with(validConfig(), "key", testKey+"!")),       // invalid key
		ts.do(t, "POST", base, tokenA, with(validConfig(), "key", testKey)),                 // duplicate
		ts.do(t, "POST", base, tokenA, `{"publish_domain":"x.example.com","key":"`+testKey), // malformed
		ts.do(t, "POST", base, tokenA, with(validConfig(), "app", "x", "key", 12)),          // wrong type
	} {
		bodies = append(bodies, rr.body)
	}
	for i, b := range bodies {
		if bytes.Contains(b, []byte(testKey)) {
			t.Fatalf("response %d contains the key: %s", i, b)
		}
		if bytes.Contains(b, []byte(`"key"`)) {
			t.Fatalf("response %d has a key field: %s", i, b)
		}
	}
	if strings.Contains(ts.logs.String(), testKey) {
		t.Fatal("logs contain the key")
	}
}

func TestOperationsRoutes(t *testing.T) {
	t.Parallel()
	ts := newTestServer(t)
	if r := ts.do(t, "GET", "/healthz", "", nil); r.status != 200 || !requestIDRE.MatchString(r.header.Get("X-Request-Id")) {
		t.Fatalf("healthz: %d %v", r.status, r.header)
	}
	if r := ts.do(t, "GET", "/readyz", "", nil); r.status != 200 {
		t.Fatalf("readyz: %d", r.status)
	}
	ts.store.Close()
	if r := ts.do(t, "GET", "/readyz", "", nil); r.status != 503 {
		t.Fatalf("readyz with a closed store: %d", r.status)
	}
}
