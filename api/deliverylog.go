package api

import (
	"context"
	"net/http"
	"net/url"
	"strconv"
	"strings"
	"time"

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
// one config with callback_id), newest first, a page at a time by keyset.
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
		ds, next, err := s.pageDeliveries(r.Context(), f)
		if err != nil {
			s.writeError(w, r, err)
			return
		}
		resp := deliveryPageResponse{Deliveries: make([]deliveryResponse, 0, len(ds))}
		for _, d := range ds {
			resp.Deliveries = append(resp.Deliveries, newDeliveryResponse(d, false))
		}
		if next > 0 {
			resp.NextBefore = strconv.FormatInt(next, 10)
		}
		writeJSON(w, http.StatusOK, resp)
	})
}

// scanWindow is how many delivery ids one page looks at, at most: a filter
// that matches rarely gives short pages, each as cheap as any other, rather
// than one page that reads the whole log.
var scanWindow int64 = 5000

// pageDeliveries returns one page of the log and the cursor of the next
// (0 on the last page). Every step is an index walk of bounded length,
// whatever the log holds: the time range becomes a range of delivery ids
// (ids grow with creation time) by binary search, and the page looks at the
// scanWindow ids below the newest delivery of the project (or config)
// under its cursor, so that stretches of other projects' ids cost nothing.
func (s *Server) pageDeliveries(ctx context.Context, f livehooks.DeliveryFilter) ([]*livehooks.Delivery, int64, error) {
	all := livehooks.DeliveryFilter{ProjectID: f.ProjectID, ConfigID: f.ConfigID, NoTotal: true, Limit: 1}
	if !f.Until.IsZero() {
		id, err := s.firstDeliveryAt(ctx, all, f.Until)
		if err != nil {
			return nil, 0, err
		}
		if f.BeforeID == 0 || id < f.BeforeID {
			f.BeforeID = id
		}
	}
	if !f.Since.IsZero() {
		id, err := s.firstDeliveryAt(ctx, all, f.Since)
		if err != nil {
			return nil, 0, err
		}
		f.MinID = id
	}
	top, err := s.newestDelivery(ctx, all, f.BeforeID)
	if err != nil || top == nil || top.ID < f.MinID {
		return []*livehooks.Delivery{}, 0, err
	}
	floor := top.ID - scanWindow + 1
	more := floor > max(f.MinID, 1)
	if more {
		f.MinID = floor
	}
	f.BeforeID = top.ID + 1
	ds, _, err := s.outbox.FindDeliveries(ctx, f)
	if err != nil {
		return nil, 0, err
	}
	switch {
	case len(ds) == f.Limit:
		return ds, ds[len(ds)-1].ID, nil
	case more:
		return ds, floor, nil // nothing more in this window; go on below it
	}
	return ds, 0, nil
}

// newestDelivery returns the delivery of f (project, config) with the
// largest id below before (0: no bound), nil when there is none.
func (s *Server) newestDelivery(ctx context.Context, f livehooks.DeliveryFilter, before int64) (*livehooks.Delivery, error) {
	f.BeforeID = before
	ds, _, err := s.outbox.FindDeliveries(ctx, f)
	if err != nil || len(ds) == 0 {
		return nil, err
	}
	return ds[0], nil
}

// firstDeliveryAt returns the smallest id of the deliveries of f (project,
// config) created at or after t, or one above the largest id when none is:
// a binary search over ids with one index seek per step.
func (s *Server) firstDeliveryAt(ctx context.Context, f livehooks.DeliveryFilter, t time.Time) (int64, error) {
	last, err := s.newestDelivery(ctx, f, 0)
	if err != nil || last == nil {
		return 1, err
	}
	if last.CreatedAt.Before(t) {
		return last.ID + 1, nil
	}
	// Invariant: the delivery at hi is created at or after t; every
	// delivery below lo is created before t.
	lo, hi := int64(1), last.ID
	for lo < hi {
		mid := lo + (hi-lo)/2
		d, err := s.newestDelivery(ctx, f, mid+1)
		if err != nil {
			return 0, err
		}
		switch {
		case d == nil || d.ID < lo:
			lo = mid + 1 // no delivery in [lo, mid]
		case d.CreatedAt.Before(t):
			lo = d.ID + 1
		default:
			hi = d.ID
		}
	}
	return hi, nil
}
