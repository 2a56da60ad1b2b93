package api

import (
	"net/http"
	"sort"
	"time"

	"github.com/livehooks/livehooks"
)

type streamResponse struct {
	App           string `json:"app"`
	Stream        string `json:"stream"`
	State         string `json:"state"` // live or paused
	TaskID        string `json:"task_id"`
	JobID         string `json:"job_id,omitempty"`
	FileSeq       int    `json:"file_seq"`
	PublishedAt   string `json:"published_at,omitempty"`
	FileStartedAt string `json:"file_started_at,omitempty"`
	OverAt        string `json:"over_at,omitempty"` // when a paused task ends
}

// maxStreams bounds the streams one call lists.
const maxStreams = 1000

func optTime(t time.Time) string {
	if t.IsZero() {
		return ""
	}
	return livehooks.FormatTime(t)
}

// domainParam reads {publish_domain}; a name that is no DNS name has nothing.
func domainParam(r *http.Request) (string, error) {
	d := r.PathValue("publish_domain")
	if !livehooks.IsDomainName(d) {
		return "", livehooks.Errorf(livehooks.EINVALID, "publish_domain must be a valid DNS name")
	}
	return d, nil
}

// handleListStreams lists the domain's streams being recorded now.
func (s *Server) handleListStreams() http.Handler {
	if s.recordingLog == nil {
		return nil
	}
	return http.HandlerFunc(func(w http.ResponseWriter, r *http.Request) {
		domain, err := domainParam(r)
		if err != nil {
			s.writeError(w, r, err)
			return
		}
		list, err := s.recordingLog.FindStreams(r.Context(), r.PathValue("project_id"), domain, maxStreams)
		if err != nil {
			s.writeError(w, r, err)
			return
		}
		resp := struct {
			Streams []streamResponse `json:"streams"`
		}{Streams: make([]streamResponse, 0, len(list))}
		for _, st := range list {
			resp.Streams = append(resp.Streams, streamResponse{
				App: st.App, Stream: st.Stream, State: st.State, TaskID: st.TaskID, JobID: st.JobID, FileSeq: st.FileSeq,
				PublishedAt: optTime(st.PublishedAt), FileStartedAt: optTime(st.FileStartedAt), OverAt: optTime(st.OverAt),
			})
		}
		writeJSON(w, http.StatusOK, resp)
	})
}

type fileResponse struct {
	JobID          string `json:"job_id"`
	RecordFormat   string `json:"record_format,omitempty"`
	DownloadURL    string `json:"download_url,omitempty"`
	FileSize       int64  `json:"file_size"`
	RecordDuration int64  `json:"record_duration"`
	Width          int    `json:"width,omitempty"`
	Height         int    `json:"height,omitempty"`
	StartTime      string `json:"start_time,omitempty"`
	EndTime        string `json:"end_time,omitempty"`
}

type taskResponse struct {
	TaskID       string         `json:"task_id"`
	App          string         `json:"app"`
	Stream       string         `json:"stream"`
	State        string         `json:"state"` // recording, over or failed
	StartTime    string         `json:"start_time"`
	EndTime      string         `json:"end_time,omitempty"`
	ErrorMessage string         `json:"error_message,omitempty"`
	Files        []fileResponse `json:"files"`
	Events       []string       `json:"events"` // the task's event types seen, oldest first
	last         time.Time
}

// taskEvents is how many of the domain's newest events a tasks call reads.
const taskEvents = 2000

// handleListTasks lists the domain's recent recording tasks with their
// files, built from the newest stored events (so within --retention).
func (s *Server) handleListTasks() http.Handler {
	if s.recordingLog == nil {
		return nil
	}
	return http.HandlerFunc(func(w http.ResponseWriter, r *http.Request) {
		domain, err := domainParam(r)
		if err != nil {
			s.writeError(w, r, err)
			return
		}
		limit, err := intParam(r.URL.Query().Get("limit"), "limit", 20, 1, 100)
		if err != nil {
			s.writeError(w, r, err)
			return
		}
		events, err := s.recordingLog.FindRecentEvents(r.Context(), r.PathValue("project_id"), domain, time.Time{}, taskEvents)
		if err != nil {
			s.writeError(w, r, err)
			return
		}
		tasks := map[string]*taskResponse{}
		// Oldest first, so each task reads in the order it happened.
		for i := len(events) - 1; i >= 0; i-- {
			e := events[i]
			if e.TaskID == "" {
				continue
			}
			t := tasks[e.TaskID]
			if t == nil {
				t = &taskResponse{TaskID: e.TaskID, App: e.App, Stream: e.Stream, State: "recording",
					StartTime: livehooks.FormatTime(e.OccurredAt), Files: []fileResponse{}}
				tasks[e.TaskID] = t
			}
			t.last = e.IngestedAt
			t.Events = append(t.Events, string(e.Type))
			switch e.Type {
			case livehooks.RecordFileComplete:
				t.Files = append(t.Files, fileResponse{
					JobID: e.JobID, RecordFormat: e.RecordFormat, DownloadURL: e.DownloadURL, FileSize: e.FileSize,
					RecordDuration: e.RecordDuration, Width: e.Width, Height: e.Height,
					StartTime: optTime(e.StartTime), EndTime: optTime(e.EndTime),
				})
			case livehooks.RecordOver:
				t.State, t.EndTime = "over", livehooks.FormatTime(e.OccurredAt)
			case livehooks.RecordFailed:
				t.State, t.ErrorMessage = "failed", e.ErrorMessage
			}
		}
		list := make([]*taskResponse, 0, len(tasks))
		for _, t := range tasks {
			list = append(list, t)
		}
		sort.Slice(list, func(i, j int) bool {
			if !list[i].last.Equal(list[j].last) {
				return list[i].last.After(list[j].last)
			}
			return list[i].TaskID < list[j].TaskID
		})
		if len(list) > limit {
			list = list[:limit]
		}
		writeJSON(w, http.StatusOK, struct {
			Tasks []*taskResponse `json:"tasks"`
		}{list})
	})
}
