// Package livehooks holds the domain of the livehooks recording-callback service:
// callback configurations, recording events, deliveries, the error type, and the
// interfaces (stores, outbox, senders) that the other packages implement.
//
// It imports no package of this project; every other package imports it.
package livehooks

import "time"

// TimeFormat is the wire format of every time livehooks sends or accepts:
// UTC, second precision, as Huawei Cloud Live writes it (yyyy-mm-ddThh:mm:ssZ).
const TimeFormat = "2006-01-02T15:04:05Z"

// FormatTime formats t in TimeFormat, in UTC.
func FormatTime(t time.Time) string { return t.UTC().Format(TimeFormat) }

// ParseTime parses a TimeFormat string. It also accepts RFC 3339 with an offset,
// which it converts to UTC.
func ParseTime(s string) (time.Time, error) {
	if t, err := time.Parse(TimeFormat, s); err == nil {
		return t.UTC(), nil
	}
	t, err := time.Parse(time.RFC3339, s)
	if err != nil {
		return time.Time{}, Errorf(EINVALID, "invalid time %q: want yyyy-mm-ddThh:mm:ssZ", s)
	}
	return t.UTC(), nil
}

// Clock tells the time. Production code uses SystemClock; tests inject their own.
type Clock interface {
	Now() time.Time
}

// SystemClock is the real clock.
type SystemClock struct{}

// Now returns time.Now().
func (SystemClock) Now() time.Time { return time.Now() }

// Principal is an authenticated API caller and the projects it may act on.
type Principal struct {
	// Name identifies the credential (an access key id or "token:<prefix>") in logs;
	// it never contains a secret.
	Name string
	// Projects the credential is bound to; "*" means any project.
	Projects []string
}

// CanAccess reports whether the principal may act on project.
func (p Principal) CanAccess(project string) bool {
	for _, q := range p.Projects {
		if q == "*" || q == project {
			return true
		}
	}
	return false
}

// Cipher encrypts secrets (callback keys, storage secrets) at rest. ad
// (additional data) names the row a value is stored in: a value sealed for
// one row does not open for another. A nil ad is for migrations only (see
// aesgcm.Cipher.Open).
type Cipher interface {
	Seal(plaintext, ad []byte) ([]byte, error)
	Open(ciphertext, ad []byte) ([]byte, error)
}
