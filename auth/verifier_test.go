package auth

import (
	"net/http"
	"strings"
	"testing"
	"time"

	"github.com/livehooks/livehooks"
)

type fixedClock time.Time

func (c fixedClock) Now() time.Time { return time.Time(c) }

var testNow = time.Date(2025, 1, 2, 3, 4, 5, 0, time.UTC) // testDate

const (
	testAK  = "TESTAK00000000000001"
	testSK  = "testSecretKey0123456789abcdefghijABCDEFGH"
	testAK2 = "TESTAK00000000000002"
	testSK2 = "otherSecretKey0123456789abcdefghijABCDEFG"
	testTok = "tok_0123456789abcdefghijklmnopqrstuvwxyzABCDEFGH"
)

func testVerifier() *Verifier {
	return NewVerifier(
		[]AccessKey{
			{AK: testAK, SK: testSK, Projects: []string{"projA"}},
			{AK: testAK2, SK: testSK2, Projects: []string{"projB", "projC"}},
		},
		[]Token{
			{Token: "another-token-that-is-long-enough", Projects: []string{"*"}},
			{Token: testTok, Projects: []string{"projA"}},
		},
		fixedClock(testNow),
	)
}

// sdkHeaders are the headers the Go SDK signs besides X-Sdk-Date.
func sdkHeaders(project string) map[string]string {
	return map[string]string{
		"User-Agent":   "huaweicloud-usdk-go/3.0",
		"X-Project-Id": project,
	}
}

func TestAuthenticateSignature(t *testing.T) {
	t.Parallel()
	const body = `{"publish_domain":"publish.example.com","app":"live"}` + "\n"
	base := testRequest{Method: "GET", Path: "/v1/projA/record/callbacks", Header: sdkHeaders("projA"), AK: testAK, SK: testSK}
	with := func(f func(*testRequest)) testRequest {
		tr := base
		tr.Header = map[string]string{}
		for k, v := range base.Header {
			tr.Header[k] = v
		}
		f(&tr)
		return tr
	}

	tests := []struct {
		name    string
		req     testRequest
		mutate  func(r *http.Request, body []byte) []byte // after signing, before verifying
		clock   time.Time                                 // testNow when zero
		wantErr string                                    // substring of the message; "" = success
		wantAK  string
	}{
		{name: "GET list", req: base, wantAK: testAK},
		{name: "GET with query", req: with(func(tr *testRequest) {
			tr.Query = map[string][]string{"publish_domain": {"play.example.com"}, "app": {"live"}, "offset": {"0"}, "limit": {"10"}}
		}), wantAK: testAK},
		{name: "query needing escapes and repeated names", req: with(func(tr *testRequest) {
			tr.Query = map[string][]string{"app": {"live app/ü+&=", "b", "a"}, "x y": {""}, "z": {"~-._*'()!"}}
		}), wantAK: testAK},
		{name: "POST JSON body", req: with(func(tr *testRequest) {
			tr.Method, tr.Body = "POST", body
			tr.Header["Content-Type"] = "application/json; charset=UTF-8"
			tr.Unsigned = []string{"Content-Type"} // the Go SDK never signs it
		}), wantAK: testAK},
		{name: "PUT escaped path", req: with(func(tr *testRequest) {
			tr.Method, tr.Path, tr.Body = "PUT", "/v1/projA/record/callbacks/a b+c%d;é", body
		}), wantAK: testAK},
		{name: "DELETE with slash and unicode in id", req: with(func(tr *testRequest) {
			tr.Method, tr.Path = "DELETE", "/v1/projA/record/callbacks/x/ü:@!$&'()*,="
		}), wantAK: testAK},
		{name: "path ending with slash", req: with(func(tr *testRequest) { tr.Path = "/v1/projA/record/callbacks/" }), wantAK: testAK},
		{name: "APIG signer set: host, content-type, x-sdk-date", req: with(func(tr *testRequest) {
			tr.Method, tr.Body = "POST", body
			tr.Header = map[string]string{"Content-Type": "application/json"}
			tr.SignHost = true
		}), wantAK: testAK},
		{name: "only x-sdk-date signed", req: with(func(tr *testRequest) { tr.Header = nil }), wantAK: testAK},
		{name: "second key", req: with(func(tr *testRequest) { tr.AK, tr.SK = testAK2, testSK2 }), wantAK: testAK2},
		{name: "UNSIGNED-PAYLOAD ignores the body", req: with(func(tr *testRequest) {
			tr.Method, tr.Body, tr.Payload = "POST", "signed body", unsignedPayload
		}), mutate: func(*http.Request, []byte) []byte { return []byte("other body") }, wantAK: testAK},
		{name: "X-Sdk-Content-Sha256 equal to the body hash", req: with(func(tr *testRequest) {
			tr.Method, tr.Body = "POST", "abc"
			tr.Payload = "ba7816bf8f01cfea414140de5dae2223b00361a396177a9cb410ff61f20015ad"
		}), wantAK: testAK},
		{name: "X-Sdk-Content-Sha256 not the body hash", req: with(func(tr *testRequest) {
			tr.Method, tr.Body = "POST", "abd"
			tr.Payload = "ba7816bf8f01cfea414140de5dae2223b00361a396177a9cb410ff61f20015ad"
		}), wantErr: "X-Sdk-Content-Sha256 does not match the body"},
		{name: "skew +14 min", req: base, clock: testNow.Add(14 * time.Minute), wantAK: testAK},
		{name: "skew -14 min", req: base, clock: testNow.Add(-14 * time.Minute), wantAK: testAK},
		{name: "skew +16 min", req: base, clock: testNow.Add(16 * time.Minute), wantErr: "outside the allowed 15 minute skew"},
		{name: "skew -16 min", req: base, clock: testNow.Add(-16 * time.Minute), wantErr: "outside the allowed 15 minute skew"},

		{name: "wrong SK", req: with(func(tr *testRequest) { tr.SK = testSK2 }), wantErr: "signature mismatch"},
		{name: "unknown AK", req: with(func(tr *testRequest) { tr.AK = "NOSUCHAK000000000000" }), wantErr: "unknown access key"},
		{name: "body tampered", req: with(func(tr *testRequest) { tr.Method, tr.Body = "POST", body }),
			mutate:  func(_ *http.Request, b []byte) []byte { return []byte(strings.Replace(string(b), "live", "evil", 1)) },
			wantErr: "signature mismatch"},
		{name: "method changed", req: base, mutate: func(r *http.Request, b []byte) []byte { r.Method = "DELETE"; return b }, wantErr: "signature mismatch"},
		{name: "path changed", req: base, mutate: func(r *http.Request, b []byte) []byte {
			r.URL.Path, r.URL.RawPath = "/v1/projB/record/callbacks", ""
			return b
		}, wantErr: "signature mismatch"},
		{name: "query added", req: base, mutate: func(r *http.Request, b []byte) []byte { r.URL.RawQuery = "limit=100"; return b }, wantErr: "signature mismatch"},
		{name: "'+' in the query is a space, not a plus", req: with(func(tr *testRequest) { tr.Query = map[string][]string{"app": {"a+b"}} }),
			mutate: func(r *http.Request, b []byte) []byte { r.URL.RawQuery = "app=a+b"; return b }, wantErr: "signature mismatch"},
		{name: "signed header changed", req: base, mutate: func(r *http.Request, b []byte) []byte {
			r.Header.Set("X-Project-Id", "projB")
			return b
		}, wantErr: "signature mismatch"},
		{name: "signed header value repeated", req: base, mutate: func(r *http.Request, b []byte) []byte {
			r.Header.Add("X-Project-Id", "projB")
			return b
		}, wantErr: "signature mismatch"},
		{name: "signed header removed", req: base, mutate: func(r *http.Request, b []byte) []byte {
			r.Header.Del("X-Project-Id")
			return b
		}, wantErr: "signature mismatch"},
		{name: "host changed", req: with(func(tr *testRequest) { tr.SignHost = true }), mutate: func(r *http.Request, b []byte) []byte {
			r.Host = "evil.test"
			return b
		}, wantErr: "signature mismatch"},
		{name: "unsigned header changed is fine", req: base, mutate: func(r *http.Request, b []byte) []byte {
			r.Header.Set("Accept", "text/plain")
			return b
		}, wantAK: testAK},
		{name: "date changed", req: base, mutate: func(r *http.Request, b []byte) []byte {
			r.Header.Set("X-Sdk-Date", "20250102T030406Z")
			return b
		}, wantErr: "signature mismatch"},
		{name: "UNSIGNED-PAYLOAD added after signing", req: with(func(tr *testRequest) { tr.Method, tr.Body = "POST", body }),
			mutate: func(r *http.Request, _ []byte) []byte {
				r.Header.Set("X-Sdk-Content-Sha256", unsignedPayload)
				return []byte("other body")
			}, wantErr: "signature mismatch"},
		{name: "missing date", req: base, mutate: func(r *http.Request, b []byte) []byte {
			r.Header.Del("X-Sdk-Date")
			return b
		}, wantErr: "missing X-Sdk-Date header"},
		{name: "date in another format", req: with(func(tr *testRequest) { tr.Date = "2025-01-02T03:04:05Z" }), wantErr: "malformed X-Sdk-Date header"},
		{name: "date with one-digit hour", req: with(func(tr *testRequest) { tr.Date = "20250102T3045Z" }), wantErr: "malformed X-Sdk-Date header"},
		{name: "two dates", req: base, mutate: func(r *http.Request, b []byte) []byte {
			r.Header.Add("X-Sdk-Date", testDate)
			return b
		}, wantErr: "malformed X-Sdk-Date header"},
		{name: "x-sdk-date not signed", req: with(func(tr *testRequest) { tr.SignedHeaders = []string{"user-agent", "x-project-id"} }),
			wantErr: "SignedHeaders must include x-sdk-date"},
		{name: "SignedHeaders claims more than was signed", req: with(func(tr *testRequest) {
			tr.SignedHeaders = []string{"user-agent", "x-project-id", "x-sdk-date", "accept-encoding"}
		}), wantErr: "signature mismatch"},
		{name: "two Authorization headers", req: base, mutate: func(r *http.Request, b []byte) []byte {
			r.Header.Add("Authorization", r.Header.Get("Authorization"))
			return b
		}, wantErr: "malformed Authorization header"},
		{name: "no credentials", req: base, mutate: func(r *http.Request, b []byte) []byte {
			r.Header.Del("Authorization")
			return b
		}, wantErr: "missing credentials"},
	}
	for _, tt := range tests {
		t.Run(tt.name, func(t *testing.T) {
			t.Parallel()
			r, body := tt.req.wire(t)
			if tt.mutate != nil {
				body = tt.mutate(r, body)
			}
			clock := tt.clock
			if clock.IsZero() {
				clock = testNow
			}
			v := testVerifier()
			v.clock = fixedClock(clock)
			p, err := v.Authenticate(r, body)
			checkAuth(t, p, err, tt.wantErr)
			if err == nil && p.Name != tt.wantAK {
				t.Errorf("principal %q, want %q", p.Name, tt.wantAK)
			}
		})
	}
}

// checkAuth checks that err is nil when wantErr is empty, and otherwise an
// EUNAUTHORIZED error containing wantErr and no secret.
func checkAuth(t *testing.T, p livehooks.Principal, err error, wantErr string) {
	t.Helper()
	if wantErr == "" {
		if err != nil {
			t.Fatalf("Authenticate: %v", err)
		}
		return
	}
	if err == nil {
		t.Fatalf("Authenticate succeeded (%q), want error %q", p.Name, wantErr)
	}
	if code := livehooks.ErrorCode(err); code != livehooks.EUNAUTHORIZED {
		t.Errorf("code %q, want %q (%v)", code, livehooks.EUNAUTHORIZED, err)
	}
	if msg := livehooks.ErrorMessage(err); !strings.Contains(msg, wantErr) {
		t.Errorf("message %q, want it to contain %q", msg, wantErr)
	}
	for _, secret := range []string{testSK, testSK2, testTok} {
		if strings.Contains(err.Error(), secret) {
			t.Errorf("error %q contains a secret", err)
		}
	}
	if p.Name != "" || p.Projects != nil {
		t.Errorf("principal %+v returned with an error", p)
	}
}

func TestAuthenticateMalformedAuthorization(t *testing.T) {
	t.Parallel()
	sig := strings.Repeat("ab", 32)
	tests := []struct{ name, header string }{
		{"empty", ""},
		{"other scheme", "Bearer abc"},
		{"derived scheme", "V11-HMAC-SHA256 Access=" + testAK + ", SignedHeaders=x-sdk-date, Signature=" + sig},
		{"scheme only", "SDK-HMAC-SHA256"},
		{"scheme lower case", "sdk-hmac-sha256 Access=" + testAK + ", SignedHeaders=x-sdk-date, Signature=" + sig},
		{"missing Access", "SDK-HMAC-SHA256 SignedHeaders=x-sdk-date, Signature=" + sig},
		{"missing SignedHeaders", "SDK-HMAC-SHA256 Access=" + testAK + ", Signature=" + sig},
		{"missing Signature", "SDK-HMAC-SHA256 Access=" + testAK + ", SignedHeaders=x-sdk-date"},
		{"empty Access", "SDK-HMAC-SHA256 Access=, SignedHeaders=x-sdk-date, Signature=" + sig},
		{"Access with space", "SDK-HMAC-SHA256 Access=A B, SignedHeaders=x-sdk-date, Signature=" + sig},
		{"Access twice", "SDK-HMAC-SHA256 Access=" + testAK + ", Access=" + testAK + ", SignedHeaders=x-sdk-date, Signature=" + sig},
		{"unknown field", "SDK-HMAC-SHA256 Access=" + testAK + ", SignedHeaders=x-sdk-date, Signature=" + sig + ", Foo=bar"},
		{"field without =", "SDK-HMAC-SHA256 Access=" + testAK + ", SignedHeaders, Signature=" + sig},
		{"empty SignedHeaders", "SDK-HMAC-SHA256 Access=" + testAK + ", SignedHeaders=, Signature=" + sig},
		{"upper-case SignedHeaders", "SDK-HMAC-SHA256 Access=" + testAK + ", SignedHeaders=X-Sdk-Date, Signature=" + sig},
		{"empty signed header name", "SDK-HMAC-SHA256 Access=" + testAK + ", SignedHeaders=host;;x-sdk-date, Signature=" + sig},
		{"duplicate signed header", "SDK-HMAC-SHA256 Access=" + testAK + ", SignedHeaders=x-sdk-date;x-sdk-date, Signature=" + sig},
		{"header name with colon", "SDK-HMAC-SHA256 Access=" + testAK + ", SignedHeaders=a:b;x-sdk-date, Signature=" + sig},
		{"short signature", "SDK-HMAC-SHA256 Access=" + testAK + ", SignedHeaders=x-sdk-date, Signature=abcd"},
		{"non-hex signature", "SDK-HMAC-SHA256 Access=" + testAK + ", SignedHeaders=x-sdk-date, Signature=" + strings.Repeat("zz", 32)},
		{"trailing comma", "SDK-HMAC-SHA256 Access=" + testAK + ", SignedHeaders=x-sdk-date, Signature=" + sig + ","},
	}
	for _, tt := range tests {
		t.Run(tt.name, func(t *testing.T) {
			t.Parallel()
			r, _ := http.NewRequest("GET", "http://h/v1/projA/record/callbacks", nil)
			r.Header.Set("X-Sdk-Date", testDate)
			r.Header["Authorization"] = []string{tt.header}
			p, err := testVerifier().Authenticate(r, nil)
			want := "malformed Authorization header"
			if tt.header == "" {
				want = "malformed Authorization header"
			}
			checkAuth(t, p, err, want)
		})
	}
}

func TestParseAuthorization(t *testing.T) {
	t.Parallel()
	sig := strings.Repeat("0f", 32)
	tests := []struct {
		header  string
		ak      string
		headers []string
	}{
		{"SDK-HMAC-SHA256 Access=AK1, SignedHeaders=user-agent;x-project-id;x-sdk-date, Signature=" + sig, "AK1", []string{"user-agent", "x-project-id", "x-sdk-date"}},
		{"SDK-HMAC-SHA256 Signature=" + sig + ",SignedHeaders=x-sdk-date,Access=AK1", "AK1", []string{"x-sdk-date"}},
		{"SDK-HMAC-SHA256   Access=AK1 ,  SignedHeaders=host;x-sdk-date ,Signature=" + strings.ToUpper(sig), "AK1", []string{"host", "x-sdk-date"}},
	}
	for _, tt := range tests {
		a, err := parseAuthorization(tt.header)
		if err != nil {
			t.Errorf("parseAuthorization(%q): %v", tt.header, err)
			continue
		}
		if a.AccessKey != tt.ak || strings.Join(a.SignedHeaders, ";") != strings.Join(tt.headers, ";") || len(a.Signature) != 32 || a.Signature[0] != 0x0f {
			t.Errorf("parseAuthorization(%q) = %+v", tt.header, a)
		}
	}
}

func TestAuthenticateToken(t *testing.T) {
	t.Parallel()
	tests := []struct {
		name     string
		values   []string
		wantErr  string
		wantName string
		project  string
		canUse   bool
	}{
		{name: "good token", values: []string{testTok}, wantName: "token:tok_…", project: "projA", canUse: true},
		{name: "good token, other project", values: []string{testTok}, wantName: "token:tok_…", project: "projB", canUse: false},
		{name: "wildcard token", values: []string{"another-token-that-is-long-enough"}, wantName: "token:anot…", project: "anything", canUse: true},
		{name: "bad token", values: []string{testTok + "x"}, wantErr: "unknown token"},
		{name: "prefix of a token", values: []string{testTok[:10]}, wantErr: "unknown token"},
		{name: "empty token", values: []string{""}, wantErr: "unknown token"},
		{name: "two tokens", values: []string{testTok, testTok}, wantErr: "malformed X-Auth-Token header"},
	}
	for _, tt := range tests {
		t.Run(tt.name, func(t *testing.T) {
			t.Parallel()
			r, _ := http.NewRequest("GET", "http://h/v1/projA/record/callbacks", nil)
			r.Header["X-Auth-Token"] = tt.values
			// A token wins over a signature, which is not even looked at.
			r.Header.Set("Authorization", "garbage")
			p, err := testVerifier().Authenticate(r, nil)
			checkAuth(t, p, err, tt.wantErr)
			if err != nil {
				return
			}
			if p.Name != tt.wantName {
				t.Errorf("name %q, want %q", p.Name, tt.wantName)
			}
			if got := p.CanAccess(tt.project); got != tt.canUse {
				t.Errorf("CanAccess(%q) = %v, want %v", tt.project, got, tt.canUse)
			}
		})
	}
}

func TestAuthenticateNoTokensConfigured(t *testing.T) {
	t.Parallel()
	v := NewVerifier(nil, nil, nil)
	r, _ := http.NewRequest("GET", "http://h/", nil)
	r.Header.Set("X-Auth-Token", "x")
	p, err := v.Authenticate(r, nil)
	checkAuth(t, p, err, "unknown token")
}

func TestProjectBinding(t *testing.T) {
	t.Parallel()
	tests := []struct {
		ak, sk  string
		project string
		want    bool
	}{
		{testAK, testSK, "projA", true},
		{testAK, testSK, "projB", false},
		{testAK2, testSK2, "projB", true},
		{testAK2, testSK2, "projC", true},
		{testAK2, testSK2, "projA", false},
	}
	for _, tt := range tests {
		tr := testRequest{Method: "GET", Path: "/v1/" + tt.project + "/record/callbacks", Header: sdkHeaders(tt.project), AK: tt.ak, SK: tt.sk}
		r, body := tr.wire(t)
		p, err := testVerifier().Authenticate(r, body)
		if err != nil {
			t.Fatalf("%s on %s: %v", tt.ak, tt.project, err)
		}
		if got := p.CanAccess(tt.project); got != tt.want {
			t.Errorf("%s CanAccess(%s) = %v, want %v", tt.ak, tt.project, got, tt.want)
		}
	}
}

func TestNewVerifierCopiesAndFirstKeyWins(t *testing.T) {
	t.Parallel()
	keys := []AccessKey{
		{AK: testAK, SK: testSK, Projects: []string{"projA"}},
		{AK: testAK, SK: testSK2, Projects: []string{"*"}},
	}
	v := NewVerifier(keys, nil, fixedClock(testNow))
	keys[0].Projects[0] = "changed"
	tr := testRequest{Method: "GET", Path: "/", AK: testAK, SK: testSK}
	r, body := tr.wire(t)
	p, err := v.Authenticate(r, body)
	if err != nil {
		t.Fatal(err)
	}
	if len(p.Projects) != 1 || p.Projects[0] != "projA" {
		t.Errorf("projects %v, want [projA]", p.Projects)
	}
}

func TestCanonicalURIAndQuery(t *testing.T) {
	t.Parallel()
	uris := []struct{ in, want string }{
		{"", "/"},
		{"/", "/"},
		{"/v1/p/record/callbacks", "/v1/p/record/callbacks/"},
		{"/v1/p/record/callbacks/", "/v1/p/record/callbacks/"},
		{"/a%20b+c%25d/%C3%A9", "/a%20b%2Bc%25d/%C3%A9/"},
		{"/a%2fb", "/a%2Fb/"},
		{"/~-._!*'()", "/~-._%21%2A%27%28%29/"},
		{"//x", "//x/"},
	}
	for _, tt := range uris {
		if got, err := canonicalURI(tt.in); err != nil || got != tt.want {
			t.Errorf("canonicalURI(%q) = %q, %v; want %q", tt.in, got, err, tt.want)
		}
	}
	if _, err := canonicalURI("/%zz"); err == nil {
		t.Error("canonicalURI accepted a bad escape")
	}
	queries := []struct{ in, want string }{
		{"", ""},
		{"b=2&a=1", "a=1&b=2"},
		{"a&b=z%20y&b=x&c.d=42", "a=&b=x&b=z%20y&c.d=42"},
		{"app=live+app%2F%C3%BC%2B%26%3D", "app=live%20app%2F%C3%BC%2B%26%3D"},
		{"a=1&&a=0&", "a=0&a=1"},
		{"a.=1&a/=2", "a.=1&a%2F=2"}, // names sorted before escaping, as the SDK does
		{"k=%7e%2d", "k=~-"},
	}
	for _, tt := range queries {
		if got, err := canonicalQuery(tt.in); err != nil || got != tt.want {
			t.Errorf("canonicalQuery(%q) = %q, %v; want %q", tt.in, got, err, tt.want)
		}
	}
	if _, err := canonicalQuery("a=%zz"); err == nil {
		t.Error("canonicalQuery accepted a bad escape")
	}
}

// With RequireSignedHost, a signature must cover Host: one that does not is
// refused before its signature is checked, and one that does cannot be
// replayed to another host.
func TestRequireSignedHost(t *testing.T) {
	t.Parallel()
	sdk := testRequest{Method: "GET", Path: "/v1/projA/record/callbacks", Header: sdkHeaders("projA"), AK: testAK, SK: testSK}
	withHost := sdk
	withHost.SignHost = true
	otherHost := func(r *http.Request, b []byte) []byte { r.Host = "other-node.test:8080"; return b }
	for _, tt := range []struct {
		name    string
		req     testRequest
		mutate  func(*http.Request, []byte) []byte
		require bool
		wantErr string
	}{
		{name: "SDK request, default", req: sdk},
		{name: "SDK request replayed to another host, default", req: sdk, mutate: otherHost},
		{name: "SDK request, required", req: sdk, require: true, wantErr: "SignedHeaders must include host"},
		{name: "host signed, required", req: withHost, require: true},
		{name: "host signed, replayed to another host", req: withHost, mutate: otherHost, require: true, wantErr: "signature mismatch"},
	} {
		t.Run(tt.name, func(t *testing.T) {
			t.Parallel()
			r, body := tt.req.wire(t)
			if tt.mutate != nil {
				body = tt.mutate(r, body)
			}
			v := testVerifier()
			if tt.require {
				v.RequireSignedHost()
			}
			p, err := v.Authenticate(r, body)
			checkAuth(t, p, err, tt.wantErr)
		})
	}
}
