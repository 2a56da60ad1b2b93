package signature_test

import (
	"bytes"
	"errors"
	"fmt"
	"io"
	"net/http"
	"net/http/httptest"
	"strconv"
	"time"

	"github.com/livehooks/livehooks/signature"
)

func ExampleSign() {
	key := "abcdefghijklmnopqrstuvwxyz012345"
	expires := int64(1583676745)
	fmt.Println(signature.Sign(signature.MD5, key, expires, signature.Fields{}))
	fmt.Println(signature.Sign(signature.HMACSHA256, key, expires, signature.Fields{
		EventType:     "RECORD_START",
		PublishDomain: "push.example.com",
		App:           "live",
		Stream:        "mystream",
	}))
	// Output:
	// ac726d261ce45b787dc246982198042f
	// 3fab15f5497f1eb90d336555b0f4d5fe57af9103d0f17d564cedde4bedf367ac
}

func ExampleVerifyBody() {
	const key = "abcdefghijklmnopqrstuvwxyz012345" // the key of the callback configuration

	// A receiver's handler: read the raw body (capped), verify, then decode.
	handler := http.HandlerFunc(func(w http.ResponseWriter, r *http.Request) {
		body, err := io.ReadAll(http.MaxBytesReader(w, r.Body, 64<<10))
		if err != nil {
			http.Error(w, "body too large", http.StatusRequestEntityTooLarge)
			return
		}
		// A real receiver passes time.Now().
		now := time.Unix(1583676700, 0)
		switch err := signature.VerifyBody(signature.HMACSHA256, key, body, now); {
		case errors.Is(err, signature.ErrExpired):
			http.Error(w, "stale callback", http.StatusUnauthorized)
		case err != nil:
			http.Error(w, "bad signature", http.StatusUnauthorized)
		default:
			fmt.Fprintln(w, "ok")
		}
	})

	body := `{"project_id":"p","task_id":"t","event_type":"RECORD_START",` +
		`"publish_domain":"push.example.com","app":"live","stream":"mystream",` +
		`"auth_sign":"3fab15f5497f1eb90d336555b0f4d5fe57af9103d0f17d564cedde4bedf367ac",` +
		`"auth_timestamp":1583676745}`
	for _, b := range []string{body, body[:len(body)-3] + "6}"} {
		rec := httptest.NewRecorder()
		handler.ServeHTTP(rec, httptest.NewRequest(http.MethodPost, "/callback", bytes.NewBufferString(b)))
		fmt.Print(rec.Code, " ", rec.Body.String())
	}
	// Output:
	// 200 ok
	// 401 bad signature
}

func ExampleVerifyWebhook() {
	const key = "abcdefghijklmnopqrstuvwxyz012345"
	body := []byte(`{"event_type":"RECORD_START"}`)
	ts := int64(1583676745)

	// What livehooks sends.
	h := http.Header{}
	h.Set("webhook-id", "msg_2KWPBgLlAfxdpx2AI54pPJ85f4W")
	h.Set("webhook-timestamp", strconv.FormatInt(ts, 10))
	h.Set("webhook-signature", signature.WebhookSignature(key, h.Get("webhook-id"), ts, body))
	fmt.Println(h.Get("webhook-signature"))

	// What a receiver checks; a real one passes time.Now() and 0 (5 minutes).
	fmt.Println(signature.VerifyWebhook(key, h, body, time.Unix(ts+60, 0), 0))
	fmt.Println(signature.VerifyWebhook(key, h, body, time.Unix(ts+600, 0), 0) != nil)
	// Output:
	// v1,k0JmQio7+pjK6m0bXNoyog0WGKdaXd/Kt81ujKeZp0g=
	// <nil>
	// true
}
