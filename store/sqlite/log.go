package sqlite

import (
	"context"
	"database/sql"
	"errors"
	"fmt"
	"time"

	"github.com/livehooks/livehooks"
	"github.com/livehooks/livehooks/store/storerow"
)

// scanEvent reads a row of eventColumns.
func scanEvent(row scanner, extra ...any) (int64, *livehooks.Event, error) {
	var (
		pk                int64
		e                 livehooks.Event
		typ               string
		start, end        sql.NullInt64
		occurred, created int64
	)
	dest := append(extra, &pk, &e.ID, &e.ProjectID, &typ, &e.PublishDomain, &e.App, &e.Stream, &e.TaskID, &e.JobID,
		&e.RecordFormat, &e.DownloadURL, &e.AssetID, &e.FileSize, &e.RecordDuration, &start, &end,
		&e.Width, &e.Height, &e.ErrorMessage, &e.PlayURL, &occurred, &created)
	if err := row.Scan(dest...); err != nil {
		return 0, nil, err
	}
	e.Type = livehooks.EventType(typ)
	e.StartTime, e.EndTime = fromOptMicros(start), fromOptMicros(end)
	e.OccurredAt, e.IngestedAt = fromMicros(occurred), fromMicros(created)
	return pk, &e, nil
}

// deliveryDest returns the scan destinations of deliveryColumns for d and a
// function that converts the scanned integers once Scan is done.
func deliveryDest(d *livehooks.Delivery) ([]any, func()) {
	var (
		typ, status            string
		next, created, updated int64
	)
	dest := []any{&d.ID, &d.WebhookID, &d.ProjectID, &d.ConfigID, &d.Lane, &d.EventID, &typ, &d.Stream,
		&status, &d.Attempts, &next, &created, &updated, &d.LastStatus, &d.LastError, &d.LatencyMS}
	return dest, func() {
		d.EventType, d.Status = livehooks.EventType(typ), livehooks.DeliveryStatus(status)
		d.NextAttempt, d.CreatedAt, d.UpdatedAt = fromMicros(next), fromMicros(created), fromMicros(updated)
	}
}

// scanDeliveries reads rows of deliveryColumns (followed by eventColumns when
// withEvent) and closes rows.
func scanDeliveries(rows *sql.Rows, withEvent bool) ([]*livehooks.Delivery, error) {
	defer rows.Close()
	ds := []*livehooks.Delivery{}
	for rows.Next() {
		d := new(livehooks.Delivery)
		dest, done := deliveryDest(d)
		if withEvent {
			_, e, err := scanEvent(rows, dest...)
			if err != nil {
				return nil, err
			}
			d.Event = e
		} else if err := rows.Scan(dest...); err != nil {
			return nil, err
		}
		done()
		ds = append(ds, d)
	}
	return ds, rows.Err()
}

// FindDeliveries returns a page of the delivery log, newest first, and the
// number of all matches. A zero Limit means livehooks.DefaultLimit. Events are
// not loaded (FindDelivery does).
func (db *DB) FindDeliveries(ctx context.Context, f livehooks.DeliveryFilter) ([]*livehooks.Delivery, int, error) {
	countSQL, pageSQL, args := findDeliveriesSQL(f)
	tx, err := db.read.BeginTx(ctx, &sql.TxOptions{ReadOnly: true})
	if err != nil {
		return nil, 0, fmt.Errorf("sqlite: find deliveries: %w", err)
	}
	defer tx.Rollback()
	total := -1
	if !f.NoTotal {
		if err := tx.QueryRowContext(ctx, countSQL, args...).Scan(&total); err != nil {
			return nil, 0, fmt.Errorf("sqlite: find deliveries: %w", err)
		}
	}
	rows, err := tx.QueryContext(ctx, pageSQL, append(args, limitOrDefault(f.Limit), max(f.Offset, 0))...)
	if err != nil {
		return nil, 0, fmt.Errorf("sqlite: find deliveries: %w", err)
	}
	ds, err := scanDeliveries(rows, false)
	if err != nil {
		return nil, 0, fmt.Errorf("sqlite: find deliveries: %w", err)
	}
	return ds, total, nil
}

func findDeliveriesSQL(f livehooks.DeliveryFilter) (countSQL, pageSQL string, args []any) {
	cond, args := storerow.DeliveryWhere(f, func(int) string { return "?" }, func(t time.Time) any { return micros(t) })
	return `SELECT COUNT(*) FROM deliveries d` + cond,
		`SELECT ` + deliveryColumns + ` FROM deliveries d JOIN events e ON e.pk = d.event_pk` + cond +
			` ORDER BY d.id DESC LIMIT ? OFFSET ?`, args
}

// FindDelivery returns one delivery of a project with its event and attempts.
func (db *DB) FindDelivery(ctx context.Context, projectID string, id int64) (*livehooks.Delivery, error) {
	tx, err := db.read.BeginTx(ctx, &sql.TxOptions{ReadOnly: true})
	if err != nil {
		return nil, fmt.Errorf("sqlite: find delivery: %w", err)
	}
	defer tx.Rollback()
	d := new(livehooks.Delivery)
	dest, done := deliveryDest(d)
	_, e, err := scanEvent(tx.QueryRowContext(ctx, findDeliverySQL, id, projectID), dest...)
	if errors.Is(err, sql.ErrNoRows) {
		return nil, livehooks.Errorf(livehooks.ENOTFOUND, "delivery %d not found", id)
	} else if err != nil {
		return nil, fmt.Errorf("sqlite: find delivery: %w", err)
	}
	done()
	d.Event = e
	rows, err := tx.QueryContext(ctx, attemptsSQL, id)
	if err != nil {
		return nil, fmt.Errorf("sqlite: find delivery: %w", err)
	}
	defer rows.Close()
	d.AttemptsList = []livehooks.Attempt{}
	for rows.Next() {
		var (
			a         livehooks.Attempt
			at, latUS int64
		)
		if err := rows.Scan(&a.N, &at, &a.StatusCode, &latUS, &a.Response, &a.Error); err != nil {
			return nil, fmt.Errorf("sqlite: find delivery: %w", err)
		}
		a.At, a.Latency = fromMicros(at), time.Duration(latUS)*time.Microsecond
		d.AttemptsList = append(d.AttemptsList, a)
	}
	if err := rows.Err(); err != nil {
		return nil, fmt.Errorf("sqlite: find delivery: %w", err)
	}
	return d, nil
}

// FindEvents returns up to limit events of c's project and domain, of c's app
// or of any app when c.App is `*`, stored in [since, until) (a zero bound is
// open), oldest first. A zero limit means livehooks.DefaultLimit.
func (db *DB) FindEvents(ctx context.Context, c *livehooks.CallbackConfig, since, until time.Time, limit int) ([]*livehooks.Event, error) {
	q, args := findEventsSQL(c, since, until, limit)
	rows, err := db.read.QueryContext(ctx, q, args...)
	if err != nil {
		return nil, fmt.Errorf("sqlite: find events: %w", err)
	}
	es, err := scanEvents(rows)
	if err != nil {
		return nil, fmt.Errorf("sqlite: find events: %w", err)
	}
	return es, nil
}

// scanEvents reads rows of eventColumns and closes rows.
func scanEvents(rows *sql.Rows) ([]*livehooks.Event, error) {
	defer rows.Close()
	es := []*livehooks.Event{}
	for rows.Next() {
		_, e, err := scanEvent(rows)
		if err != nil {
			return nil, err
		}
		es = append(es, e)
	}
	return es, rows.Err()
}

func findEventsSQL(c *livehooks.CallbackConfig, since, until time.Time, limit int) (string, []any) {
	q := `SELECT ` + eventColumns + ` FROM events e WHERE e.project_id = ? AND e.publish_domain = ?`
	args := []any{c.ProjectID, c.PublishDomain}
	if c.App != "*" {
		q, args = q+` AND e.app = ?`, append(args, c.App)
	}
	if !since.IsZero() {
		q, args = q+` AND e.created_at >= ?`, append(args, micros(since))
	}
	if !until.IsZero() {
		q, args = q+` AND e.created_at < ?`, append(args, micros(until))
	}
	return q + ` ORDER BY e.created_at, e.pk LIMIT ?`, append(args, limitOrDefault(limit))
}

// Purge deletes up to limit final deliveries last updated before t (with
// their attempts), then up to limit events stored before t that no delivery
// references. It returns the number of deliveries and events deleted; call it
// until it returns 0. A zero limit means 1000.
func (db *DB) Purge(ctx context.Context, before time.Time, limit int) (int, error) {
	if limit <= 0 {
		limit = 1000
	}
	var n int64
	err := db.writeTx(ctx, func(tx *sql.Tx) error {
		lastID, err := cutoff(ctx, tx, "deliveries", "id", micros(before))
		if err != nil {
			return err
		}
		lastPK, err := cutoff(ctx, tx, "events", "pk", micros(before))
		if err != nil {
			return err
		}
		res, err := tx.ExecContext(ctx, purgeDeliveriesSQL, lastID, limit)
		if err != nil {
			return err
		}
		nd, _ := res.RowsAffected()
		res, err = tx.ExecContext(ctx, purgeEventsSQL, lastPK, limit)
		if err != nil {
			return err
		}
		ne, _ := res.RowsAffected()
		n = nd + ne
		return nil
	})
	if err != nil {
		return 0, fmt.Errorf("sqlite: purge: %w", err)
	}
	return int(n), nil
}

// cutoff returns the largest key of table whose row was created before t (0
// when none), by a binary search on the key: rows get their keys in commit
// order, so created_at grows with the key. Each probe is one seek.
func cutoff(ctx context.Context, tx *sql.Tx, table, key string, t int64) (int64, error) {
	var lo, hi int64
	if err := tx.QueryRowContext(ctx, `SELECT COALESCE(MIN(`+key+`), 0), COALESCE(MAX(`+key+`), 0) FROM `+table).Scan(&lo, &hi); err != nil {
		return 0, err
	}
	if hi == 0 {
		return 0, nil
	}
	// Invariant: every row below lo is older than t; no row above hi is.
	createdAt := func(k int64) (int64, int64, error) {
		var at, got int64
		err := tx.QueryRowContext(ctx, `SELECT `+key+`, created_at FROM `+table+` WHERE `+key+` >= ? ORDER BY `+key+` LIMIT 1`, k).Scan(&got, &at)
		return got, at, err
	}
	first, at, err := createdAt(lo)
	if err != nil {
		return 0, err
	}
	if at >= t {
		return first - 1, nil
	}
	lo = first // created before t
	for lo < hi {
		mid := lo + (hi-lo+1)/2
		k, at, err := createdAt(mid)
		if err != nil {
			return 0, err
		}
		if at < t {
			lo = k
		} else {
			hi = mid - 1
		}
	}
	return lo, nil
}
