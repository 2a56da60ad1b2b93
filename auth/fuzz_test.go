package auth

import (
	"encoding/hex"
	"net/http"
	"net/url"
	"slices"
	"strings"
	"testing"

	"github.com/livehooks/livehooks"
)

func FuzzParseAuthorization(f *testing.F) {
	sig := strings.Repeat("ab", 32)
	for _, s := range []string{
		"SDK-HMAC-SHA256 Access=AK, SignedHeaders=user-agent;x-project-id;x-sdk-date, Signature=" + sig,
		"SDK-HMAC-SHA256 Signature=" + sig + ",SignedHeaders=x-sdk-date,Access=AK",
		"SDK-HMAC-SHA256 Access=AK, SignedHeaders=x-sdk-date;x-sdk-date, Signature=" + sig,
		"SDK-HMAC-SHA256 Access=, SignedHeaders=, Signature=",
		"SDK-HMAC-SHA256 ,,,",
		"Bearer x",
		"",
	} {
		f.Add(s)
	}
	f.Fuzz(func(t *testing.T, s string) {
		a, err := parseAuthorization(s)
		if err != nil {
			if livehooks.ErrorCode(err) != livehooks.EUNAUTHORIZED {
				t.Fatalf("error code %q: %v", livehooks.ErrorCode(err), err)
			}
			return
		}
		if !isAccessKeyID(a.AccessKey) || len(a.Signature) != 32 || len(a.SignedHeaders) == 0 {
			t.Fatalf("parsed %q into %+v", s, a)
		}
		// What parses re-parses to the same thing in the SDKs' own layout.
		again := "SDK-HMAC-SHA256 Access=" + a.AccessKey + ", SignedHeaders=" + strings.Join(a.SignedHeaders, ";") + ", Signature=" + hex.EncodeToString(a.Signature)
		b, err := parseAuthorization(again)
		if err != nil || b.AccessKey != a.AccessKey || !slices.Equal(b.SignedHeaders, a.SignedHeaders) || !slices.Equal(b.Signature, a.Signature) {
			t.Fatalf("%q parsed to %+v, its normal form %q to %+v, %v", s, a, again, b, err)
		}
	})
}

// FuzzAuthenticate feeds arbitrary requests to the verifier (it must never
// panic, and fail only with EUNAUTHORIZED), and, when signed is set, requests
// made of the same path, query and body and signed by the test signer, which
// it must accept: a differential test of the canonicalisation.
func FuzzAuthenticate(f *testing.F) {
	f.Add(true, "GET", "/v1/projA/record/callbacks", "app=live&offset=0", "", "", "", "", "")
	f.Add(true, "PUT", "/v1/projA/record/callbacks/a b+c%d/é", "app=a b&app=+&x&y=", "", "", "", "", `{"app":"live"}`)
	f.Add(true, "POST", "/v1/p/x;y=z/!$&'()*+,:=@", "k==v&%zz=1", "", "", "", unsignedPayload, "body")
	f.Add(false, "GET", "/v1/projA/record/callbacks", "", "SDK-HMAC-SHA256 Access="+testAK+", SignedHeaders=x-sdk-date, Signature="+strings.Repeat("00", 32), testDate, "", "", "")
	f.Add(false, "GET", "/%zz", "a=%zz", "SDK-HMAC-SHA256 Access="+testAK+", SignedHeaders=host;x-sdk-date, Signature="+strings.Repeat("00", 32), testDate, "", "x", "")
	f.Add(false, "GET", "/", "", "", "", testTok[:5], "", "")
	f.Add(false, "DELETE", "", "", "SDK-HMAC-SHA256 Access=A, SignedHeaders=x-sdk-date, Signature=", "99999999T999999Z", "", "", "")
	f.Fuzz(func(t *testing.T, signed bool, method, path, query, authz, date, token, contentSHA, body string) {
		v := testVerifier()
		if signed {
			fuzzSigned(t, v, method, path, query, contentSHA, body)
			return
		}
		r := &http.Request{Method: method, Header: http.Header{}, Host: "livehooks.test"}
		if u, err := url.ParseRequestURI(path + "?" + query); err == nil {
			r.URL = u
		} else {
			r.URL = &url.URL{Path: path, RawPath: path, RawQuery: query}
		}
		for name, value := range map[string]string{"Authorization": authz, "X-Sdk-Date": date, "X-Auth-Token": token, "X-Sdk-Content-Sha256": contentSHA} {
			if value != "" {
				r.Header.Set(name, value)
			}
		}
		r.Header.Set("X-Project-Id", "projA")
		p, err := v.Authenticate(r, []byte(body))
		if err == nil {
			if token != testTok && token != "another-token-that-is-long-enough" {
				t.Fatalf("authenticated as %+v", p)
			}
			return
		}
		if livehooks.ErrorCode(err) != livehooks.EUNAUTHORIZED {
			t.Fatalf("error code %q: %v", livehooks.ErrorCode(err), err)
		}
	})
}

func fuzzSigned(t *testing.T, v *Verifier, method, path, query, contentSHA, body string) {
	switch method {
	case "GET", "POST", "PUT", "DELETE", "PATCH":
	default:
		method = "POST"
	}
	tr := testRequest{Method: method, Path: "/" + path, Body: body, AK: testAK, SK: testSK, Header: sdkHeaders("projA")}
	if contentSHA == unsignedPayload {
		tr.Payload = unsignedPayload
	}
	// The query string is read as name=value pairs of unescaped text, as an SDK
	// holds them; the SDK cannot send an empty name.
	for pair := range strings.SplitSeq(query, "&") {
		name, value, _ := strings.Cut(pair, "=")
		if name == "" {
			continue
		}
		if tr.Query == nil {
			tr.Query = map[string][]string{}
		}
		tr.Query[name] = append(tr.Query[name], value)
	}
	r, b, err := tr.wireErr()
	if err != nil {
		t.Skip("not a request a client can send:", err)
	}
	if _, err := v.Authenticate(r, b); err != nil {
		t.Fatalf("signed request refused: %v\n%s %s?%s", err, r.Method, r.URL.EscapedPath(), r.URL.RawQuery)
	}
}
