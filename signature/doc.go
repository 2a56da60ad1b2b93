// Package signature signs and verifies the recording callbacks that livehooks
// (and Huawei Cloud Live) sends, so that a receiver written in Go can check them.
// It imports only the standard library.
//
// A callback may carry two independent signatures; a receiver checks either.
//
// # Huawei Cloud Live: auth_sign and auth_timestamp
//
// When the callback configuration has a key, the JSON body carries
// auth_timestamp, the Unix second at which the signature expires (send time
// plus the validity, 300 s by default), and auth_sign, lowercase hex of:
//
//	MD5:        MD5(key + auth_timestamp)
//	HMACSHA256: HMAC-SHA256(key, auth_timestamp + event_type + publish_domain + app + stream + download_url + play_url)
//
// auth_timestamp is written in decimal and fields absent from the body are
// empty strings. Use VerifyBody on the raw body, or Verify on fields you have
// already decoded. MD5 signs no field of the message, only its expiry: prefer
// HMACSHA256.
//
// Worked example, key "abcdefghijklmnopqrstuvwxyz012345", auth_timestamp
// 1583676745:
//
//	MD5:        ac726d261ce45b787dc246982198042f
//	            = md5("abcdefghijklmnopqrstuvwxyz0123451583676745")
//
//	HMACSHA256, event_type RECORD_FILE_COMPLETE, publish_domain push.example.com,
//	app live, stream mystream,
//	download_url https://obs.example.com/live/mystream-1589967495.m3u8, no play_url:
//	            70d4c34986145447b9a90b0a7024028bc8897f32d4714958b5232cc708f769ae
//
//	the same with play_url https://play.example.com/live/mystream.flv:
//	            97562aa49b75873fc3fa84f7e9bac184107220fb06e5565def221b75fddd10c0
//
//	HMACSHA256, event_type RECORD_START (no download_url, no play_url):
//	            3fab15f5497f1eb90d336555b0f4d5fe57af9103d0f17d564cedde4bedf367ac
//
// Reproduce them with
//
//	printf '%s' 'abcdefghijklmnopqrstuvwxyz0123451583676745' | md5sum
//	printf '%s' '1583676745RECORD_STARTpush.example.comlivemystream' |
//	    openssl dgst -sha256 -hmac 'abcdefghijklmnopqrstuvwxyz012345'
//
// # Standard Webhooks: webhook-id, webhook-timestamp, webhook-signature
//
// livehooks also sends the headers of https://www.standardwebhooks.com:
// webhook-id (stable across retries of one delivery: dedupe on it),
// webhook-timestamp (Unix seconds of this attempt) and, when a key is set,
//
//	webhook-signature: v1,<base64 std of HMAC-SHA256(secret, id + "." + timestamp + "." + body)>
//
// The secret is the configuration key's raw bytes (the same key as above, not
// base64-decoded). Existing Standard Webhooks libraries expect a
// "whsec_<base64>" secret: give them "whsec_" + base64(key). WebhookSignature
// and VerifyWebhook accept either form: a key starting with "whsec_" whose
// remainder is valid base64 is decoded first. Several space-separated
// signatures may appear in the header (during a key rotation); any v1 match is
// accepted.
//
// Worked example, key "abcdefghijklmnopqrstuvwxyz012345",
// id "msg_2KWPBgLlAfxdpx2AI54pPJ85f4W", timestamp 1583676745,
// body {"event_type":"RECORD_START"}:
//
//	v1,k0JmQio7+pjK6m0bXNoyog0WGKdaXd/Kt81ujKeZp0g=
//
//	printf '%s' 'msg_2KWPBgLlAfxdpx2AI54pPJ85f4W.1583676745.{"event_type":"RECORD_START"}' |
//	    openssl dgst -sha256 -hmac 'abcdefghijklmnopqrstuvwxyz012345' -binary | base64
//
// and the standard's own vector: secret "whsec_MfKQ9r8GKYqrTwjUPD8ILPZIo2LaLaSw",
// id "msg_p5jXN8AQM9LWM0D4loKWxJek", timestamp 1614265330, body
// {"test": 2432232314} gives v1,g0hM9SsE+OTPJTGt/tmIKtSyZlE3uFJELVlNIOLJ1OE=.
package signature
