package postgres

import (
	"context"
	"errors"
	"fmt"
	"strings"
	"time"

	"github.com/jackc/pgx/v5"

	"github.com/livehooks/livehooks"
	"github.com/livehooks/livehooks/store/storerow"
)

const callbackColumns = `id, project_id, publish_domain, app, notify_callback_url,
	notify_event_subscription, sign_type, on_demand_callback_url, key_sealed,
	disabled_reason, create_time, update_time`

// scanCallback reads a row of callbackColumns and decrypts the key.
func (db *DB) scanCallback(row pgx.Row) (*livehooks.CallbackConfig, error) {
	var (
		c      livehooks.CallbackConfig
		subs   string
		sealed []byte
	)
	if err := row.Scan(&c.ID, &c.ProjectID, &c.PublishDomain, &c.App, &c.NotifyCallbackURL,
		&subs, &c.SignType, &c.OnDemandCallbackURL, &sealed, &c.DisabledReason, &c.CreateTime, &c.UpdateTime); err != nil {
		return nil, err
	}
	c.NotifyEventSubscription = storerow.SplitSubscription(subs)
	c.CreateTime, c.UpdateTime = c.CreateTime.UTC(), c.UpdateTime.UTC()
	if err := storerow.OpenCallbackKey(db.cipher, &c, sealed); err != nil {
		// The cipher's error never holds the key; the id says which row.
		return nil, fmt.Errorf("postgres: decrypt key of callback %s: %w", c.ID, err)
	}
	return &c, nil
}

// sealKey encrypts a key; nil (a NULL column) when there is none.
func (db *DB) sealKey(c *livehooks.CallbackConfig) ([]byte, error) {
	sealed, err := storerow.SealCallbackKey(db.cipher, c)
	if err != nil {
		return nil, fmt.Errorf("postgres: encrypt key: %w", err)
	}
	return sealed, nil
}

var (
	errConflict = storerow.ErrCallbackConflict
	errNotFound = storerow.ErrCallbackNotFound
)

// validConfig checks what the API's validation leaves to the store: every
// string must fit a text column.
func validConfig(c *livehooks.CallbackConfig) error {
	if !validText(c.ID, c.ProjectID, c.PublishDomain, c.App, c.NotifyCallbackURL, c.SignType, c.OnDemandCallbackURL,
		c.DisabledReason, storerow.JoinSubscription(c.NotifyEventSubscription)) {
		return livehooks.Errorf(livehooks.EINVALID, "callback configuration fields must be valid UTF-8 without NUL")
	}
	return nil
}

// CreateCallback stores c. The key is sealed before it reaches the database.
func (db *DB) CreateCallback(ctx context.Context, c *livehooks.CallbackConfig) error {
	if c.ID == "" || c.ProjectID == "" {
		return livehooks.Errorf(livehooks.EINVALID, "callback id and project are required")
	}
	if err := validConfig(c); err != nil {
		return err
	}
	sealed, err := db.sealKey(c)
	if err != nil {
		return err
	}
	_, err = db.pool.Exec(ctx, `INSERT INTO callbacks (`+callbackColumns+`)
		VALUES ($1, $2, $3, $4, $5, $6, $7, $8, $9, $10, $11, $12)`,
		c.ID, c.ProjectID, c.PublishDomain, c.App, c.NotifyCallbackURL,
		storerow.JoinSubscription(c.NotifyEventSubscription), c.SignType, c.OnDemandCallbackURL, sealed,
		c.DisabledReason, ts(c.CreateTime), ts(c.UpdateTime))
	db.configs.Invalidate()
	if isUniqueViolation(err) {
		return errConflict()
	} else if err != nil {
		return fmt.Errorf("postgres: create callback: %w", err)
	}
	return nil
}

// FindCallbackByID returns the config with that id in that project; a config
// of another project is not found.
func (db *DB) FindCallbackByID(ctx context.Context, projectID, id string) (*livehooks.CallbackConfig, error) {
	return db.findCallback(ctx, db.pool, projectID, id, "")
}

type querier interface {
	QueryRow(ctx context.Context, sql string, args ...any) pgx.Row
}

// findCallback reads one config; lock is "" or a locking clause.
func (db *DB) findCallback(ctx context.Context, q querier, projectID, id, lock string) (*livehooks.CallbackConfig, error) {
	if !validText(projectID, id) {
		return nil, errNotFound(id)
	}
	c, err := db.scanCallback(q.QueryRow(ctx,
		`SELECT `+callbackColumns+` FROM callbacks WHERE id = $1 AND project_id = $2 `+lock, id, projectID))
	if errors.Is(err, pgx.ErrNoRows) {
		return nil, errNotFound(id)
	} else if err != nil {
		return nil, fmt.Errorf("postgres: find callback: %w", err)
	}
	return c, nil
}

// FindCallbacks returns a page of the configs of f.ProjectID (every project
// when empty) with exact-match filters, ordered by create time then id, and
// the number of all matches. A zero Limit means livehooks.DefaultLimit.
func (db *DB) FindCallbacks(ctx context.Context, f livehooks.CallbackFilter) ([]*livehooks.CallbackConfig, int, error) {
	cs := []*livehooks.CallbackConfig{}
	if !validText(f.ProjectID, f.PublishDomain, f.App) {
		return cs, 0, nil
	}
	var (
		where []string
		args  []any
	)
	add := func(col, v string) {
		if v != "" {
			args = append(args, v)
			where = append(where, fmt.Sprintf("%s = $%d", col, len(args)))
		}
	}
	add("project_id", f.ProjectID)
	add("publish_domain", f.PublishDomain)
	add("app", f.App)
	cond := ""
	if len(where) > 0 {
		cond = " WHERE " + strings.Join(where, " AND ")
	}
	var total int
	err := db.readTx(ctx, func(tx pgx.Tx) error {
		if err := tx.QueryRow(ctx, `SELECT COUNT(*) FROM callbacks`+cond, args...).Scan(&total); err != nil {
			return err
		}
		page := fmt.Sprintf(`SELECT `+callbackColumns+` FROM callbacks`+cond+` ORDER BY create_time, id LIMIT $%d OFFSET $%d`,
			len(args)+1, len(args)+2)
		rows, err := tx.Query(ctx, page, append(args, limitOrDefault(f.Limit), max(f.Offset, 0))...)
		if err != nil {
			return err
		}
		defer rows.Close()
		for rows.Next() {
			c, err := db.scanCallback(rows)
			if err != nil {
				return err
			}
			cs = append(cs, c)
		}
		return rows.Err()
	})
	if err != nil {
		return nil, 0, fmt.Errorf("postgres: find callbacks: %w", err)
	}
	return cs, total, nil
}

// UpdateCallback applies upd, validates the result, stores it with
// UpdateTime = now and returns it. An update clears DisabledReason.
func (db *DB) UpdateCallback(ctx context.Context, projectID, id string, upd livehooks.CallbackUpdate, now time.Time,
	validate func(*livehooks.CallbackConfig) error) (*livehooks.CallbackConfig, error) {
	var out *livehooks.CallbackConfig
	err := db.writeTx(ctx, func(tx pgx.Tx) error {
		old, err := db.findCallback(ctx, tx, projectID, id, "FOR UPDATE")
		if err != nil {
			return err
		}
		c := upd.Apply(*old)
		if validate != nil {
			if err := validate(&c); err != nil {
				return err
			}
		}
		if err := validConfig(&c); err != nil {
			return err
		}
		c.ID, c.ProjectID, c.CreateTime, c.UpdateTime = old.ID, old.ProjectID, old.CreateTime, ts(now)
		sealed, err := db.sealKey(&c)
		if err != nil {
			return err
		}
		_, err = tx.Exec(ctx, `UPDATE callbacks SET publish_domain = $1, app = $2, notify_callback_url = $3,
			notify_event_subscription = $4, sign_type = $5, on_demand_callback_url = $6, key_sealed = $7,
			disabled_reason = $8, update_time = $9 WHERE id = $10`,
			c.PublishDomain, c.App, c.NotifyCallbackURL, storerow.JoinSubscription(c.NotifyEventSubscription),
			c.SignType, c.OnDemandCallbackURL, sealed, c.DisabledReason, c.UpdateTime, c.ID)
		if isUniqueViolation(err) {
			return errConflict()
		} else if err != nil {
			return fmt.Errorf("postgres: update callback: %w", err)
		}
		out = &c
		return nil
	})
	db.configs.Invalidate()
	if err != nil {
		return nil, err
	}
	return out, nil
}

// laneRange returns the bounds of the lane keys of a config: every
// livehooks.LaneKey(configID, stream) is in [lo, hi), as '0' follows '/'
// (lane keys compare bytewise: they have the "C" collation).
func laneRange(configID string) (lo, hi string) {
	return configID + "/", configID + "0"
}

const (
	// Attempts go with their deliveries (no foreign key does it).
	deletePendingSQL = `WITH d AS (
		DELETE FROM deliveries WHERE lane >= $1 AND lane < $2 AND status = 'pending' AND config_id = $3 RETURNING id
	) DELETE FROM attempts WHERE delivery_id = ANY (ARRAY(SELECT id FROM d))`

	failPendingSQL = `UPDATE deliveries SET status = 'failed', last_error = $4, updated_at = $5
		WHERE lane >= $1 AND lane < $2 AND status = 'pending' AND config_id = $3`

	deleteConfigLanesSQL = `DELETE FROM lanes WHERE lane >= $1 AND lane < $2 AND config_id = $3`
)

// DeleteCallback removes the config, its pending deliveries (with their
// attempts) and its lanes. Final deliveries stay in the log until Purge.
//
// Deleting the row waits for transactions that matched events to the config
// (they hold a key-share lock on it), so their deliveries are seen and
// deleted too, and later ones no longer match it.
func (db *DB) DeleteCallback(ctx context.Context, projectID, id string) error {
	if !validText(projectID, id) {
		return errNotFound(id)
	}
	defer db.configs.Invalidate()
	return db.writeTx(ctx, func(tx pgx.Tx) error {
		tag, err := tx.Exec(ctx, `DELETE FROM callbacks WHERE id = $1 AND project_id = $2`, id, projectID)
		if err != nil {
			return fmt.Errorf("postgres: delete callback: %w", err)
		}
		if tag.RowsAffected() == 0 {
			return errNotFound(id)
		}
		lo, hi := laneRange(id)
		b := &pgx.Batch{}
		b.Queue(deletePendingSQL, lo, hi, id)
		b.Queue(deleteConfigLanesSQL, lo, hi, id)
		if err := tx.SendBatch(ctx, b).Close(); err != nil {
			return fmt.Errorf("postgres: delete callback: %w", err)
		}
		return nil
	})
}

// MatchCallback returns the config of the exact app, else the `*` config of
// the domain. It returns a disabled config too (DisabledReason set): the
// caller decides; Enqueue does not deliver to it.
func (db *DB) MatchCallback(ctx context.Context, projectID, domain, app string) (*livehooks.CallbackConfig, error) {
	notFound := livehooks.Errorf(livehooks.ENOTFOUND, "no callback configuration matches this domain and app")
	if !validText(projectID, domain, app) {
		return nil, notFound
	}
	c, err := db.scanCallback(db.pool.QueryRow(ctx, `SELECT `+callbackColumns+` FROM callbacks
		WHERE project_id = $1 AND publish_domain = $2 AND app IN ($3, '*') ORDER BY app = '*' LIMIT 1`, projectID, domain, app))
	if errors.Is(err, pgx.ErrNoRows) {
		return nil, notFound
	} else if err != nil {
		return nil, fmt.Errorf("postgres: match callback: %w", err)
	}
	return c, nil
}

// DisableCallback sets the config's DisabledReason, fails its pending
// deliveries with that reason and drops its lanes.
func (db *DB) DisableCallback(ctx context.Context, projectID, id, reason string) error {
	now := db.clock.Now()
	defer db.configs.Invalidate()
	return db.writeTx(ctx, func(tx pgx.Tx) error {
		return disable(ctx, tx, projectID, id, reason, now)
	})
}

// disable locks the config row FOR UPDATE first: that waits for the
// transactions that matched events to it (see DeleteCallback), so none of
// their deliveries is left pending without a lane.
func disable(ctx context.Context, tx pgx.Tx, projectID, id, reason string, now time.Time) error {
	if reason == "" {
		reason = "disabled"
	}
	reason = cleanText(reason)
	if !validText(projectID, id) {
		return errNotFound(id)
	}
	var one int
	err := tx.QueryRow(ctx, `SELECT 1 FROM callbacks WHERE id = $1 AND project_id = $2 FOR UPDATE`, id, projectID).Scan(&one)
	if errors.Is(err, pgx.ErrNoRows) {
		return errNotFound(id)
	} else if err != nil {
		return fmt.Errorf("postgres: disable callback: %w", err)
	}
	lo, hi := laneRange(id)
	b := &pgx.Batch{}
	b.Queue(`UPDATE callbacks SET disabled_reason = $1 WHERE id = $2`, reason, id)
	b.Queue(failPendingSQL, lo, hi, id, reason, ts(now))
	b.Queue(deleteConfigLanesSQL, lo, hi, id)
	if err := tx.SendBatch(ctx, b).Close(); err != nil {
		return fmt.Errorf("postgres: disable callback: %w", err)
	}
	return nil
}
