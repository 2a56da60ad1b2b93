package delivery

import (
	"math/rand/v2"
	"net/http"
	"strconv"
	"strings"
	"time"

	"github.com/livehooks/livehooks"
)

// Policy decides what an attempt means: success, retry when, or give up.
type Policy struct {
	// Base is the first retry's backoff ceiling; it doubles per attempt.
	Base time.Duration
	// Cap bounds the backoff ceiling.
	Cap time.Duration
	// Window is how long after ingest a delivery is retried before it is
	// dead-lettered.
	Window time.Duration
	// MaxRetryAfter bounds how long a Retry-After header may postpone a retry.
	MaxRetryAfter time.Duration
	// Rand returns a number in [0, 1); nil uses math/rand/v2. Tests inject it.
	Rand func() float64
}

// DefaultPolicy: full-jitter exponential backoff from 2 s up to 10 min, for 24 h.
func DefaultPolicy() Policy {
	return Policy{Base: 2 * time.Second, Cap: 10 * time.Minute, Window: 24 * time.Hour, MaxRetryAfter: time.Hour}
}

// Backoff returns the delay before retry number n (1 for the first retry):
// full jitter, uniform in [0, min(Cap, Base·2^(n-1))].
func (p Policy) Backoff(n int) time.Duration {
	ceiling := p.Cap
	if n < 1 {
		n = 1
	}
	if n <= 40 {
		if c := p.Base << (n - 1); c > 0 && c < ceiling {
			ceiling = c
		}
	}
	r := p.Rand
	if r == nil {
		r = rand.Float64
	}
	return time.Duration(r() * float64(ceiling))
}

// Decide classifies an attempt of delivery d (whose attempts so far, this one
// excluded, are d.Attempts) made at now.
func (p Policy) Decide(d *livehooks.Delivery, a livehooks.Attempt, retryAfter time.Duration, now time.Time) (livehooks.Outcome, time.Time, string) {
	code := a.StatusCode
	switch {
	case code >= 200 && code < 300:
		return livehooks.OutcomeSucceeded, time.Time{}, ""
	case code == http.StatusGone:
		return livehooks.OutcomeGone, time.Time{}, "config disabled: the receiver answered 410 Gone"
	case code == 0 && a.Error != "" && strings.HasPrefix(a.Error, refusedPrefix):
		return livehooks.OutcomeFailed, time.Time{}, a.Error
	case code == 0, code == http.StatusRequestTimeout, code == http.StatusTooManyRequests, code >= 500:
		delay := p.Backoff(d.Attempts + 1)
		if retryAfter > delay {
			delay = min(retryAfter, p.MaxRetryAfter)
		}
		next := now.Add(delay)
		if next.After(d.CreatedAt.Add(p.Window)) {
			return livehooks.OutcomeDead, time.Time{}, "retry window exhausted"
		}
		return livehooks.OutcomeRetry, next, ""
	case code >= 300 && code < 400:
		return livehooks.OutcomeFailed, time.Time{}, "redirects are not followed"
	default:
		return livehooks.OutcomeFailed, time.Time{}, "the receiver refused the callback with status " + strconv.Itoa(code)
	}
}

// ParseRetryAfter reads a Retry-After header: seconds or an HTTP date.
func ParseRetryAfter(v string, now time.Time) time.Duration {
	v = strings.TrimSpace(v)
	if v == "" {
		return 0
	}
	if secs, err := strconv.ParseInt(v, 10, 64); err == nil {
		if secs < 0 {
			return 0
		}
		if secs > int64(365*24*time.Hour/time.Second) {
			secs = int64(365 * 24 * time.Hour / time.Second)
		}
		return time.Duration(secs) * time.Second
	}
	if t, err := http.ParseTime(v); err == nil && t.After(now) {
		return t.Sub(now)
	}
	return 0
}

// refusedPrefix starts the error of an attempt the SSRF guard refused:
// retrying cannot help, so it fails at once.
const refusedPrefix = "destination refused: "
