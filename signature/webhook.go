package signature

import (
	"crypto/hmac"
	"crypto/sha256"
	"encoding/base64"
	"fmt"
	"math"
	"net/http"
	"strconv"
	"strings"
	"time"
)

// Standard Webhooks header names (https://www.standardwebhooks.com).
const (
	HeaderWebhookID        = "webhook-id"
	HeaderWebhookTimestamp = "webhook-timestamp"
	HeaderWebhookSignature = "webhook-signature"
)

// DefaultTolerance is how far webhook-timestamp may be from now when
// VerifyWebhook is given a zero tolerance.
const DefaultTolerance = 5 * time.Minute

// whsecPrefix marks a Standard Webhooks secret in its usual base64 form.
const whsecPrefix = "whsec_"

// secret returns the HMAC key for a configuration key: its raw bytes, or, for
// a key in the Standard Webhooks form "whsec_<base64>", the decoded bytes.
// livehooks keys are letters and digits only, so they never take the second
// path; it exists so that receivers can paste a whsec_ secret.
func secret(key string) []byte {
	if rest, ok := strings.CutPrefix(key, whsecPrefix); ok {
		if b, err := base64.StdEncoding.DecodeString(rest); err == nil {
			return b
		}
	}
	return []byte(key)
}

// webhookMAC returns HMAC-SHA256(secret, id + "." + timestamp + "." + body).
func webhookMAC(key, id string, timestamp int64, body []byte) []byte {
	m := hmac.New(sha256.New, secret(key))
	m.Write([]byte(id))
	m.Write([]byte{'.'})
	m.Write([]byte(strconv.FormatInt(timestamp, 10)))
	m.Write([]byte{'.'})
	m.Write(body)
	return m.Sum(nil)
}

// WebhookSignature returns the webhook-signature header value of a request:
// "v1," followed by the standard base64 of
// HMAC-SHA256(secret, id + "." + timestamp + "." + body), where timestamp is the
// webhook-timestamp (Unix seconds) and secret is key's raw bytes (or, when key
// is "whsec_<base64>", the decoded bytes).
func WebhookSignature(key, id string, timestamp int64, body []byte) string {
	return "v1," + base64.StdEncoding.EncodeToString(webhookMAC(key, id, timestamp, body))
}

// VerifyWebhook verifies the Standard Webhooks headers of a request against
// key (as in WebhookSignature) and the raw request body. webhook-signature
// may list several space-separated signatures; any v1 match is accepted
// (others, such as v1a, are ignored), compared in constant time.
//
// It returns ErrMalformed when webhook-id or webhook-timestamp is missing or
// the timestamp is not an integer, ErrUnsigned when webhook-signature is
// absent, ErrMismatch when no signature matches, and ErrExpired when the
// request is authentic but its timestamp is more than tolerance away from now,
// in either direction (DefaultTolerance when tolerance is 0).
func VerifyWebhook(key string, h http.Header, body []byte, now time.Time, tolerance time.Duration) error {
	id := h.Get(HeaderWebhookID)
	tsText := h.Get(HeaderWebhookTimestamp)
	sigs := h.Get(HeaderWebhookSignature)
	if id == "" {
		return fmt.Errorf("%w: missing %s header", ErrMalformed, HeaderWebhookID)
	}
	if tsText == "" {
		return fmt.Errorf("%w: missing %s header", ErrMalformed, HeaderWebhookTimestamp)
	}
	ts, err := strconv.ParseInt(tsText, 10, 64)
	if err != nil {
		return fmt.Errorf("%w: %s %.40q is not an integer", ErrMalformed, HeaderWebhookTimestamp, tsText)
	}
	if strings.TrimSpace(sigs) == "" {
		return ErrUnsigned
	}

	want := webhookMAC(key, id, ts, body)
	ok := false
	for _, s := range strings.Fields(sigs) {
		version, enc, found := strings.Cut(s, ",")
		if !found || version != "v1" {
			continue
		}
		got, err := base64.StdEncoding.DecodeString(enc)
		if err != nil {
			continue
		}
		// No early exit: every listed signature costs the same.
		if hmac.Equal(got, want) {
			ok = true
		}
	}
	if !ok {
		return ErrMismatch
	}

	if tolerance <= 0 {
		tolerance = DefaultTolerance
	}
	if skew(now, ts) > tolerance {
		return fmt.Errorf("%w: %s %d is more than %s from now (%d)", ErrExpired, HeaderWebhookTimestamp, ts, tolerance, now.Unix())
	}
	return nil
}

// skew returns |now - ts| without overflowing for any ts, saturating at the
// largest Duration.
func skew(now time.Time, ts int64) time.Duration {
	const limit = int64(math.MaxInt64 / time.Second) // about 292 years
	if n := now.Unix(); (ts > n && uint64(ts)-uint64(n) >= uint64(limit)) ||
		(ts <= n && uint64(n)-uint64(ts) >= uint64(limit)) {
		return math.MaxInt64
	}
	d := now.Sub(time.Unix(ts, 0))
	if d < 0 {
		d = -d
	}
	return d
}
