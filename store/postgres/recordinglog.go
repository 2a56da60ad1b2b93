package postgres

import (
	"context"
	"fmt"
	"time"

	"github.com/livehooks/livehooks"
)

// FindStreams returns up to limit streams of a domain that are being
// recorded (not over), by app and stream: a range of the primary key.
func (db *DB) FindStreams(ctx context.Context, projectID, domain string, limit int) ([]*livehooks.StreamState, error) {
	out := []*livehooks.StreamState{}
	if !validText(projectID, domain) {
		return out, nil
	}
	rows, err := db.pool.Query(ctx, `SELECT `+streamColumns+`, version FROM streams
		WHERE project_id = $1 AND publish_domain = $2 AND state <> $3 ORDER BY app, stream LIMIT $4`,
		projectID, domain, livehooks.StreamOver, limitOrDefault(limit))
	if err != nil {
		return nil, fmt.Errorf("postgres: find streams: %w", err)
	}
	defer rows.Close()
	for rows.Next() {
		c, err := scanStream(rows)
		if err != nil {
			return nil, fmt.Errorf("postgres: find streams: %w", err)
		}
		out = append(out, c.state)
	}
	if err := rows.Err(); err != nil {
		return nil, fmt.Errorf("postgres: find streams: %w", err)
	}
	return out, nil
}

// FindRecentEvents returns up to limit events of a domain stored before
// `before`, newest first: a backward walk of events_replay.
func (db *DB) FindRecentEvents(ctx context.Context, projectID, domain string, before time.Time, limit int) ([]*livehooks.Event, error) {
	es := []*livehooks.Event{}
	if !validText(projectID, domain) {
		return es, nil
	}
	q := `SELECT ` + eventColumns + ` FROM events e WHERE e.project_id = $1 AND e.publish_domain = $2`
	args := []any{projectID, domain}
	if !before.IsZero() {
		args = append(args, ts(before))
		q += ` AND e.created_at < $3`
	}
	args = append(args, limitOrDefault(limit))
	q += fmt.Sprintf(` ORDER BY e.created_at DESC, e.pk DESC LIMIT $%d`, len(args))
	rows, err := db.pool.Query(ctx, q, args...)
	if err != nil {
		return nil, fmt.Errorf("postgres: find recent events: %w", err)
	}
	if es, err = scanEvents(rows); err != nil {
		return nil, fmt.Errorf("postgres: find recent events: %w", err)
	}
	return es, nil
}
