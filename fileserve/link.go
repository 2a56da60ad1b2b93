package fileserve

import (
	"crypto/hmac"
	"crypto/sha256"
	"encoding/base64"
	"errors"
	"fmt"
	"net/url"
	"strconv"
	"strings"
	"time"

	"github.com/livehooks/livehooks/aesgcm"
)

// Where the signing key lives: a file of the data directory, created at
// first start, or an environment variable (nodes behind one --public-url
// that share recordings must share the key).
const (
	KeyFile = "download.key"
	EnvKey  = "LIVEHOOKS_DOWNLOAD_KEY"
)

// PathPrefix starts the URL path of every download link:
// /recordings/{project_id}/{file path}.
const PathPrefix = "/recordings/"

// LoadKey returns the signing key of download links (see KeyFile, EnvKey).
func LoadKey(dataDir string, getenv func(string) string) ([]byte, error) {
	return aesgcm.LoadNamedKey(dataDir, KeyFile, EnvKey, "download signing key", getenv)
}

// Link names one file of one project until it expires.
type Link struct {
	Project string
	Path    string    // absolute and clean: the file's real path when the link was made
	Expires time.Time // zero: never
}

// Signer signs and checks links with HMAC-SHA256.
type Signer struct{ key []byte }

// NewSigner returns a Signer using key (at least 32 bytes).
func NewSigner(key []byte) (*Signer, error) {
	if len(key) < 32 {
		return nil, errors.New("fileserve: the signing key must have at least 32 bytes")
	}
	return &Signer{key: append([]byte(nil), key...)}, nil
}

func (s *Signer) mac(l Link) []byte {
	m := hmac.New(sha256.New, s.key)
	// Length-prefixed fields: no two links share a message.
	fmt.Fprintf(m, "livehooks-download-v1\n%d:%s\n%d:%s\n%s", len(l.Project), l.Project, len(l.Path), l.Path, expiresParam(l.Expires))
	return m.Sum(nil)
}

// Query returns the query string that signs l: expires (Unix seconds; absent
// for a link that never expires) and signature.
func (s *Signer) Query(l Link) string {
	q := "signature=" + base64.RawURLEncoding.EncodeToString(s.mac(l))
	if e := expiresParam(l.Expires); e != "" {
		q = "expires=" + e + "&" + q
	}
	return q
}

// Check reads a link's query, verifies its signature in constant time and
// returns the link; now decides expiry. The errors say which check failed
// (errUnsigned, errSignature, errExpired).
func (s *Signer) Check(project, path string, query url.Values, now time.Time) (Link, error) {
	l := Link{Project: project, Path: path}
	sigs, exps := query["signature"], query["expires"]
	if len(sigs) != 1 || len(exps) > 1 {
		return l, errUnsigned
	}
	sig, err := base64.RawURLEncoding.DecodeString(sigs[0])
	if err != nil || len(sig) != sha256.Size {
		return l, errSignature
	}
	if len(exps) == 1 {
		e := exps[0]
		secs, err := strconv.ParseInt(e, 10, 64)
		if err != nil || secs <= 0 || e[0] == '0' || e[0] == '+' {
			return l, errSignature
		}
		l.Expires = time.Unix(secs, 0)
	}
	if !hmac.Equal(sig, s.mac(l)) {
		return l, errSignature
	}
	if !l.Expires.IsZero() && !now.Before(l.Expires) {
		return l, errExpired
	}
	return l, nil
}

var (
	errUnsigned  = errors.New("unsigned")
	errSignature = errors.New("bad signature")
	errExpired   = errors.New("expired")
)

func expiresParam(t time.Time) string {
	if t.IsZero() {
		return ""
	}
	return strconv.FormatInt(t.Unix(), 10)
}

// escapePath escapes each segment of an absolute file path for a URL path.
func escapePath(p string) string {
	segs := strings.Split(p, "/")
	for i, seg := range segs {
		segs[i] = url.PathEscape(seg)
	}
	return strings.Join(segs, "/")
}
