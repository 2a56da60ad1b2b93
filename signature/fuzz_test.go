package signature_test

import (
	"errors"
	"net/http"
	"testing"
	"time"

	"github.com/livehooks/livehooks/signature"
)

var verifyErrors = []error{
	signature.ErrExpired, signature.ErrMismatch, signature.ErrUnknownSignType,
	signature.ErrUnsigned, signature.ErrMalformed,
}

func checkSentinel(t *testing.T, err error) {
	t.Helper()
	if err == nil {
		return
	}
	for _, want := range verifyErrors {
		if errors.Is(err, want) {
			return
		}
	}
	t.Fatalf("error %v wraps no sentinel", err)
}

func FuzzVerifyBody(f *testing.F) {
	sign := signature.Sign(signature.HMACSHA256, testKey, testTS, fileComplete)
	f.Add(signature.HMACSHA256, `{"event_type":"RECORD_FILE_COMPLETE","publish_domain":"push.example.com","app":"live","stream":"mystream",`+
		`"download_url":"https://obs.example.com/live/mystream-1589967495.m3u8","auth_sign":"`+sign+`","auth_timestamp":1583676745}`, int64(0))
	f.Add(signature.MD5, `{"auth_sign":"ac726d261ce45b787dc246982198042f","auth_timestamp":1583676745}`, int64(-10))
	f.Add(signature.MD5, `{"auth_sign":null,"auth_timestamp":"x"}`, int64(0))
	f.Add("", `[{"auth_timestamp":1e400}]`, int64(1))
	f.Fuzz(func(t *testing.T, signType, body string, offset int64) {
		err := signature.VerifyBody(signType, testKey, []byte(body), time.Unix(testTS+offset, 0))
		checkSentinel(t, err)
	})
}

func FuzzVerifyWebhook(f *testing.F) {
	sig := signature.WebhookSignature(testKey, hookID, testTS, []byte(hookBody))
	f.Add(testKey, hookID, "1583676745", sig, hookBody, int64(0))
	f.Add("whsec_MfKQ9r8GKYqrTwjUPD8ILPZIo2LaLaSw", "msg_p5jXN8AQM9LWM0D4loKWxJek", "1614265330",
		"v1,g0hM9SsE+OTPJTGt/tmIKtSyZlE3uFJELVlNIOLJ1OE=", `{"test": 2432232314}`, int64(30588585))
	f.Add("whsec_!!", "id", "-9223372036854775808", "v1, v1,,, v1a,x", "", int64(-1))
	f.Fuzz(func(t *testing.T, key, id, ts, sigs, body string, offset int64) {
		h := http.Header{}
		h.Set("webhook-id", id)
		h.Set("webhook-timestamp", ts)
		h.Set("webhook-signature", sigs)
		err := signature.VerifyWebhook(key, h, []byte(body), time.Unix(testTS+offset, 0), time.Duration(offset))
		checkSentinel(t, err)
	})
}
