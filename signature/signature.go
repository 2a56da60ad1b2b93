package signature

import (
	"bytes"
	"crypto/hmac"
	"crypto/md5"
	"crypto/sha256"
	"encoding/hex"
	"encoding/json"
	"errors"
	"fmt"
	"strconv"
	"time"
)

// Sign types, as Huawei Cloud Live names them in a callback configuration's sign_type.
const (
	MD5        = "MD5"
	HMACSHA256 = "HMACSHA256"
)

// Errors returned by the verifiers. They are sentinels: test with errors.Is,
// the returned error may wrap them with more detail.
var (
	// ErrExpired: the signature is authentic but its expiry (auth_timestamp) has
	// passed, or the webhook-timestamp is outside the tolerance.
	ErrExpired = errors.New("signature: expired")
	// ErrMismatch: the signature does not match the message and key.
	ErrMismatch = errors.New("signature: mismatch")
	// ErrUnknownSignType: the sign type is neither MD5 nor HMACSHA256.
	ErrUnknownSignType = errors.New("signature: unknown sign type")
	// ErrUnsigned: the message carries no signature (auth_sign or
	// webhook-signature is absent): the sender has no key configured.
	ErrUnsigned = errors.New("signature: message is not signed")
	// ErrMalformed: the message cannot be read (bad JSON, a field of the wrong
	// type, a missing or unparsable header).
	ErrMalformed = errors.New("signature: malformed message")
)

// Fields are the callback body fields that the HMACSHA256 auth_sign covers.
// A field absent from the body is the empty string.
type Fields struct {
	EventType     string
	PublishDomain string
	App           string
	Stream        string
	DownloadURL   string
	PlayURL       string
}

// Sign returns auth_sign, the lowercase hex signature of a callback whose
// auth_timestamp is expires (Unix seconds at which the signature expires):
//
//	MD5:        hex(MD5(key + decimal(expires)))
//	HMACSHA256: hex(HMAC-SHA256(key, decimal(expires) + EventType + PublishDomain + App + Stream + DownloadURL + PlayURL))
//
// It returns "" for any other signType; callers validate the sign type when
// the configuration is written.
func Sign(signType, key string, expires int64, f Fields) string {
	mac := sum(signType, key, expires, f)
	if mac == nil {
		return ""
	}
	return hex.EncodeToString(mac)
}

// sum returns the raw digest behind Sign, or nil for an unknown sign type.
func sum(signType, key string, expires int64, f Fields) []byte {
	ts := strconv.FormatInt(expires, 10)
	switch signType {
	case MD5:
		h := md5.Sum([]byte(key + ts))
		return h[:]
	case HMACSHA256:
		// The message is the fields one after the other; written at once,
		// it is one conversion and one call into the hash, not seven.
		msg := make([]byte, 0, 256)
		for _, s := range [...]string{ts, f.EventType, f.PublishDomain, f.App, f.Stream, f.DownloadURL, f.PlayURL} {
			msg = append(msg, s...)
		}
		m := hmac.New(sha256.New, []byte(key))
		m.Write(msg)
		return m.Sum(nil)
	}
	return nil
}

// Verify checks a callback's auth_sign and auth_timestamp against key. It
// returns ErrUnknownSignType, ErrMismatch when authSign is not the signature
// of the message (hex in either case is accepted), and ErrExpired when it is
// authentic but now's Unix second is after authTimestamp (the signature is
// valid up to and including the second authTimestamp). The comparison is
// constant-time.
//
// Authenticity is checked before expiry, so ErrExpired always means a genuine
// but stale (possibly replayed) message.
func Verify(signType, key, authSign string, authTimestamp int64, f Fields, now time.Time) error {
	want := sum(signType, key, authTimestamp, f)
	if want == nil {
		return fmt.Errorf("%w %q", ErrUnknownSignType, signType)
	}
	got, err := hex.DecodeString(authSign)
	if err != nil || !hmac.Equal(got, want) {
		return ErrMismatch
	}
	if now.Unix() > authTimestamp {
		return fmt.Errorf("%w: auth_timestamp %d is before now (%d)", ErrExpired, authTimestamp, now.Unix())
	}
	return nil
}

// message is the part of a callback body that VerifyBody reads. Pointers
// tell an absent field from an empty one.
type message struct {
	EventType     string           `json:"event_type"`
	PublishDomain string           `json:"publish_domain"`
	App           string           `json:"app"`
	Stream        string           `json:"stream"`
	DownloadURL   string           `json:"download_url"`
	PlayURL       string           `json:"play_url"`
	AuthSign      *string          `json:"auth_sign"`
	AuthTimestamp *json.RawMessage `json:"auth_timestamp"`
}

// VerifyBody parses a callback body (the JSON message of Huawei Cloud Live's
// recording callbacks) and verifies its auth_sign and auth_timestamp with
// Verify. It returns ErrMalformed when body is not a JSON object of the
// expected field types or auth_timestamp is not an integer JSON number, and
// ErrUnsigned when auth_sign is absent.
func VerifyBody(signType, key string, body []byte, now time.Time) error {
	var m message
	if err := json.Unmarshal(body, &m); err != nil {
		return fmt.Errorf("%w: %v", ErrMalformed, err)
	}
	if m.AuthSign == nil {
		return ErrUnsigned
	}
	if m.AuthTimestamp == nil {
		return fmt.Errorf("%w: auth_sign without auth_timestamp", ErrMalformed)
	}
	raw := bytes.TrimSpace(*m.AuthTimestamp)
	ts, err := strconv.ParseInt(string(raw), 10, 64)
	if err != nil {
		return fmt.Errorf("%w: auth_timestamp %.40q is not an integer JSON number", ErrMalformed, raw)
	}
	f := Fields{
		EventType:     m.EventType,
		PublishDomain: m.PublishDomain,
		App:           m.App,
		Stream:        m.Stream,
		DownloadURL:   m.DownloadURL,
		PlayURL:       m.PlayURL,
	}
	return Verify(signType, key, *m.AuthSign, ts, f, now)
}
