package api

import (
	"bytes"
	"context"
	"encoding/json"
	"errors"
	"fmt"
	"io"
	"log/slog"
	"net/http"
	"runtime/debug"
	"strconv"
	"strings"
	"sync"
	"time"

	"github.com/google/uuid"
	"github.com/livehooks/livehooks"
)

// MaxBodyBytes caps every request body (SPEC §1).
const MaxBodyBytes = 1 << 20

const headerRequestID = "X-request-id"

// Authenticator verifies a /v1/ request. body is the whole (capped) request
// body, which AK/SK signatures cover.
type Authenticator interface {
	Authenticate(r *http.Request, body []byte) (livehooks.Principal, error)
}

// Config holds the dependencies of the API server.
type Config struct {
	Callbacks livehooks.CallbackStore
	// Auth verifies /v1/ requests; nil (with Dev) disables authentication.
	Auth   Authenticator
	Dev    bool
	Logger *slog.Logger
	Clock  livehooks.Clock
	// Hostname ends every X-request-id.
	Hostname string
	// Ready reports whether the service can take traffic (store reachable).
	Ready func(ctx context.Context) error
	// Metrics serves /metrics; nil for none.
	Metrics http.Handler

	// The livehooks extensions: ingest, delivery log, retry, replay, test.
	Ingester livehooks.Ingester
	Outbox   livehooks.Outbox
	Requeuer Requeuer
	Sender   livehooks.Sender

	// Hooks are the media-server adapters by source name ("nginx-rtmp",
	// "srs", "mediamtx"), served at /hooks/{source}/{project_id}.
	Hooks         map[string]http.Handler
	IngestSecrets IngestSecrets

	// Domains keeps per-domain recording settings, served under
	// /v1/{project_id}/record/domains; nil leaves those routes out.
	Domains livehooks.DomainStore

	// Feed serves /v1/{project_id}/record/feed and …/destinations (what
	// happens, live); nil leaves those routes out.
	Feed LiveFeed
	// RecordingLog serves the streams and tasks of a domain; nil leaves
	// those routes out.
	RecordingLog livehooks.RecordingLog

	// Recordings answers the signed download links of the files livehooks
	// serves itself, at /recordings/{project_id}/{path}; nil: 404.
	Recordings Recordings

	// Forwarding sends an ingest whose events belong on another node there
	// (several nodes on PostgreSQL; see Forwarding); nil: every ingest is
	// taken where it arrives.
	Forwarding *Forwarding
}

// Recordings answers a download link (a *fileserve.Server). filePath is the
// decoded URL path after the project id, starting with "/". An error comes
// before anything is written.
type Recordings interface {
	ServeRecording(w http.ResponseWriter, r *http.Request, projectID, filePath string) error
}

// Server is the HTTP API. It implements http.Handler.
type Server struct {
	callbacks     livehooks.CallbackStore
	auth          Authenticator
	dev           bool
	logger        *slog.Logger
	clock         livehooks.Clock
	hostname      string
	ready         func(ctx context.Context) error
	metrics       http.Handler
	ingester      livehooks.Ingester
	outbox        livehooks.Outbox
	requeuer      Requeuer
	sender        livehooks.Sender
	hooks         map[string]http.Handler
	ingestSecrets IngestSecrets
	domains       livehooks.DomainStore
	feed          LiveFeed
	recordingLog  livehooks.RecordingLog
	testSends     inFlight
	recordings    Recordings
	forward       *Forwarding
	forwardWarned sync.Map // node → time.Time of the last "unreachable" warning
	handler       http.Handler
}

// NewServer returns the API server for cfg.
func NewServer(cfg Config) (*Server, error) {
	if cfg.Callbacks == nil {
		return nil, errors.New("api: Config.Callbacks is required")
	}
	if cfg.Auth == nil && !cfg.Dev {
		return nil, errors.New("api: Config.Auth is required unless Dev is set")
	}
	s := &Server{
		callbacks:     cfg.Callbacks,
		auth:          cfg.Auth,
		dev:           cfg.Dev,
		logger:        cfg.Logger,
		clock:         cfg.Clock,
		hostname:      cfg.Hostname,
		ready:         cfg.Ready,
		metrics:       cfg.Metrics,
		ingester:      cfg.Ingester,
		outbox:        cfg.Outbox,
		requeuer:      cfg.Requeuer,
		sender:        cfg.Sender,
		hooks:         cfg.Hooks,
		ingestSecrets: cfg.IngestSecrets,
		domains:       cfg.Domains,
		feed:          cfg.Feed,
		recordingLog:  cfg.RecordingLog,
		recordings:    cfg.Recordings,
	}
	if f := cfg.Forwarding; f != nil {
		if f.Router == nil || f.Node == "" {
			return nil, errors.New("api: Config.Forwarding needs a Router and a Node")
		}
		fw := *f
		if fw.Client == nil {
			fw.Client = defaultForwardClient()
		}
		s.forward = &fw
	}
	if s.logger == nil {
		s.logger = slog.New(slog.DiscardHandler)
	}
	if s.clock == nil {
		s.clock = livehooks.SystemClock{}
	}
	if s.hostname == "" {
		s.hostname = "livehooks"
	}
	if s.ready == nil {
		s.ready = func(context.Context) error { return nil }
	}
	mux := http.NewServeMux()
	for _, rt := range s.routes() {
		if rt.extension && (s.ingester == nil || s.outbox == nil || s.requeuer == nil || s.sender == nil) {
			continue // a server of the management API alone (tests, tools)
		}
		if rt.handler == nil {
			continue // its dependency is not configured
		}
		h := rt.handler
		if rt.auth {
			h = s.authenticate(h)
		}
		mux.Handle(rt.method+" "+rt.pattern, h)
	}
	mux.Handle("/", s.notFoundRoute())
	s.handler = s.withRequestID(s.withRecover(s.withLog(mux)))
	return s, nil
}

func (s *Server) ServeHTTP(w http.ResponseWriter, r *http.Request) { s.handler.ServeHTTP(w, r) }

// newRequestID returns <uuid>-<unix ms>-<hostname>, the Huawei X-request-id form.
func (s *Server) newRequestID() string {
	return uuid.NewString() + "-" + strconv.FormatInt(s.clock.Now().UnixMilli(), 10) + "-" + s.hostname
}

func (s *Server) withRequestID(next http.Handler) http.Handler {
	return http.HandlerFunc(func(w http.ResponseWriter, r *http.Request) {
		w.Header().Set(headerRequestID, s.newRequestID())
		next.ServeHTTP(w, r)
	})
}

// withRecover turns a panic in a handler into a 500 in the Huawei format and a
// log line with the stack: a panic is a bug, but one request must not take the
// process down.
func (s *Server) withRecover(next http.Handler) http.Handler {
	return http.HandlerFunc(func(w http.ResponseWriter, r *http.Request) {
		defer func() {
			if v := recover(); v != nil {
				if v == http.ErrAbortHandler {
					panic(v)
				}
				s.logger.ErrorContext(r.Context(), "panic in handler", "method", r.Method, "path", r.URL.Path, "panic", fmt.Sprint(v), "stack", string(debug.Stack()))
				status, body := huaweiError(errors.New("panic"))
				writeJSON(w, status, body)
			}
		}()
		next.ServeHTTP(w, r)
	})
}

type statusRecorder struct {
	http.ResponseWriter
	status int
}

func (r *statusRecorder) WriteHeader(code int) {
	if r.status == 0 {
		r.status = code
	}
	r.ResponseWriter.WriteHeader(code)
}

func (r *statusRecorder) Write(b []byte) (int, error) {
	if r.status == 0 {
		r.status = http.StatusOK
	}
	return r.ResponseWriter.Write(b)
}

func (r *statusRecorder) Unwrap() http.ResponseWriter { return r.ResponseWriter }

// ReadFrom keeps the copy of a served recording zero-copy (sendfile).
func (r *statusRecorder) ReadFrom(src io.Reader) (int64, error) {
	if r.status == 0 {
		r.status = http.StatusOK
	}
	return io.Copy(r.ResponseWriter, src)
}

// withLog logs one line per request. It logs the path only, never the query
// (ingest hooks carry their secret there) nor bodies or headers.
func (s *Server) withLog(next http.Handler) http.Handler {
	return http.HandlerFunc(func(w http.ResponseWriter, r *http.Request) {
		start := time.Now()
		rec := &statusRecorder{ResponseWriter: w}
		next.ServeHTTP(rec, r)
		if rec.status == 0 {
			rec.status = http.StatusOK
		}
		level := slog.LevelDebug
		if rec.status >= 500 {
			level = slog.LevelWarn
		}
		s.logger.Log(r.Context(), level, "http request", "method", r.Method, "path", r.URL.Path, "status", rec.status,
			"duration_ms", float64(time.Since(start).Microseconds())/1000, "request_id", w.Header().Get(headerRequestID))
	})
}

type ctxKey int

const (
	ctxBody ctxKey = iota
)

// authenticate reads the capped body (AK/SK signatures cover it), verifies the
// credentials and checks that they are bound to the path's project.
func (s *Server) authenticate(next http.Handler) http.Handler {
	return http.HandlerFunc(func(w http.ResponseWriter, r *http.Request) {
		body, err := readBody(w, r)
		if err != nil {
			s.writeError(w, r, err)
			return
		}
		r = r.WithContext(context.WithValue(r.Context(), ctxBody, body))
		if !s.dev {
			p, err := s.auth.Authenticate(r, body)
			if err != nil {
				s.writeError(w, r, err)
				return
			}
			if project := r.PathValue("project_id"); !p.CanAccess(project) {
				s.writeError(w, r, livehooks.Errorf(livehooks.EFORBIDDEN, "credential %s is not bound to project %s", p.Name, clip(project, 64)))
				return
			}
		}
		next.ServeHTTP(w, r)
	})
}

// readBody reads the whole body up to MaxBodyBytes.
func readBody(w http.ResponseWriter, r *http.Request) ([]byte, error) {
	if r.Body == nil || r.Body == http.NoBody {
		return nil, nil
	}
	body, err := io.ReadAll(http.MaxBytesReader(w, r.Body, MaxBodyBytes))
	var tooLarge *http.MaxBytesError
	if errors.As(err, &tooLarge) {
		return nil, livehooks.Errorf(livehooks.ETOOLARGE, "request body exceeds %d bytes", MaxBodyBytes)
	} else if err != nil {
		return nil, livehooks.Errorf(livehooks.EINVALID, "cannot read request body")
	}
	r.Body = io.NopCloser(bytes.NewReader(body))
	return body, nil
}

// requestBody returns the body read by authenticate (or reads it).
func requestBody(w http.ResponseWriter, r *http.Request) ([]byte, error) {
	if b, ok := r.Context().Value(ctxBody).([]byte); ok {
		return b, nil
	}
	return readBody(w, r)
}

// decode parses a JSON object body into v. Unknown fields are ignored (SDKs send
// extra ones); malformed JSON, a non-object or trailing data is EINVALID.
func decode[T any](w http.ResponseWriter, r *http.Request) (T, error) {
	var v T
	body, err := requestBody(w, r)
	if err != nil {
		return v, err
	}
	return decodeJSON[T](body)
}

func decodeJSON[T any](body []byte) (T, error) {
	var v T
	trimmed := bytes.TrimSpace(body)
	if len(trimmed) == 0 {
		return v, livehooks.Errorf(livehooks.EINVALID, "request body is required")
	}
	if trimmed[0] != '{' {
		return v, livehooks.Errorf(livehooks.EINVALID, "request body must be a JSON object")
	}
	dec := json.NewDecoder(bytes.NewReader(trimmed))
	if err := dec.Decode(&v); err != nil {
		return v, livehooks.Errorf(livehooks.EINVALID, "malformed JSON: %s", jsonErrorText(err))
	}
	if _, err := dec.Token(); err != io.EOF {
		return v, livehooks.Errorf(livehooks.EINVALID, "malformed JSON: unexpected data after the object")
	}
	return v, nil
}

// jsonErrorText describes a decoding error without echoing the input (which
// may carry a key).
func jsonErrorText(err error) string {
	var typeErr *json.UnmarshalTypeError
	var syntaxErr *json.SyntaxError
	switch {
	case errors.As(err, &typeErr):
		if typeErr.Field != "" {
			return fmt.Sprintf("field %s must be %s", typeErr.Field, jsonTypeName(typeErr.Type.Kind().String()))
		}
		return "wrong value type"
	case errors.As(err, &syntaxErr):
		return fmt.Sprintf("syntax error at offset %d", syntaxErr.Offset)
	case errors.Is(err, io.ErrUnexpectedEOF), errors.Is(err, io.EOF):
		return "unexpected end of input"
	}
	return "invalid JSON"
}

func jsonTypeName(kind string) string {
	switch kind {
	case "slice", "array":
		return "an array"
	case "string":
		return "a string"
	case "int", "int32", "int64", "uint", "uint32", "uint64", "float64":
		return "a number"
	case "struct", "map":
		return "an object"
	case "bool":
		return "a boolean"
	}
	return "of another type"
}

// writeJSON writes v as JSON with the status.
func writeJSON(w http.ResponseWriter, status int, v any) {
	w.Header().Set("Content-Type", "application/json;charset=UTF-8")
	w.WriteHeader(status)
	enc := json.NewEncoder(w)
	enc.SetEscapeHTML(false)
	_ = enc.Encode(v) // the client went away; nothing to do
}

// clip shortens s for an error message.
func clip(s string, n int) string {
	if len(s) > n {
		s = s[:n] + "…"
	}
	return strings.ToValidUTF8(s, "?")
}
