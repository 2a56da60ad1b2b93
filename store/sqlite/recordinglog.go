package sqlite

import (
	"context"
	"fmt"
	"time"

	"github.com/livehooks/livehooks"
)

// FindStreams returns up to limit streams of a domain that are being
// recorded (not over), by app and stream: a range of the primary key.
func (db *DB) FindStreams(ctx context.Context, projectID, domain string, limit int) ([]*livehooks.StreamState, error) {
	rows, err := db.read.QueryContext(ctx, `SELECT `+streamColumns+` FROM streams
		WHERE project_id = ? AND publish_domain = ? AND state <> ? ORDER BY app, stream LIMIT ?`,
		projectID, domain, livehooks.StreamOver, limitOrDefault(limit))
	if err != nil {
		return nil, fmt.Errorf("sqlite: find streams: %w", err)
	}
	defer rows.Close()
	out := []*livehooks.StreamState{}
	for rows.Next() {
		s := new(livehooks.StreamState)
		if err := scanStream(rows, s); err != nil {
			return nil, fmt.Errorf("sqlite: find streams: %w", err)
		}
		out = append(out, s)
	}
	if err := rows.Err(); err != nil {
		return nil, fmt.Errorf("sqlite: find streams: %w", err)
	}
	return out, nil
}

// FindRecentEvents returns up to limit events of a domain stored before
// `before`, newest first: a backward walk of events_replay.
func (db *DB) FindRecentEvents(ctx context.Context, projectID, domain string, before time.Time, limit int) ([]*livehooks.Event, error) {
	q := `SELECT ` + eventColumns + ` FROM events e WHERE e.project_id = ? AND e.publish_domain = ?`
	args := []any{projectID, domain}
	if !before.IsZero() {
		q, args = q+` AND e.created_at < ?`, append(args, micros(before))
	}
	rows, err := db.read.QueryContext(ctx, q+` ORDER BY e.created_at DESC, e.pk DESC LIMIT ?`, append(args, limitOrDefault(limit))...)
	if err != nil {
		return nil, fmt.Errorf("sqlite: find recent events: %w", err)
	}
	es, err := scanEvents(rows)
	if err != nil {
		return nil, fmt.Errorf("sqlite: find recent events: %w", err)
	}
	return es, nil
}
