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
func FormatTime(t time.Time) string { return string(AppendTime(nil, t)) }

// AppendTime appends t in TimeFormat, in UTC, as FormatTime returns it. The
// years 1970–9999 are computed from the Unix second directly (a callback body
// carries two times, and time.Format walks its layout for each); the others,
// rare and of no use on the wire, take time.AppendFormat.
func AppendTime(b []byte, t time.Time) []byte {
	sec := t.Unix()
	if sec < 0 || sec >= maxTimeFormatUnix {
		return t.UTC().AppendFormat(b, TimeFormat)
	}
	y, m, d := civilDate(sec / 86400)
	s := sec % 86400
	b = appendDigits(b, y, 4)
	b = append(b, '-')
	b = appendDigits(b, m, 2)
	b = append(b, '-')
	b = appendDigits(b, d, 2)
	b = append(b, 'T')
	b = appendDigits(b, s/3600, 2)
	b = append(b, ':')
	b = appendDigits(b, s/60%60, 2)
	b = append(b, ':')
	b = appendDigits(b, s%60, 2)
	return append(b, 'Z')
}

// maxTimeFormatUnix is 10000-01-01T00:00:00Z, the first second whose year has
// five digits.
const maxTimeFormatUnix = 253402300800

// civilDate returns the proleptic Gregorian date of a day counted from
// 1970-01-01 (day 0), for days ≥ 0: H. Hinnant's civil_from_days, with March
// as the first month of a year so that the leap day ends it.
func civilDate(days int64) (year, month, day int64) {
	z := days + 719468 // days since 0000-03-01
	era := z / 146097  // 400-year cycles
	doe := z - era*146097
	yoe := (doe - doe/1460 + doe/36524 - doe/146096) / 365
	doy := doe - (365*yoe + yoe/4 - yoe/100)
	mp := (5*doy + 2) / 153 // month from March = 0
	day = doy - (153*mp+2)/5 + 1
	month = mp + 3
	if mp >= 10 {
		month = mp - 9
	}
	year = yoe + era*400
	if month <= 2 {
		year++
	}
	return year, month, day
}

// appendDigits appends n (≥ 0) in width decimal digits, zero-padded.
func appendDigits(b []byte, n int64, width int) []byte {
	var buf [4]byte
	for i := width - 1; i >= 0; i-- {
		buf[i] = byte('0' + n%10)
		n /= 10
	}
	return append(b, buf[:width]...)
}

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
