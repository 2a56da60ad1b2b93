package api

import (
	"encoding/json"
	"net/http"
	"time"

	"github.com/livehooks/livehooks/livefeed"
)

// LiveFeed tells what happens in a project as it happens (a *livefeed.Feed).
type LiveFeed interface {
	Subscribe(project string) (items <-chan livefeed.Item, lost func() bool, cancel func())
	Destinations(project string) []livefeed.Destination
}

// feedHeartbeat keeps idle feed connections (and proxies) open.
const feedHeartbeat = 15 * time.Second

// handleFeed streams the project's events and deliveries as server-sent
// events: "event" (an event was stored; deliveries 0 means no config took
// it), "delivery" (queued, or an attempt and its outcome) and "lost" (the
// watcher fell behind and items were dropped: reload the log).
func (s *Server) handleFeed() http.Handler {
	if s.feed == nil {
		return nil
	}
	return http.HandlerFunc(func(w http.ResponseWriter, r *http.Request) {
		items, lost, cancel := s.feed.Subscribe(r.PathValue("project_id"))
		defer cancel()
		rc := http.NewResponseController(w)
		// The server's read and write timeouts are for requests, not for
		// a feed that lasts as long as its page.
		_ = rc.SetReadDeadline(time.Time{})
		h := w.Header()
		h.Set("Content-Type", "text/event-stream")
		h.Set("Cache-Control", "no-store")
		h.Set("X-Accel-Buffering", "no")
		w.WriteHeader(http.StatusOK)
		write := func(chunk []byte) bool {
			_ = rc.SetWriteDeadline(time.Now().Add(2 * feedHeartbeat))
			if _, err := w.Write(chunk); err != nil {
				return false
			}
			return rc.Flush() == nil
		}
		if !write([]byte("retry: 2000\n: livehooks feed\n\n")) {
			return
		}
		beat := time.NewTicker(feedHeartbeat)
		defer beat.Stop()
		for {
			select {
			case <-r.Context().Done():
				return
			case <-beat.C:
				if !write([]byte(": heartbeat\n\n")) {
					return
				}
			case it, ok := <-items:
				if !ok {
					return // the server is shutting down
				}
				if lost() && !write([]byte("event: lost\ndata: {}\n\n")) {
					return
				}
				name, v := "event", any(it.Event)
				if it.Delivery != nil {
					name, v = "delivery", it.Delivery
				}
				data, err := json.Marshal(v)
				if err != nil || !write([]byte("event: "+name+"\ndata: "+string(data)+"\n\n")) {
					return
				}
			}
		}
	})
}

type destinationsResponse struct {
	Destinations []livefeed.Destination `json:"destinations"`
}

// handleDestinations answers the last hour of the project's destinations:
// attempts per minute by outcome, latency, breaker state.
func (s *Server) handleDestinations() http.Handler {
	if s.feed == nil {
		return nil
	}
	return http.HandlerFunc(func(w http.ResponseWriter, r *http.Request) {
		writeJSON(w, http.StatusOK, destinationsResponse{Destinations: s.feed.Destinations(r.PathValue("project_id"))})
	})
}
