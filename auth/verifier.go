package auth

import (
	"crypto/hmac"
	"crypto/sha256"
	"crypto/subtle"
	"encoding/hex"
	"net/http"
	"slices"
	"strings"
	"time"

	"github.com/livehooks/livehooks"
)

// Headers read by the Verifier.
const (
	HeaderAuthToken     = "X-Auth-Token"
	HeaderAuthorization = "Authorization"
)

// Verifier authenticates management API requests against a fixed set of access
// keys and tokens. It is safe for concurrent use.
type Verifier struct {
	keys   map[string]AccessKey
	tokens []tokenEntry
	clock  livehooks.Clock
	// signedHost: a signature must cover the Host header (see RequireSignedHost).
	signedHost bool
}

type tokenEntry struct {
	digest   [sha256.Size]byte
	name     string
	projects []string
}

// NewVerifier returns a Verifier for keys and tokens. When two keys share an AK
// the first one wins. A nil clock is the system clock.
func NewVerifier(keys []AccessKey, tokens []Token, clock livehooks.Clock) *Verifier {
	if clock == nil {
		clock = livehooks.SystemClock{}
	}
	v := &Verifier{keys: make(map[string]AccessKey, len(keys)), clock: clock}
	for _, k := range keys {
		if _, dup := v.keys[k.AK]; !dup {
			k.Projects = slices.Clone(k.Projects)
			v.keys[k.AK] = k
		}
	}
	for _, t := range tokens {
		v.tokens = append(v.tokens, tokenEntry{
			digest:   sha256.Sum256([]byte(t.Token)),
			name:     tokenName(t.Token),
			projects: slices.Clone(t.Projects),
		})
	}
	return v
}

// RequireSignedHost makes a signature count only when it covers the Host
// header, so that a signed request captured on its way to one deployment
// cannot be replayed to another one within the allowed clock skew. Off by
// default: the official Huawei Go SDK (v0.1.207) signs only the headers its
// caller set, and never sets Host. Call it before the Verifier is used.
func (v *Verifier) RequireSignedHost() *Verifier {
	v.signedHost = true
	return v
}

// Authenticate identifies the caller of r, whose body the caller has already
// read into body. A request with an X-Auth-Token header is checked against the
// tokens; any other must carry an SDK-HMAC-SHA256 Authorization header. Every
// failure is an EUNAUTHORIZED *livehooks.Error whose message says why without
// repeating a secret. Whether the principal may act on the project of the URL
// is for the caller to check with Principal.CanAccess.
func (v *Verifier) Authenticate(r *http.Request, body []byte) (livehooks.Principal, error) {
	if tokens := r.Header.Values(HeaderAuthToken); len(tokens) > 0 {
		if len(tokens) > 1 {
			return livehooks.Principal{}, livehooks.Errorf(livehooks.EUNAUTHORIZED, "malformed X-Auth-Token header: more than one")
		}
		return v.authenticateToken(tokens[0])
	}
	switch auths := r.Header.Values(HeaderAuthorization); len(auths) {
	case 0:
		return livehooks.Principal{}, livehooks.Errorf(livehooks.EUNAUTHORIZED, "missing credentials: send X-Auth-Token or an SDK-HMAC-SHA256 Authorization header")
	case 1:
		return v.authenticateSignature(r, auths[0], body)
	default:
		return livehooks.Principal{}, malformed("more than one")
	}
}

// authenticateToken compares the token with every configured token, always all
// of them and through their SHA-256 digests, so that the time taken tells
// neither which one matched nor how long they are.
func (v *Verifier) authenticateToken(token string) (livehooks.Principal, error) {
	got := sha256.Sum256([]byte(token))
	found, index := 0, 0
	for i := range v.tokens {
		eq := subtle.ConstantTimeCompare(got[:], v.tokens[i].digest[:])
		index = subtle.ConstantTimeSelect(eq, i, index)
		found |= eq
	}
	if found != 1 || token == "" {
		return livehooks.Principal{}, livehooks.Errorf(livehooks.EUNAUTHORIZED, "unknown token")
	}
	t := v.tokens[index]
	return livehooks.Principal{Name: t.name, Projects: slices.Clone(t.projects)}, nil
}

func (v *Verifier) authenticateSignature(r *http.Request, header string, body []byte) (livehooks.Principal, error) {
	auth, err := parseAuthorization(header)
	if err != nil {
		return livehooks.Principal{}, err
	}
	if !slices.Contains(auth.SignedHeaders, "x-sdk-date") {
		return livehooks.Principal{}, malformed("SignedHeaders must include x-sdk-date")
	}
	if v.signedHost && !slices.Contains(auth.SignedHeaders, "host") {
		return livehooks.Principal{}, malformed("SignedHeaders must include host (this server runs with --require-signed-host)")
	}

	dates := r.Header.Values(headerSDKDate)
	if len(dates) == 0 {
		return livehooks.Principal{}, livehooks.Errorf(livehooks.EUNAUTHORIZED, "missing X-Sdk-Date header")
	}
	date := dates[0]
	t, err := time.Parse(sdkDateLayout, date)
	// Re-formatting rejects the variants time.Parse tolerates (one-digit hours…):
	// the string to sign holds the header as sent.
	if len(dates) > 1 || err != nil || t.Format(sdkDateLayout) != date {
		return livehooks.Principal{}, livehooks.Errorf(livehooks.EUNAUTHORIZED, "malformed X-Sdk-Date header: want one yyyymmddThhmmssZ time")
	}
	if skew := v.clock.Now().Sub(t); skew > MaxClockSkew || skew < -MaxClockSkew {
		return livehooks.Principal{}, livehooks.Errorf(livehooks.EUNAUTHORIZED, "X-Sdk-Date outside the allowed 15 minute skew")
	}

	key, ok := v.keys[auth.AccessKey]
	if !ok {
		return livehooks.Principal{}, livehooks.Errorf(livehooks.EUNAUTHORIZED, "unknown access key")
	}

	payloadHash, err := payloadHash(r, body)
	if err != nil {
		return livehooks.Principal{}, err
	}
	canonical, err := canonicalRequest(r, auth.SignedHeaders, payloadHash)
	if err != nil {
		return livehooks.Principal{}, err
	}
	if !hmac.Equal(signatureFor(key.SK, date, canonical), auth.Signature) {
		return livehooks.Principal{}, livehooks.Errorf(livehooks.EUNAUTHORIZED, "signature mismatch")
	}
	return livehooks.Principal{Name: key.AK, Projects: slices.Clone(key.Projects)}, nil
}

// payloadHash is the last line of the canonical request: the hex SHA-256 of the
// body, or the X-Sdk-Content-Sha256 header when the client sent one. The SDK
// sends UNSIGNED-PAYLOAD there for bodies that are not JSON; any other value
// must be the body's hash, or a client could sign one body and send another.
func payloadHash(r *http.Request, body []byte) (string, error) {
	sum := sha256.Sum256(body)
	computed := hex.EncodeToString(sum[:])
	values := r.Header.Values(headerContentSHA256)
	switch {
	case len(values) == 0:
		return computed, nil
	case len(values) == 1 && values[0] == unsignedPayload:
		return unsignedPayload, nil
	case len(values) == 1 && strings.EqualFold(values[0], computed):
		return values[0], nil // signed as sent
	default:
		return "", livehooks.Errorf(livehooks.EUNAUTHORIZED, "X-Sdk-Content-Sha256 does not match the body")
	}
}
