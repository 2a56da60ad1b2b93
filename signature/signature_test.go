package signature_test

import (
	"errors"
	"math"
	"strings"
	"testing"
	"time"

	"github.com/livehooks/livehooks"
	"github.com/livehooks/livehooks/signature"
)

const (
	testKey = "abcdefghijklmnopqrstuvwxyz012345"
	testTS  = int64(1583676745)
)

var fileComplete = signature.Fields{
	EventType:     "RECORD_FILE_COMPLETE",
	PublishDomain: "push.example.com",
	App:           "live",
	Stream:        "mystream",
	DownloadURL:   "https://obs.example.com/live/mystream-1589967495.m3u8",
}

// The expected values were computed outside Go:
//
//	printf '%s' 'abcdefghijklmnopqrstuvwxyz0123451583676745' | md5sum
//	printf '%s' '1583676745RECORD_FILE_COMPLETEpush.example.comlivemystreamhttps://obs.example.com/live/mystream-1589967495.m3u8' |
//	    openssl dgst -sha256 -hmac 'abcdefghijklmnopqrstuvwxyz012345'
//	printf '%s' '1583676745RECORD_STARTpush.example.comlivemystream' |
//	    openssl dgst -sha256 -hmac 'abcdefghijklmnopqrstuvwxyz012345'
//	printf '%s' '1583676745RECORD_FILE_COMPLETEpush.example.comlivemystreamhttps://obs.example.com/live/mystream-1589967495.m3u8https://play.example.com/live/mystream.flv' |
//	    openssl dgst -sha256 -hmac 'abcdefghijklmnopqrstuvwxyz012345'
func TestSignVectors(t *testing.T) {
	t.Parallel()
	withPlay := fileComplete
	withPlay.PlayURL = "https://play.example.com/live/mystream.flv"
	tests := []struct {
		name     string
		signType string
		f        signature.Fields
		want     string
	}{
		{"md5", signature.MD5, fileComplete, "ac726d261ce45b787dc246982198042f"},
		{"md5 ignores fields", signature.MD5, signature.Fields{}, "ac726d261ce45b787dc246982198042f"},
		{"hmac file complete", signature.HMACSHA256, fileComplete, "70d4c34986145447b9a90b0a7024028bc8897f32d4714958b5232cc708f769ae"},
		{"hmac with play_url", signature.HMACSHA256, withPlay, "97562aa49b75873fc3fa84f7e9bac184107220fb06e5565def221b75fddd10c0"},
		{"hmac record start", signature.HMACSHA256, signature.Fields{EventType: "RECORD_START", PublishDomain: "push.example.com", App: "live", Stream: "mystream"}, "3fab15f5497f1eb90d336555b0f4d5fe57af9103d0f17d564cedde4bedf367ac"},
		{"unknown type", "SHA1", fileComplete, ""},
		{"sign type is case-sensitive", "md5", fileComplete, ""},
	}
	for _, tt := range tests {
		if got := signature.Sign(tt.signType, testKey, testTS, tt.f); got != tt.want {
			t.Errorf("%s: Sign = %q, want %q", tt.name, got, tt.want)
		}
	}
}

func TestVerify(t *testing.T) {
	t.Parallel()
	expires := time.Unix(testTS, 0)
	for _, signType := range []string{signature.MD5, signature.HMACSHA256} {
		sign := signature.Sign(signType, testKey, testTS, fileComplete)
		tests := []struct {
			name string
			sign string
			ts   int64
			key  string
			f    signature.Fields
			now  time.Time
			want error
		}{
			{"well before expiry", sign, testTS, testKey, fileComplete, expires.Add(-300 * time.Second), nil},
			{"at expiry", sign, testTS, testKey, fileComplete, expires, nil},
			{"last instant of the expiry second", sign, testTS, testKey, fileComplete, expires.Add(time.Second - 1), nil},
			{"one second after expiry", sign, testTS, testKey, fileComplete, expires.Add(time.Second), signature.ErrExpired},
			{"upper-case hex", strings.ToUpper(sign), testTS, testKey, fileComplete, expires, nil},
			{"wrong key", sign, testTS, testKey + "x", fileComplete, expires, signature.ErrMismatch},
			{"timestamp moved forward", sign, testTS + 3600, testKey, fileComplete, expires, signature.ErrMismatch},
			{"empty sign", "", testTS, testKey, fileComplete, expires, signature.ErrMismatch},
			{"not hex", strings.Repeat("z", len(sign)), testTS, testKey, fileComplete, expires, signature.ErrMismatch},
			{"truncated", sign[:len(sign)-2], testTS, testKey, fileComplete, expires, signature.ErrMismatch},
			// A forged message is a mismatch even when it is also stale.
			{"wrong key and expired", sign, testTS, "other", fileComplete, expires.Add(time.Hour), signature.ErrMismatch},
		}
		for _, tt := range tests {
			err := signature.Verify(signType, tt.key, tt.sign, tt.ts, tt.f, tt.now)
			if !errors.Is(err, tt.want) || (tt.want == nil && err != nil) {
				t.Errorf("%s %s: Verify = %v, want %v", signType, tt.name, err, tt.want)
			}
		}
	}

	if err := signature.Verify("SHA1", testKey, "00", testTS, fileComplete, expires); !errors.Is(err, signature.ErrUnknownSignType) {
		t.Errorf("Verify(SHA1) = %v, want ErrUnknownSignType", err)
	}
}

// Every field that HMACSHA256 covers must change the signature; MD5 covers none.
func TestVerifyTamperedFields(t *testing.T) {
	t.Parallel()
	now := time.Unix(testTS-10, 0)
	tamper := map[string]func(*signature.Fields){
		"event_type":     func(f *signature.Fields) { f.EventType = "RECORD_OVER" },
		"publish_domain": func(f *signature.Fields) { f.PublishDomain = "evil.example.com" },
		"app":            func(f *signature.Fields) { f.App = "live2" },
		"stream":         func(f *signature.Fields) { f.Stream = "other" },
		"download_url":   func(f *signature.Fields) { f.DownloadURL = "https://evil.example.com/x.m3u8" },
		"play_url":       func(f *signature.Fields) { f.PlayURL = "https://evil.example.com/x.flv" },
		// Moving bytes between adjacent fields keeps the concatenation: a
		// property of Huawei's scheme that receivers should know about.
	}
	for name, fn := range tamper {
		f := fileComplete
		fn(&f)
		sign := signature.Sign(signature.HMACSHA256, testKey, testTS, fileComplete)
		if err := signature.Verify(signature.HMACSHA256, testKey, sign, testTS, f, now); !errors.Is(err, signature.ErrMismatch) {
			t.Errorf("HMACSHA256 with tampered %s: Verify = %v, want ErrMismatch", name, err)
		}
		sign = signature.Sign(signature.MD5, testKey, testTS, fileComplete)
		if err := signature.Verify(signature.MD5, testKey, sign, testTS, f, now); err != nil {
			t.Errorf("MD5 with tampered %s: Verify = %v, want nil (MD5 signs no field)", name, err)
		}
	}
}

func TestVerifyExtremeTimestamps(t *testing.T) {
	t.Parallel()
	for _, ts := range []int64{math.MinInt64, -1, 0, math.MaxInt64} {
		sign := signature.Sign(signature.HMACSHA256, testKey, ts, fileComplete)
		err := signature.Verify(signature.HMACSHA256, testKey, sign, ts, fileComplete, time.Unix(testTS, 0))
		wantExpired := ts < testTS
		if wantExpired != errors.Is(err, signature.ErrExpired) || (!wantExpired && err != nil) {
			t.Errorf("ts %d: Verify = %v", ts, err)
		}
	}
}

// signedMessage builds a callback body exactly as the delivery code does.
func signedMessage(e *livehooks.Event, signType string, expires int64) []byte {
	f := signature.Fields{
		EventType:     string(e.Type),
		PublishDomain: e.PublishDomain,
		App:           e.App,
		Stream:        e.Stream,
		DownloadURL:   e.DownloadURL,
		PlayURL:       e.PlayURL,
	}
	return e.Message(&livehooks.Signature{AuthSign: signature.Sign(signType, testKey, expires, f), AuthTimestamp: expires})
}

func TestVerifyBodyRoundTrip(t *testing.T) {
	t.Parallel()
	events := []*livehooks.Event{
		{ProjectID: "p1", TaskID: "t1", Type: livehooks.RecordStart, PublishDomain: "push.example.com", App: "live", Stream: "s"},
		{
			ProjectID: "p1", TaskID: "t1", JobID: "j1", Type: livehooks.RecordFileComplete,
			PublishDomain: "push.example.com", App: "live", Stream: "s", RecordFormat: livehooks.FormatHLS,
			DownloadURL: "https://obs.example.com/a b/\u00e9t\u00e9 \"quoted\" <&>.m3u8", FileSize: 3957964,
			RecordDuration: 120, Width: 1280, Height: 720, StartTime: time.Unix(testTS-120, 0), EndTime: time.Unix(testTS, 0),
		},
		{ProjectID: "p1", TaskID: "t1", Type: livehooks.RecordFailed, PublishDomain: "d", App: "a", Stream: "s", ErrorMessage: "boom", PlayURL: "https://play.example.com/a/s.flv"},
	}
	for _, e := range events {
		for _, signType := range []string{signature.MD5, signature.HMACSHA256} {
			body := signedMessage(e, signType, testTS)
			if err := signature.VerifyBody(signType, testKey, body, time.Unix(testTS, 0)); err != nil {
				t.Errorf("%s %s: VerifyBody(%s) = %v", e.Type, signType, body, err)
			}
			if err := signature.VerifyBody(signType, testKey, body, time.Unix(testTS+1, 0)); !errors.Is(err, signature.ErrExpired) {
				t.Errorf("%s %s: VerifyBody after expiry = %v, want ErrExpired", e.Type, signType, err)
			}
			if err := signature.VerifyBody(signType, "wrong"+testKey, body, time.Unix(testTS, 0)); !errors.Is(err, signature.ErrMismatch) {
				t.Errorf("%s %s: VerifyBody with the wrong key = %v, want ErrMismatch", e.Type, signType, err)
			}
		}
		if err := signature.VerifyBody(signature.HMACSHA256, testKey, e.Message(nil), time.Unix(testTS, 0)); !errors.Is(err, signature.ErrUnsigned) {
			t.Errorf("%s: VerifyBody of an unsigned message = %v, want ErrUnsigned", e.Type, err)
		}
	}
}

func TestVerifyBody(t *testing.T) {
	t.Parallel()
	now := time.Unix(testTS, 0)
	hmacSign := signature.Sign(signature.HMACSHA256, testKey, testTS, fileComplete)
	// The seed 002 example with our key's signature.
	seed := `{
    "project_id": "70b76xxxxxx34253880af501cdxxxxxx",
    "job_id": "dc0a1773-0cef-xxxx-xxxx-9a38fdb095d2",
    "task_id": "51126d0ebe94b1da00d2e21a10xxxxxx",
    "event_type": "RECORD_FILE_COMPLETE",
    "publish_domain": "push.example.com",
    "app": "live",
    "stream": "mystream",
    "record_format": "HLS",
    "download_url": "https://obs.example.com/live/mystream-1589967495.m3u8",
    "asset_id": "1a0d8e9bfaexxxxxxbe5021e62aa1e96",
    "file_size": 3957964,
    "record_duration": 120,
    "start_time": "2020-03-08T14:10:25Z",
    "end_time": "2020-03-08T14:12:25Z",
    "width": 1280,
    "height": 720,
    "auth_sign": "` + hmacSign + `",
    "auth_timestamp": 1583676745
}`
	tests := []struct {
		name string
		body string
		want error
	}{
		{"seed example", seed, nil},
		{"tampered stream", strings.Replace(seed, `"mystream"`, `"other"`, 1), signature.ErrMismatch},
		{"tampered timestamp", strings.Replace(seed, `1583676745`, `1583676746`, 1), signature.ErrMismatch},
		{"added play_url", strings.Replace(seed, `"app"`, `"play_url":"x","app"`, 1), signature.ErrMismatch},
		{"no auth_sign", strings.Replace(seed, `"auth_sign"`, `"auth_sign_"`, 1), signature.ErrUnsigned},
		{"null auth_sign", strings.Replace(seed, `"`+hmacSign+`"`, `null`, 1), signature.ErrUnsigned},
		{"no auth_timestamp", strings.Replace(seed, `"auth_timestamp"`, `"auth_timestamp_"`, 1), signature.ErrMalformed},
		{"string auth_timestamp", strings.Replace(seed, `1583676745`, `"1583676745"`, 1), signature.ErrMalformed},
		{"fractional auth_timestamp", strings.Replace(seed, `1583676745`, `1583676745.0`, 1), signature.ErrMalformed},
		{"auth_sign not a string", strings.Replace(seed, `"`+hmacSign+`"`, `42`, 1), signature.ErrMalformed},
		{"app not a string", strings.Replace(seed, `"live"`, `7`, 1), signature.ErrMalformed},
		{"not JSON", "event_type=RECORD_START", signature.ErrMalformed},
		{"truncated", seed[:len(seed)/2], signature.ErrMalformed},
		{"array", `[1,2]`, signature.ErrMalformed},
		{"empty", ``, signature.ErrMalformed},
		{"null", `null`, signature.ErrUnsigned},
	}
	for _, tt := range tests {
		err := signature.VerifyBody(signature.HMACSHA256, testKey, []byte(tt.body), now)
		if !errors.Is(err, tt.want) || (tt.want == nil && err != nil) {
			t.Errorf("%s: VerifyBody = %v, want %v", tt.name, err, tt.want)
		}
	}
	if err := signature.VerifyBody("RSA", testKey, []byte(seed), now); !errors.Is(err, signature.ErrUnknownSignType) {
		t.Errorf("VerifyBody(RSA) = %v, want ErrUnknownSignType", err)
	}
}

func BenchmarkSignHMACSHA256(b *testing.B) {
	f := signature.Fields{EventType: "RECORD_FILE_COMPLETE", PublishDomain: "push.example.com", App: "live",
		Stream: "cam1", DownloadURL: "https://cdn.example.com/live/cam1.flv"}
	b.ReportAllocs()
	for b.Loop() {
		signature.Sign(signature.HMACSHA256, testKey, 1583676745, f)
	}
}
