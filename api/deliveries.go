package api

import (
	"context"
	"encoding/json"
	"net/http"
	"strconv"
	"sync"
	"time"

	"github.com/livehooks/livehooks"
)

// Requeuer adds new deliveries copying finished ones (manual retry, replay).
type Requeuer interface {
	Requeue(ctx context.Context, ds []*livehooks.Delivery) ([]*livehooks.Delivery, error)
}

type attemptResponse struct {
	N          int     `json:"attempt"`
	Time       string  `json:"time"`
	StatusCode int     `json:"status_code,omitempty"`
	LatencyMS  float64 `json:"latency_ms"`
	Response   string  `json:"response_body,omitempty"`
	Error      string  `json:"error,omitempty"`
	// Request is what the attempt sent (livehooks extension).
	Request *sentRequest `json:"request,omitempty"`
}

type deliveryResponse struct {
	ID              string            `json:"delivery_id"`
	WebhookID       string            `json:"webhook_id"`
	CallbackID      string            `json:"callback_id"`
	EventID         string            `json:"event_id"`
	EventType       string            `json:"event_type"`
	Stream          string            `json:"stream"`
	Status          string            `json:"status"`
	Attempts        int               `json:"attempts"`
	NextAttemptTime string            `json:"next_attempt_time,omitempty"`
	CreateTime      string            `json:"create_time"`
	UpdateTime      string            `json:"update_time"`
	LastStatusCode  int               `json:"last_status_code,omitempty"`
	LastError       string            `json:"last_error,omitempty"`
	LatencyMS       int64             `json:"latency_ms,omitempty"`
	AttemptList     []attemptResponse `json:"attempt_list,omitempty"`
	Event           json.RawMessage   `json:"event,omitempty"`
}

func newDeliveryResponse(d *livehooks.Delivery, detail bool) deliveryResponse {
	r := deliveryResponse{
		ID: strconv.FormatInt(d.ID, 10), WebhookID: d.WebhookID, CallbackID: d.ConfigID, EventID: d.EventID,
		EventType: string(d.EventType), Stream: d.Stream, Status: string(d.Status), Attempts: d.Attempts,
		CreateTime: livehooks.FormatTime(d.CreatedAt), UpdateTime: livehooks.FormatTime(d.UpdatedAt),
		LastStatusCode: d.LastStatus, LastError: d.LastError, LatencyMS: d.LatencyMS,
	}
	if d.Status == livehooks.DeliveryPending && !d.NextAttempt.IsZero() {
		r.NextAttemptTime = livehooks.FormatTime(d.NextAttempt)
	}
	if detail {
		r.AttemptList = make([]attemptResponse, 0, len(d.AttemptsList))
		for _, a := range d.AttemptsList {
			r.AttemptList = append(r.AttemptList, attemptResponse{
				N: a.N, Time: livehooks.FormatTime(a.At), StatusCode: a.StatusCode,
				LatencyMS: float64(a.Latency.Microseconds()) / 1000, Response: a.Response, Error: a.Error,
			})
		}
		if d.Event != nil {
			r.Event = d.Event.Message(nil)
		}
	}
	return r
}

type deliveryListResponse struct {
	Total      int                `json:"total"`
	Deliveries []deliveryResponse `json:"deliveries"`
}

func timeParam(raw, name string) (time.Time, error) {
	if raw == "" {
		return time.Time{}, nil
	}
	t, err := livehooks.ParseTime(raw)
	if err != nil {
		return time.Time{}, livehooks.Errorf(livehooks.EINVALID, "%s must be yyyy-mm-ddThh:mm:ssZ", name)
	}
	return t, nil
}

// findConfig loads the {id} config of the path's project.
func (s *Server) findConfig(r *http.Request) (*livehooks.CallbackConfig, error) {
	id, err := configID(r)
	if err != nil {
		return nil, err
	}
	return s.callbacks.FindCallbackByID(r.Context(), r.PathValue("project_id"), id)
}

func (s *Server) handleListDeliveries() http.Handler {
	return http.HandlerFunc(func(w http.ResponseWriter, r *http.Request) {
		c, err := s.findConfig(r)
		if err != nil {
			s.writeError(w, r, err)
			return
		}
		f, err := deliveryFilter(r.URL.Query())
		if err == nil {
			f.Offset, err = intParam(r.URL.Query().Get("offset"), "offset", 0, 0, 1_000_000)
		}
		if err != nil {
			s.writeError(w, r, err)
			return
		}
		f.ProjectID, f.ConfigID = c.ProjectID, c.ID
		ds, total, err := s.outbox.FindDeliveries(r.Context(), f)
		if err != nil {
			s.writeError(w, r, err)
			return
		}
		resp := deliveryListResponse{Total: total, Deliveries: make([]deliveryResponse, 0, len(ds))}
		for _, d := range ds {
			resp.Deliveries = append(resp.Deliveries, newDeliveryResponse(d, false))
		}
		writeJSON(w, http.StatusOK, resp)
	})
}

// findDelivery loads the {delivery_id} of the path's project.
func (s *Server) findDelivery(r *http.Request) (*livehooks.Delivery, error) {
	raw := r.PathValue("delivery_id")
	id, err := strconv.ParseInt(raw, 10, 64)
	if err != nil || id <= 0 {
		return nil, livehooks.Errorf(livehooks.ENOTFOUND, "delivery %s does not exist", clip(raw, 64))
	}
	return s.outbox.FindDelivery(r.Context(), r.PathValue("project_id"), id)
}

func (s *Server) handleShowDelivery() http.Handler {
	return http.HandlerFunc(func(w http.ResponseWriter, r *http.Request) {
		d, err := s.findDelivery(r)
		if err != nil {
			s.writeError(w, r, err)
			return
		}
		resp := newDeliveryResponse(d, true)
		s.addRequests(r, d, resp.AttemptList)
		writeJSON(w, http.StatusOK, resp)
	})
}

type queuedResponse struct {
	Queued int `json:"queued"`
	// Truncated is set by replay when the range held more events than one
	// call replays; call again with since set to NextSince.
	Truncated bool   `json:"truncated,omitempty"`
	NextSince string `json:"next_since,omitempty"`
}

func (s *Server) handleRetryDelivery() http.Handler {
	return http.HandlerFunc(func(w http.ResponseWriter, r *http.Request) {
		d, err := s.findDelivery(r)
		if err != nil {
			s.writeError(w, r, err)
			return
		}
		if d.Status == livehooks.DeliveryPending {
			s.writeError(w, r, livehooks.Errorf(livehooks.EINVALID, "delivery %d is still pending", d.ID))
			return
		}
		if _, err := s.callbacks.FindCallbackByID(r.Context(), d.ProjectID, d.ConfigID); err != nil {
			s.writeError(w, r, err)
			return
		}
		if _, err := s.requeuer.Requeue(r.Context(), []*livehooks.Delivery{d}); err != nil {
			s.writeError(w, r, err)
			return
		}
		s.logger.InfoContext(r.Context(), "delivery retried by request", "project_id", d.ProjectID, "delivery_id", d.ID)
		writeJSON(w, http.StatusAccepted, queuedResponse{Queued: 1})
	})
}

// MaxReplay bounds the events one replay call re-sends.
const MaxReplay = 10000

func (s *Server) handleReplay() http.Handler {
	return http.HandlerFunc(func(w http.ResponseWriter, r *http.Request) {
		c, err := s.findConfig(r)
		if err != nil {
			s.writeError(w, r, err)
			return
		}
		q := r.URL.Query()
		since, err := timeParam(q.Get("since"), "since")
		if err != nil {
			s.writeError(w, r, err)
			return
		}
		until, err := timeParam(q.Get("until"), "until")
		if err != nil {
			s.writeError(w, r, err)
			return
		}
		if since.IsZero() {
			s.writeError(w, r, livehooks.Errorf(livehooks.EINVALID, "since is required"))
			return
		}
		if until.IsZero() {
			until = s.clock.Now().Add(time.Second)
		}
		if !since.Before(until) {
			s.writeError(w, r, livehooks.Errorf(livehooks.EINVALID, "since must be before until"))
			return
		}
		if c.NotifyCallbackURL == "" {
			s.writeError(w, r, livehooks.Errorf(livehooks.EINVALID, "the config has no notify_callback_url"))
			return
		}
		events, err := s.outbox.FindEvents(r.Context(), c, since, until, MaxReplay+1)
		if err != nil {
			s.writeError(w, r, err)
			return
		}
		resp := queuedResponse{}
		if len(events) > MaxReplay {
			events = events[:MaxReplay]
			resp.Truncated = true
			// Ingest times have microseconds, the parameter seconds: start the
			// next call at the last event's second (its events may be sent
			// twice, which webhook-id lets receivers ignore; none is skipped).
			resp.NextSince = livehooks.FormatTime(events[len(events)-1].IngestedAt)
		}
		// A `*` config gets only the events of apps without their own config.
		exact := map[string]bool{}
		var ds []*livehooks.Delivery
		for _, e := range events {
			if !c.Subscribes(e.Type) {
				continue
			}
			if c.App == "*" {
				own, seen := exact[e.App]
				if !seen {
					m, err := s.callbacks.MatchCallback(r.Context(), c.ProjectID, e.PublishDomain, e.App)
					own = err == nil && m.ID != c.ID
					exact[e.App] = own
				}
				if own {
					continue
				}
			}
			ds = append(ds, &livehooks.Delivery{
				WebhookID: livehooks.WebhookID(e.ID, c.ID), ProjectID: c.ProjectID, ConfigID: c.ID,
				Lane: livehooks.LaneKey(c.ID, e.Stream), EventID: e.ID, EventType: e.Type, Stream: e.Stream, Event: e,
			})
		}
		for start := 0; start < len(ds); start += 500 {
			if _, err := s.requeuer.Requeue(r.Context(), ds[start:min(start+500, len(ds))]); err != nil {
				s.writeError(w, r, err)
				return
			}
			resp.Queued += min(500, len(ds)-start)
		}
		s.logger.InfoContext(r.Context(), "events replayed", "project_id", c.ProjectID, "config_id", c.ID, "queued", resp.Queued)
		writeJSON(w, http.StatusAccepted, resp)
	})
}

type testResponse struct {
	WebhookID    string          `json:"webhook_id"`
	StatusCode   int             `json:"status_code"`
	LatencyMS    float64         `json:"latency_ms"`
	ResponseBody string          `json:"response_body"`
	Error        string          `json:"error,omitempty"`
	RequestBody  json.RawMessage `json:"request_body"`
}

// MaxTestSends is how many test-sends of one project may be in flight at
// once; more are answered 429. A test-send holds a request to a receiver the
// project chose for up to the request timeout.
const MaxTestSends = 4

// handleTest sends a sample event to the config's URL now, signed like a real
// callback, and answers with what the receiver said. Nothing is stored.
func (s *Server) handleTest() http.Handler {
	return http.HandlerFunc(func(w http.ResponseWriter, r *http.Request) {
		release, ok := s.testSends.acquire(r.PathValue("project_id"))
		if !ok {
			s.writeError(w, r, livehooks.Errorf(livehooks.ETOOMANY, "%d test-sends of this project are in flight; retry when one has finished", MaxTestSends))
			return
		}
		defer release()
		c, err := s.findConfig(r)
		if err != nil {
			s.writeError(w, r, err)
			return
		}
		if c.NotifyCallbackURL == "" {
			s.writeError(w, r, livehooks.Errorf(livehooks.EINVALID, "the config has no notify_callback_url"))
			return
		}
		typ := livehooks.EventType(r.URL.Query().Get("event_type"))
		if typ == "" {
			typ = livehooks.RecordFileComplete
		} else if !typ.Valid() {
			s.writeError(w, r, livehooks.Errorf(livehooks.EINVALID, "event_type is not a recording event type"))
			return
		}
		e := sampleEvent(c, typ, s.clock.Now())
		webhookID := livehooks.WebhookID(e.ID, c.ID)
		res := s.sender.Send(r.Context(), livehooks.SendRequest{
			URL: c.NotifyCallbackURL, Key: c.Key, SignType: c.SignType, WebhookID: webhookID, Event: e, N: 1,
		})
		writeJSON(w, http.StatusOK, testResponse{
			WebhookID: webhookID, StatusCode: res.Attempt.StatusCode, LatencyMS: float64(res.Attempt.Latency.Microseconds()) / 1000,
			ResponseBody: res.Attempt.Response, Error: res.Attempt.Error, RequestBody: res.Body,
		})
	})
}

// sampleEvent is the event a test-send carries: plausible values, marked as a
// test by its stream and ids.
func sampleEvent(c *livehooks.CallbackConfig, typ livehooks.EventType, now time.Time) *livehooks.Event {
	app := c.App
	if app == "*" {
		app = "live"
	}
	now = now.UTC().Truncate(time.Second)
	e := &livehooks.Event{
		ID: newID(), ProjectID: c.ProjectID, Type: typ, OccurredAt: now,
		PublishDomain: c.PublishDomain, App: app, Stream: "livehooks-test",
		TaskID: "test-" + newID()[:24], RecordFormat: livehooks.FormatFLV,
	}
	if typ.HasJob() {
		e.JobID = "test-" + newID()[:24]
	}
	switch typ {
	case livehooks.RecordFileComplete:
		e.DownloadURL = "https://" + c.PublishDomain + "/" + app + "/livehooks-test/test.flv"
		e.AssetID = newID()
		e.FileSize, e.RecordDuration, e.Width, e.Height = 1048576, 60, 1280, 720
		e.StartTime, e.EndTime = now.Add(-time.Minute), now
	case livehooks.RecordFailed:
		e.ErrorMessage = "this is a test of RECORD_FAILED"
	}
	return e
}

// inFlight counts requests per project.
type inFlight struct {
	mu sync.Mutex
	n  map[string]int
}

// acquire takes one of the project's MaxTestSends slots, if one is free.
func (f *inFlight) acquire(project string) (release func(), ok bool) {
	f.mu.Lock()
	defer f.mu.Unlock()
	if f.n[project] >= MaxTestSends {
		return nil, false
	}
	if f.n == nil {
		f.n = map[string]int{}
	}
	f.n[project]++
	return func() {
		f.mu.Lock()
		defer f.mu.Unlock()
		if f.n[project]--; f.n[project] == 0 {
			delete(f.n, project)
		}
	}, true
}
