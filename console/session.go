package console

import (
	"crypto/hmac"
	"crypto/rand"
	"crypto/sha256"
	"encoding/base64"
	"encoding/hex"
	"encoding/json"
	"sync"
	"time"

	"github.com/livehooks/livehooks"
	"github.com/livehooks/livehooks/aesgcm"
)

// session is what the console's cookie carries, sealed with AES-GCM under a
// key derived from the master key. It holds the credential the user signed in
// with so that every request is checked again by the API's own verifier: a
// rotated or removed credential ends its sessions at once, and any node that
// shares the master key accepts the cookie.
type session struct {
	ID        string `json:"i"`
	ProjectID string `json:"p"`
	Token     string `json:"t,omitempty"`
	AK        string `json:"a,omitempty"`
	SK        string `json:"s,omitempty"`
	Expires   int64  `json:"e"` // Unix seconds
}

// sealer seals and opens session cookies and derives their CSRF tokens.
type sealer struct {
	aead    *aesgcm.Cipher
	csrfKey []byte

	mu      sync.Mutex
	revoked map[string]time.Time // signed-out session ids until they expire
}

// newSealer derives the cookie and CSRF keys from the master key, so that a
// cookie never decrypts as a stored secret and the other way round.
func newSealer(masterKey []byte) (*sealer, error) {
	derive := func(label string) []byte {
		m := hmac.New(sha256.New, masterKey)
		m.Write([]byte("livehooks console " + label))
		return m.Sum(nil)
	}
	aead, err := aesgcm.New(derive("session v1"))
	if err != nil {
		return nil, err
	}
	return &sealer{aead: aead, csrfKey: derive("csrf v1"), revoked: map[string]time.Time{}}, nil
}

// sessionAD binds a sealed value to its use: a session cookie.
var sessionAD = []byte("livehooks console session")

func newSessionID() string {
	b := make([]byte, 16)
	_, _ = rand.Read(b)
	return hex.EncodeToString(b)
}

func (s *sealer) seal(sess *session) (string, error) {
	plain, err := json.Marshal(sess)
	if err != nil {
		return "", err
	}
	sealed, err := s.aead.Seal(plain, sessionAD)
	if err != nil {
		return "", err
	}
	return base64.RawURLEncoding.EncodeToString(sealed), nil
}

// open returns the session of a cookie value, or an EUNAUTHORIZED error when
// it is not one, has expired or was signed out.
func (s *sealer) open(value string, now time.Time) (*session, error) {
	bad := livehooks.Errorf(livehooks.EUNAUTHORIZED, "console session expired or invalid: sign in again")
	sealed, err := base64.RawURLEncoding.DecodeString(value)
	if err != nil {
		return nil, bad
	}
	plain, err := s.aead.Open(sealed, sessionAD)
	if err != nil {
		return nil, bad
	}
	var sess session
	if err := json.Unmarshal(plain, &sess); err != nil || sess.ID == "" || sess.ProjectID == "" {
		return nil, bad
	}
	if now.Unix() >= sess.Expires || s.isRevoked(sess.ID, now) {
		return nil, bad
	}
	return &sess, nil
}

// csrf returns the session's CSRF token: a MAC of its id, so it needs no
// storage and cannot be derived from the cookie without the key.
func (s *sealer) csrf(sess *session) string {
	m := hmac.New(sha256.New, s.csrfKey)
	m.Write([]byte(sess.ID))
	return hex.EncodeToString(m.Sum(nil))
}

func (s *sealer) checkCSRF(sess *session, got string) bool {
	return got != "" && hmac.Equal([]byte(got), []byte(s.csrf(sess)))
}

// revoke marks a signed-out session until it would have expired anyway.
func (s *sealer) revoke(sess *session) {
	s.mu.Lock()
	defer s.mu.Unlock()
	s.revoked[sess.ID] = time.Unix(sess.Expires, 0)
}

func (s *sealer) isRevoked(id string, now time.Time) bool {
	s.mu.Lock()
	defer s.mu.Unlock()
	for k, until := range s.revoked {
		if !now.Before(until) {
			delete(s.revoked, k)
		}
	}
	_, ok := s.revoked[id]
	return ok
}
