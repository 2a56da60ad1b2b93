package storerow

import (
	"fmt"
	"strings"
	"time"

	"github.com/livehooks/livehooks"
)

// What both stores say and do the same way, whatever their SQL dialect.

// ErrCallbackConflict is the error of a second config for the same publish
// domain and app.
func ErrCallbackConflict() error {
	return livehooks.Errorf(livehooks.ECONFLICT, "a callback configuration for this publish_domain and app already exists")
}

// ErrCallbackNotFound is the error of a config id that the project does not
// hold; a long id is clipped.
func ErrCallbackNotFound(id string) error {
	return livehooks.Errorf(livehooks.ENOTFOUND, "callback configuration %s not found", Clip(id, 64))
}

// Clip shortens s to n bytes and an ellipsis, and makes it valid UTF-8: for
// echoing input in an error.
func Clip(s string, n int) string {
	if len(s) > n {
		s = s[:n] + "…"
	}
	return strings.ToValidUTF8(s, "\uFFFD")
}

// SealCallbackKey encrypts a config's key, bound to its row
// (CallbackAD); nil (a NULL column) when it has none.
func SealCallbackKey(c livehooks.Cipher, cfg *livehooks.CallbackConfig) ([]byte, error) {
	if cfg.Key == "" {
		return nil, nil
	}
	return c.Seal([]byte(cfg.Key), CallbackAD(cfg.ProjectID, cfg.ID))
}

// OpenCallbackKey decrypts the sealed key of cfg's row into cfg.Key; a nil
// sealed key leaves it empty. The cipher's error never holds the key.
func OpenCallbackKey(c livehooks.Cipher, cfg *livehooks.CallbackConfig, sealed []byte) error {
	if sealed == nil {
		return nil
	}
	key, err := c.Open(sealed, CallbackAD(cfg.ProjectID, cfg.ID))
	if err != nil {
		return err
	}
	cfg.Key = string(key)
	return nil
}

// LatestVersion is the newest version of ms (Migrations' answer), 0 when
// there is none.
func LatestVersion(ms []Migration, err error) int {
	if err != nil || len(ms) == 0 {
		return 0
	}
	return ms[len(ms)-1].Version
}

// NewerSchemaError is a store's refusal of a schema that a newer binary
// migrated: which version to run instead. engine is "sqlite" or "postgres",
// as `livehooks version` names them; name is the newest migration's, when
// known.
func NewerSchemaError(engine string, current int, name string, latest int) error {
	if name != "" {
		name = " (" + name + ")"
	}
	return fmt.Errorf("database schema version %d%s is newer than this binary's (%d): it was migrated by a newer livehooks; "+
		"run a livehooks whose \"livehooks version\" shows %s schema %d or more", current, name, latest, engine, current)
}

// DeliveryWhere returns the WHERE clause (empty, or starting with a space)
// of a delivery-log filter over the deliveries aliased d, and its arguments:
// placeholder(n) writes the n-th placeholder of the dialect, at converts a
// time to the created_at column's type.
func DeliveryWhere(f livehooks.DeliveryFilter, placeholder func(n int) string, at func(time.Time) any) (string, []any) {
	var (
		where []string
		args  []any
	)
	add := func(cond string, arg any) {
		args = append(args, arg)
		where = append(where, cond+placeholder(len(args)))
	}
	if f.ProjectID != "" {
		add("d.project_id = ", f.ProjectID)
	}
	if f.ConfigID != "" {
		add("d.config_id = ", f.ConfigID)
	}
	if f.Status != "" {
		add("d.status = ", string(f.Status))
	}
	if f.EventType != "" {
		add("d.event_type = ", string(f.EventType))
	}
	if f.Stream != "" {
		add("d.stream = ", f.Stream)
	}
	if !f.Since.IsZero() {
		add("d.created_at >= ", at(f.Since))
	}
	if !f.Until.IsZero() {
		add("d.created_at < ", at(f.Until))
	}
	if f.BeforeID > 0 {
		add("d.id < ", f.BeforeID)
	}
	if f.MinID > 0 {
		add("d.id >= ", f.MinID)
	}
	if len(where) == 0 {
		return "", args
	}
	return " WHERE " + strings.Join(where, " AND "), args
}
