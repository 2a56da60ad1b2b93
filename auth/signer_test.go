package auth

import (
	"bufio"
	"bytes"
	"crypto/hmac"
	"crypto/sha256"
	"encoding/hex"
	"fmt"
	"io"
	"net/http"
	"net/url"
	"sort"
	"strings"
	"testing"
)

// This file is an SDK-HMAC-SHA256 signer written for the tests from the text of
// the algorithm (SPEC §1 and the Huawei API Gateway signing guide), separately
// from the verifier: it signs what a client holds (an unescaped path, unescaped
// query values, header values) and then puts the request through a real HTTP
// write and read, so the verifier sees what a server receives.

type testRequest struct {
	Method string
	Path   string              // unescaped, as the SDK holds it after filling path parameters
	Query  map[string][]string // unescaped
	Header map[string]string   // sent and signed (unless Unsigned lists it)
	Body   string

	AK, SK string
	Date   string // X-Sdk-Date; testDate when empty

	Unsigned      []string // header names sent but not signed
	SignedHeaders []string // when set, the SignedHeaders to claim instead of the computed list
	SignHost      bool     // sign host (as the API Gateway signers do)
	Payload       string   // when set, sent as X-Sdk-Content-Sha256 and signed in place of the body hash
}

const testDate = "20250102T030405Z"

// rfc3986Escape percent-encodes everything but the RFC 3986 unreserved characters.
func rfc3986Escape(s string) string {
	var out []byte
	for _, c := range []byte(s) {
		unreserved := strings.ContainsRune("ABCDEFGHIJKLMNOPQRSTUVWXYZabcdefghijklmnopqrstuvwxyz0123456789-._~", rune(c))
		if unreserved {
			out = append(out, c)
		} else {
			out = append(out, []byte(fmt.Sprintf("%%%02X", c))...)
		}
	}
	return string(out)
}

// sign returns the Authorization header value for tr and the list it signed.
func (tr testRequest) sign(host string) string {
	date := tr.Date
	if date == "" {
		date = testDate
	}
	headers := map[string]string{"x-sdk-date": date}
	for k, v := range tr.Header {
		headers[strings.ToLower(k)] = v
	}
	if tr.Payload != "" {
		headers["x-sdk-content-sha256"] = tr.Payload
	}
	for _, k := range tr.Unsigned {
		delete(headers, strings.ToLower(k))
	}
	if tr.SignHost {
		headers["host"] = host
	}
	var names []string
	for k := range headers {
		names = append(names, k)
	}
	sort.Strings(names)

	// Canonical URI: escape every segment, end with a slash.
	parts := strings.Split(tr.Path, "/")
	for i := range parts {
		parts[i] = rfc3986Escape(parts[i])
	}
	uri := strings.Join(parts, "/")
	if !strings.HasSuffix(uri, "/") {
		uri += "/"
	}

	// Canonical query: names sorted, each name's values sorted, then escaped.
	var qnames []string
	for k := range tr.Query {
		qnames = append(qnames, k)
	}
	sort.Strings(qnames)
	var pairs []string
	for _, k := range qnames {
		vs := append([]string(nil), tr.Query[k]...)
		sort.Strings(vs)
		for _, v := range vs {
			pairs = append(pairs, rfc3986Escape(k)+"="+rfc3986Escape(v))
		}
	}

	var canonHeaders string
	for _, k := range names {
		canonHeaders += k + ":" + strings.TrimSpace(headers[k]) + "\n"
	}
	payload := tr.Payload
	if payload == "" {
		h := sha256.Sum256([]byte(tr.Body))
		payload = hex.EncodeToString(h[:])
	}
	signed := strings.Join(names, ";")
	canonical := tr.Method + "\n" + uri + "\n" + strings.Join(pairs, "&") + "\n" + canonHeaders + "\n" + signed + "\n" + payload

	crh := sha256.Sum256([]byte(canonical))
	sts := "SDK-HMAC-SHA256\n" + date + "\n" + hex.EncodeToString(crh[:])
	mac := hmac.New(sha256.New, []byte(tr.SK))
	mac.Write([]byte(sts))
	if tr.SignedHeaders != nil {
		signed = strings.Join(tr.SignedHeaders, ";")
	}
	return fmt.Sprintf("SDK-HMAC-SHA256 Access=%s, SignedHeaders=%s, Signature=%x", tr.AK, signed, mac.Sum(nil))
}

// wire builds the request as a Go client sends it (path set unescaped, query
// encoded as the Huawei Go SDK does), writes it and reads it back as a server.
func (tr testRequest) wire(t testing.TB) (*http.Request, []byte) {
	t.Helper()
	r, body, err := tr.wireErr()
	if err != nil {
		t.Fatal(err)
	}
	return r, body
}

func (tr testRequest) wireErr() (*http.Request, []byte, error) {
	const host = "livehooks.test:8080"
	u := &url.URL{Scheme: "http", Host: host, Path: tr.Path}
	if len(tr.Query) > 0 {
		q := url.Values(tr.Query).Encode()
		q = strings.ReplaceAll(strings.ReplaceAll(strings.Trim(q, "="), "=&", "&"), "+", "%20")
		u.RawQuery = q
	}
	req, err := http.NewRequest(tr.Method, u.String(), strings.NewReader(tr.Body))
	if err != nil {
		return nil, nil, err
	}
	req.URL.Path, req.URL.RawPath = tr.Path, ""
	date := tr.Date
	if date == "" {
		date = testDate
	}
	req.Header.Set("X-Sdk-Date", date)
	for k, v := range tr.Header {
		req.Header.Set(k, v)
	}
	if tr.Payload != "" {
		req.Header.Set("X-Sdk-Content-Sha256", tr.Payload)
	}
	req.Header.Set("Authorization", tr.sign(host))

	// Write it in HTTP/1.1 and parse it back as a server does.
	var buf bytes.Buffer
	if err := req.Write(&buf); err != nil {
		return nil, nil, err
	}
	r, err := http.ReadRequest(bufio.NewReader(&buf))
	if err != nil {
		return nil, nil, err
	}
	body, err := io.ReadAll(r.Body)
	return r, body, err
}

func readRaw(t testing.TB, raw string) (*http.Request, []byte) {
	t.Helper()
	r, err := http.ReadRequest(bufio.NewReader(strings.NewReader(raw)))
	if err != nil {
		t.Fatalf("read request: %v", err)
	}
	body, err := io.ReadAll(r.Body)
	if err != nil {
		t.Fatal(err)
	}
	return r, body
}
