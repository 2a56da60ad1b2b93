package api

import (
	"bytes"
	"io"
	"net"
	"net/http"
	"net/http/httptrace"
	"strings"
	"sync/atomic"
	"time"

	"github.com/livehooks/livehooks"
)

// With several nodes on one PostgreSQL database, a node that takes an
// ingest whose events all belong to lanes homed at another live node sends
// the request on to that node, which ingests it: a stream's recording state,
// its deliveries and its lanes then stay on one node, however the load
// balancer spreads the requests, instead of each node writing what another
// one holds (transactions run again, lanes handed from node to node, the
// owner reading back from the database what others enqueued).

// HeaderForwardedBy marks an ingest that a node forwarded (its value is that
// node's id). The node it reaches ingests it itself, whatever it makes of
// its home: a request is forwarded once at most.
const HeaderForwardedBy = "X-Livehooks-Forwarded-By"

// IngestRouter says which node should ingest events (a *postgres.DB): its
// id and the base URL it advertised, or "" for self.
type IngestRouter interface {
	IngestHome(self string, events []*livehooks.Event) (node, url string)
}

// Forwarding configures the forwarding of ingests (Config.Forwarding).
type Forwarding struct {
	Router IngestRouter
	Node   string // this node's id
	// Client sends the forwarded requests; default: keep-alive, 2 s to
	// connect, 30 s in all.
	Client *http.Client
	// Count, if set, counts forwards by outcome: "forwarded" (the home
	// answered, whatever it answered), "unreachable" (nothing of the
	// request left: ingested here), "failed" (the request may have reached
	// the home and its answer did not come back: the client is told to
	// retry).
	Count func(outcome string)
}

func (f *Forwarding) count(outcome string) {
	if f.Count != nil {
		f.Count(outcome)
	}
}

// warnEvery spaces the warnings about one unreachable node: until the
// others take it for dead, every ingest of its streams meets it.
const warnEvery = 10 * time.Second

// warnUnreachable reports whether an unreachable node is worth a warning
// now.
func (s *Server) warnUnreachable(node string) bool {
	now := time.Now()
	last, loaded := s.forwardWarned.LoadOrStore(node, now)
	if !loaded {
		return true
	}
	if now.Sub(last.(time.Time)) < warnEvery {
		return false
	}
	return s.forwardWarned.CompareAndSwap(node, last, now)
}

func defaultForwardClient() *http.Client {
	return &http.Client{
		Timeout: 30 * time.Second,
		Transport: &http.Transport{
			DialContext:         (&net.Dialer{Timeout: 2 * time.Second, KeepAlive: 30 * time.Second}).DialContext,
			MaxIdleConnsPerHost: 64,
			IdleConnTimeout:     90 * time.Second,
			ForceAttemptHTTP2:   true,
		},
		// A redirect from another node is its answer, passed on as it is.
		CheckRedirect: func(*http.Request, []*http.Request) error { return http.ErrUseLastResponse },
	}
}

// hopHeaders are the headers of one connection, not of the request.
var hopHeaders = []string{"Connection", "Keep-Alive", "Proxy-Authenticate", "Proxy-Authorization", "Proxy-Connection", "Te", "Trailer", "Transfer-Encoding", "Upgrade"}

// forwardIngest sends an ingest request, whose body is body, to the node at
// base, and passes its answer on. It returns false, having written nothing,
// when nothing of the request left for the node (it could not be reached):
// the caller ingests the request itself. A failure after the request may
// have reached the node is answered 503: ingesting here too could store the
// events twice.
func (s *Server) forwardIngest(w http.ResponseWriter, r *http.Request, body []byte, node, base string) bool {
	f := s.forward
	req, err := http.NewRequestWithContext(r.Context(), r.Method, strings.TrimSuffix(base, "/")+r.URL.RequestURI(), bytes.NewReader(body))
	if err != nil {
		s.logger.WarnContext(r.Context(), "forward ingest: bad URL of node; ingesting here", "node", node, "error", err)
		f.count("unreachable")
		return false
	}
	for k, vs := range r.Header {
		req.Header[k] = vs
	}
	for _, k := range hopHeaders {
		req.Header.Del(k)
	}
	// The answer is passed on as plain bytes: the transport asks for gzip
	// itself and undoes it, where a client's own Accept-Encoding would hand
	// on a compressed body without its Content-Encoding.
	req.Header.Del("Accept-Encoding")
	// The Host an AK/SK signature may cover, and the forwarding node's id.
	req.Host = r.Host
	req.Header.Set(HeaderForwardedBy, f.Node)
	// Whether any of the request left: a connection refused, a name that
	// does not resolve or a TLS handshake that fails sent nothing.
	var wrote atomic.Bool
	req = req.WithContext(httptrace.WithClientTrace(req.Context(), &httptrace.ClientTrace{
		WroteHeaders: func() { wrote.Store(true) },
	}))
	resp, err := f.Client.Do(req)
	if err != nil {
		if !wrote.Load() {
			if s.warnUnreachable(node) {
				s.logger.WarnContext(r.Context(), "forward ingest: node unreachable; ingesting its streams here", "node", node, "error", err)
			}
			f.count("unreachable")
			return false
		}
		f.count("failed")
		s.writeError(w, r, livehooks.Errorf(livehooks.EUNAVAILABLE, "the node that ingests these events (%s) did not answer; retry the request", node))
		return true
	}
	defer resp.Body.Close()
	f.count("forwarded")
	if ct := resp.Header.Get("Content-Type"); ct != "" {
		w.Header().Set("Content-Type", ct)
	}
	w.WriteHeader(resp.StatusCode)
	_, _ = io.Copy(w, io.LimitReader(resp.Body, MaxBodyBytes)) // the client went away; nothing to do
	return true
}
