package api

import (
	"net/http"
	"net/url"
	"strconv"
	"strings"

	"github.com/livehooks/livehooks"
)

// deliveryFilter reads the delivery log's filters (status, event_type,
// stream, since, until), its keyset cursor (before) and limit.
func deliveryFilter(q url.Values) (livehooks.DeliveryFilter, error) {
	f := livehooks.DeliveryFilter{
		Status: livehooks.DeliveryStatus(q.Get("status")), EventType: livehooks.EventType(q.Get("event_type")), Stream: q.Get("stream"),
	}
	if f.Status != "" && !f.Status.Valid() {
		return f, livehooks.Errorf(livehooks.EINVALID, "status must be pending, succeeded, failed or dead")
	}
	if f.EventType != "" && !f.EventType.Valid() {
		return f, livehooks.Errorf(livehooks.EINVALID, "event_type is not a recording event type")
	}
	var err error
	if f.Since, err = timeParam(q.Get("since"), "since"); err != nil {
		return f, err
	}
	if f.Until, err = timeParam(q.Get("until"), "until"); err != nil {
		return f, err
	}
	if raw := q.Get("before"); raw != "" {
		if f.BeforeID, err = strconv.ParseInt(raw, 10, 64); err != nil || f.BeforeID <= 0 {
			return f, livehooks.Errorf(livehooks.EINVALID, "before must be a delivery_id")
		}
	}
	f.Limit, err = intParam(q.Get("limit"), "limit", livehooks.DefaultLimit, 1, livehooks.MaxListLimit)
	return f, err
}

type deliveryPageResponse struct {
	Deliveries []deliveryResponse `json:"deliveries"`
	// NextBefore is the cursor of the next (older) page, absent on the last.
	NextBefore string `json:"next_before,omitempty"`
}

// handleProjectDeliveries lists the delivery log of a whole project (or of
// one config with callback_id), newest first, a page at a time by keyset:
// each page is an index walk from its cursor, and nothing is counted, so a
// page costs the same at the top of a million deliveries as deep inside.
func (s *Server) handleProjectDeliveries() http.Handler {
	return http.HandlerFunc(func(w http.ResponseWriter, r *http.Request) {
		q := r.URL.Query()
		f, err := deliveryFilter(q)
		if err != nil {
			s.writeError(w, r, err)
			return
		}
		f.ProjectID, f.NoTotal = r.PathValue("project_id"), true
		if id := q.Get("callback_id"); id != "" {
			if len(id) != 32 || strings.Trim(id, "0123456789abcdef") != "" {
				s.writeError(w, r, livehooks.Errorf(livehooks.EINVALID, "callback_id must be 32 lowercase hex digits"))
				return
			}
			f.ConfigID = id
		}
		ds, _, err := s.outbox.FindDeliveries(r.Context(), f)
		if err != nil {
			s.writeError(w, r, err)
			return
		}
		resp := deliveryPageResponse{Deliveries: make([]deliveryResponse, 0, len(ds))}
		for _, d := range ds {
			resp.Deliveries = append(resp.Deliveries, newDeliveryResponse(d, false))
		}
		if len(ds) == f.Limit {
			resp.NextBefore = strconv.FormatInt(ds[len(ds)-1].ID, 10)
		}
		writeJSON(w, http.StatusOK, resp)
	})
}
