package livehooks

import (
	"context"
	"net/url"
	"strings"
	"time"
)

// Sign types of a callback configuration.
const (
	SignHMACSHA256 = "HMACSHA256"
	SignMD5        = "MD5"
)

// Limits of the management API (SPEC §1).
const (
	MaxURLLength  = 2048
	MaxAppLength  = 128
	MinKeyLength  = 32
	MaxKeyLength  = 256
	MaxListOffset = 4096
	MaxListLimit  = 100
	DefaultLimit  = 10
)

// CallbackConfig is a recording-callback configuration: where the recording
// events of one (project, publish domain, app) are sent and how they are signed.
type CallbackConfig struct {
	ID                      string      `json:"id"`
	ProjectID               string      `json:"-"`
	PublishDomain           string      `json:"publish_domain"`
	App                     string      `json:"app"`
	NotifyCallbackURL       string      `json:"notify_callback_url,omitempty"`
	NotifyEventSubscription []EventType `json:"notify_event_subscription"`
	SignType                string      `json:"sign_type"`
	OnDemandCallbackURL     string      `json:"on_demand_callback_url,omitempty"`
	CreateTime              time.Time   `json:"-"`
	UpdateTime              time.Time   `json:"-"`

	// Key signs callbacks. It is held in plaintext only in memory: stores encrypt
	// it at rest and no response, log line or error ever carries it.
	Key string `json:"-"`

	// DisabledReason is set when deliveries stopped because the receiver
	// answered 410 Gone; an Update clears it.
	DisabledReason string `json:"-"`
}

// HasKey reports whether callbacks of this config are signed.
func (c *CallbackConfig) HasKey() bool { return c.Key != "" }

// Subscribes reports whether the config wants events of type t.
func (c *CallbackConfig) Subscribes(t EventType) bool {
	for _, s := range c.NotifyEventSubscription {
		if s == t {
			return true
		}
	}
	return false
}

// Matches reports whether an event of (domain, app) goes to this config when no
// config with the exact app exists: same domain and the same or the `*` app.
func (c *CallbackConfig) Matches(domain, app string) bool {
	return c.PublishDomain == domain && (c.App == app || c.App == "*")
}

// Normalize applies the defaults of SPEC §1 (subscription RECORD_FILE_COMPLETE,
// sign type HMACSHA256) and removes duplicate subscriptions, keeping the order
// the client gave.
func (c *CallbackConfig) Normalize() {
	if len(c.NotifyEventSubscription) == 0 {
		c.NotifyEventSubscription = []EventType{RecordFileComplete}
	}
	seen := make(map[EventType]bool, len(c.NotifyEventSubscription))
	subs := c.NotifyEventSubscription[:0:0]
	for _, s := range c.NotifyEventSubscription {
		if !seen[s] {
			seen[s] = true
			subs = append(subs, s)
		}
	}
	c.NotifyEventSubscription = subs
	if c.SignType == "" {
		c.SignType = SignHMACSHA256
	}
}

// Validate checks every rule of SPEC §1 and returns an EINVALID *Error naming the
// first field that breaks one. Call Normalize first.
func (c *CallbackConfig) Validate() error {
	if c.PublishDomain == "" {
		return Errorf(EINVALID, "publish_domain is required")
	} else if !IsDomainName(c.PublishDomain) {
		return Errorf(EINVALID, "publish_domain must be a valid DNS name")
	}
	if c.App == "" {
		return Errorf(EINVALID, "app is required")
	} else if !IsAppName(c.App) {
		return Errorf(EINVALID, "app must be * or 1-128 characters of letters, digits, '_', '.' and '-'")
	}
	if err := ValidateCallbackURL("notify_callback_url", c.NotifyCallbackURL); err != nil {
		return err
	}
	if err := ValidateCallbackURL("on_demand_callback_url", c.OnDemandCallbackURL); err != nil {
		return err
	}
	for _, s := range c.NotifyEventSubscription {
		if !s.Valid() {
			return Errorf(EINVALID, "notify_event_subscription: unknown event type %q", truncate(string(s), 64))
		}
	}
	switch c.SignType {
	case SignHMACSHA256, SignMD5:
	default:
		return Errorf(EINVALID, "sign_type must be HMACSHA256 or MD5")
	}
	if c.Key != "" {
		if err := ValidateKey(c.Key); err != nil {
			return err
		}
	}
	return nil
}

// ValidateKey checks a callback key: 32 to 256 letters and digits, with at least
// one of each. The error never repeats the key.
func ValidateKey(key string) error {
	var letter, digit bool
	for i := 0; i < len(key); i++ {
		switch b := key[i]; {
		case b >= '0' && b <= '9':
			digit = true
		case b >= 'a' && b <= 'z', b >= 'A' && b <= 'Z':
			letter = true
		default:
			return Errorf(EINVALID, "key may contain only letters and digits")
		}
	}
	if len(key) < MinKeyLength || len(key) > MaxKeyLength {
		return Errorf(EINVALID, "key must be 32 to 256 characters long")
	}
	if !letter || !digit {
		return Errorf(EINVALID, "key must contain both letters and digits")
	}
	return nil
}

// ValidateCallbackURL checks a callback URL: empty, or absolute http/https with a
// host, no userinfo, query or fragment, at most 2048 bytes.
func ValidateCallbackURL(field, raw string) error {
	if raw == "" {
		return nil
	}
	if len(raw) > MaxURLLength {
		return Errorf(EINVALID, "%s must be at most %d bytes", field, MaxURLLength)
	}
	u, err := url.Parse(raw)
	if err != nil {
		return Errorf(EINVALID, "%s is not a valid URL", field)
	}
	switch {
	case u.Scheme != "http" && u.Scheme != "https":
		return Errorf(EINVALID, "%s must start with http:// or https://", field)
	case u.Host == "" || u.Hostname() == "":
		return Errorf(EINVALID, "%s must have a host", field)
	case u.User != nil:
		return Errorf(EINVALID, "%s must not contain user information", field)
	case u.RawQuery != "" || u.ForceQuery || strings.Contains(raw, "?"):
		return Errorf(EINVALID, "%s must not contain query parameters", field)
	case u.Fragment != "" || strings.Contains(raw, "#"):
		return Errorf(EINVALID, "%s must not contain a fragment", field)
	case u.Opaque != "":
		return Errorf(EINVALID, "%s is not a valid URL", field)
	}
	for i := 0; i < len(raw); i++ {
		if raw[i] <= ' ' || raw[i] == 0x7f {
			return Errorf(EINVALID, "%s must not contain spaces or control characters", field)
		}
	}
	return nil
}

// IsDomainName reports whether s is a DNS host name: 1-253 bytes of dot-separated
// labels of 1-63 letters, digits and hyphens, not starting or ending with a hyphen.
func IsDomainName(s string) bool {
	if len(s) == 0 || len(s) > 253 {
		return false
	}
	for _, label := range strings.Split(s, ".") {
		if len(label) == 0 || len(label) > 63 || label[0] == '-' || label[len(label)-1] == '-' {
			return false
		}
		for i := 0; i < len(label); i++ {
			b := label[i]
			if !(b >= 'a' && b <= 'z' || b >= 'A' && b <= 'Z' || b >= '0' && b <= '9' || b == '-') {
				return false
			}
		}
	}
	return true
}

// IsAppName reports whether s is `*` or 1-128 of [A-Za-z0-9_.-].
func IsAppName(s string) bool {
	if s == "*" {
		return true
	}
	return isName(s, MaxAppLength)
}

// IsStreamName reports whether s is a valid stream name: 1-512 of [A-Za-z0-9_.-].
func IsStreamName(s string) bool { return isName(s, 512) }

func isName(s string, max int) bool {
	if len(s) == 0 || len(s) > max {
		return false
	}
	for i := 0; i < len(s); i++ {
		b := s[i]
		if !(b >= 'a' && b <= 'z' || b >= 'A' && b <= 'Z' || b >= '0' && b <= '9' || b == '_' || b == '.' || b == '-') {
			return false
		}
	}
	return true
}

func truncate(s string, n int) string {
	if len(s) > n {
		return s[:n] + "…"
	}
	return s
}

// CallbackFilter selects callback configurations in List.
type CallbackFilter struct {
	ProjectID     string
	PublishDomain string // exact match when not empty
	App           string // exact match when not empty
	Offset        int
	Limit         int
}

// CallbackUpdate is a partial update: nil fields are left as they are.
// PublishDomain and App are required by the Huawei API and always set.
type CallbackUpdate struct {
	PublishDomain           string
	App                     string
	NotifyCallbackURL       *string
	NotifyEventSubscription []EventType // nil: unchanged
	SignType                *string
	OnDemandCallbackURL     *string
	Key                     *string // "" removes the key
}

// Apply returns c with the update applied (a copy; c is not changed), normalized.
func (u CallbackUpdate) Apply(c CallbackConfig) CallbackConfig {
	c.PublishDomain, c.App = u.PublishDomain, u.App
	if u.NotifyCallbackURL != nil {
		c.NotifyCallbackURL = *u.NotifyCallbackURL
	}
	if u.NotifyEventSubscription != nil {
		c.NotifyEventSubscription = append([]EventType(nil), u.NotifyEventSubscription...)
	}
	if u.SignType != nil {
		c.SignType = *u.SignType
	}
	if u.OnDemandCallbackURL != nil {
		c.OnDemandCallbackURL = *u.OnDemandCallbackURL
	}
	if u.Key != nil {
		c.Key = *u.Key
	}
	c.DisabledReason = ""
	c.Normalize()
	return c
}

// CallbackStore persists callback configurations. Implementations return
// ENOTFOUND for a missing (project, id) and ECONFLICT when a second config
// would be stored for the same (project, publish_domain, app).
type CallbackStore interface {
	// CreateCallback stores c. c.ID, CreateTime and UpdateTime must be set.
	CreateCallback(ctx context.Context, c *CallbackConfig) error
	// FindCallbackByID returns the config with that id in that project.
	FindCallbackByID(ctx context.Context, projectID, id string) (*CallbackConfig, error)
	// FindCallbacks returns one page of the configs matching f, ordered by create
	// time then id, and the number of all matches.
	FindCallbacks(ctx context.Context, f CallbackFilter) ([]*CallbackConfig, int, error)
	// UpdateCallback applies upd to the config, validating the result with
	// validate before it is stored, and returns the stored config.
	UpdateCallback(ctx context.Context, projectID, id string, upd CallbackUpdate, now time.Time, validate func(*CallbackConfig) error) (*CallbackConfig, error)
	// DeleteCallback removes the config and its pending deliveries.
	DeleteCallback(ctx context.Context, projectID, id string) error
	// MatchCallback returns the config an event of (project, domain, app) goes to:
	// the exact app, else the `*` app of the domain; ENOTFOUND when none.
	MatchCallback(ctx context.Context, projectID, domain, app string) (*CallbackConfig, error)
	// DisableCallback records why deliveries to the config stopped (410 Gone).
	DisableCallback(ctx context.Context, projectID, id, reason string) error
}
