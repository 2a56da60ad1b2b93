package auth

import (
	"crypto/sha256"
	"encoding/hex"
	"net/http"
	"time"
)

// Sign adds an SDK-HMAC-SHA256 signature of r (method, path, query, host and
// X-Sdk-Date, over body) made with the access key ak and secret key sk at now,
// as the Huawei SDKs sign. The web console uses it to check an access key pair
// typed in at sign-in with the same Verifier that checks the SDKs' requests.
// r.Host must be set.
func Sign(r *http.Request, ak, sk string, body []byte, now time.Time) error {
	date := now.UTC().Format(sdkDateLayout)
	r.Header.Set(headerSDKDate, date)
	sum := sha256.Sum256(body)
	signed := []string{"host", "x-sdk-date"}
	canonical, err := canonicalRequest(r, signed, hex.EncodeToString(sum[:]))
	if err != nil {
		return err
	}
	r.Header.Set(HeaderAuthorization, algorithmSDKHMACSHA256+" Access="+ak+", SignedHeaders=host;x-sdk-date, Signature="+
		hex.EncodeToString(signatureFor(sk, date, canonical)))
	return nil
}
