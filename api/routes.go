package api

import (
	_ "embed"
	"net/http"
)

//go:embed openapi.yaml
var openapiYAML []byte

// route is one entry of the router. The OpenAPI test reads this table, so a
// route added here without documentation (or the reverse) fails the build.
type route struct {
	method  string
	pattern string
	auth    bool // under /v1/: credentials required, bound to {project_id}
	handler http.Handler
	// extension marks livehooks' own routes beyond the Huawei API.
	extension bool
}

func (s *Server) routes() []route {
	return []route{
		{"POST", "/v1/{project_id}/record/callbacks", true, s.handleCreate(), false},
		{"GET", "/v1/{project_id}/record/callbacks", true, s.handleList(), false},
		{"GET", "/v1/{project_id}/record/callbacks/{id}", true, s.handleShow(), false},
		{"PUT", "/v1/{project_id}/record/callbacks/{id}", true, s.handleUpdate(), false},
		{"DELETE", "/v1/{project_id}/record/callbacks/{id}", true, s.handleDelete(), false},
		// The seeds' examples write the singular form; accept it as an alias.
		{"GET", "/v1/{project_id}/record/callback/{id}", true, s.handleShow(), false},
		{"PUT", "/v1/{project_id}/record/callback/{id}", true, s.handleUpdate(), false},
		{"DELETE", "/v1/{project_id}/record/callback/{id}", true, s.handleDelete(), false},

		// livehooks extensions.
		{"POST", "/v1/{project_id}/record/events", true, s.handleIngest(), true},
		{"GET", "/v1/{project_id}/record/callbacks/{id}/deliveries", true, s.handleListDeliveries(), true},
		{"POST", "/v1/{project_id}/record/callbacks/{id}/replay", true, s.handleReplay(), true},
		{"POST", "/v1/{project_id}/record/callbacks/{id}/test", true, s.handleTest(), true},
		{"GET", "/v1/{project_id}/record/deliveries", true, s.handleProjectDeliveries(), true},
		{"GET", "/v1/{project_id}/record/deliveries/{delivery_id}", true, s.handleShowDelivery(), true},
		{"POST", "/v1/{project_id}/record/deliveries/{delivery_id}/retry", true, s.handleRetryDelivery(), true},

		// What happens, live: the console's feed and destination charts
		// (livehooks extension; needs Config.Feed).
		{"GET", "/v1/{project_id}/record/feed", true, s.handleFeed(), false},
		{"GET", "/v1/{project_id}/record/destinations", true, s.handleDestinations(), false},

		// Per-domain recording settings (livehooks extension; needs Config.Domains).
		{"GET", "/v1/{project_id}/record/domains", true, s.ifDomains(s.handleListDomains()), false},
		{"GET", "/v1/{project_id}/record/domains/{publish_domain}", true, s.ifDomains(s.handleShowDomain()), false},
		{"PUT", "/v1/{project_id}/record/domains/{publish_domain}", true, s.ifDomains(s.handlePutDomain()), false},
		{"DELETE", "/v1/{project_id}/record/domains/{publish_domain}", true, s.ifDomains(s.handleDeleteDomain()), false},
		// What is being recorded and was recorded (livehooks extension; needs
		// Config.RecordingLog).
		{"GET", "/v1/{project_id}/record/domains/{publish_domain}/streams", true, s.handleListStreams(), false},
		{"GET", "/v1/{project_id}/record/domains/{publish_domain}/tasks", true, s.handleListTasks(), false},

		// Recordings livehooks serves itself, authorized by the link's signature
		// (needs Config.Recordings).
		{"GET", "/recordings/{project_id}/{path...}", false, s.handleRecording(), false},

		// Media-server hooks, authenticated by the project's ingest secret.
		{"POST", "/hooks/{source}/{project_id}", false, s.handleHook(), false},

		{"GET", "/healthz", false, s.handleHealthz(), false},
		{"GET", "/readyz", false, s.handleReadyz(), false},
		{"GET", "/metrics", false, s.handleMetrics(), false},
		{"GET", "/openapi.yaml", false, s.handleOpenAPI(), false},
	}
}

func (s *Server) handleHealthz() http.Handler {
	return http.HandlerFunc(func(w http.ResponseWriter, r *http.Request) {
		writeJSON(w, http.StatusOK, map[string]string{"status": "ok"})
	})
}

func (s *Server) handleReadyz() http.Handler {
	return http.HandlerFunc(func(w http.ResponseWriter, r *http.Request) {
		if err := s.ready(r.Context()); err != nil {
			s.logger.WarnContext(r.Context(), "not ready", "error", err)
			writeJSON(w, http.StatusServiceUnavailable, map[string]string{"status": "unavailable"})
			return
		}
		writeJSON(w, http.StatusOK, map[string]string{"status": "ready"})
	})
}

func (s *Server) handleMetrics() http.Handler {
	return http.HandlerFunc(func(w http.ResponseWriter, r *http.Request) {
		if s.metrics == nil {
			s.notFoundRoute().ServeHTTP(w, r)
			return
		}
		s.metrics.ServeHTTP(w, r)
	})
}

func (s *Server) handleOpenAPI() http.Handler {
	return http.HandlerFunc(func(w http.ResponseWriter, r *http.Request) {
		w.Header().Set("Content-Type", "application/yaml")
		_, _ = w.Write(openapiYAML)
	})
}

// handleRecording answers a download link (GET and HEAD, as the mux routes
// HEAD to GET patterns).
func (s *Server) handleRecording() http.Handler {
	if s.recordings == nil {
		return nil
	}
	return http.HandlerFunc(func(w http.ResponseWriter, r *http.Request) {
		if err := s.recordings.ServeRecording(w, r, r.PathValue("project_id"), "/"+r.PathValue("path")); err != nil {
			s.writeError(w, r, err)
		}
	})
}
