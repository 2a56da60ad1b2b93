package api

import (
	"bytes"
	"encoding/json"
	"net/http"
	"strconv"
	"time"

	"github.com/livehooks/livehooks"
)

// eventRequest is one recording event posted to the ingest API. Unknown fields
// are ignored.
type eventRequest struct {
	EventType      string `json:"event_type"`
	PublishDomain  string `json:"publish_domain"`
	App            string `json:"app"`
	Stream         string `json:"stream"`
	TaskID         string `json:"task_id"`
	JobID          string `json:"job_id"`
	RecordFormat   string `json:"record_format"`
	DownloadURL    string `json:"download_url"`
	AssetID        string `json:"asset_id"`
	FileSize       int64  `json:"file_size"`
	RecordDuration int64  `json:"record_duration"`
	StartTime      string `json:"start_time"`
	EndTime        string `json:"end_time"`
	Width          int    `json:"width"`
	Height         int    `json:"height"`
	ErrorMessage   string `json:"error_message"`
	PlayURL        string `json:"play_url"`
	// OccurredAt is when the event happened; ingest time when absent.
	OccurredAt string `json:"occurred_at"`
}

type ingestedEvent struct {
	EventID string `json:"event_id"`
	TaskID  string `json:"task_id"`
	JobID   string `json:"job_id,omitempty"`
}

type ingestResponse struct {
	Events []ingestedEvent `json:"events"`
}

func (r *eventRequest) event(project string) (*livehooks.Event, error) {
	e := &livehooks.Event{
		ProjectID: project, Type: livehooks.EventType(r.EventType),
		PublishDomain: r.PublishDomain, App: r.App, Stream: r.Stream, TaskID: r.TaskID, JobID: r.JobID,
		RecordFormat: r.RecordFormat, DownloadURL: r.DownloadURL, AssetID: r.AssetID,
		FileSize: r.FileSize, RecordDuration: r.RecordDuration, Width: r.Width, Height: r.Height,
		ErrorMessage: r.ErrorMessage, PlayURL: r.PlayURL,
	}
	for _, f := range []struct {
		name string
		raw  string
		dst  *time.Time
	}{{"start_time", r.StartTime, &e.StartTime}, {"end_time", r.EndTime, &e.EndTime}, {"occurred_at", r.OccurredAt, &e.OccurredAt}} {
		if f.raw == "" {
			continue
		}
		t, err := livehooks.ParseTime(f.raw)
		if err != nil {
			return nil, livehooks.Errorf(livehooks.EINVALID, "%s must be yyyy-mm-ddThh:mm:ssZ", f.name)
		}
		*f.dst = t
	}
	return e, e.Validate()
}

// decodeEvents accepts one event object or an array of them.
func decodeEvents(body []byte) ([]eventRequest, error) {
	trimmed := bytes.TrimSpace(body)
	if len(trimmed) > 0 && trimmed[0] == '[' {
		var reqs []eventRequest
		if err := json.Unmarshal(trimmed, &reqs); err != nil {
			return nil, livehooks.Errorf(livehooks.EINVALID, "malformed JSON: %s", jsonErrorText(err))
		}
		if len(reqs) == 0 {
			return nil, livehooks.Errorf(livehooks.EINVALID, "the event array is empty")
		}
		if len(reqs) > livehooks.MaxEventsPerBatch {
			return nil, livehooks.Errorf(livehooks.EINVALID, "at most %d events per request", livehooks.MaxEventsPerBatch)
		}
		return reqs, nil
	}
	req, err := decodeJSON[eventRequest](body)
	if err != nil {
		return nil, err
	}
	return []eventRequest{req}, nil
}

// handleIngest acknowledges events only once they and their deliveries are
// committed: a 2xx means they survive a crash.
func (s *Server) handleIngest() http.Handler {
	return http.HandlerFunc(func(w http.ResponseWriter, r *http.Request) {
		project := r.PathValue("project_id")
		if err := validProjectID(project); err != nil {
			s.writeError(w, r, err)
			return
		}
		body, err := requestBody(w, r)
		if err != nil {
			s.writeError(w, r, err)
			return
		}
		reqs, err := decodeEvents(body)
		if err != nil {
			s.writeError(w, r, err)
			return
		}
		events := make([]*livehooks.Event, len(reqs))
		for i := range reqs {
			e, err := reqs[i].event(project)
			if err != nil {
				if len(reqs) > 1 {
					err = livehooks.Errorf(livehooks.EINVALID, "events[%s]: %s", strconv.Itoa(i), livehooks.ErrorMessage(err))
				}
				s.writeError(w, r, err)
				return
			}
			events[i] = e
		}
		if s.forward != nil && r.Header.Get(HeaderForwardedBy) == "" {
			if node, url := s.forward.Router.IngestHome(s.forward.Node, events); url != "" && s.forwardIngest(w, r, body, node, url) {
				return
			}
		}
		if err := s.ingester.Ingest(r.Context(), events); err != nil {
			s.writeError(w, r, err)
			return
		}
		resp := ingestResponse{Events: make([]ingestedEvent, len(events))}
		for i, e := range events {
			resp.Events[i] = ingestedEvent{EventID: e.ID, TaskID: e.TaskID, JobID: e.JobID}
		}
		writeJSON(w, http.StatusAccepted, resp)
	})
}
