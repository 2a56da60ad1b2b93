package signature_test

import (
	"encoding/base64"
	"errors"
	"math"
	"net/http"
	"strconv"
	"testing"
	"time"

	"github.com/livehooks/livehooks/signature"
)

const (
	hookID   = "msg_2KWPBgLlAfxdpx2AI54pPJ85f4W"
	hookBody = `{"event_type":"RECORD_START"}`
)

func hookHeader(id string, ts int64, sig string) http.Header {
	h := http.Header{}
	h.Set("webhook-id", id)
	h.Set("webhook-timestamp", strconv.FormatInt(ts, 10))
	if sig != "" {
		h.Set("webhook-signature", sig)
	}
	return h
}

// Expected values computed outside Go:
//
//	printf '%s' 'msg_2KWPBgLlAfxdpx2AI54pPJ85f4W.1583676745.{"event_type":"RECORD_START"}' |
//	    openssl dgst -sha256 -hmac 'abcdefghijklmnopqrstuvwxyz012345' -binary | base64
//
// and the Standard Webhooks specification's own example (secret
// whsec_MfKQ9r8GKYqrTwjUPD8ILPZIo2LaLaSw), re-checked with
//
//	printf '%s' 'msg_p5jXN8AQM9LWM0D4loKWxJek.1614265330.{"test": 2432232314}' |
//	    openssl dgst -sha256 -mac HMAC -macopt hexkey:31f290f6bf06298aab4f08d43c3f082cf648a362da2da4b0 -binary | base64
func TestWebhookSignatureVectors(t *testing.T) {
	t.Parallel()
	tests := []struct {
		key, id string
		ts      int64
		body    string
		want    string
	}{
		{testKey, hookID, testTS, hookBody, "v1,k0JmQio7+pjK6m0bXNoyog0WGKdaXd/Kt81ujKeZp0g="},
		{"whsec_MfKQ9r8GKYqrTwjUPD8ILPZIo2LaLaSw", "msg_p5jXN8AQM9LWM0D4loKWxJek", 1614265330, `{"test": 2432232314}`, "v1,g0hM9SsE+OTPJTGt/tmIKtSyZlE3uFJELVlNIOLJ1OE="},
		// The same secret given raw (what livehooks keys are).
		{"MfKQ9r8GKYqrTwjUPD8ILPZIo2LaLaSw", hookID, testTS, hookBody, "v1,LmlZrlXbnNOQIec6igRiI94l0CXOEg6UDooQlWOkmcI="},
	}
	for _, tt := range tests {
		if got := signature.WebhookSignature(tt.key, tt.id, tt.ts, []byte(tt.body)); got != tt.want {
			t.Errorf("WebhookSignature(%q, %q, %d) = %q, want %q", tt.key, tt.id, tt.ts, got, tt.want)
		}
		h := hookHeader(tt.id, tt.ts, tt.want)
		if err := signature.VerifyWebhook(tt.key, h, []byte(tt.body), time.Unix(tt.ts, 0), 0); err != nil {
			t.Errorf("VerifyWebhook(%q) = %v", tt.key, err)
		}
	}
}

// A Standard Webhooks library given "whsec_" + base64(key) computes the same
// signature as livehooks with the raw key.
func TestWebhookWhsecFormOfRawKey(t *testing.T) {
	t.Parallel()
	whsec := "whsec_" + base64.StdEncoding.EncodeToString([]byte(testKey))
	raw := signature.WebhookSignature(testKey, hookID, testTS, []byte(hookBody))
	if got := signature.WebhookSignature(whsec, hookID, testTS, []byte(hookBody)); got != raw {
		t.Fatalf("whsec form signs %q, raw key %q", got, raw)
	}
	if err := signature.VerifyWebhook(whsec, hookHeader(hookID, testTS, raw), []byte(hookBody), time.Unix(testTS, 0), 0); err != nil {
		t.Fatalf("VerifyWebhook(whsec form) = %v", err)
	}
}

func TestVerifyWebhook(t *testing.T) {
	t.Parallel()
	sig := signature.WebhookSignature(testKey, hookID, testTS, []byte(hookBody))
	other := signature.WebhookSignature("someotherkey0123456789abcdefghij", hookID, testTS, []byte(hookBody))
	sent := time.Unix(testTS, 0)
	tests := []struct {
		name      string
		h         http.Header
		body      string
		now       time.Time
		tolerance time.Duration
		want      error
	}{
		{"fresh", hookHeader(hookID, testTS, sig), hookBody, sent, 0, nil},
		{"default tolerance, late edge", hookHeader(hookID, testTS, sig), hookBody, sent.Add(5 * time.Minute), 0, nil},
		{"default tolerance, too late", hookHeader(hookID, testTS, sig), hookBody, sent.Add(5*time.Minute + time.Nanosecond), 0, signature.ErrExpired},
		{"default tolerance, early edge", hookHeader(hookID, testTS, sig), hookBody, sent.Add(-5 * time.Minute), 0, nil},
		{"default tolerance, too early", hookHeader(hookID, testTS, sig), hookBody, sent.Add(-5*time.Minute - time.Nanosecond), 0, signature.ErrExpired},
		{"custom tolerance", hookHeader(hookID, testTS, sig), hookBody, sent.Add(11 * time.Second), 10 * time.Second, signature.ErrExpired},
		{"custom tolerance ok", hookHeader(hookID, testTS, sig), hookBody, sent.Add(10 * time.Second), 10 * time.Second, nil},
		{"rotation: second of two", hookHeader(hookID, testTS, other+" "+sig), hookBody, sent, 0, nil},
		{"rotation: extra spaces", hookHeader(hookID, testTS, "  "+sig+"   "+other+" "), hookBody, sent, 0, nil},
		{"other versions ignored", hookHeader(hookID, testTS, "v1a,"+sig[3:]+" v2,"+sig[3:]), hookBody, sent, 0, signature.ErrMismatch},
		{"no version", hookHeader(hookID, testTS, sig[3:]), hookBody, sent, 0, signature.ErrMismatch},
		{"bad base64", hookHeader(hookID, testTS, "v1,!!!"), hookBody, sent, 0, signature.ErrMismatch},
		{"tampered body", hookHeader(hookID, testTS, sig), hookBody + " ", sent, 0, signature.ErrMismatch},
		{"tampered id", hookHeader(hookID+"x", testTS, sig), hookBody, sent, 0, signature.ErrMismatch},
		{"tampered timestamp", hookHeader(hookID, testTS+1, sig), hookBody, sent, 0, signature.ErrMismatch},
		{"wrong key only", hookHeader(hookID, testTS, other), hookBody, sent, 0, signature.ErrMismatch},
		{"forged and stale", hookHeader(hookID, testTS, other), hookBody, sent.Add(time.Hour), 0, signature.ErrMismatch},
		{"unsigned", hookHeader(hookID, testTS, ""), hookBody, sent, 0, signature.ErrUnsigned},
		{"no id", hookHeader("", testTS, sig), hookBody, sent, 0, signature.ErrMalformed},
		{"no timestamp", http.Header{"Webhook-Id": {hookID}, "Webhook-Signature": {sig}}, hookBody, sent, 0, signature.ErrMalformed},
		{"timestamp not integer", http.Header{"Webhook-Id": {hookID}, "Webhook-Timestamp": {"1583676745.5"}, "Webhook-Signature": {sig}}, hookBody, sent, 0, signature.ErrMalformed},
	}
	for _, tt := range tests {
		err := signature.VerifyWebhook(testKey, tt.h, []byte(tt.body), tt.now, tt.tolerance)
		if !errors.Is(err, tt.want) || (tt.want == nil && err != nil) {
			t.Errorf("%s: VerifyWebhook = %v, want %v", tt.name, err, tt.want)
		}
	}
}

func TestVerifyWebhookExtremeTimestamps(t *testing.T) {
	t.Parallel()
	for _, ts := range []int64{math.MinInt64, math.MinInt64 + 1, -1, 0, math.MaxInt64} {
		for _, now := range []time.Time{time.Unix(testTS, 0), time.Unix(math.MaxInt64/2, 0), {}} {
			sig := signature.WebhookSignature(testKey, hookID, ts, []byte(hookBody))
			err := signature.VerifyWebhook(testKey, hookHeader(hookID, ts, sig), []byte(hookBody), now, time.Hour)
			if !errors.Is(err, signature.ErrExpired) {
				t.Errorf("ts %d, now %v: VerifyWebhook = %v, want ErrExpired", ts, now, err)
			}
		}
	}
}
