// Package mediamtx adapts MediaMTX's hooks to recording signals. MediaMTX
// runs commands (runOnAvailable, runOnUnavailable, runOnRecordSegmentComplete;
// runOnReady and runOnNotReady before v1.20); "livehooks notify mediamtx" is
// that command: it reads MediaMTX's environment and posts a Notification here.
package mediamtx

import (
	"encoding/json"
	"fmt"
	"io"
	"math"
	"net/http"
	"strconv"
	"strings"
	"time"

	"github.com/livehooks/livehooks"
	"github.com/livehooks/livehooks/source"
)

// Events of a Notification.
const (
	EventAvailable       = "available"        // runOnAvailable: a stream is published
	EventUnavailable     = "unavailable"      // runOnUnavailable: it stopped
	EventSegmentComplete = "segment-complete" // runOnRecordSegmentComplete

	// The names of runOnReady and runOnNotReady, which MediaMTX v1.20
	// renamed (the old names still work there, with a warning): the same
	// events.
	EventReady    = "ready"
	EventNotReady = "not-ready"
)

// Events lists the events a Notification may carry.
var Events = []string{EventAvailable, EventUnavailable, EventSegmentComplete, EventReady, EventNotReady}

// canonicalEvent returns the event's current name, or "" for an unknown one.
func canonicalEvent(e string) string {
	switch e {
	case EventAvailable, EventReady:
		return EventAvailable
	case EventUnavailable, EventNotReady:
		return EventUnavailable
	case EventSegmentComplete:
		return EventSegmentComplete
	}
	return ""
}

// ValidEvent reports whether e is an event of a Notification.
func ValidEvent(e string) bool { return canonicalEvent(e) != "" }

// MediaMTX's recordFormat values.
const (
	RecordFMP4   = "fmp4"
	RecordMPEGTS = "mpegts"
)

// Format returns the livehooks record format of a MediaMTX recordFormat
// ("" is MediaMTX's default, fmp4): MP4 for fmp4, HLS (Huawei's name for TS
// recordings) for mpegts, and false for anything else.
func Format(recordFormat string) (string, bool) {
	switch recordFormat {
	case "", RecordFMP4:
		return livehooks.FormatMP4, true
	case RecordMPEGTS:
		return livehooks.FormatHLS, true
	}
	return "", false
}

// DefaultApp is the app of a path without a slash.
const DefaultApp = "live"

// Notification is the JSON body "livehooks notify mediamtx" posts to
// /hooks/mediamtx/{project_id}, from MediaMTX's environment.
type Notification struct {
	Event string `json:"event"`
	// Path is MTX_PATH; its last slash splits app and stream ("live/cam1").
	Path string `json:"path"`
	// Domain is the publish domain (notify --domain); the hook URL's
	// ?domain= wins over it.
	Domain string `json:"domain,omitempty"`
	// SegmentPath is MTX_SEGMENT_PATH, made absolute by notify.
	SegmentPath string `json:"segment_path,omitempty"`
	// SegmentDuration is MTX_SEGMENT_DURATION: seconds ("6.02"), or a Go
	// duration ("6.02s") as older MediaMTX versions wrote it.
	SegmentDuration string `json:"segment_duration,omitempty"`
	// RecordFormat is MediaMTX's recordFormat (notify --record-format),
	// which MediaMTX does not put in the hooks' environment: fmp4 (its
	// default, also when empty) or mpegts.
	RecordFormat string `json:"record_format,omitempty"`
	// Query (MTX_QUERY, never logged: it may carry a token), SourceType,
	// SourceID and RTSPPort are informational.
	Query      string `json:"query,omitempty"`
	SourceType string `json:"source_type,omitempty"`
	SourceID   string `json:"source_id,omitempty"`
	RTSPPort   string `json:"rtsp_port,omitempty"`
}

// SplitPath splits a MediaMTX path into app and stream at its last slash;
// a path without one is stream of DefaultApp.
func SplitPath(p string) (app, stream string) {
	p = strings.Trim(p, "/")
	if i := strings.LastIndexByte(p, '/'); i >= 0 {
		return p[:i], p[i+1:]
	}
	return DefaultApp, p
}

// ParseDuration reads MTX_SEGMENT_DURATION.
func ParseDuration(s string) (time.Duration, bool) {
	if s == "" {
		return 0, false
	}
	if f, err := strconv.ParseFloat(s, 64); err == nil {
		if f < 0 || f > 1e9 || math.IsNaN(f) {
			return 0, false
		}
		return time.Duration(f * float64(time.Second)), true
	}
	d, err := time.ParseDuration(s)
	return d, err == nil && d >= 0
}

type handler struct{ src *source.Source }

// New returns the handler of /hooks/mediamtx/{project_id}.
func New(src *source.Source) http.Handler { return &handler{src: src} }

const maxBody = 1 << 20

func reply(w http.ResponseWriter, status int, msg string) {
	w.Header().Set("Content-Type", "application/json")
	w.WriteHeader(status)
	if msg == "" {
		_, _ = io.WriteString(w, `{"status":"ok"}`+"\n")
		return
	}
	_ = json.NewEncoder(w).Encode(map[string]string{"error": msg})
}

func (h *handler) ServeHTTP(w http.ResponseWriter, r *http.Request) {
	body, err := io.ReadAll(io.LimitReader(r.Body, maxBody+1))
	if err != nil || len(body) > maxBody {
		reply(w, http.StatusRequestEntityTooLarge, "notification body too large or unreadable")
		return
	}
	var n Notification
	if err := json.Unmarshal(body, &n); err != nil {
		reply(w, http.StatusBadRequest, "notification body is not the JSON object livehooks notify sends")
		return
	}
	event := canonicalEvent(n.Event)
	if event == "" {
		reply(w, http.StatusBadRequest, fmt.Sprintf("unknown event %q: want available, unavailable or segment-complete (or ready, not-ready)", clip(n.Event, 32)))
		return
	}
	format, ok := Format(n.RecordFormat)
	if !ok {
		reply(w, http.StatusBadRequest, fmt.Sprintf("unknown record_format %q: want fmp4 or mpegts, MediaMTX's recordFormat", clip(n.RecordFormat, 32)))
		return
	}
	domain := r.URL.Query().Get("domain")
	if domain == "" {
		domain = n.Domain
	}
	if domain == "" {
		reply(w, http.StatusBadRequest, "no publish domain: pass --domain to livehooks notify (or ?domain= on the hook URL)")
		return
	}
	app, stream := SplitPath(n.Path)
	key := livehooks.StreamKey{ProjectID: r.PathValue("project_id"), PublishDomain: strings.ToLower(domain), App: app, Stream: stream}
	if err := key.Validate(); err != nil {
		reply(w, http.StatusBadRequest, livehooks.ErrorMessage(err))
		return
	}
	ctx := r.Context()
	switch event {
	case EventAvailable:
		adm, err := h.src.Publish(ctx, key, format)
		if err != nil {
			h.fail(w, n.Event, key, err)
			return
		}
		if adm == source.Refused {
			// MediaMTX ignores its hooks' exit codes: the stream goes
			// on, and MediaMTX records it; only the command's stderr
			// line says why no callback comes.
			reply(w, http.StatusForbidden, "stream not recorded: no callback config for this app")
			return
		}
	case EventUnavailable:
		if err := h.src.Unpublish(ctx, key); err != nil {
			h.fail(w, n.Event, key, err)
			return
		}
	case EventSegmentComplete:
		d, _ := ParseDuration(n.SegmentDuration)
		if err := h.src.FileDone(ctx, key, n.SegmentPath, source.FileHint{Duration: d}); err != nil {
			h.fail(w, n.Event, key, err)
			return
		}
	}
	reply(w, http.StatusOK, "")
}

func (h *handler) fail(w http.ResponseWriter, event string, key livehooks.StreamKey, err error) {
	if source.Forbidden(w, err) {
		return
	}
	if livehooks.ErrorCode(err) == livehooks.EINVALID {
		reply(w, http.StatusBadRequest, livehooks.ErrorMessage(err))
		return
	}
	h.src.Logger().Warn("MediaMTX notification failed", "event", event, "project_id", key.ProjectID, "publish_domain", key.PublishDomain,
		"app", key.App, "stream", key.Stream, "error", err)
	reply(w, http.StatusServiceUnavailable, "livehooks cannot record this now")
}

func clip(s string, n int) string {
	if len(s) > n {
		return s[:n] + "…"
	}
	return s
}
