// Package nginxrtmp adapts nginx-rtmp's HTTP notifications (on_publish,
// on_publish_done, on_done, on_record_done) to recording signals, and can
// start nginx's recorder through its control module for on-demand
// recording (record all manual).
package nginxrtmp

import (
	"context"
	"errors"
	"fmt"
	"io"
	"net/http"
	"net/url"
	"strings"
	"sync"
	"time"

	"github.com/livehooks/livehooks"
	"github.com/livehooks/livehooks/source"
)

// Options configure a Handler.
type Options struct {
	Source *source.Source
	// ControlURL is the URL of nginx's rtmp_control location, such as
	// http://127.0.0.1:8080/control (a rec=NAME query picks a recorder; the
	// default is the application's unnamed one). When set, livehooks starts
	// the recorder of every stream it records, through
	// {ControlURL}/record/start: use it with "record all manual".
	ControlURL string
	// ControlClient calls ControlURL (default: 5 s timeout).
	ControlClient *http.Client
	// StartWithin bounds how long starting a recorder is retried: nginx
	// accepts it only once the publish, which waits for our answer to
	// on_publish, has gone through. Default 10 s.
	StartWithin time.Duration
}

// Handler serves /hooks/nginx-rtmp/{project_id}. It is safe for concurrent
// use.
type Handler struct {
	o       Options
	control *url.URL
	rec     string

	mu sync.Mutex
	// publishers remembers the nginx client id of each stream's latest
	// publisher, so that on_done (sent for players too, and in any order
	// with on_publish_done) ends only the publish it belongs to, once.
	publishers map[livehooks.StreamKey]publisher
}

type publisher struct {
	client string
	ended  bool
}

// New returns a Handler.
func New(o Options) (*Handler, error) {
	if o.Source == nil {
		return nil, errors.New("nginxrtmp: Options.Source is required")
	}
	h := &Handler{o: o, publishers: map[livehooks.StreamKey]publisher{}}
	if o.ControlURL != "" {
		u, err := url.Parse(o.ControlURL)
		if err != nil || (u.Scheme != "http" && u.Scheme != "https") || u.Host == "" {
			return nil, fmt.Errorf("nginx control URL %q: want http://HOST[:PORT]/PATH of the rtmp_control location", o.ControlURL)
		}
		h.rec = u.Query().Get("rec")
		u.RawQuery, u.Fragment = "", ""
		h.control = u
	}
	if h.o.ControlClient == nil {
		h.o.ControlClient = &http.Client{Timeout: 5 * time.Second}
	}
	if h.o.StartWithin <= 0 {
		h.o.StartWithin = 10 * time.Second
	}
	return h, nil
}

// maxBody caps what is read of a notification (the API caps it too).
const maxBody = 1 << 20

// ServeHTTP handles one notification. nginx refuses a publish unless
// on_publish answers 2xx; the other answers only show in nginx's log.
func (h *Handler) ServeHTTP(w http.ResponseWriter, r *http.Request) {
	body, err := io.ReadAll(io.LimitReader(r.Body, maxBody+1))
	if err != nil || len(body) > maxBody {
		http.Error(w, "notification body too large or unreadable", http.StatusRequestEntityTooLarge)
		return
	}
	f := ParseForm(string(body))
	call := f.Get("call")
	switch call {
	case "publish", "publish_done", "done", "record_done":
	case "connect", "disconnect", "play", "play_done", "update", "update_publish", "update_play":
		// Nothing to record; a 2xx lets nginx go on.
		w.WriteHeader(http.StatusOK)
		return
	default:
		http.Error(w, fmt.Sprintf("unknown nginx-rtmp call %q", clip(call, 32)), http.StatusBadRequest)
		return
	}
	domain, err := publishDomain(r, f.Get("tcurl"))
	if err != nil {
		h.o.Source.Logger().Info("nginx-rtmp notification refused", "call", call, "project_id", r.PathValue("project_id"), "error", err)
		http.Error(w, err.Error(), http.StatusBadRequest)
		return
	}
	key := livehooks.StreamKey{ProjectID: r.PathValue("project_id"), PublishDomain: domain, App: f.Get("app"), Stream: f.Get("name")}
	if err := key.Validate(); err != nil {
		h.o.Source.Logger().Info("nginx-rtmp notification refused", "call", call, "project_id", key.ProjectID, "error", livehooks.ErrorMessage(err))
		http.Error(w, livehooks.ErrorMessage(err), http.StatusBadRequest)
		return
	}
	client := f.Get("clientid")
	ctx := r.Context()
	switch call {
	case "publish":
		adm, err := h.o.Source.Publish(ctx, key, livehooks.FormatFLV) // nginx-rtmp records FLV only
		if err != nil {
			h.fail(w, call, key, err)
			return
		}
		switch adm {
		case source.Refused:
			http.Error(w, "publish refused: no callback config for this app", http.StatusForbidden)
			return
		case source.Recorded:
			h.setPublisher(key, client)
			if h.control != nil {
				h.startRecorder(key)
			}
		}
	case "publish_done", "done":
		// Both come for one publisher, in any order, within milliseconds;
		// done also comes for players. Unpublish once, for the publisher
		// that is current (an end of an earlier publish that arrives after
		// a republish is stale).
		if h.ended(key, client, call == "done") {
			if err := h.o.Source.Unpublish(ctx, key); err != nil {
				h.fail(w, call, key, err)
				return
			}
		}
	case "record_done":
		if err := h.o.Source.FileDone(ctx, key, f.Get("path"), source.FileHint{}); err != nil {
			h.fail(w, call, key, err)
			return
		}
	}
	w.WriteHeader(http.StatusOK)
}

// fail answers a notification that could not be handled: 403 for a file of
// another project, 400 for bad input, else 503 (the store cannot take it
// now; for on_publish nginx then refuses the stream, as it would if
// livehooks were down).
func (h *Handler) fail(w http.ResponseWriter, call string, key livehooks.StreamKey, err error) {
	if source.Forbidden(w, err) {
		return
	}
	if livehooks.ErrorCode(err) == livehooks.EINVALID {
		http.Error(w, livehooks.ErrorMessage(err), http.StatusBadRequest)
		return
	}
	h.o.Source.Logger().Warn("nginx-rtmp notification failed", "call", call, "project_id", key.ProjectID, "publish_domain", key.PublishDomain,
		"app", key.App, "stream", key.Stream, "error", err)
	http.Error(w, "livehooks cannot record this now", http.StatusServiceUnavailable)
}

func (h *Handler) setPublisher(key livehooks.StreamKey, client string) {
	h.mu.Lock()
	defer h.mu.Unlock()
	if len(h.publishers) >= 100_000 {
		// Publishers that never ended (nginx killed): forget them all
		// rather than grow; an end then unpublishes unconditionally.
		clear(h.publishers)
	}
	h.publishers[key] = publisher{client: client}
}

// ended reports whether an end notification of client should unpublish key:
// yes the first time for the latest publisher; no for another client (an
// earlier publisher's late end, or a player's done) or a repeat; and, when
// no publisher is known (livehooks restarted meanwhile), yes for
// publish_done only, since done may be a player's.
func (h *Handler) ended(key livehooks.StreamKey, client string, onlyKnown bool) bool {
	h.mu.Lock()
	defer h.mu.Unlock()
	p, ok := h.publishers[key]
	switch {
	case !ok:
		return !onlyKnown
	case p.client != client || p.ended:
		return false
	}
	h.publishers[key] = publisher{client: client, ended: true}
	return true
}

// startRecorder asks nginx to start recording key, in the background: nginx
// publishes the stream only after on_publish is answered. It answers 200
// (with the file's path) once recording starts and 204 while the stream is
// not published yet (or is already recorded).
func (h *Handler) startRecorder(key livehooks.StreamKey) {
	u := *h.control
	u.Path = strings.TrimSuffix(u.Path, "/") + "/record/start"
	u.RawQuery = url.Values{"app": {key.App}, "name": {key.Stream}, "rec": {h.rec}}.Encode()
	target := u.String()
	log := h.o.Source.Logger()
	h.o.Source.Go(func(ctx context.Context) {
		ctx, cancel := context.WithTimeout(ctx, h.o.StartWithin)
		defer cancel()
		wait := 50 * time.Millisecond
		last := ""
		for {
			status, err := h.control1(ctx, target)
			switch {
			case err == nil && status == http.StatusOK:
				log.Info("nginx recorder started", "project_id", key.ProjectID, "publish_domain", key.PublishDomain, "app", key.App, "stream", key.Stream)
				return
			case err != nil:
				last = err.Error()
			default:
				last = fmt.Sprintf("nginx answered %d", status)
			}
			t := time.NewTimer(wait)
			select {
			case <-ctx.Done():
				t.Stop()
				switch {
				case ctx.Err() != context.DeadlineExceeded:
					return // livehooks is stopping
				case status == http.StatusNoContent:
					// Already recording (nginx not in manual mode) or the
					// publisher left: not a failure to report.
					log.Info("nginx recorder not started: nginx answered 204 (stream gone, or already recording)",
						"project_id", key.ProjectID, "app", key.App, "stream", key.Stream)
					return
				}
				log.Warn("nginx recorder could not be started", "project_id", key.ProjectID, "app", key.App, "stream", key.Stream, "error", last)
				if err := h.o.Source.Failure(context.WithoutCancel(ctx), key, "nginx-rtmp recorder could not be started: "+last); err != nil {
					log.Warn("report recorder failure", "stream", key.Stream, "error", err)
				}
				return
			case <-t.C:
			}
			wait = min(2*wait, 500*time.Millisecond)
		}
	})
}

func (h *Handler) control1(ctx context.Context, target string) (int, error) {
	req, err := http.NewRequestWithContext(ctx, http.MethodGet, target, nil)
	if err != nil {
		return 0, err
	}
	resp, err := h.o.ControlClient.Do(req)
	if err != nil {
		var ue *url.Error
		if errors.As(err, &ue) {
			err = ue.Err
		}
		return 0, err
	}
	_, _ = io.Copy(io.Discard, io.LimitReader(resp.Body, 4096))
	resp.Body.Close()
	return resp.StatusCode, nil
}

// publishDomain is the hook URL's ?domain= when given, else the host of
// tcurl (lower case, without port).
func publishDomain(r *http.Request, tcurl string) (string, error) {
	if d := r.URL.Query().Get("domain"); d != "" {
		d = strings.ToLower(d)
		if !livehooks.IsDomainName(d) {
			return "", fmt.Errorf("?domain=%q is not a valid DNS name", clip(d, 64))
		}
		return d, nil
	}
	u, err := url.Parse(tcurl)
	if err != nil || u.Hostname() == "" {
		return "", errors.New("cannot tell the publish domain: tcurl has no host; add ?domain=NAME to the hook URL")
	}
	d := strings.ToLower(u.Hostname())
	if !livehooks.IsDomainName(d) {
		return "", fmt.Errorf("cannot tell the publish domain: tcurl host %q is not a DNS name; add ?domain=NAME to the hook URL", clip(d, 64))
	}
	return d, nil
}

// Form holds the first value of each field of an nginx-rtmp notification.
// nginx writes its own fields first and appends the publisher's query
// arguments raw, so a later value of a field (a second call= or path=) is
// the publisher's and is ignored.
type Form map[string]string

// Get returns the first value of a field ("" when absent).
func (f Form) Get(name string) string { return f[name] }

// ParseForm parses an application/x-www-form-urlencoded body keeping the
// first value of each field. A field whose first value does not decode is
// present and empty: a later value never replaces it.
func ParseForm(body string) Form {
	f := Form{}
	for body != "" {
		var pair string
		pair, body, _ = strings.Cut(body, "&")
		if pair == "" {
			continue
		}
		k, v, _ := strings.Cut(pair, "=")
		k, err := url.QueryUnescape(k)
		if err != nil {
			continue
		}
		if _, seen := f[k]; seen {
			continue
		}
		if v, err = url.QueryUnescape(v); err != nil {
			v = ""
		}
		f[k] = v
	}
	return f
}

func clip(s string, n int) string {
	if len(s) > n {
		return s[:n] + "…"
	}
	return s
}
