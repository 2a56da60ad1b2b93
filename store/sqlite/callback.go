package sqlite

import (
	"context"
	"database/sql"
	"errors"
	"fmt"
	"strings"
	"time"

	"github.com/livehooks/livehooks"
	"github.com/livehooks/livehooks/store/storerow"
)

const callbackColumns = `id, project_id, publish_domain, app, notify_callback_url,
	notify_event_subscription, sign_type, on_demand_callback_url, key_sealed,
	disabled_reason, create_time, update_time`

type scanner interface{ Scan(dest ...any) error }

// scanCallback reads a row of callbackColumns and decrypts the key.
func (db *DB) scanCallback(row scanner) (*livehooks.CallbackConfig, error) {
	var (
		c              livehooks.CallbackConfig
		subs           string
		sealed         []byte
		created, updat int64
	)
	if err := row.Scan(&c.ID, &c.ProjectID, &c.PublishDomain, &c.App, &c.NotifyCallbackURL,
		&subs, &c.SignType, &c.OnDemandCallbackURL, &sealed, &c.DisabledReason, &created, &updat); err != nil {
		return nil, err
	}
	c.NotifyEventSubscription = storerow.SplitSubscription(subs)
	c.CreateTime, c.UpdateTime = fromMicros(created), fromMicros(updat)
	if err := storerow.OpenCallbackKey(db.cipher, &c, sealed); err != nil {
		// The cipher's error never holds the key; the id says which row.
		return nil, fmt.Errorf("sqlite: decrypt key of callback %s: %w", c.ID, err)
	}
	return &c, nil
}

// sealKey encrypts a key; nil (a NULL column) when there is none.
func (db *DB) sealKey(c *livehooks.CallbackConfig) ([]byte, error) {
	sealed, err := storerow.SealCallbackKey(db.cipher, c)
	if err != nil {
		return nil, fmt.Errorf("sqlite: encrypt key: %w", err)
	}
	return sealed, nil
}

var (
	errConflict = storerow.ErrCallbackConflict
	errNotFound = storerow.ErrCallbackNotFound
)

func truncate(s string, n int) string {
	if len(s) > n {
		return s[:n] + "…"
	}
	return s
}

// CreateCallback stores c. The key is sealed before it reaches the database.
func (db *DB) CreateCallback(ctx context.Context, c *livehooks.CallbackConfig) error {
	if c.ID == "" || c.ProjectID == "" {
		return livehooks.Errorf(livehooks.EINVALID, "callback id and project are required")
	}
	sealed, err := db.sealKey(c)
	if err != nil {
		return err
	}
	err = db.writeTx(ctx, func(tx *sql.Tx) error {
		db.configChanged()
		_, err := tx.ExecContext(ctx, `INSERT INTO callbacks (`+callbackColumns+`)
			VALUES (?, ?, ?, ?, ?, ?, ?, ?, ?, ?, ?, ?)`,
			c.ID, c.ProjectID, c.PublishDomain, c.App, c.NotifyCallbackURL,
			storerow.JoinSubscription(c.NotifyEventSubscription), c.SignType, c.OnDemandCallbackURL, sealed,
			c.DisabledReason, micros(c.CreateTime), micros(c.UpdateTime))
		return err
	})
	if isUniqueViolation(err) {
		return errConflict()
	} else if err != nil {
		return fmt.Errorf("sqlite: create callback: %w", err)
	}
	return nil
}

// FindCallbackByID returns the config with that id in that project; a config
// of another project is not found.
func (db *DB) FindCallbackByID(ctx context.Context, projectID, id string) (*livehooks.CallbackConfig, error) {
	return db.findCallback(ctx, db.read, projectID, id)
}

type querier interface {
	QueryRowContext(ctx context.Context, query string, args ...any) *sql.Row
}

func (db *DB) findCallback(ctx context.Context, q querier, projectID, id string) (*livehooks.CallbackConfig, error) {
	c, err := db.scanCallback(q.QueryRowContext(ctx,
		`SELECT `+callbackColumns+` FROM callbacks WHERE id = ? AND project_id = ?`, id, projectID))
	if errors.Is(err, sql.ErrNoRows) {
		return nil, errNotFound(id)
	} else if err != nil {
		return nil, fmt.Errorf("sqlite: find callback: %w", err)
	}
	return c, nil
}

// FindCallbacks returns a page of the configs of f.ProjectID (every project
// when empty) with exact-match filters, ordered by create time then id, and
// the number of all matches. A zero Limit means livehooks.DefaultLimit.
func (db *DB) FindCallbacks(ctx context.Context, f livehooks.CallbackFilter) ([]*livehooks.CallbackConfig, int, error) {
	countSQL, pageSQL, args := findCallbacksSQL(f)
	tx, err := db.read.BeginTx(ctx, &sql.TxOptions{ReadOnly: true})
	if err != nil {
		return nil, 0, fmt.Errorf("sqlite: find callbacks: %w", err)
	}
	defer tx.Rollback()
	var total int
	if err := tx.QueryRowContext(ctx, countSQL, args...).Scan(&total); err != nil {
		return nil, 0, fmt.Errorf("sqlite: find callbacks: %w", err)
	}
	rows, err := tx.QueryContext(ctx, pageSQL, append(args, limitOrDefault(f.Limit), max(f.Offset, 0))...)
	if err != nil {
		return nil, 0, fmt.Errorf("sqlite: find callbacks: %w", err)
	}
	defer rows.Close()
	cs := []*livehooks.CallbackConfig{}
	for rows.Next() {
		c, err := db.scanCallback(rows)
		if err != nil {
			return nil, 0, fmt.Errorf("sqlite: find callbacks: %w", err)
		}
		cs = append(cs, c)
	}
	if err := rows.Err(); err != nil {
		return nil, 0, fmt.Errorf("sqlite: find callbacks: %w", err)
	}
	return cs, total, nil
}

func findCallbacksSQL(f livehooks.CallbackFilter) (countSQL, pageSQL string, args []any) {
	var where []string
	if f.ProjectID != "" {
		where, args = append(where, "project_id = ?"), append(args, f.ProjectID)
	}
	if f.PublishDomain != "" {
		where, args = append(where, "publish_domain = ?"), append(args, f.PublishDomain)
	}
	if f.App != "" {
		where, args = append(where, "app = ?"), append(args, f.App)
	}
	cond := ""
	if len(where) > 0 {
		cond = " WHERE " + strings.Join(where, " AND ")
	}
	return `SELECT COUNT(*) FROM callbacks` + cond,
		`SELECT ` + callbackColumns + ` FROM callbacks` + cond + ` ORDER BY create_time, id LIMIT ? OFFSET ?`, args
}

// UpdateCallback applies upd, validates the result, stores it with
// UpdateTime = now and returns it. An update clears DisabledReason.
func (db *DB) UpdateCallback(ctx context.Context, projectID, id string, upd livehooks.CallbackUpdate, now time.Time,
	validate func(*livehooks.CallbackConfig) error) (*livehooks.CallbackConfig, error) {
	var out *livehooks.CallbackConfig
	err := db.writeTx(ctx, func(tx *sql.Tx) error {
		db.configChanged()
		old, err := db.findCallback(ctx, tx, projectID, id)
		if err != nil {
			return err
		}
		c := upd.Apply(*old)
		if validate != nil {
			if err := validate(&c); err != nil {
				return err
			}
		}
		c.ID, c.ProjectID, c.CreateTime, c.UpdateTime = old.ID, old.ProjectID, old.CreateTime, now.UTC()
		sealed, err := db.sealKey(&c)
		if err != nil {
			return err
		}
		_, err = tx.ExecContext(ctx, `UPDATE callbacks SET publish_domain = ?, app = ?, notify_callback_url = ?,
			notify_event_subscription = ?, sign_type = ?, on_demand_callback_url = ?, key_sealed = ?,
			disabled_reason = ?, update_time = ? WHERE id = ?`,
			c.PublishDomain, c.App, c.NotifyCallbackURL, storerow.JoinSubscription(c.NotifyEventSubscription),
			c.SignType, c.OnDemandCallbackURL, sealed, c.DisabledReason, micros(c.UpdateTime), c.ID)
		if isUniqueViolation(err) {
			return errConflict()
		} else if err != nil {
			return fmt.Errorf("sqlite: update callback: %w", err)
		}
		out = &c
		return nil
	})
	if err != nil {
		return nil, err
	}
	// Return what a later read returns (times at storage precision).
	out.UpdateTime = fromMicros(micros(out.UpdateTime))
	return out, nil
}

// DeleteCallback removes the config, its pending deliveries (with their
// attempts) and its lanes. Final deliveries stay in the log until Purge.
func (db *DB) DeleteCallback(ctx context.Context, projectID, id string) error {
	return db.writeTxThen(ctx, func(tx *sql.Tx) error {
		db.configChanged()
		res, err := tx.ExecContext(ctx, `DELETE FROM callbacks WHERE id = ? AND project_id = ?`, id, projectID)
		if err != nil {
			return fmt.Errorf("sqlite: delete callback: %w", err)
		}
		if n, _ := res.RowsAffected(); n == 0 {
			return errNotFound(id)
		}
		lo, hi := laneRange(id)
		if _, err := tx.ExecContext(ctx, deletePendingSQL, lo, hi, id); err != nil {
			return fmt.Errorf("sqlite: delete callback: %w", err)
		}
		return nil
	}, func() { db.dropLanes(id) })
}

// dropLanes deletes the lanes of a config whose pending deliveries a
// committed transaction deleted or failed.
func (db *DB) dropLanes(configID string) {
	db.lanes.mu.Lock()
	defer db.lanes.mu.Unlock()
	db.lanes.apply([]laneOp{{kind: laneDropConfig, config: configID}})
}

// MatchCallback returns the config of the exact app, else the `*` config of
// the domain. It returns a disabled config too (DisabledReason set): the
// caller decides; Enqueue does not deliver to it.
func (db *DB) MatchCallback(ctx context.Context, projectID, domain, app string) (*livehooks.CallbackConfig, error) {
	c, err := db.scanCallback(db.read.QueryRowContext(ctx, matchCallbackSQL, projectID, domain, app))
	if errors.Is(err, sql.ErrNoRows) {
		return nil, livehooks.Errorf(livehooks.ENOTFOUND, "no callback configuration matches this domain and app")
	} else if err != nil {
		return nil, fmt.Errorf("sqlite: match callback: %w", err)
	}
	return c, nil
}

// DisableCallback sets the config's DisabledReason, fails its pending
// deliveries with that reason and drops its lanes.
func (db *DB) DisableCallback(ctx context.Context, projectID, id, reason string) error {
	now := db.clock.Now()
	return db.writeTxThen(ctx, func(tx *sql.Tx) error {
		db.configChanged()
		return disable(ctx, tx, projectID, id, reason, now)
	}, func() { db.dropLanes(id) })
}

// configChanged empties the write path's config matches (cache.go). Config
// writers call it inside their transaction: the write connection is theirs,
// so no group commit can run between the change and the bump.
func (db *DB) configChanged() { db.cache.configs.Invalidate() }

func disable(ctx context.Context, tx *sql.Tx, projectID, id, reason string, now time.Time) error {
	if reason == "" {
		reason = "disabled"
	}
	res, err := tx.ExecContext(ctx, `UPDATE callbacks SET disabled_reason = ? WHERE id = ? AND project_id = ?`, reason, id, projectID)
	if err != nil {
		return fmt.Errorf("sqlite: disable callback: %w", err)
	}
	if n, _ := res.RowsAffected(); n == 0 {
		return errNotFound(id)
	}
	lo, hi := laneRange(id)
	if _, err := tx.ExecContext(ctx, failPendingSQL, lo, hi, id, reason, micros(now)); err != nil {
		return fmt.Errorf("sqlite: disable callback: %w", err)
	}
	return nil
}
