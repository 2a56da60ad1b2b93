package api

import (
	"net/http"
	"net/url"
	"strconv"
	"time"

	"github.com/livehooks/livehooks"
)

// RequestBuilder rebuilds the request an attempt sent (a *delivery.Sender):
// headers and body, signatures included, from the event, the key and the
// attempt's time.
type RequestBuilder interface {
	Request(r livehooks.SendRequest, at time.Time) (http.Header, []byte)
}

type sentRequest struct {
	URL     string            `json:"url"`
	Headers map[string]string `json:"headers"`
	Body    string            `json:"body"` // exactly as sent
}

// addRequests fills each attempt's request when the sender can rebuild it
// and the config still exists. The config's key and URL are today's: a key
// changed since makes the signatures shown differ from those sent.
func (s *Server) addRequests(r *http.Request, d *livehooks.Delivery, attempts []attemptResponse) {
	b, ok := s.sender.(RequestBuilder)
	if !ok || d.Event == nil || len(attempts) == 0 {
		return
	}
	c, err := s.callbacks.FindCallbackByID(r.Context(), d.ProjectID, d.ConfigID)
	if err != nil {
		return
	}
	for i := range attempts {
		a := &d.AttemptsList[i]
		header, body := b.Request(livehooks.SendRequest{
			URL: c.NotifyCallbackURL, Key: c.Key, SignType: c.SignType, WebhookID: d.WebhookID, Event: d.Event, N: a.N,
		}, a.At)
		sent := &sentRequest{URL: c.NotifyCallbackURL, Headers: map[string]string{}, Body: string(body)}
		for k := range header {
			sent.Headers[http.CanonicalHeaderKey(k)] = header.Get(k)
		}
		// What Go's HTTP client adds on the wire.
		if u, err := url.Parse(c.NotifyCallbackURL); err == nil {
			sent.Headers["Host"] = u.Host
		}
		sent.Headers["Content-Length"] = strconv.Itoa(len(body))
		sent.Headers["Accept-Encoding"] = "gzip"
		attempts[i].Request = sent
	}
}
