package console_test

import (
	"bytes"
	"context"
	"encoding/json"
	"io"
	"net/http"
	"net/http/cookiejar"
	"net/http/httptest"
	"net/url"
	"path/filepath"
	"strings"
	"sync"
	"sync/atomic"
	"testing"
	"time"

	"github.com/livehooks/livehooks"
	"github.com/livehooks/livehooks/aesgcm"
	"github.com/livehooks/livehooks/api"
	"github.com/livehooks/livehooks/auth"
	"github.com/livehooks/livehooks/console"
	"github.com/livehooks/livehooks/store/sqlite"
)

const (
	testToken = "tok0123456789abcdefghijklmnopqrstu"
	testAK    = "AKCONSOLETEST0000001"
	testSK    = "skCONSOLE0123456789abcdefghijklmnopqrstu"
)

type clock struct {
	mu sync.Mutex
	t  time.Time
}

func (c *clock) Now() time.Time { c.mu.Lock(); defer c.mu.Unlock(); return c.t }
func (c *clock) add(d time.Duration) {
	c.mu.Lock()
	defer c.mu.Unlock()
	c.t = c.t.Add(d)
}

// swappable lets a test rotate the credentials under a running server.
type swappable struct{ v atomic.Pointer[auth.Verifier] }

func (s *swappable) Authenticate(r *http.Request, body []byte) (livehooks.Principal, error) {
	return s.v.Load().Authenticate(r, body)
}

type env struct {
	srv   *httptest.Server
	clock *clock
	creds *swappable
}

func newEnv(t *testing.T, useTLS bool) *env {
	t.Helper()
	key := bytes.Repeat([]byte{7}, 32)
	cipher, err := aesgcm.New(key)
	if err != nil {
		t.Fatal(err)
	}
	store, err := sqlite.Open(context.Background(), sqlite.Options{Path: filepath.Join(t.TempDir(), "db"), Cipher: cipher})
	if err != nil {
		t.Fatal(err)
	}
	t.Cleanup(func() { store.Close() })
	clk := &clock{t: time.Now()}
	creds := &swappable{}
	creds.v.Store(auth.NewVerifier(
		[]auth.AccessKey{{AK: testAK, SK: testSK, Projects: []string{"p1"}}},
		[]auth.Token{{Token: testToken, Projects: []string{"p1"}}}, nil))
	cons, err := console.New(console.Options{Auth: creds, MasterKey: key, TTL: time.Hour, FailDelay: 300 * time.Millisecond, Clock: clk})
	if err != nil {
		t.Fatal(err)
	}
	apiSrv, err := api.NewServer(api.Config{Callbacks: store, Auth: cons.Authenticator(creds)})
	if err != nil {
		t.Fatal(err)
	}
	mux := http.NewServeMux()
	mux.Handle("/console", cons)
	mux.Handle("/console/", cons)
	mux.Handle("/", apiSrv)
	e := &env{clock: clk, creds: creds}
	if useTLS {
		e.srv = httptest.NewTLSServer(mux)
	} else {
		e.srv = httptest.NewServer(mux)
	}
	t.Cleanup(e.srv.Close)
	return e
}

// browser is an HTTP client with a cookie jar, like a browser tab.
func (e *env) browser(t *testing.T) *http.Client {
	jar, _ := cookiejar.New(nil)
	c := e.srv.Client()
	return &http.Client{Jar: jar, Transport: c.Transport}
}

type answer struct {
	status int
	header http.Header
	body   map[string]any
}

func do(t *testing.T, c *http.Client, method, url string, body any, header map[string]string) answer {
	t.Helper()
	var r io.Reader
	if body != nil {
		b, _ := json.Marshal(body)
		r = bytes.NewReader(b)
	}
	req, _ := http.NewRequest(method, url, r)
	if body != nil {
		req.Header.Set("Content-Type", "application/json")
	}
	for k, v := range header {
		req.Header.Set(k, v)
	}
	resp, err := c.Do(req)
	if err != nil {
		t.Fatal(err)
	}
	defer resp.Body.Close()
	raw, _ := io.ReadAll(resp.Body)
	a := answer{status: resp.StatusCode, header: resp.Header}
	_ = json.Unmarshal(raw, &a.body)
	return a
}

func signIn(t *testing.T, e *env, c *http.Client, body map[string]string) answer {
	t.Helper()
	return do(t, c, "POST", e.srv.URL+"/console/session", body, nil)
}

var validConfig = map[string]any{"publish_domain": "push.example.com", "app": "live", "notify_callback_url": "https://hooks.example.com/cb"}

func TestSignInSetsAStrictSessionCookie(t *testing.T) {
	for _, useTLS := range []bool{false, true} {
		e := newEnv(t, useTLS)
		a := signIn(t, e, e.browser(t), map[string]string{"project_id": "p1", "token": testToken})
		if a.status != 200 {
			t.Fatalf("sign-in: %d %v", a.status, a.body)
		}
		cookies := (&http.Response{Header: a.header}).Cookies()
		if len(cookies) != 1 {
			t.Fatalf("cookies: %v", cookies)
		}
		ck := cookies[0]
		if ck.Name != console.CookieName || !ck.HttpOnly || ck.SameSite != http.SameSiteStrictMode || ck.Path != "/" || ck.MaxAge != 3600 || ck.Secure != useTLS {
			t.Errorf("TLS %v: cookie %+v", useTLS, ck)
		}
		if strings.Contains(ck.Value, testToken) || a.body["csrf_token"] == "" || a.body["project_id"] != "p1" {
			t.Errorf("session: cookie %q, body %v", ck.Value, a.body)
		}
	}
}

func TestSessionReachesTheAPIOfItsProjectOnly(t *testing.T) {
	e := newEnv(t, false)
	c := e.browser(t)
	for _, creds := range []map[string]string{
		{"project_id": "p1", "token": testToken},
		{"project_id": "p1", "access_key": testAK, "secret_key": testSK},
	} {
		s := signIn(t, e, c, creds)
		if s.status != 200 {
			t.Fatalf("sign-in %v: %d %v", creds, s.status, s.body)
		}
		csrf := map[string]string{console.HeaderCSRF: s.body["csrf_token"].(string)}
		if a := do(t, c, "GET", e.srv.URL+"/v1/p1/record/callbacks", nil, nil); a.status != 200 {
			t.Fatalf("list with session: %d %v", a.status, a.body)
		}
		if a := do(t, c, "GET", e.srv.URL+"/v1/p2/record/callbacks", nil, nil); a.status != 403 {
			t.Fatalf("other project with session: %d %v", a.status, a.body)
		}
		a := do(t, c, "POST", e.srv.URL+"/v1/p1/record/callbacks", validConfig, csrf)
		if a.status != 201 {
			t.Fatalf("create with session and CSRF header: %d %v", a.status, a.body)
		}
		if a := do(t, c, "DELETE", e.srv.URL+"/v1/p1/record/callbacks/"+a.body["id"].(string), nil, csrf); a.status != 204 {
			t.Fatalf("delete: %d %v", a.status, a.body)
		}
	}
}

// TestForgedRequestsAreRefused: a request another site makes the browser send
// carries the cookie but not the CSRF token; a request from another origin
// is refused even with a token.
func TestForgedRequestsAreRefused(t *testing.T) {
	e := newEnv(t, false)
	c := e.browser(t)
	s := signIn(t, e, c, map[string]string{"project_id": "p1", "token": testToken})
	token := s.body["csrf_token"].(string)
	for name, header := range map[string]map[string]string{
		"no CSRF header":    nil,
		"wrong CSRF header": {console.HeaderCSRF: strings.Repeat("0", len(token))},
		"other origin":      {console.HeaderCSRF: token, "Origin": "https://evil.example"},
		"cross-site fetch":  {console.HeaderCSRF: token, "Sec-Fetch-Site": "cross-site"},
	} {
		a := do(t, c, "POST", e.srv.URL+"/v1/p1/record/callbacks", validConfig, header)
		if a.status != 401 || a.body["error_code"] != "APIGW.0301" || !strings.Contains(a.body["error_msg"].(string), "forgery") {
			t.Errorf("%s: %d %v", name, a.status, a.body)
		}
	}
	list := do(t, c, "GET", e.srv.URL+"/v1/p1/record/callbacks", nil, nil)
	if list.body["total"] != float64(0) {
		t.Errorf("a forged request created a config: %v", list.body)
	}
	// Sign-in itself only from this site and only as JSON (login CSRF).
	a := do(t, e.browser(t), "POST", e.srv.URL+"/console/session", map[string]string{"project_id": "p1", "token": testToken}, map[string]string{"Origin": "https://evil.example"})
	if a.status != 403 {
		t.Errorf("cross-site sign-in: %d %v", a.status, a.body)
	}
	req, _ := http.NewRequest("POST", e.srv.URL+"/console/session", strings.NewReader("project_id=p1&token="+testToken))
	req.Header.Set("Content-Type", "application/x-www-form-urlencoded")
	resp, err := e.srv.Client().Do(req)
	if err != nil {
		t.Fatal(err)
	}
	resp.Body.Close()
	if resp.StatusCode != 400 {
		t.Errorf("form sign-in: %d", resp.StatusCode)
	}
}

func TestWrongCredentialIsAClearMessageAfterADelay(t *testing.T) {
	e := newEnv(t, false)
	for _, tc := range []struct {
		creds  map[string]string
		status int
		msg    string
	}{
		{map[string]string{"project_id": "p1", "token": "not-the-token"}, 401, "Sign-in failed: the token, or the access key and secret key, is wrong"},
		{map[string]string{"project_id": "p1", "access_key": testAK, "secret_key": "wrong"}, 401, "Sign-in failed: the token, or the access key and secret key, is wrong"},
		{map[string]string{"project_id": "p2", "token": testToken}, 403, "Sign-in failed: this credential is not bound to project p2"},
	} {
		start := time.Now()
		a := signIn(t, e, e.browser(t), tc.creds)
		if took := time.Since(start); took < 300*time.Millisecond {
			t.Errorf("%v answered after %v, want the fail delay", tc.creds, took)
		}
		if a.status != tc.status || a.body["error_msg"] != tc.msg || len((&http.Response{Header: a.header}).Cookies()) != 0 {
			t.Errorf("%v: %d %v", tc.creds, a.status, a.body)
		}
	}
	a := signIn(t, e, e.browser(t), map[string]string{"project_id": "p1"})
	if a.status != 400 || !strings.Contains(a.body["error_msg"].(string), "give a token") {
		t.Errorf("no credential: %d %v", a.status, a.body)
	}
}

func TestSessionEnds(t *testing.T) {
	e := newEnv(t, false)
	list := e.srv.URL + "/v1/p1/record/callbacks"

	t.Run("sign-out", func(t *testing.T) {
		c := e.browser(t)
		s := signIn(t, e, c, map[string]string{"project_id": "p1", "token": testToken})
		u := e.srv.URL
		old := c.Jar.Cookies(mustURL(u))
		if a := do(t, c, "DELETE", u+"/console/session", nil, nil); a.status != 403 {
			t.Fatalf("sign-out without CSRF: %d", a.status)
		}
		if a := do(t, c, "DELETE", u+"/console/session", nil, map[string]string{console.HeaderCSRF: s.body["csrf_token"].(string)}); a.status != 204 {
			t.Fatalf("sign-out: %d", a.status)
		}
		if a := do(t, c, "GET", list, nil, nil); a.status != 401 {
			t.Fatalf("after sign-out: %d", a.status)
		}
		// A copy of the cookie taken before the sign-out is dead too.
		c2 := e.browser(t)
		c2.Jar.SetCookies(mustURL(u), old)
		if a := do(t, c2, "GET", list, nil, nil); a.status != 401 {
			t.Fatalf("old cookie after sign-out: %d", a.status)
		}
	})
	t.Run("expiry", func(t *testing.T) {
		c := e.browser(t)
		signIn(t, e, c, map[string]string{"project_id": "p1", "token": testToken})
		e.clock.add(59 * time.Minute)
		if a := do(t, c, "GET", list, nil, nil); a.status != 200 {
			t.Fatalf("before expiry: %d", a.status)
		}
		e.clock.add(2 * time.Minute)
		a := do(t, c, "GET", list, nil, nil)
		if a.status != 401 || !strings.Contains(a.body["error_msg"].(string), "sign in again") {
			t.Fatalf("after expiry: %d %v", a.status, a.body)
		}
	})
	t.Run("rotated credential", func(t *testing.T) {
		c := e.browser(t)
		signIn(t, e, c, map[string]string{"project_id": "p1", "token": testToken})
		prev := e.creds.v.Load()
		e.creds.v.Store(auth.NewVerifier(nil, []auth.Token{{Token: "a-new-token-0123456789abcdefghij", Projects: []string{"p1"}}}, nil))
		defer e.creds.v.Store(prev)
		if a := do(t, c, "GET", list, nil, nil); a.status != 401 {
			t.Fatalf("after rotation: %d", a.status)
		}
	})
	t.Run("tampered cookie", func(t *testing.T) {
		c := e.browser(t)
		signIn(t, e, c, map[string]string{"project_id": "p1", "token": testToken})
		ck := c.Jar.Cookies(mustURL(e.srv.URL))[0]
		b := []byte(ck.Value)
		b[len(b)/2] ^= 1
		ck.Value = string(b)
		c2 := e.browser(t)
		c2.Jar.SetCookies(mustURL(e.srv.URL), []*http.Cookie{ck})
		if a := do(t, c2, "GET", list, nil, nil); a.status != 401 {
			t.Fatalf("tampered: %d", a.status)
		}
	})
}

func TestPagesAreServedFromTheBinary(t *testing.T) {
	e := newEnv(t, false)
	c := e.srv.Client()
	c.CheckRedirect = func(*http.Request, []*http.Request) error { return http.ErrUseLastResponse }
	resp, err := c.Get(e.srv.URL + "/console")
	if err != nil {
		t.Fatal(err)
	}
	resp.Body.Close()
	if resp.StatusCode != 302 || resp.Header.Get("Location") != "/console/" {
		t.Fatalf("/console: %d %s", resp.StatusCode, resp.Header.Get("Location"))
	}
	for path, want := range map[string]string{"/console/": "text/html", "/console/app.js": "javascript", "/console/app.css": "text/css"} {
		resp, err := c.Get(e.srv.URL + path)
		if err != nil {
			t.Fatal(err)
		}
		body, _ := io.ReadAll(resp.Body)
		resp.Body.Close()
		if resp.StatusCode != 200 || !strings.Contains(resp.Header.Get("Content-Type"), want) || len(body) == 0 {
			t.Errorf("%s: %d %s", path, resp.StatusCode, resp.Header.Get("Content-Type"))
		}
		if csp := resp.Header.Get("Content-Security-Policy"); !strings.Contains(csp, "default-src 'none'") || !strings.Contains(csp, "script-src 'self'") {
			t.Errorf("%s: CSP %q", path, csp)
		}
		// No external assets: nothing refers to another origin.
		for _, ext := range []string{"http://", "https://", "//cdn"} {
			if bytes.Contains(body, []byte("src=\""+ext)) || bytes.Contains(body, []byte("href=\""+ext)) {
				t.Errorf("%s refers to an external asset (%s)", path, ext)
			}
		}
	}
}

func mustURL(s string) *url.URL { u, _ := url.Parse(s); return u }

// TestDevSignInAsksForAProjectOnly: with --dev the API checks no credential;
// the console signs in to a project without one.
func TestDevSignInAsksForAProjectOnly(t *testing.T) {
	cons, err := console.New(console.Options{Dev: true, MasterKey: bytes.Repeat([]byte{9}, 32)})
	if err != nil {
		t.Fatal(err)
	}
	srv := httptest.NewServer(cons)
	defer srv.Close()
	jar, _ := cookiejar.New(nil)
	c := &http.Client{Jar: jar}
	if a := do(t, c, "GET", srv.URL+"/console/session", nil, nil); a.status != 401 || a.body["dev"] != true {
		t.Fatalf("session before sign-in: %d %v", a.status, a.body)
	}
	a := do(t, c, "POST", srv.URL+"/console/session", map[string]string{"project_id": "p1"}, nil)
	if a.status != 200 || a.body["dev"] != true || a.body["project_id"] != "p1" {
		t.Fatalf("dev sign-in: %d %v", a.status, a.body)
	}
	if a := do(t, c, "GET", srv.URL+"/console/session", nil, nil); a.status != 200 || a.body["principal"] != "dev" {
		t.Fatalf("dev session: %d %v", a.status, a.body)
	}
}
