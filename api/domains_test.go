package api_test

import (
	"bytes"
	"context"
	"crypto/rand"
	"encoding/json"
	"log/slog"
	"net/http"
	"net/http/httptest"
	"os"
	"path/filepath"
	"strings"
	"sync"
	"testing"
	"time"

	"github.com/livehooks/livehooks"
	"github.com/livehooks/livehooks/aesgcm"
	"github.com/livehooks/livehooks/api"
	"github.com/livehooks/livehooks/auth"
	"github.com/livehooks/livehooks/store/sqlite"
)

const (
	domainsBase   = "/v1/proja/record/domains"
	storageSecret = "Storage+Secret/Key-0123456789abcdefXYZ"
)

// stepClock is a clock the test moves.
type stepClock struct {
	mu  sync.Mutex
	now time.Time
}

func (c *stepClock) Now() time.Time {
	c.mu.Lock()
	defer c.mu.Unlock()
	return c.now
}

func (c *stepClock) add(d time.Duration) {
	c.mu.Lock()
	c.now = c.now.Add(d)
	c.mu.Unlock()
}

type domainServer struct {
	*testServer
	dir   string // the store's directory
	clock *stepClock
}

// newDomainServer runs the API with a real SQLite store as its domain store.
func newDomainServer(t *testing.T) *domainServer {
	t.Helper()
	dir := t.TempDir()
	key := make([]byte, 32)
	_, _ = rand.Read(key)
	c, err := aesgcm.New(key)
	if err != nil {
		t.Fatal(err)
	}
	db, err := sqlite.Open(context.Background(), sqlite.Options{Path: filepath.Join(dir, "livehooks.db"), Cipher: c})
	if err != nil {
		t.Fatal(err)
	}
	t.Cleanup(func() { db.Close() })
	logs := &syncBuffer{}
	clock := &stepClock{now: time.Date(2026, 3, 8, 14, 10, 25, 0, time.UTC)}
	srv, err := api.NewServer(api.Config{
		Callbacks: db,
		Domains:   db,
		Auth: auth.NewVerifier(nil, []auth.Token{
			{Token: tokenA, Projects: []string{"proja"}},
			{Token: tokenAny, Projects: []string{"*"}},
		}, livehooks.SystemClock{}),
		Logger:   slog.New(slog.NewJSONHandler(logs, &slog.HandlerOptions{Level: slog.LevelDebug})),
		Clock:    clock,
		Hostname: "testhost",
	})
	if err != nil {
		t.Fatal(err)
	}
	ts := httptest.NewServer(srv)
	t.Cleanup(ts.Close)
	return &domainServer{testServer: &testServer{Server: ts, logs: logs, store: db}, dir: dir, clock: clock}
}

func validDomain() map[string]any {
	return map[string]any{
		"record_format":          "HLS",
		"download_url_template":  "https://cdn.example.com/{app}/{stream}/{file}",
		"play_url_template":      "https://play.example.com/{app}/{stream}.m3u8",
		"max_pause_seconds":      60,
		"reject_unknown_streams": true,
		"delete_after_upload":    true,
		"storage":                validStorage(),
	}
}

func validStorage() map[string]any {
	return map[string]any{
		"endpoint":               "s3.example.com:9000",
		"secure":                 false,
		"region":                 "us-east-1",
		"bucket":                 "recordings",
		"prefix":                 "/live/",
		"access_key":             "AKIDEXAMPLE",
		"secret_key":             storageSecret,
		"presign":                true,
		"presign_expiry_seconds": 3600,
		"public_url":             "https://cdn.example.com/rec/",
	}
}

func TestDomainLifecycle(t *testing.T) {
	t.Parallel()
	ts := newDomainServer(t)
	path := domainsBase + "/push.example.com"

	wantError(t, ts.do(t, "GET", path, tokenA, nil), 404, "LIVE.100011001")
	r := ts.do(t, "PUT", path, tokenA, validDomain())
	if r.status != 201 {
		t.Fatalf("create: %d %s", r.status, r.body)
	}
	if !requestIDRE.MatchString(r.header.Get("X-Request-Id")) {
		t.Fatalf("X-request-id = %q", r.header.Get("X-Request-Id"))
	}
	want := `{"publish_domain":"push.example.com","record_format":"HLS",` +
		`"download_url_template":"https://cdn.example.com/{app}/{stream}/{file}",` +
		`"play_url_template":"https://play.example.com/{app}/{stream}.m3u8","max_pause_seconds":60,"download_url_expiry_seconds":604800,"reject_unknown_streams":true,` +
		`"delete_after_upload":true,"storage":{"endpoint":"s3.example.com:9000","secure":false,"region":"us-east-1","bucket":"recordings","prefix":"live",` +
		`"access_key":"AKIDEXAMPLE","presign":true,"presign_expiry_seconds":3600,"public_url":"https://cdn.example.com/rec"},` +
		`"create_time":"2026-03-08T14:10:25Z","update_time":"2026-03-08T14:10:25Z"}`
	if got := strings.TrimSpace(string(r.body)); got != want {
		t.Fatalf("create body\n got %s\nwant %s", got, want)
	}
	if show := ts.do(t, "GET", path, tokenA, nil); show.status != 200 || strings.TrimSpace(string(show.body)) != want {
		t.Fatalf("show: %d %s", show.status, show.body)
	}

	// What the recording machine and the uploader read.
	d, err := ts.store.FindDomain(context.Background(), "proja", "push.example.com")
	if err != nil {
		t.Fatal(err)
	}
	if d.MaxPause != time.Minute || d.Storage.SecretKey != storageSecret || d.Storage.PresignExpiry != time.Hour || d.RecordFormat != "HLS" || !d.RejectUnknownStreams || !d.DeleteAfterUpload {
		t.Fatalf("stored settings %+v %+v", d, d.Storage)
	}

	// A replace: 200, absent fields back to their defaults, create_time kept.
	ts.clock.add(90 * time.Second)
	r = ts.do(t, "PUT", path, tokenA, map[string]any{"record_format": "mp4"})
	if r.status != 200 {
		t.Fatalf("replace: %d %s", r.status, r.body)
	}
	want = `{"publish_domain":"push.example.com","record_format":"MP4","max_pause_seconds":30,"download_url_expiry_seconds":604800,"reject_unknown_streams":false,` +
		`"delete_after_upload":false,"create_time":"2026-03-08T14:10:25Z","update_time":"2026-03-08T14:11:55Z"}`
	if got := strings.TrimSpace(string(r.body)); got != want {
		t.Fatalf("replace body\n got %s\nwant %s", got, want)
	}

	// Defaults of a storage: https, 7-day presigned URLs.
	r = ts.do(t, "PUT", domainsBase+"/a.example.com", tokenA, map[string]any{"storage": map[string]any{
		"endpoint": "obs.cn-north-4.myhuaweicloud.com", "bucket": "rec", "access_key": "ak", "secret_key": "12345678"}})
	if r.status != 201 {
		t.Fatalf("create a: %d %s", r.status, r.body)
	}
	st := r.json(t)["storage"].(map[string]any)
	if st["secure"] != true || st["presign"] != false || st["presign_expiry_seconds"].(float64) != 604800 {
		t.Fatalf("storage defaults %v", st)
	}
	if m := r.json(t); m["record_format"] != "FLV" || m["max_pause_seconds"].(float64) != 30 {
		t.Fatalf("defaults %v", m)
	}
	if r := ts.do(t, "PUT", domainsBase+"/c.example.com", tokenA, map[string]any{"download_url_expiry_seconds": 0}); r.status != 201 || r.json(t)["download_url_expiry_seconds"].(float64) != 0 {
		t.Fatalf("download_url_expiry_seconds 0: %d %s", r.status, r.body)
	}
	if r := ts.do(t, "DELETE", domainsBase+"/c.example.com", tokenA, nil); r.status != 204 {
		t.Fatalf("delete: %d %s", r.status, r.body)
	}
	if r := ts.do(t, "PUT", domainsBase+"/b.example.com", tokenA, map[string]any{"max_pause_seconds": 0}); r.status != 201 || r.json(t)["max_pause_seconds"].(float64) != 0 {
		t.Fatalf("max_pause_seconds 0: %d %s", r.status, r.body)
	}

	// List: ordered by domain, only this project's.
	if r := ts.do(t, "PUT", "/v1/projb/record/domains/c.example.com", tokenAny, map[string]any{}); r.status != 201 {
		t.Fatalf("projb: %d %s", r.status, r.body)
	}
	list := ts.do(t, "GET", domainsBase, tokenA, nil)
	if list.status != 200 {
		t.Fatalf("list: %d %s", list.status, list.body)
	}
	var lr struct {
		Total   int
		Domains []struct {
			PublishDomain string `json:"publish_domain"`
			CreateTime    string `json:"create_time"`
		}
	}
	if err := json.Unmarshal(list.body, &lr); err != nil {
		t.Fatal(err)
	}
	if lr.Total != 3 || len(lr.Domains) != 3 || lr.Domains[0].PublishDomain != "a.example.com" || lr.Domains[2].PublishDomain != "push.example.com" || !timeRE.MatchString(lr.Domains[0].CreateTime) {
		t.Fatalf("list %s", list.body)
	}
	if r := ts.do(t, "GET", "/v1/empty/record/domains", tokenAny, nil); r.status != 200 || strings.TrimSpace(string(r.body)) != `{"total":0,"domains":[]}` {
		t.Fatalf("empty list: %d %s", r.status, r.body)
	}

	// Delete: 204, then 404; a name that cannot be a domain is a 404 too.
	if r := ts.do(t, "DELETE", path, tokenA, nil); r.status != 204 || len(r.body) != 0 {
		t.Fatalf("delete: %d %s", r.status, r.body)
	}
	wantError(t, ts.do(t, "DELETE", path, tokenA, nil), 404, "LIVE.100011001")
	wantError(t, ts.do(t, "GET", path, tokenA, nil), 404, "LIVE.100011001")
	wantError(t, ts.do(t, "GET", domainsBase+"/bad_domain!", tokenA, nil), 404, "LIVE.100011001")
	wantError(t, ts.do(t, "DELETE", domainsBase+"/bad_domain!", tokenA, nil), 404, "LIVE.100011001")
	// The other project's domain of the same name is untouched.
	if r := ts.do(t, "GET", "/v1/projb/record/domains/c.example.com", tokenAny, nil); r.status != 200 {
		t.Fatalf("projb after delete: %d %s", r.status, r.body)
	}
}

func TestDomainValidation(t *testing.T) {
	t.Parallel()
	ts := newDomainServer(t)
	storage := func(kv ...any) map[string]any { return with(validDomain(), "storage", with(validStorage(), kv...)) }
	long := strings.Repeat("a", 2049)
	cases := []struct {
		name string
		body any
	}{
		{"format", with(validDomain(), "record_format", "AVI")},
		{"format number", with(validDomain(), "record_format", 1)},
		{"template ftp", with(validDomain(), "download_url_template", "ftp://cdn.example.com/{file}")},
		{"template relative", with(validDomain(), "download_url_template", "/{app}/{file}")},
		{"template unknown placeholder", with(validDomain(), "download_url_template", "https://cdn.example.com/{secret}")},
		{"template unbalanced", with(validDomain(), "download_url_template", "https://cdn.example.com/{app")},
		{"template stray brace", with(validDomain(), "download_url_template", "https://cdn.example.com/app}")},
		{"template no host", with(validDomain(), "download_url_template", "https:///{file}")},
		{"template userinfo", with(validDomain(), "download_url_template", "https://u:p@cdn.example.com/{file}")},
		{"template space", with(validDomain(), "download_url_template", "https://cdn.example.com/{app} x")},
		{"template too long", with(validDomain(), "download_url_template", "https://cdn.example.com/"+long)},
		{"play template", with(validDomain(), "play_url_template", "rtmp://play.example.com/{app}/{stream}")},
		{"pause negative", with(validDomain(), "max_pause_seconds", -1)},
		{"pause too long", with(validDomain(), "max_pause_seconds", 86401)},
		{"pause fraction", with(validDomain(), "max_pause_seconds", 1.5)},
		{"link expiry negative", with(validDomain(), "download_url_expiry_seconds", -1)},
		{"link expiry over ten years", with(validDomain(), "download_url_expiry_seconds", 315360001)},
		{"pause huge", with(validDomain(), "max_pause_seconds", 1e300)},
		{"reject string", with(validDomain(), "reject_unknown_streams", "yes")},
		{"delete without storage", with(with(validDomain(), "storage", nil), "delete_after_upload", true)},
		{"delete string", with(validDomain(), "delete_after_upload", "yes")},
		{"storage not object", with(validDomain(), "storage", "s3")},
		{"endpoint missing", storage("endpoint", nil)},
		{"endpoint scheme", storage("endpoint", "https://s3.example.com")},
		{"endpoint path", storage("endpoint", "s3.example.com/bucket")},
		{"endpoint port", storage("endpoint", "s3.example.com:0")},
		{"endpoint port big", storage("endpoint", "s3.example.com:65536")},
		{"endpoint port empty", storage("endpoint", "s3.example.com:")},
		{"endpoint ipv6 bare", storage("endpoint", "::1")},
		{"endpoint space", storage("endpoint", "s3 example.com")},
		{"bucket missing", storage("bucket", nil)},
		{"bucket short", storage("bucket", "ab")},
		{"bucket upper", storage("bucket", "Recordings")},
		{"bucket underscore", storage("bucket", "rec_ordings")},
		{"bucket dots", storage("bucket", "rec..ordings")},
		{"bucket ip", storage("bucket", "192.168.1.1")},
		{"bucket hyphen end", storage("bucket", "recordings-")},
		{"bucket long", storage("bucket", strings.Repeat("a", 64))},
		{"region", storage("region", "us east")},
		{"prefix dotdot", storage("prefix", "a/../b")},
		{"prefix empty segment", storage("prefix", "a//b")},
		{"prefix control", storage("prefix", "a\nb")},
		{"access key missing", storage("access_key", nil)},
		{"access key space", storage("access_key", "AK ID")},
		{"secret missing", storage("secret_key", nil)},
		{"secret short", storage("secret_key", "1234567")},
		{"secret space", storage("secret_key", "secret key 123")},
		{"expiry zero", storage("presign_expiry_seconds", 0)},
		{"expiry 8 days", storage("presign_expiry_seconds", 8*86400)},
		{"public url ftp", storage("public_url", "ftp://cdn.example.com")},
		{"public url query", storage("public_url", "https://cdn.example.com/?a=1")},
		{"secure string", storage("secure", "true")},
		{"malformed", `{"record_format":`},
		{"array", `[]`},
		{"null", `null`},
		{"empty", ``},
	}
	for _, tc := range cases {
		t.Run(tc.name, func(t *testing.T) {
			r := ts.do(t, "PUT", domainsBase+"/push.example.com", tokenA, tc.body)
			wantError(t, r, 400, "LIVE.100011001")
			if msg := r.json(t)["error_msg"].(string); !strings.HasPrefix(msg, "Request Illegal") || strings.Contains(msg, storageSecret) {
				t.Fatalf("error_msg = %q", msg)
			}
		})
	}
	for _, p := range []string{"/bad_domain", "/-x.example.com", "/" + strings.Repeat("a", 64) + ".com"} {
		wantError(t, ts.do(t, "PUT", domainsBase+p, tokenA, validDomain()), 400, "LIVE.100011001")
	}
	wantError(t, ts.do(t, "PUT", "/v1/bad!project/record/domains/push.example.com", tokenAny, validDomain()), 400, "LIVE.100011001")
	if r := ts.do(t, "GET", domainsBase, tokenA, nil); strings.TrimSpace(string(r.body)) != `{"total":0,"domains":[]}` {
		t.Fatalf("refused PUTs stored settings: %s", r.body)
	}

	// Valid edges.
	for i, body := range []map[string]any{
		storage("endpoint", "127.0.0.1:9000"),
		storage("endpoint", "[::1]:9000"),
		storage("endpoint", "[::1]"),
		storage("bucket", "a.b-c", "prefix", "", "region", "", "public_url", ""),
		storage("presign_expiry_seconds", 604800),
		storage("presign_expiry_seconds", 1),
		with(validDomain(), "download_url_template", "http://{domain}:8080/{app}/{stream}/{task_id}/{job_id}/{file}?token=x", "storage", nil,
			"delete_after_upload", false),
		with(validDomain(), "max_pause_seconds", 86400, "unknown", []int{1}),
		with(validDomain(), "record_format", "flv"),
		{},
	} {
		if r := ts.do(t, "PUT", domainsBase+"/push.example.com", tokenA, body); r.status != 200 && r.status != 201 {
			t.Errorf("case %d: %d %s", i, r.status, r.body)
		}
	}
}

// TestDomainSecretIsWriteOnly: the storage secret is in no response, no log
// line and not in plaintext in the SQLite files; a PUT without it keeps it
// only for the same endpoint and access key.
func TestDomainSecretIsWriteOnly(t *testing.T) {
	t.Parallel()
	ts := newDomainServer(t)
	path := domainsBase + "/push.example.com"
	var bodies [][]byte
	do := func(method, p string, body any) response {
		r := ts.do(t, method, p, tokenA, body)
		bodies = append(bodies, r.body)
		return r
	}
	secret := func() string {
		d, err := ts.store.FindDomain(context.Background(), "proja", "push.example.com")
		if err != nil {
			t.Fatal(err)
		}
		return d.Storage.SecretKey
	}
	if r := do("PUT", path, validDomain()); r.status != 201 {
		t.Fatalf("create: %d %s", r.status, r.body)
	}
	do("GET", path, nil)
	do("GET", domainsBase, nil)

	// Without secret_key, same endpoint and access key: the secret is kept,
	// the rest replaced.
	noSecret := with(validDomain(), "storage", with(validStorage(), "secret_key", nil, "bucket", "other-bucket"))
	if r := do("PUT", path, noSecret); r.status != 200 || r.json(t)["storage"].(map[string]any)["bucket"] != "other-bucket" {
		t.Fatalf("replace without secret: %d %s", r.status, r.body)
	}
	if secret() != storageSecret {
		t.Fatal("the stored secret was not kept")
	}
	if r := do("PUT", path, with(validDomain(), "storage", with(validStorage(), "secret_key", ""))); r.status != 200 || secret() != storageSecret {
		t.Fatalf("empty secret_key did not keep the secret: %d %s", r.status, r.body)
	}
	// Another access key or endpoint needs its secret.
	wantError(t, do("PUT", path, with(validDomain(), "storage", with(validStorage(), "secret_key", nil, "access_key", "OTHER"))), 400, "LIVE.100011001")
	wantError(t, do("PUT", path, with(validDomain(), "storage", with(validStorage(), "secret_key", nil, "endpoint", "s3.example.org"))), 400, "LIVE.100011001")
	// Refused bodies that carry the secret.
	do("PUT", path, with(validDomain(), "storage", with(validStorage(), "bucket", "BAD")))
	do("PUT", path, `{"storage":{"secret_key":"`+storageSecret+`","endpoint":`)
	do("PUT", path, `{"storage":{"secret_key":`+`"`+storageSecret+`"`+`,"bucket":1}}`)
	// A new secret replaces the old one.
	if r := do("PUT", path, with(validDomain(), "storage", with(validStorage(), "secret_key", "another-secret-9876"))); r.status != 200 || secret() != "another-secret-9876" {
		t.Fatalf("new secret: %d %s", r.status, r.body)
	}
	if r := do("PUT", path, validDomain()); r.status != 200 || secret() != storageSecret {
		t.Fatalf("secret back: %d %s", r.status, r.body)
	}

	for _, b := range bodies {
		if bytes.Contains(b, []byte(storageSecret)) || bytes.Contains(b, []byte(`"secret_key"`)) {
			t.Fatalf("a response shows the secret: %s", b)
		}
	}
	if strings.Contains(ts.logs.String(), storageSecret) {
		t.Fatal("the logs contain the secret")
	}
	if !strings.Contains(ts.logs.String(), "recording settings stored") {
		t.Fatal("no log line for stored settings")
	}
	// Nothing in the store's files (database, WAL) holds the secret in plaintext.
	_ = ts.store.Close()
	files, _ := filepath.Glob(filepath.Join(ts.dir, "*"))
	if len(files) == 0 {
		t.Fatal("no store files")
	}
	for _, f := range files {
		b, err := os.ReadFile(f)
		if err != nil {
			t.Fatal(err)
		}
		if bytes.Contains(b, []byte(storageSecret)) || bytes.Contains(b, []byte("another-secret-9876")) {
			t.Fatalf("%s holds the secret in plaintext", filepath.Base(f))
		}
	}
}

func TestDomainAuth(t *testing.T) {
	t.Parallel()
	ts := newDomainServer(t)
	wantError(t, ts.do(t, "GET", domainsBase, "", nil), 401, "APIGW.0301")
	wantError(t, ts.do(t, "PUT", domainsBase+"/push.example.com", "wrong-token", validDomain()), 401, "APIGW.0301")
	wantError(t, ts.do(t, "PUT", "/v1/projb/record/domains/push.example.com", tokenA, validDomain()), 403, "APIGW.0302")
	wantError(t, ts.do(t, "DELETE", "/v1/projb/record/domains/push.example.com", tokenA, nil), 403, "APIGW.0302")
	wantError(t, ts.do(t, "POST", domainsBase+"/push.example.com", tokenA, validDomain()), 404, "APIGW.0101")
}

// TestDomainRoutesNeedAStore: without Config.Domains the routes do not exist.
func TestDomainRoutesNeedAStore(t *testing.T) {
	t.Parallel()
	ts := newTestServer(t)
	for _, m := range []string{"GET", "PUT", "DELETE"} {
		wantError(t, ts.do(t, m, domainsBase+"/push.example.com", tokenA, validDomain()), 404, "APIGW.0101")
	}
	wantError(t, ts.do(t, "GET", domainsBase, tokenA, nil), 404, "APIGW.0101")
}

// TestDomainRequestSettings: the shared validation (API and config file) on
// its own: an existing storage's secret is kept only for the same account.
func TestDomainRequestSettings(t *testing.T) {
	t.Parallel()
	str := func(s string) *string { return &s }
	now := time.Date(2026, 1, 2, 3, 4, 5, 600, time.UTC)
	prev := &livehooks.DomainSettings{CreateTime: now.Add(-time.Hour), Storage: &livehooks.StorageSettings{Endpoint: "s3.example.com", AccessKey: "ak", SecretKey: storageSecret}}
	req := api.DomainRequest{Storage: &api.StorageRequest{Endpoint: str("s3.example.com"), Bucket: str("rec"), AccessKey: str("ak")}}
	d, err := req.Settings("p", "push.example.com", prev, now)
	if err != nil {
		t.Fatal(err)
	}
	if d.Storage.SecretKey != storageSecret || !d.CreateTime.Equal(prev.CreateTime) || !d.UpdateTime.Equal(now.Truncate(time.Second)) || d.ProjectID != "p" {
		t.Fatalf("settings %+v", d)
	}
	if _, err := req.Settings("p", "push.example.com", nil, now); livehooks.ErrorCode(err) != livehooks.EINVALID {
		t.Fatalf("no secret and no previous one: %v", err)
	}
	if _, err := (&api.DomainRequest{}).Settings("p", "not a domain", nil, now); livehooks.ErrorCode(err) != livehooks.EINVALID {
		t.Fatalf("bad domain: %v", err)
	}
}

// FuzzDomainRequest sends arbitrary PUT bodies: every answer is a success or a
// 4xx in the Huawei format, never a 5xx; accepted settings read back, without
// a secret_key.
func FuzzDomainRequest(f *testing.F) {
	seed, _ := json.Marshal(validDomain())
	for _, s := range []string{
		string(seed),
		`{}`, `{"record_format":"hls","max_pause_seconds":0}`,
		`{"download_url_template":"https://{domain}/{app}/{stream}/{file}{job_id}{task_id}"}`,
		`{"download_url_template":"https://x/{{app}}"}`, `{"play_url_template":"http://[::1/{app}"}`,
		`{"storage":{"endpoint":"[::1]:9000","bucket":"abc","access_key":"a","secret_key":"12345678","presign_expiry_seconds":604800}}`,
		`{"storage":{"endpoint":"h:1","bucket":"abc","access_key":"a"}}`,
		`{"storage":{"endpoint":"h","bucket":"abc","access_key":"a","secret_key":"12345678","prefix":"a/\u0000/b","public_url":"https://c/"}}`,
		`{"max_pause_seconds":9223372036854775807}`, `{"storage":null}`, `{"storage":[]}`,
		`[]`, `{`, `"x"`, `null`, "\x00", `{"a":1}{}`,
	} {
		f.Add([]byte(s))
	}
	key := make([]byte, 32)
	_, _ = rand.Read(key)
	c, _ := aesgcm.New(key)
	db, err := sqlite.Open(context.Background(), sqlite.Options{Path: filepath.Join(f.TempDir(), "fuzz.db"), Cipher: c, Synchronous: "NORMAL"})
	if err != nil {
		f.Fatal(err)
	}
	f.Cleanup(func() { db.Close() })
	srv, err := api.NewServer(api.Config{Callbacks: db, Domains: db, Dev: true})
	if err != nil {
		f.Fatal(err)
	}
	f.Fuzz(func(t *testing.T, body []byte) {
		rec := httptest.NewRecorder()
		srv.ServeHTTP(rec, httptest.NewRequest("PUT", "/v1/proj/record/domains/push.example.com", bytes.NewReader(body)))
		switch {
		case rec.Code == http.StatusOK || rec.Code == http.StatusCreated:
			var d struct {
				PublishDomain string `json:"publish_domain"`
				CreateTime    string `json:"create_time"`
			}
			if err := json.Unmarshal(rec.Body.Bytes(), &d); err != nil || d.PublishDomain != "push.example.com" {
				t.Fatalf("%d with body %s", rec.Code, rec.Body)
			}
			if _, err := time.Parse(livehooks.TimeFormat, d.CreateTime); err != nil {
				t.Fatalf("create_time %q", d.CreateTime)
			}
			show := httptest.NewRecorder()
			srv.ServeHTTP(show, httptest.NewRequest("GET", "/v1/proj/record/domains/push.example.com", nil))
			if show.Code != http.StatusOK {
				t.Fatalf("stored settings do not read back: %d %s", show.Code, show.Body)
			}
		case rec.Code >= 400 && rec.Code < 500:
			var e struct {
				ErrorCode string `json:"error_code"`
				ErrorMsg  string `json:"error_msg"`
			}
			if err := json.Unmarshal(rec.Body.Bytes(), &e); err != nil || e.ErrorCode == "" || e.ErrorMsg == "" {
				t.Fatalf("%d with a body not in the Huawei format: %s", rec.Code, rec.Body)
			}
		default:
			t.Fatalf("status %d for body %q: %s", rec.Code, body, rec.Body)
		}
		if strings.Contains(rec.Body.String(), `"secret_key"`) {
			t.Fatalf("the answer has a secret_key: %s", rec.Body)
		}
	})
}
