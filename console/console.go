package console

import (
	"context"
	"embed"
	"encoding/json"
	"errors"
	"io"
	"io/fs"
	"log/slog"
	"net/http"
	"net/url"
	"strings"
	"time"

	"github.com/livehooks/livehooks"
	"github.com/livehooks/livehooks/auth"
)

//go:embed assets
var assets embed.FS

// Names the browser sees.
const (
	CookieName = "livehooks_console"
	// HeaderCSRF carries the session's CSRF token on every state-changing
	// request made with the session cookie.
	HeaderCSRF = "X-Livehooks-Csrf"
)

// Authenticator verifies an API request; api.Authenticator has this method.
type Authenticator interface {
	Authenticate(r *http.Request, body []byte) (livehooks.Principal, error)
}

// Options configure a Console.
type Options struct {
	// Auth verifies the credentials typed in at sign-in and, again, those a
	// session carries on every request. Nil only with Dev.
	Auth Authenticator
	// Dev: the API runs without authentication; sign-in asks for a project only.
	Dev bool
	// MasterKey (32 bytes) derives the keys that seal session cookies.
	MasterKey []byte
	// TTL is how long a session lasts (default 8 h).
	TTL time.Duration
	// FailDelay is how long a failed sign-in waits before it answers
	// (default 1 s), to slow down guessing.
	FailDelay time.Duration
	Clock     livehooks.Clock
	Logger    *slog.Logger
}

// Console serves the web console under /console and authenticates the API
// requests it makes with its session cookie.
type Console struct {
	o      Options
	sealer *sealer
	static http.Handler
}

// New returns a Console.
func New(o Options) (*Console, error) {
	if o.Auth == nil && !o.Dev {
		return nil, errors.New("console: Options.Auth is required unless Dev is set")
	}
	if o.TTL <= 0 {
		o.TTL = 8 * time.Hour
	}
	if o.FailDelay <= 0 {
		o.FailDelay = time.Second
	}
	if o.Clock == nil {
		o.Clock = livehooks.SystemClock{}
	}
	if o.Logger == nil {
		o.Logger = slog.New(slog.DiscardHandler)
	}
	s, err := newSealer(o.MasterKey)
	if err != nil {
		return nil, err
	}
	sub, err := fs.Sub(assets, "assets")
	if err != nil {
		return nil, err
	}
	return &Console{o: o, sealer: s, static: http.StripPrefix("/console/", http.FileServerFS(sub))}, nil
}

// ServeHTTP serves /console/ (the pages) and /console/session (sign-in,
// the session, sign-out).
func (c *Console) ServeHTTP(w http.ResponseWriter, r *http.Request) {
	h := w.Header()
	h.Set("Content-Security-Policy", "default-src 'none'; script-src 'self'; style-src 'self'; img-src 'self' data:; connect-src 'self'; form-action 'self'; base-uri 'none'; frame-ancestors 'none'")
	h.Set("X-Content-Type-Options", "nosniff")
	h.Set("Referrer-Policy", "no-referrer")
	h.Set("Cache-Control", "no-store")
	switch r.URL.Path {
	case "/console":
		http.Redirect(w, r, "/console/", http.StatusFound)
	case "/console/session":
		switch r.Method {
		case http.MethodGet:
			c.showSession(w, r)
		case http.MethodPost:
			c.signIn(w, r)
		case http.MethodDelete:
			c.signOut(w, r)
		default:
			h.Set("Allow", "GET, POST, DELETE")
			writeError(w, http.StatusMethodNotAllowed, "APIGW.0101", "method not allowed")
		}
	default:
		if r.Method != http.MethodGet && r.Method != http.MethodHead {
			writeError(w, http.StatusMethodNotAllowed, "APIGW.0101", "method not allowed")
			return
		}
		c.static.ServeHTTP(w, r)
	}
}

type signInRequest struct {
	ProjectID string `json:"project_id"`
	Token     string `json:"token"`
	AccessKey string `json:"access_key"`
	SecretKey string `json:"secret_key"`
}

type sessionResponse struct {
	ProjectID string `json:"project_id"`
	Principal string `json:"principal"`
	CSRFToken string `json:"csrf_token"`
	Expires   string `json:"expire_time"`
	Dev       bool   `json:"dev,omitempty"`
}

func (c *Console) signIn(w http.ResponseWriter, r *http.Request) {
	if !sameOrigin(r) {
		writeError(w, http.StatusForbidden, "APIGW.0302", "sign-in from another site refused")
		return
	}
	if ct := r.Header.Get("Content-Type"); !strings.HasPrefix(ct, "application/json") {
		// A form on another site cannot send JSON without a CORS preflight.
		writeError(w, http.StatusBadRequest, "LIVE.100011001", "Request Illegal: send the sign-in as application/json")
		return
	}
	body, err := io.ReadAll(http.MaxBytesReader(w, r.Body, 64<<10))
	var in signInRequest
	if err == nil {
		err = json.Unmarshal(body, &in)
	}
	if err != nil {
		writeError(w, http.StatusBadRequest, "LIVE.100011001", "Request Illegal: the sign-in must be a JSON object")
		return
	}
	in.ProjectID = strings.TrimSpace(in.ProjectID)
	sess := &session{ID: newSessionID(), ProjectID: in.ProjectID, Expires: c.o.Clock.Now().Add(c.o.TTL).Unix()}
	switch {
	case in.ProjectID == "":
		writeError(w, http.StatusBadRequest, "LIVE.100011001", "Request Illegal: project_id is required")
		return
	case c.o.Dev:
	case in.Token != "":
		sess.Token = in.Token
	case in.AccessKey != "" && in.SecretKey != "":
		sess.AK, sess.SK = in.AccessKey, in.SecretKey
	default:
		writeError(w, http.StatusBadRequest, "LIVE.100011001", "Request Illegal: give a token, or an access key and a secret key")
		return
	}
	p, err := c.verify(r.Context(), sess)
	if err != nil {
		// Guessing costs a second a try; the message says what to fix
		// without telling which part was wrong.
		c.o.Logger.InfoContext(r.Context(), "console sign-in refused", "project_id", clip(in.ProjectID), "reason", livehooks.ErrorMessage(err))
		select {
		case <-time.After(c.o.FailDelay):
		case <-r.Context().Done():
			return
		}
		msg := "Sign-in failed: the token, or the access key and secret key, is wrong"
		status, code := http.StatusUnauthorized, "APIGW.0301"
		if livehooks.ErrorCode(err) == livehooks.EFORBIDDEN {
			msg = "Sign-in failed: this credential is not bound to project " + clip(in.ProjectID)
			status, code = http.StatusForbidden, "APIGW.0302"
		}
		writeError(w, status, code, msg)
		return
	}
	value, err := c.sealer.seal(sess)
	if err != nil {
		writeError(w, http.StatusInternalServerError, "LIVE.100011500", "Internal Server Error")
		return
	}
	http.SetCookie(w, c.cookie(r, value, c.o.TTL))
	c.o.Logger.InfoContext(r.Context(), "console sign-in", "project_id", sess.ProjectID, "principal", p.Name)
	writeJSON(w, http.StatusOK, c.sessionResponse(sess, p.Name))
}

func (c *Console) showSession(w http.ResponseWriter, r *http.Request) {
	sess, p, err := c.session(r)
	if err != nil {
		// The page asks for a project only when the API runs without auth.
		writeJSON(w, http.StatusUnauthorized, map[string]any{"error_code": "APIGW.0301", "error_msg": livehooks.ErrorMessage(err), "dev": c.o.Dev})
		return
	}
	writeJSON(w, http.StatusOK, c.sessionResponse(sess, p.Name))
}

// signOut ends the session: a forged sign-out (no CSRF token) changes nothing.
func (c *Console) signOut(w http.ResponseWriter, r *http.Request) {
	if cookie, err := r.Cookie(CookieName); err == nil {
		if sess, err := c.sealer.open(cookie.Value, c.o.Clock.Now()); err == nil {
			if !c.sealer.checkCSRF(sess, r.Header.Get(HeaderCSRF)) {
				writeError(w, http.StatusForbidden, "APIGW.0302", "missing or wrong "+HeaderCSRF+" header")
				return
			}
			c.sealer.revoke(sess)
		}
	}
	http.SetCookie(w, c.cookie(r, "", -1))
	w.WriteHeader(http.StatusNoContent)
}

func (c *Console) sessionResponse(sess *session, principal string) sessionResponse {
	return sessionResponse{
		ProjectID: sess.ProjectID, Principal: principal, CSRFToken: c.sealer.csrf(sess),
		Expires: livehooks.FormatTime(time.Unix(sess.Expires, 0)), Dev: c.o.Dev,
	}
}

// cookie is the session cookie: HttpOnly, SameSite=Strict, Secure when the
// console is served over TLS, for the whole site (the API is under /v1/).
func (c *Console) cookie(r *http.Request, value string, ttl time.Duration) *http.Cookie {
	ck := &http.Cookie{
		Name: CookieName, Value: value, Path: "/", HttpOnly: true, SameSite: http.SameSiteStrictMode,
		Secure: r.TLS != nil, MaxAge: int(ttl / time.Second),
	}
	if ttl < 0 {
		ck.MaxAge = -1
	}
	return ck
}

// session returns the request's session and the principal its credential
// authenticates as, checked again now.
func (c *Console) session(r *http.Request) (*session, livehooks.Principal, error) {
	cookie, err := r.Cookie(CookieName)
	if err != nil {
		return nil, livehooks.Principal{}, livehooks.Errorf(livehooks.EUNAUTHORIZED, "not signed in")
	}
	sess, err := c.sealer.open(cookie.Value, c.o.Clock.Now())
	if err != nil {
		return nil, livehooks.Principal{}, err
	}
	p, err := c.verify(r.Context(), sess)
	if err != nil {
		return nil, livehooks.Principal{}, livehooks.Errorf(livehooks.EUNAUTHORIZED, "the session's credential is no longer valid: sign in again")
	}
	return sess, p, nil
}

// verify authenticates the session's credential through the API's verifier,
// with a request like the ones the SDKs send, and checks its project.
func (c *Console) verify(ctx context.Context, sess *session) (livehooks.Principal, error) {
	if c.o.Dev {
		return livehooks.Principal{Name: "dev", Projects: []string{sess.ProjectID}}, nil
	}
	req, err := http.NewRequestWithContext(ctx, http.MethodGet, "http://console.livehooks/v1/"+url.PathEscape(sess.ProjectID)+"/record/callbacks", nil)
	if err != nil {
		return livehooks.Principal{}, livehooks.Errorf(livehooks.EUNAUTHORIZED, "bad project id")
	}
	if sess.Token != "" {
		req.Header.Set(auth.HeaderAuthToken, sess.Token)
	} else if err := auth.Sign(req, sess.AK, sess.SK, nil, c.o.Clock.Now()); err != nil {
		return livehooks.Principal{}, livehooks.Errorf(livehooks.EUNAUTHORIZED, "bad access key")
	}
	p, err := c.o.Auth.Authenticate(req, nil)
	if err != nil {
		return livehooks.Principal{}, err
	}
	if !p.CanAccess(sess.ProjectID) {
		return livehooks.Principal{}, livehooks.Errorf(livehooks.EFORBIDDEN, "credential %s is not bound to project %s", p.Name, clip(sess.ProjectID))
	}
	return p, nil
}

// Authenticator returns the API's authenticator extended with console
// sessions: a request that carries neither X-Auth-Token nor Authorization but
// the session cookie is authenticated by the session's credential, bound to
// the session's project only, and must carry the CSRF header unless it is a
// GET or HEAD. Everything else goes to next as before.
func (c *Console) Authenticator(next Authenticator) Authenticator {
	return sessionAuth{c: c, next: next}
}

type sessionAuth struct {
	c    *Console
	next Authenticator
}

func (a sessionAuth) Authenticate(r *http.Request, body []byte) (livehooks.Principal, error) {
	if r.Header.Get(auth.HeaderAuthToken) != "" || r.Header.Get(auth.HeaderAuthorization) != "" {
		return a.next.Authenticate(r, body)
	}
	if _, err := r.Cookie(CookieName); err != nil {
		return a.next.Authenticate(r, body)
	}
	sess, p, err := a.c.session(r)
	if err != nil {
		return livehooks.Principal{}, err
	}
	if r.Method != http.MethodGet && r.Method != http.MethodHead {
		if !sameOrigin(r) || !a.c.sealer.checkCSRF(sess, r.Header.Get(HeaderCSRF)) {
			return livehooks.Principal{}, livehooks.Errorf(livehooks.EUNAUTHORIZED, "console request without a valid %s header refused (cross-site request forgery protection)", HeaderCSRF)
		}
	}
	return livehooks.Principal{Name: "console:" + p.Name, Projects: []string{sess.ProjectID}}, nil
}

// sameOrigin reports whether a browser request comes from this site: when
// the browser names its origin, its host must be the request's host.
func sameOrigin(r *http.Request) bool {
	origin := r.Header.Get("Origin")
	if origin == "" {
		return r.Header.Get("Sec-Fetch-Site") == "" || r.Header.Get("Sec-Fetch-Site") == "same-origin"
	}
	u, err := url.Parse(origin)
	return err == nil && u.Host == r.Host
}

func writeJSON(w http.ResponseWriter, status int, v any) {
	w.Header().Set("Content-Type", "application/json;charset=UTF-8")
	w.WriteHeader(status)
	_ = json.NewEncoder(w).Encode(v)
}

// writeError answers in the API's error format.
func writeError(w http.ResponseWriter, status int, code, msg string) {
	writeJSON(w, status, map[string]string{"error_code": code, "error_msg": msg})
}

func clip(s string) string {
	if len(s) > 64 {
		s = s[:64] + "…"
	}
	return strings.ToValidUTF8(s, "?")
}
