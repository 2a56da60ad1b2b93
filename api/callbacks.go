package api

import (
	"net/http"
	"strconv"
	"strings"

	"github.com/google/uuid"
	"github.com/livehooks/livehooks"
)

// callbackRequest is the body of Create and Update. Pointers tell an absent
// field from an empty one; JSON null counts as absent.
type callbackRequest struct {
	PublishDomain           *string   `json:"publish_domain"`
	App                     *string   `json:"app"`
	NotifyCallbackURL       *string   `json:"notify_callback_url"`
	NotifyEventSubscription *[]string `json:"notify_event_subscription"`
	SignType                *string   `json:"sign_type"`
	OnDemandCallbackURL     *string   `json:"on_demand_callback_url"`
	Key                     *string   `json:"key"`
}

// callbackResponse is a config as the API shows it: never with its key.
type callbackResponse struct {
	ID                      string                `json:"id"`
	PublishDomain           string                `json:"publish_domain"`
	App                     string                `json:"app"`
	NotifyCallbackURL       string                `json:"notify_callback_url,omitempty"`
	NotifyEventSubscription []livehooks.EventType `json:"notify_event_subscription"`
	SignType                string                `json:"sign_type"`
	OnDemandCallbackURL     string                `json:"on_demand_callback_url,omitempty"`
	CreateTime              string                `json:"create_time"`
	UpdateTime              string                `json:"update_time"`
	// DisabledReason is a livehooks extension: set when a receiver answered
	// 410 Gone and deliveries stopped. An Update re-enables the config.
	DisabledReason string `json:"disabled_reason,omitempty"`
}

type listResponse struct {
	Total          int                `json:"total"`
	CallbackConfig []callbackResponse `json:"callback_config"`
}

func newCallbackResponse(c *livehooks.CallbackConfig) callbackResponse {
	return callbackResponse{
		ID:                      c.ID,
		PublishDomain:           c.PublishDomain,
		App:                     c.App,
		NotifyCallbackURL:       c.NotifyCallbackURL,
		NotifyEventSubscription: c.NotifyEventSubscription,
		SignType:                c.SignType,
		OnDemandCallbackURL:     c.OnDemandCallbackURL,
		CreateTime:              livehooks.FormatTime(c.CreateTime),
		UpdateTime:              livehooks.FormatTime(c.UpdateTime),
		DisabledReason:          c.DisabledReason,
	}
}

func deref(p *string) string {
	if p == nil {
		return ""
	}
	return *p
}

func eventTypes(ss []string) []livehooks.EventType {
	out := make([]livehooks.EventType, len(ss))
	for i, s := range ss {
		out[i] = livehooks.EventType(s)
	}
	return out
}

// newID returns a config id: 32 lowercase hex characters.
func newID() string { return strings.ReplaceAll(uuid.NewString(), "-", "") }

// validProjectID accepts Huawei project ids (32 hex) and the names operators
// choose: 1-64 of letters, digits, '_', '.' and '-'.
func validProjectID(p string) error {
	if len(p) == 0 || len(p) > 64 {
		return livehooks.Errorf(livehooks.EINVALID, "project_id must be 1-64 characters")
	}
	for i := 0; i < len(p); i++ {
		b := p[i]
		if !(b >= 'a' && b <= 'z' || b >= 'A' && b <= 'Z' || b >= '0' && b <= '9' || b == '_' || b == '.' || b == '-') {
			return livehooks.Errorf(livehooks.EINVALID, "project_id may contain only letters, digits, '_', '.' and '-'")
		}
	}
	return nil
}

// configID returns the {id} path value, or ENOTFOUND when it cannot be an id
// (Terraform drops a resource from its state on 404 but fails hard on 400).
func configID(r *http.Request) (string, error) {
	id := r.PathValue("id")
	if len(id) != 32 || strings.Trim(id, "0123456789abcdef") != "" {
		return "", livehooks.Errorf(livehooks.ENOTFOUND, "callback config %s does not exist", clip(id, 128))
	}
	return id, nil
}

func (s *Server) handleCreate() http.Handler {
	return http.HandlerFunc(func(w http.ResponseWriter, r *http.Request) {
		project := r.PathValue("project_id")
		if err := validProjectID(project); err != nil {
			s.writeError(w, r, err)
			return
		}
		req, err := decode[callbackRequest](w, r)
		if err != nil {
			s.writeError(w, r, err)
			return
		}
		now := s.clock.Now().UTC()
		c := &livehooks.CallbackConfig{
			ID:                  newID(),
			ProjectID:           project,
			PublishDomain:       deref(req.PublishDomain),
			App:                 deref(req.App),
			NotifyCallbackURL:   deref(req.NotifyCallbackURL),
			SignType:            deref(req.SignType),
			OnDemandCallbackURL: deref(req.OnDemandCallbackURL),
			Key:                 deref(req.Key),
			CreateTime:          now,
			UpdateTime:          now,
		}
		if req.NotifyEventSubscription != nil {
			c.NotifyEventSubscription = eventTypes(*req.NotifyEventSubscription)
		}
		c.Normalize()
		if err := c.Validate(); err != nil {
			s.writeError(w, r, err)
			return
		}
		if err := s.callbacks.CreateCallback(r.Context(), c); err != nil {
			s.writeError(w, r, err)
			return
		}
		s.logger.InfoContext(r.Context(), "callback config created", "project_id", project, "id", c.ID, "publish_domain", c.PublishDomain, "app", c.App)
		writeJSON(w, http.StatusCreated, newCallbackResponse(c))
	})
}

func (s *Server) handleShow() http.Handler {
	return http.HandlerFunc(func(w http.ResponseWriter, r *http.Request) {
		id, err := configID(r)
		if err != nil {
			s.writeError(w, r, err)
			return
		}
		c, err := s.callbacks.FindCallbackByID(r.Context(), r.PathValue("project_id"), id)
		if err != nil {
			s.writeError(w, r, err)
			return
		}
		writeJSON(w, http.StatusOK, newCallbackResponse(c))
	})
}

func (s *Server) handleUpdate() http.Handler {
	return http.HandlerFunc(func(w http.ResponseWriter, r *http.Request) {
		id, err := configID(r)
		if err != nil {
			s.writeError(w, r, err)
			return
		}
		req, err := decode[callbackRequest](w, r)
		if err != nil {
			s.writeError(w, r, err)
			return
		}
		// publish_domain and app are required on update too (seed 004); the
		// other fields change only when present.
		if deref(req.PublishDomain) == "" {
			s.writeError(w, r, livehooks.Errorf(livehooks.EINVALID, "publish_domain is required"))
			return
		}
		if deref(req.App) == "" {
			s.writeError(w, r, livehooks.Errorf(livehooks.EINVALID, "app is required"))
			return
		}
		upd := livehooks.CallbackUpdate{
			PublishDomain:       *req.PublishDomain,
			App:                 *req.App,
			NotifyCallbackURL:   req.NotifyCallbackURL,
			SignType:            req.SignType,
			OnDemandCallbackURL: req.OnDemandCallbackURL,
			Key:                 req.Key,
		}
		if req.NotifyEventSubscription != nil {
			upd.NotifyEventSubscription = eventTypes(*req.NotifyEventSubscription)
		}
		project := r.PathValue("project_id")
		now := s.clock.Now().UTC()
		c, err := s.callbacks.UpdateCallback(r.Context(), project, id, upd, now, (*livehooks.CallbackConfig).Validate)
		if err != nil {
			s.writeError(w, r, err)
			return
		}
		s.logger.InfoContext(r.Context(), "callback config updated", "project_id", project, "id", c.ID)
		writeJSON(w, http.StatusOK, newCallbackResponse(c))
	})
}

func (s *Server) handleDelete() http.Handler {
	return http.HandlerFunc(func(w http.ResponseWriter, r *http.Request) {
		id, err := configID(r)
		if err != nil {
			s.writeError(w, r, err)
			return
		}
		project := r.PathValue("project_id")
		if err := s.callbacks.DeleteCallback(r.Context(), project, id); err != nil {
			s.writeError(w, r, err)
			return
		}
		s.logger.InfoContext(r.Context(), "callback config deleted", "project_id", project, "id", id)
		w.WriteHeader(http.StatusNoContent)
	})
}

func (s *Server) handleList() http.Handler {
	return http.HandlerFunc(func(w http.ResponseWriter, r *http.Request) {
		q := r.URL.Query()
		offset, err := intParam(q.Get("offset"), "offset", 0, 0, livehooks.MaxListOffset)
		if err != nil {
			s.writeError(w, r, err)
			return
		}
		limit, err := intParam(q.Get("limit"), "limit", livehooks.DefaultLimit, 1, livehooks.MaxListLimit)
		if err != nil {
			s.writeError(w, r, err)
			return
		}
		f := livehooks.CallbackFilter{
			ProjectID:     r.PathValue("project_id"),
			PublishDomain: q.Get("publish_domain"),
			App:           q.Get("app"),
			Offset:        offset,
			Limit:         limit,
		}
		configs, total, err := s.callbacks.FindCallbacks(r.Context(), f)
		if err != nil {
			s.writeError(w, r, err)
			return
		}
		resp := listResponse{Total: total, CallbackConfig: make([]callbackResponse, 0, len(configs))}
		for _, c := range configs {
			resp.CallbackConfig = append(resp.CallbackConfig, newCallbackResponse(c))
		}
		writeJSON(w, http.StatusOK, resp)
	})
}

// intParam parses an optional integer query parameter within [min, max].
func intParam(raw, name string, def, min, max int) (int, error) {
	if raw == "" {
		return def, nil
	}
	n, err := strconv.Atoi(raw)
	if err != nil || n < min || n > max {
		return 0, livehooks.Errorf(livehooks.EINVALID, "%s must be an integer from %d to %d", name, min, max)
	}
	return n, nil
}
