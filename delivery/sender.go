package delivery

import (
	"bytes"
	"context"
	"errors"
	"fmt"
	"io"
	"net"
	"net/http"
	"net/netip"
	"net/url"
	"strconv"
	"strings"
	"time"
	"unicode/utf8"

	"github.com/livehooks/livehooks"
	"github.com/livehooks/livehooks/egress"
	"github.com/livehooks/livehooks/signature"
)

// SenderOptions configure a Sender.
type SenderOptions struct {
	// AllowCIDRs opens networks the SSRF guard refuses by default (loopback,
	// private, link-local, multicast, metadata).
	AllowCIDRs     []netip.Prefix
	ConnectTimeout time.Duration // default 5 s
	RequestTimeout time.Duration // whole request, default 10 s
	// SignValidity is how long a signature stays valid: auth_timestamp is the
	// send time plus this. Default 300 s.
	SignValidity time.Duration
	UserAgent    string
	Clock        livehooks.Clock
	// Resolver resolves host names; nil uses the system resolver. Tests point
	// names at forbidden addresses with it.
	Resolver *net.Resolver
}

// Sender signs and posts callbacks. It is safe for concurrent use.
type Sender struct {
	client   *http.Client
	validity time.Duration
	ua       string
	clock    livehooks.Clock
}

// ResponseLimit is how much of an answer the delivery log keeps.
const ResponseLimit = 1024

// drainLimit bounds how much of an answer is read so the connection can be
// reused; a larger answer closes the connection instead.
const drainLimit = 64 << 10

// NewSender returns a Sender.
func NewSender(o SenderOptions) *Sender {
	if o.ConnectTimeout <= 0 {
		o.ConnectTimeout = 5 * time.Second
	}
	if o.RequestTimeout <= 0 {
		o.RequestTimeout = 10 * time.Second
	}
	if o.SignValidity <= 0 {
		o.SignValidity = 300 * time.Second
	}
	if o.UserAgent == "" {
		o.UserAgent = "livehooks"
	}
	if o.Clock == nil {
		o.Clock = livehooks.SystemClock{}
	}
	dialer := egress.Dialer(o.AllowCIDRs, o.ConnectTimeout)
	dialer.Resolver = o.Resolver
	transport := &http.Transport{
		Proxy:                 nil, // a proxy would dial for us and bypass the guard
		DialContext:           dialer.DialContext,
		ForceAttemptHTTP2:     true,
		MaxIdleConns:          1024,
		MaxIdleConnsPerHost:   64,
		IdleConnTimeout:       90 * time.Second,
		TLSHandshakeTimeout:   o.ConnectTimeout,
		ResponseHeaderTimeout: o.RequestTimeout,
		ExpectContinueTimeout: time.Second,
		// A receiver's headers are held whole until they end.
		MaxResponseHeaderBytes: egress.MaxResponseHeaderBytes,
	}
	return &Sender{
		client: &http.Client{
			Transport: transport,
			Timeout:   o.RequestTimeout,
			// Redirects are not followed: a 3xx is an answer, and a failure.
			CheckRedirect: func(*http.Request, []*http.Request) error { return http.ErrUseLastResponse },
		},
		validity: o.SignValidity,
		ua:       o.UserAgent,
		clock:    o.Clock,
	}
}

// Close releases idle connections.
func (s *Sender) Close() { s.client.CloseIdleConnections() }

// Send makes one attempt. It never returns an error: failures are described
// in the Attempt (status 0 and Error for no HTTP answer).
func (s *Sender) Send(ctx context.Context, r livehooks.SendRequest) livehooks.SendResult {
	now := s.clock.Now()
	header, body := s.Request(r, now)
	ans := livehooks.SendResult{Body: body, Attempt: livehooks.Attempt{N: r.N, At: now}}

	req, err := http.NewRequestWithContext(ctx, http.MethodPost, r.URL, bytes.NewReader(body))
	if err != nil {
		ans.Attempt.Error = "invalid callback URL"
		return ans
	}
	req.Header = header

	start := time.Now()
	resp, err := s.client.Do(req)
	if err != nil {
		ans.Attempt.Latency = time.Since(start)
		ans.Attempt.Error = describe(err)
		return ans
	}
	defer resp.Body.Close()
	head := make([]byte, ResponseLimit)
	n, _ := io.ReadFull(resp.Body, head)
	// Drain a little more so the connection can be reused; give up on
	// larger answers (closing the body then closes the connection).
	_, _ = io.Copy(io.Discard, io.LimitReader(resp.Body, drainLimit))
	ans.Attempt.Latency = time.Since(start)
	ans.Attempt.StatusCode = resp.StatusCode
	ans.Attempt.Response = validUTF8(head[:n])
	ans.RetryAfter = ParseRetryAfter(resp.Header.Get("Retry-After"), now)
	return ans
}

// Request returns the headers and body of an attempt made at now: the
// signatures depend only on the event, the key and the second of now, so
// the delivery log can show exactly what an attempt sent from its stored
// time (with the config's key of today).
func (s *Sender) Request(r livehooks.SendRequest, now time.Time) (http.Header, []byte) {
	var sig *livehooks.Signature
	if r.Key != "" {
		expires := now.Add(s.validity).Unix()
		e := r.Event
		sig = &livehooks.Signature{
			AuthTimestamp: expires,
			AuthSign: signature.Sign(r.SignType, r.Key, expires, signature.Fields{
				EventType: string(e.Type), PublishDomain: e.PublishDomain, App: e.App, Stream: e.Stream,
				DownloadURL: e.DownloadURL, PlayURL: e.PlayURL,
			}),
		}
	}
	body := r.Event.Message(sig)
	// The keys are written in their canonical form, with the values in one
	// backing array: Header.Set would canonicalise each key and allocate each
	// value's slice, on every attempt.
	vals := [...]string{"application/json", s.ua, r.WebhookID, strconv.FormatInt(now.Unix(), 10), ""}
	h := make(http.Header, len(vals))
	h["Content-Type"] = vals[0:1:1]
	h["User-Agent"] = vals[1:2:2]
	h["Webhook-Id"] = vals[2:3:3]
	h["Webhook-Timestamp"] = vals[3:4:4]
	if r.Key != "" {
		vals[4] = signature.WebhookSignature(r.Key, r.WebhookID, now.Unix(), body)
		h["Webhook-Signature"] = vals[4:5:5]
	}
	return h, body
}

// describe turns a client error into a log line without the URL (which the
// delivery log already shows) and marks SSRF refusals.
func describe(err error) string {
	var ue *url.Error
	if errors.As(err, &ue) {
		err = ue.Err
	}
	switch {
	case egress.Refused(err):
		return refusedPrefix + trimOp(err.Error()) + " (allow it with --allow-callback-cidr)"
	case errors.Is(err, context.DeadlineExceeded), isTimeout(err):
		return "timeout: " + trimOp(err.Error())
	case errors.Is(err, context.Canceled):
		return "canceled"
	}
	return trimOp(err.Error())
}

func isTimeout(err error) bool {
	var ne net.Error
	return errors.As(err, &ne) && ne.Timeout()
}

// trimOp drops Go's "dial tcp 1.2.3.4:80: " prefixes down to the cause.
func trimOp(s string) string {
	if i := strings.LastIndex(s, ": "); i >= 0 && strings.Contains(s[:i], "dial") {
		return fmt.Sprintf("%s (%s)", s[i+2:], s[:i])
	}
	return s
}

func validUTF8(b []byte) string {
	if utf8.Valid(b) {
		return string(b)
	}
	return strings.ToValidUTF8(string(b), "\uFFFD")
}

// destinationOf returns the key that groups a URL's deliveries for
// concurrency limits and the breaker: scheme://host:port.
func destinationOf(raw string) string {
	u, err := url.Parse(raw)
	if err != nil {
		return raw
	}
	port := u.Port()
	if port == "" {
		port = "80"
		if u.Scheme == "https" {
			port = "443"
		}
	}
	return u.Scheme + "://" + net.JoinHostPort(strings.ToLower(u.Hostname()), port)
}
