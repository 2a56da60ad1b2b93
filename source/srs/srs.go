// Package srs adapts SRS's HTTP callbacks (on_publish, on_unpublish,
// on_dvr) to recording signals. SRS posts JSON and reads the answer's code:
// 0 lets it go on, anything else refuses a publish.
package srs

import (
	"encoding/json"
	"errors"
	"fmt"
	"io"
	"net/http"
	"net/url"
	"path/filepath"
	"strings"
	"sync"

	"github.com/livehooks/livehooks"
	"github.com/livehooks/livehooks/source"
)

// DefaultVhost is the vhost SRS reports when the publisher named none that
// SRS knows.
const DefaultVhost = "__defaultVhost__"

// Callback is the body of an SRS HTTP callback, as SRS 4 to 6 send it
// (srs_app_http_hooks.cpp). SRS 3 and older sent client_id as a number.
type Callback struct {
	Action   string          `json:"action"`
	ClientID json.RawMessage `json:"client_id"`
	IP       string          `json:"ip"`
	Vhost    string          `json:"vhost"`
	App      string          `json:"app"`
	Stream   string          `json:"stream"`
	Param    string          `json:"param"`
	// TcURL is the RTMP connect's tcUrl, as the client sent it
	// ("rtmp://push.example.com:1935/live"): on every hook in SRS 5 and 6,
	// on on_publish only in SRS 4.
	TcURL     string `json:"tcUrl"`
	Cwd       string `json:"cwd"`  // on_dvr
	File      string `json:"file"` // on_dvr, relative to cwd or absolute
	ServerID  string `json:"server_id"`
	StreamURL string `json:"stream_url"`
	StreamID  string `json:"stream_id"`
}

// Handler serves /hooks/srs/{project_id}. It is safe for concurrent use.
type Handler struct {
	src *source.Source

	mu sync.Mutex
	// domains remembers the domain a __defaultVhost__ stream published
	// under (from on_publish's tcUrl), for SRS 4's on_unpublish and on_dvr,
	// which carry no tcUrl.
	domains map[[3]string]string
}

// New returns a Handler.
func New(src *source.Source) *Handler {
	return &Handler{src: src, domains: map[[3]string]string{}}
}

const maxBody = 1 << 20

type answer struct {
	Code int    `json:"code"`
	Msg  string `json:"msg,omitempty"`
}

func reply(w http.ResponseWriter, status int, msg string) {
	w.Header().Set("Content-Type", "application/json")
	w.WriteHeader(status)
	code := 0
	if status != http.StatusOK {
		code = status
	}
	_ = json.NewEncoder(w).Encode(answer{Code: code, Msg: msg})
}

// ServeHTTP handles one callback.
func (h *Handler) ServeHTTP(w http.ResponseWriter, r *http.Request) {
	body, err := io.ReadAll(io.LimitReader(r.Body, maxBody+1))
	if err != nil || len(body) > maxBody {
		reply(w, http.StatusRequestEntityTooLarge, "callback body too large or unreadable")
		return
	}
	var cb Callback
	if err := json.Unmarshal(body, &cb); err != nil {
		reply(w, http.StatusBadRequest, "callback body is not the JSON object SRS sends")
		return
	}
	switch cb.Action {
	case "on_publish", "on_unpublish", "on_dvr":
	case "on_connect", "on_close", "on_play", "on_stop", "on_hls":
		reply(w, http.StatusOK, "")
		return
	default:
		reply(w, http.StatusBadRequest, fmt.Sprintf("unknown SRS action %q", clip(cb.Action, 32)))
		return
	}
	project := r.PathValue("project_id")
	domain, err := h.domain(r, project, &cb)
	if err != nil {
		reply(w, http.StatusBadRequest, err.Error())
		return
	}
	key := livehooks.StreamKey{ProjectID: project, PublishDomain: domain, App: cb.App, Stream: cb.Stream}
	if err := key.Validate(); err != nil {
		reply(w, http.StatusBadRequest, livehooks.ErrorMessage(err))
		return
	}
	ctx := r.Context()
	switch cb.Action {
	case "on_publish":
		// on_publish does not say what DVR writes: the first on_dvr's file
		// will.
		adm, err := h.src.Publish(ctx, key, "")
		if err != nil {
			h.fail(w, cb.Action, key, err)
			return
		}
		if adm == source.Refused {
			reply(w, http.StatusForbidden, "publish refused: no callback config for this app")
			return
		}
	case "on_unpublish":
		if err := h.src.Unpublish(ctx, key); err != nil {
			h.fail(w, cb.Action, key, err)
			return
		}
	case "on_dvr":
		path := cb.File
		if !filepath.IsAbs(path) && filepath.IsAbs(cb.Cwd) {
			path = filepath.Join(cb.Cwd, path)
		}
		if err := h.src.FileDone(ctx, key, path, source.FileHint{}); err != nil {
			h.fail(w, cb.Action, key, err)
			return
		}
	}
	reply(w, http.StatusOK, "")
}

func (h *Handler) fail(w http.ResponseWriter, action string, key livehooks.StreamKey, err error) {
	if source.Forbidden(w, err) {
		return
	}
	if livehooks.ErrorCode(err) == livehooks.EINVALID {
		reply(w, http.StatusBadRequest, livehooks.ErrorMessage(err))
		return
	}
	h.src.Logger().Warn("SRS callback failed", "action", action, "project_id", key.ProjectID, "publish_domain", key.PublishDomain,
		"app", key.App, "stream", key.Stream, "error", err)
	reply(w, http.StatusServiceUnavailable, "livehooks cannot record this now")
}

// domain is the publish domain of a callback: the hook URL's ?domain= when
// given; else a named vhost; else, for __defaultVhost__, the vhost the
// publisher asked for in its query (param's vhost= or domain=, which SRS
// itself prefers to the host), the host of tcUrl, or (SRS 4, whose
// on_unpublish and on_dvr have no tcUrl) the domain the stream's on_publish
// had.
func (h *Handler) domain(r *http.Request, project string, cb *Callback) (string, error) {
	if d := r.URL.Query().Get("domain"); d != "" {
		return checkDomain("?domain=", d)
	}
	if cb.Vhost != "" && cb.Vhost != DefaultVhost {
		return checkDomain("vhost", cb.Vhost)
	}
	mem := [3]string{project, cb.App, cb.Stream}
	d := ""
	if v := paramVhost(cb.Param); v != "" {
		d = v
	} else if u, err := url.Parse(cb.TcURL); err == nil && u.Hostname() != "" {
		d = u.Hostname()
	} else {
		h.mu.Lock()
		d = h.domains[mem]
		h.mu.Unlock()
	}
	if d == "" {
		return "", errors.New("cannot tell the publish domain of a __defaultVhost__ stream: add ?domain=NAME to the hook URL")
	}
	d, err := checkDomain("publisher host", d)
	if err != nil {
		return "", err
	}
	if cb.Action == "on_publish" {
		h.mu.Lock()
		if len(h.domains) >= 100_000 {
			clear(h.domains)
		}
		h.domains[mem] = d
		h.mu.Unlock()
	}
	return d, nil
}

// paramVhost is the vhost named in a publisher's query ("?vhost=NAME" or
// "?domain=NAME", as SRS reads it), or "".
func paramVhost(param string) string {
	q, _ := url.ParseQuery(strings.TrimPrefix(param, "?")) // what parses, even beside a bad pair
	for _, k := range []string{"vhost", "domain"} {
		if v := q.Get(k); v != "" && v != DefaultVhost {
			return v
		}
	}
	return ""
}

func checkDomain(what, d string) (string, error) {
	d = strings.ToLower(d)
	if !livehooks.IsDomainName(d) {
		return "", fmt.Errorf("%s %q is not a valid DNS name; add ?domain=NAME to the hook URL", what, clip(d, 64))
	}
	return d, nil
}

func clip(s string, n int) string {
	if len(s) > n {
		return s[:n] + "…"
	}
	return s
}
