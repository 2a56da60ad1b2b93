package postgres

import (
	"context"
	"errors"
	"fmt"
	"strconv"
	"time"

	"github.com/jackc/pgx/v5"

	"github.com/livehooks/livehooks"
	"github.com/livehooks/livehooks/store/storerow"
)

const deliveryColumns = `d.id, d.webhook_id, d.project_id, d.config_id, d.lane, e.uid, d.event_type, d.stream,
	d.status, d.attempts, d.next_attempt, d.created_at, d.updated_at, d.last_status, d.last_error, d.latency_ms`

// scanEvent reads a row of eventColumns, after the destinations in extra.
func scanEvent(row pgx.Row, extra ...any) (int64, *livehooks.Event, error) {
	var (
		pk         int64
		e          livehooks.Event
		typ        string
		start, end *time.Time
	)
	dest := append(extra, &pk, &e.ID, &e.ProjectID, &typ, &e.PublishDomain, &e.App, &e.Stream, &e.TaskID, &e.JobID,
		&e.RecordFormat, &e.DownloadURL, &e.AssetID, &e.FileSize, &e.RecordDuration, &start, &end,
		&e.Width, &e.Height, &e.ErrorMessage, &e.PlayURL, &e.OccurredAt, &e.IngestedAt)
	if err := row.Scan(dest...); err != nil {
		return 0, nil, err
	}
	e.Type = livehooks.EventType(typ)
	e.StartTime, e.EndTime = fromOpt(start), fromOpt(end)
	e.OccurredAt, e.IngestedAt = e.OccurredAt.UTC(), e.IngestedAt.UTC()
	return pk, &e, nil
}

// deliveryDest returns the scan destinations of deliveryColumns for d and a
// function that converts the scanned values once Scan is done.
func deliveryDest(d *livehooks.Delivery) ([]any, func()) {
	var typ, status string
	dest := []any{&d.ID, &d.WebhookID, &d.ProjectID, &d.ConfigID, &d.Lane, &d.EventID, &typ, &d.Stream,
		&status, &d.Attempts, &d.NextAttempt, &d.CreatedAt, &d.UpdatedAt, &d.LastStatus, &d.LastError, &d.LatencyMS}
	return dest, func() {
		d.EventType, d.Status = livehooks.EventType(typ), livehooks.DeliveryStatus(status)
		d.NextAttempt, d.CreatedAt, d.UpdatedAt = d.NextAttempt.UTC(), d.CreatedAt.UTC(), d.UpdatedAt.UTC()
	}
}

// scanDeliveries reads rows of deliveryColumns (followed by eventColumns when
// withEvent) and closes rows.
func scanDeliveries(rows pgx.Rows, withEvent bool) ([]*livehooks.Delivery, error) {
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
	if !validText(f.ProjectID, f.ConfigID, string(f.Status), string(f.EventType), f.Stream) {
		return []*livehooks.Delivery{}, 0, nil
	}
	cond, args := storerow.DeliveryWhere(f, func(n int) string { return "$" + strconv.Itoa(n) }, func(t time.Time) any { return ts(t) })
	var (
		ds    []*livehooks.Delivery
		total = -1
	)
	err := db.readTx(ctx, func(tx pgx.Tx) error {
		if !f.NoTotal {
			if err := tx.QueryRow(ctx, `SELECT COUNT(*) FROM deliveries d`+cond, args...).Scan(&total); err != nil {
				return err
			}
		}
		page := fmt.Sprintf(`SELECT `+deliveryColumns+` FROM deliveries d JOIN events e ON e.pk = d.event_pk`+cond+
			` ORDER BY d.id DESC LIMIT $%d OFFSET $%d`, len(args)+1, len(args)+2)
		rows, err := tx.Query(ctx, page, append(args, limitOrDefault(f.Limit), max(f.Offset, 0))...)
		if err != nil {
			return err
		}
		ds, err = scanDeliveries(rows, false)
		return err
	})
	if err != nil {
		return nil, 0, fmt.Errorf("postgres: find deliveries: %w", err)
	}
	return ds, total, nil
}

// FindDelivery returns one delivery of a project with its event and attempts.
func (db *DB) FindDelivery(ctx context.Context, projectID string, id int64) (*livehooks.Delivery, error) {
	if !validText(projectID) {
		return nil, livehooks.Errorf(livehooks.ENOTFOUND, "delivery %d not found", id)
	}
	d := new(livehooks.Delivery)
	err := db.readTx(ctx, func(tx pgx.Tx) error {
		dest, done := deliveryDest(d)
		_, e, err := scanEvent(tx.QueryRow(ctx, `SELECT `+deliveryColumns+`, `+eventColumns+`
			FROM deliveries d JOIN events e ON e.pk = d.event_pk WHERE d.id = $1 AND d.project_id = $2`, id, projectID), dest...)
		if errors.Is(err, pgx.ErrNoRows) {
			return livehooks.Errorf(livehooks.ENOTFOUND, "delivery %d not found", id)
		} else if err != nil {
			return err
		}
		done()
		d.Event = e
		rows, err := tx.Query(ctx, `SELECT n, at, status_code, latency_us, response, error
			FROM attempts WHERE delivery_id = $1 ORDER BY n`, id)
		if err != nil {
			return err
		}
		defer rows.Close()
		d.AttemptsList = []livehooks.Attempt{}
		for rows.Next() {
			var (
				a     livehooks.Attempt
				latUS int64
			)
			if err := rows.Scan(&a.N, &a.At, &a.StatusCode, &latUS, &a.Response, &a.Error); err != nil {
				return err
			}
			a.At, a.Latency = a.At.UTC(), time.Duration(latUS)*time.Microsecond
			d.AttemptsList = append(d.AttemptsList, a)
		}
		return rows.Err()
	})
	if livehooks.ErrorCode(err) == livehooks.ENOTFOUND {
		return nil, err
	} else if err != nil {
		return nil, fmt.Errorf("postgres: find delivery: %w", err)
	}
	return d, nil
}

// FindEvents returns up to limit events of c's project and domain, of c's app
// or of any app when c.App is `*`, ingested in [since, until) (a zero bound is
// open), oldest first, with IngestedAt set. A zero limit means
// livehooks.DefaultLimit.
func (db *DB) FindEvents(ctx context.Context, c *livehooks.CallbackConfig, since, until time.Time, limit int) ([]*livehooks.Event, error) {
	es := []*livehooks.Event{}
	if !validText(c.ProjectID, c.PublishDomain, c.App) {
		return es, nil
	}
	q := `SELECT ` + eventColumns + ` FROM events e WHERE e.project_id = $1 AND e.publish_domain = $2`
	args := []any{c.ProjectID, c.PublishDomain}
	arg := func(cond string, v any) {
		args = append(args, v)
		q += fmt.Sprintf(cond, len(args))
	}
	if c.App != "*" {
		arg(` AND e.app = $%d`, c.App)
	}
	if !since.IsZero() {
		arg(` AND e.created_at >= $%d`, ts(since))
	}
	if !until.IsZero() {
		arg(` AND e.created_at < $%d`, ts(until))
	}
	arg(` ORDER BY e.created_at, e.pk LIMIT $%d`, limitOrDefault(limit))
	rows, err := db.pool.Query(ctx, q, args...)
	if err != nil {
		return nil, fmt.Errorf("postgres: find events: %w", err)
	}
	if es, err = scanEvents(rows); err != nil {
		return nil, fmt.Errorf("postgres: find events: %w", err)
	}
	return es, nil
}

// scanEvents reads rows of eventColumns and closes rows.
func scanEvents(rows pgx.Rows) ([]*livehooks.Event, error) {
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

// PendingCount returns the number of pending deliveries, summed over the
// lanes rather than counted over the deliveries.
func (db *DB) PendingCount(ctx context.Context) (int64, error) {
	var n int64
	if err := db.pool.QueryRow(ctx, `SELECT COALESCE(SUM(pending), 0) FROM lanes`).Scan(&n); err != nil {
		return 0, fmt.Errorf("postgres: pending count: %w", err)
	}
	return n, nil
}

// Purge deletes up to limit final deliveries last updated before t (with
// their attempts), then up to limit events stored before t that no delivery
// references. It returns the number of deliveries and events deleted; call it
// until it returns 0. A zero limit means 1000. Rows another transaction holds
// (an event being replayed) are skipped, not waited for.
func (db *DB) Purge(ctx context.Context, before time.Time, limit int) (int, error) {
	if limit <= 0 {
		limit = 1000
	}
	var n int64
	err := db.writeTx(ctx, func(tx pgx.Tx) error {
		// Probe deliveries by event, as many as the limit needs: a hash of
		// every delivery, for each call, would make purging a large table
		// take time in the square of its size.
		if _, err := tx.Exec(ctx, `SELECT set_config('enable_hashjoin', 'off', true), set_config('enable_mergejoin', 'off', true)`); err != nil {
			return err
		}
		var nd int64
		if err := tx.QueryRow(ctx, purgeDeliveriesSQL, ts(before), limit).Scan(&nd); err != nil {
			return err
		}
		var pks []int64
		if err := tx.QueryRow(ctx, purgeCandidatesSQL, ts(before), limit).Scan(&pks); err != nil {
			return err
		}
		tag, err := tx.Exec(ctx, purgeEventsSQL, pks)
		if err != nil {
			return err
		}
		n = nd + tag.RowsAffected()
		return nil
	})
	if err != nil {
		return 0, fmt.Errorf("postgres: purge: %w", err)
	}
	return int(n), nil
}

const (
	// A final delivery updated before t was created before t: the block
	// range index on created_at finds the old part of the table.
	purgeDeliveriesSQL = `WITH d AS (
		DELETE FROM deliveries WHERE id IN (
			SELECT id FROM deliveries WHERE created_at < $1 AND status <> 'pending' AND updated_at < $1
			LIMIT $2 FOR UPDATE SKIP LOCKED)
		RETURNING id
	), a AS (
		DELETE FROM attempts WHERE delivery_id = ANY (ARRAY(SELECT id FROM d))
	)
	SELECT count(*) FROM d`

	// No foreign key keeps an event from being deleted while a delivery of
	// it is added (Requeue): the candidates are locked first, skipping
	// those that a Requeue locked, then checked again with a snapshot taken
	// after the lock, which sees the deliveries of the Requeues that
	// committed meanwhile.
	purgeCandidatesSQL = `SELECT COALESCE(array_agg(pk), '{}') FROM (
		SELECT pk FROM events e WHERE e.created_at < $1
		AND NOT EXISTS (SELECT 1 FROM deliveries d WHERE d.event_pk = e.pk)
		LIMIT $2 FOR UPDATE SKIP LOCKED) c`
	purgeEventsSQL = `DELETE FROM events e WHERE pk = ANY($1)
		AND NOT EXISTS (SELECT 1 FROM deliveries d WHERE d.event_pk = e.pk)`
)
