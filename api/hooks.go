package api

import (
	"net/http"

	"github.com/livehooks/livehooks"
)

var errUnauthorizedHook = livehooks.Errorf(livehooks.EUNAUTHORIZED, "missing or wrong ingest secret (?secret= or X-Livehooks-Secret)")

// IngestSecrets checks a media server's ingest secret for a project
// (constant time).
type IngestSecrets func(project, secret string) bool

// handleHook serves /hooks/{source}/{project_id}: media servers cannot sign
// requests, so they present the project's ingest secret, in the query
// (?secret=) or in the X-Livehooks-Secret header.
func (s *Server) handleHook() http.Handler {
	return http.HandlerFunc(func(w http.ResponseWriter, r *http.Request) {
		h, ok := s.hooks[r.PathValue("source")]
		if !ok {
			s.notFoundRoute().ServeHTTP(w, r)
			return
		}
		project := r.PathValue("project_id")
		if err := validProjectID(project); err != nil {
			s.writeError(w, r, err)
			return
		}
		secret := r.Header.Get("X-Livehooks-Secret")
		if secret == "" {
			secret = r.URL.Query().Get("secret")
		}
		if !s.dev && (s.ingestSecrets == nil || secret == "" || !s.ingestSecrets(project, secret)) {
			s.logger.InfoContext(r.Context(), "hook refused: bad ingest secret", "source", r.PathValue("source"), "project_id", project)
			status, body := huaweiError(errUnauthorizedHook)
			writeJSON(w, status, body)
			return
		}
		r.Body = http.MaxBytesReader(w, r.Body, MaxBodyBytes)
		h.ServeHTTP(w, r)
	})
}
