// Package storerow is how livehooks' domain values are laid out in the rows
// of every store backend (SQLite, PostgreSQL): the numbered migration files,
// the subscription column, and domain settings with their sealed secret. The
// backends share it so that they cannot drift apart.
package storerow

import (
	"encoding/json"
	"fmt"
	"io/fs"
	"path"
	"sort"
	"strconv"
	"strings"
	"time"
	"unicode/utf8"

	"github.com/livehooks/livehooks"
)

// Migration is one numbered schema migration.
type Migration struct {
	Version int
	Name    string // file name without .sql
	SQL     string
}

// Migrations reads dir/*.sql from fsys in version order. File names are
// NNNN_description.sql; versions start at 1 and have no gaps.
func Migrations(fsys fs.FS, dir string) ([]Migration, error) {
	names, err := fs.Glob(fsys, dir+"/*.sql")
	if err != nil {
		return nil, err
	}
	var ms []Migration
	for _, name := range names {
		base := path.Base(name)
		num, _, ok := strings.Cut(base, "_")
		v, err := strconv.Atoi(num)
		if !ok || err != nil || v <= 0 {
			return nil, fmt.Errorf("migration %s: name must be NNNN_description.sql", base)
		}
		body, err := fs.ReadFile(fsys, name)
		if err != nil {
			return nil, err
		}
		ms = append(ms, Migration{Version: v, Name: strings.TrimSuffix(base, ".sql"), SQL: string(body)})
	}
	sort.Slice(ms, func(i, j int) bool { return ms[i].Version < ms[j].Version })
	for i, m := range ms {
		if m.Version != i+1 {
			return nil, fmt.Errorf("migration %s: expected version %d", m.Name, i+1)
		}
	}
	return ms, nil
}

// JoinSubscription is the column form of a subscription list: comma-separated,
// in the client's order.
func JoinSubscription(subs []livehooks.EventType) string {
	var b strings.Builder
	for i, s := range subs {
		if i > 0 {
			b.WriteByte(',')
		}
		b.WriteString(string(s))
	}
	return b.String()
}

// SplitSubscription reads a subscription column.
func SplitSubscription(s string) []livehooks.EventType {
	if s == "" {
		return []livehooks.EventType{}
	}
	parts := strings.Split(s, ",")
	subs := make([]livehooks.EventType, len(parts))
	for i, p := range parts {
		subs[i] = livehooks.EventType(p)
	}
	return subs
}

// storedDomain is the JSON column of a domain: its settings without secrets,
// with the durations in milliseconds.
type storedDomain struct {
	livehooks.DomainSettings
	PresignExpiryMS int64 `json:"presign_expiry_ms,omitempty"`
}

// EncodeDomain returns a domain's settings column (JSON, no secret) and its
// storage secret sealed with c (nil when there is none).
func EncodeDomain(d *livehooks.DomainSettings, c livehooks.Cipher) (settings []byte, sealedSecret []byte, err error) {
	sd := storedDomain{DomainSettings: *d}
	if d.Storage != nil {
		st := *d.Storage
		sd.Storage = &st
		sd.PresignExpiryMS = d.Storage.PresignExpiry.Milliseconds()
		if st.SecretKey != "" {
			if sealedSecret, err = c.Seal([]byte(st.SecretKey)); err != nil {
				return nil, nil, fmt.Errorf("encrypt storage secret: %w", err)
			}
		}
	}
	if settings, err = json.Marshal(sd); err != nil {
		return nil, nil, fmt.Errorf("encode domain: %w", err)
	}
	return settings, sealedSecret, nil
}

// DecodeDomain rebuilds domain settings from their columns, opening the
// sealed storage secret with c. The error never holds the secret.
func DecodeDomain(projectID string, settings []byte, maxPause time.Duration, sealedSecret []byte, created, updated time.Time, c livehooks.Cipher) (*livehooks.DomainSettings, error) {
	var sd storedDomain
	if err := json.Unmarshal(settings, &sd); err != nil {
		return nil, fmt.Errorf("decode domain: %w", err)
	}
	d := sd.DomainSettings
	d.ProjectID, d.MaxPause = projectID, maxPause
	d.CreateTime, d.UpdateTime = created.UTC(), updated.UTC()
	if d.Storage != nil {
		d.Storage.PresignExpiry = time.Duration(sd.PresignExpiryMS) * time.Millisecond
		if sealedSecret != nil {
			secret, err := c.Open(sealedSecret)
			if err != nil {
				return nil, fmt.Errorf("decrypt storage secret of %s: %w", d.PublishDomain, err)
			}
			d.Storage.SecretKey = string(secret)
		}
	}
	return &d, nil
}

// TruncateUTF8 cuts s to at most n bytes without splitting a character (the
// stored first KiB of a receiver's answer).
func TruncateUTF8(s string, n int) string {
	if len(s) <= n {
		return s
	}
	for n > 0 && !utf8.RuneStart(s[n]) {
		n--
	}
	return s[:n]
}

// NewEventID returns a new event id (livehooks.NewEventID).
func NewEventID() string { return livehooks.NewEventID() }
