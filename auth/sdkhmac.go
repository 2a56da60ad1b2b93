package auth

import (
	"crypto/hmac"
	"crypto/sha256"
	"encoding/hex"
	"net/http"
	"net/url"
	"slices"
	"sort"
	"strings"
	"time"

	"github.com/livehooks/livehooks"
)

// The SDK-HMAC-SHA256 scheme of the Huawei Cloud SDKs and API Gateway signers.
// Names and quirks follow core/auth/signer/signer.go of huaweicloud-sdk-go-v3
// (v0.1.207); the comments below say where the verifier has to mirror it.
const (
	algorithmSDKHMACSHA256 = "SDK-HMAC-SHA256"
	sdkDateLayout          = "20060102T150405Z"
	headerSDKDate          = "X-Sdk-Date"
	headerContentSHA256    = "X-Sdk-Content-Sha256"
	unsignedPayload        = "UNSIGNED-PAYLOAD"

	// MaxClockSkew is how far X-Sdk-Date may be from the verifier's clock, either way.
	MaxClockSkew = 15 * time.Minute

	maxSignedHeaders = 64
)

// authorization is a parsed `SDK-HMAC-SHA256 Access=AK, SignedHeaders=a;b, Signature=hex`.
type authorization struct {
	AccessKey     string
	SignedHeaders []string // lowercase, in the order the client listed them
	Signature     []byte   // 32 bytes
}

// parseAuthorization parses an Authorization header value. Every SDK writes the
// three fields in the same order with ", " between them; the parser also takes
// any order and extra spaces, but each field exactly once.
func parseAuthorization(s string) (authorization, error) {
	var a authorization
	alg, rest, ok := strings.Cut(s, " ")
	if !ok || alg != algorithmSDKHMACSHA256 {
		return a, malformed("unsupported scheme, want " + algorithmSDKHMACSHA256)
	}
	var seenAccess, seenHeaders, seenSig bool
	for field := range strings.SplitSeq(rest, ",") {
		name, value, ok := strings.Cut(strings.TrimSpace(field), "=")
		if !ok {
			return a, malformed("want Access=, SignedHeaders= and Signature=")
		}
		switch name {
		case "Access":
			if seenAccess || !isAccessKeyID(value) {
				return a, malformed("bad Access")
			}
			seenAccess, a.AccessKey = true, value
		case "SignedHeaders":
			if seenHeaders {
				return a, malformed("bad SignedHeaders")
			}
			headers, err := parseSignedHeaders(value)
			if err != nil {
				return a, err
			}
			seenHeaders, a.SignedHeaders = true, headers
		case "Signature":
			sig, err := hex.DecodeString(value)
			if seenSig || err != nil || len(sig) != sha256.Size {
				return a, malformed("Signature must be 64 hex digits")
			}
			seenSig, a.Signature = true, sig
		default:
			return a, malformed("want Access=, SignedHeaders= and Signature=")
		}
	}
	if !seenAccess || !seenHeaders || !seenSig {
		return a, malformed("want Access=, SignedHeaders= and Signature=")
	}
	return a, nil
}

func parseSignedHeaders(s string) ([]string, error) {
	headers := strings.Split(s, ";")
	if len(headers) > maxSignedHeaders {
		return nil, malformed("too many SignedHeaders")
	}
	for i, h := range headers {
		if !isLowerToken(h) || slices.Contains(headers[:i], h) {
			return nil, malformed("SignedHeaders must be distinct lowercase header names separated by ';'")
		}
	}
	return headers, nil
}

// isLowerToken reports whether s is an HTTP field name (RFC 9110 token) without
// upper-case letters, as every signer lowercases the names it signs.
func isLowerToken(s string) bool {
	if s == "" {
		return false
	}
	for i := 0; i < len(s); i++ {
		b := s[i]
		switch {
		case b >= 'a' && b <= 'z', b >= '0' && b <= '9':
		case strings.IndexByte("!#$%&'*+-.^_`|~", b) >= 0:
		default:
			return false
		}
	}
	return true
}

func malformed(reason string) error {
	return livehooks.Errorf(livehooks.EUNAUTHORIZED, "malformed Authorization header: %s", reason)
}

// signatureFor returns the HMAC-SHA256 of the request's string to sign.
func signatureFor(sk, date, canonical string) []byte {
	crHash := sha256.Sum256([]byte(canonical))
	mac := hmac.New(sha256.New, []byte(sk))
	mac.Write([]byte(algorithmSDKHMACSHA256 + "\n" + date + "\n" + hex.EncodeToString(crHash[:])))
	return mac.Sum(nil)
}

// canonicalRequest rebuilds the canonical request the client signed:
//
//	METHOD \n canonical URI \n canonical query \n canonical headers \n signed headers \n payload hash
//
// where the canonical headers are one "name:value" line each, so the block ends
// with an empty line.
func canonicalRequest(r *http.Request, signed []string, payloadHash string) (string, error) {
	uri, err := canonicalURI(r.URL.EscapedPath())
	if err != nil {
		return "", err
	}
	query, err := canonicalQuery(r.URL.RawQuery)
	if err != nil {
		return "", err
	}
	var b strings.Builder
	b.WriteString(r.Method)
	b.WriteByte('\n')
	b.WriteString(uri)
	b.WriteByte('\n')
	b.WriteString(query)
	b.WriteByte('\n')
	for _, name := range signed {
		// The Go SDK emits no line for a signed header it does not have, and one
		// line per value, values sorted. host is not in r.Header on a server.
		var values []string
		if name == "host" {
			if r.Host != "" {
				values = []string{r.Host}
			}
		} else {
			values = slices.Clone(r.Header.Values(name))
			sort.Strings(values)
		}
		for _, v := range values {
			b.WriteString(name)
			b.WriteByte(':')
			b.WriteString(strings.TrimSpace(v))
			b.WriteByte('\n')
		}
	}
	b.WriteByte('\n')
	b.WriteString(strings.Join(signed, ";"))
	b.WriteByte('\n')
	b.WriteString(payloadHash)
	return b.String(), nil
}

// canonicalURI: the SDK splits its unescaped path on '/', escapes each segment
// with sdkEscape and appends a '/' unless the result ends with one. The wire
// form depends on the client's URL encoder, so the verifier unescapes each raw
// segment first; a %2F inside a segment stays a %2F.
func canonicalURI(escapedPath string) (string, error) {
	segments := strings.Split(escapedPath, "/")
	for i, seg := range segments {
		s, err := url.PathUnescape(seg)
		if err != nil {
			return "", livehooks.Errorf(livehooks.EUNAUTHORIZED, "malformed request path")
		}
		segments[i] = sdkEscape(s)
	}
	uri := strings.Join(segments, "/")
	if !strings.HasSuffix(uri, "/") {
		uri += "/"
	}
	return uri, nil
}

// canonicalQuery: the SDK groups its unescaped parameters by name, sorts the
// names, sorts the values of each name (both before escaping), and writes
// sdkEscape(name)=sdkEscape(value) joined by '&' — "name=" for an empty value,
// although on the wire it sends such a parameter as a bare "name". The verifier
// decodes the raw query as r.URL.Query does ('+' is a space), so the signature
// covers the values the handlers read.
func canonicalQuery(rawQuery string) (string, error) {
	if rawQuery == "" {
		return "", nil
	}
	params := make(map[string][]string)
	for part := range strings.SplitSeq(rawQuery, "&") {
		if part == "" {
			continue
		}
		k, v, _ := strings.Cut(part, "=")
		k, err1 := url.QueryUnescape(k)
		v, err2 := url.QueryUnescape(v)
		if err1 != nil || err2 != nil {
			return "", livehooks.Errorf(livehooks.EUNAUTHORIZED, "malformed query string")
		}
		params[k] = append(params[k], v)
	}
	keys := make([]string, 0, len(params))
	for k := range params {
		keys = append(keys, k)
	}
	sort.Strings(keys)
	var b strings.Builder
	for _, k := range keys {
		values := params[k]
		sort.Strings(values)
		for _, v := range values {
			if b.Len() > 0 {
				b.WriteByte('&')
			}
			b.WriteString(sdkEscape(k))
			b.WriteByte('=')
			b.WriteString(sdkEscape(v))
		}
	}
	return b.String(), nil
}

// sdkEscape is the SDK's escape: every byte except A-Z a-z 0-9 - _ . ~ becomes
// %XX with upper-case hex (so a space is %20, never '+', and '/' is %2F).
func sdkEscape(s string) string {
	const hexDigits = "0123456789ABCDEF"
	var b strings.Builder
	b.Grow(len(s))
	for i := 0; i < len(s); i++ {
		c := s[i]
		if isAlnum(c) || c == '-' || c == '_' || c == '.' || c == '~' {
			b.WriteByte(c)
		} else {
			b.WriteByte('%')
			b.WriteByte(hexDigits[c>>4])
			b.WriteByte(hexDigits[c&15])
		}
	}
	return b.String()
}
