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

const streamColumns = `project_id, publish_domain, app, stream, state, task_id, job_id, file_seq,
	file_started_at, published_at, over_at, next_file_at, updated_at, record_format, pending_files`

// A stream's state is read once (stmtStream) and then served from memory
// (caches); puts are written in batches (batch.go).
const (
	streamSQL = `SELECT ` + streamColumns + ` FROM streams
		WHERE project_id = ? AND publish_domain = ? AND app = ? AND stream = ?`
)

// Stream returns a stream's recording state, nil when it has none: what this
// transaction put, else the committed state (from the cache when this
// process read or wrote it before). The caller gets its own copy.
func (t *outboxTx) Stream(ctx context.Context, key livehooks.StreamKey) (*livehooks.StreamState, error) {
	if s, ok := t.streams[key]; ok {
		cp := *s
		return &cp, nil
	}
	gen := t.db.cache.streams.Gen()
	if s, ok := t.db.cache.streams.Get(key); ok {
		if s == nil {
			return nil, nil
		}
		cp := *s
		return &cp, nil
	}
	row := t.stmt(stmtStream).QueryRowContext(t.ctx, key.ProjectID, key.PublishDomain, key.App, key.Stream)
	var s livehooks.StreamState
	err := scanStream(row, &s)
	if errors.Is(err, sql.ErrNoRows) {
		t.db.cache.streams.Put(key, nil, gen)
		return nil, nil
	} else if err != nil {
		return nil, fmt.Errorf("sqlite: load stream: %w", err)
	}
	// Nothing of this transaction is in the row (its puts are in
	// t.streams): it is the committed state.
	t.db.cache.putStream(key, &s, gen)
	cp := s
	return &cp, nil
}

// scanStream reads a row of streamColumns into s.
func scanStream(row scanner, s *livehooks.StreamState) error {
	var (
		started, published, over, nextFile sql.NullInt64
		updated                            int64
	)
	if err := row.Scan(&s.ProjectID, &s.PublishDomain, &s.App, &s.Stream, &s.State, &s.TaskID, &s.JobID, &s.FileSeq,
		&started, &published, &over, &nextFile, &updated, &s.RecordFormat, &s.PendingFiles); err != nil {
		return err
	}
	s.FileStartedAt, s.PublishedAt = fromOptMicros(started), fromOptMicros(published)
	s.OverAt, s.NextFileAt, s.UpdatedAt = fromOptMicros(over), fromOptMicros(nextFile), fromMicros(updated)
	return nil
}

// PutStream holds a stream's recording state until the flush; the last put
// of a stream in a transaction is the one written.
func (t *outboxTx) PutStream(ctx context.Context, s *livehooks.StreamState) error {
	cp := *s
	cp.FileStartedAt, cp.PublishedAt = storedTime(cp.FileStartedAt), storedTime(cp.PublishedAt)
	cp.OverAt, cp.NextFileAt, cp.UpdatedAt = storedTime(cp.OverAt), storedTime(cp.NextFileAt), storedTime(cp.UpdatedAt)
	if t.streams == nil {
		t.streams = map[livehooks.StreamKey]*livehooks.StreamState{}
	}
	if at, ok := t.streamAt[s.StreamKey]; !ok || at < t.streamsWritten {
		if t.streamAt == nil {
			t.streamAt = map[livehooks.StreamKey]int{}
		}
		t.streamAt[s.StreamKey] = len(t.streamOrder)
		t.streamOrder = append(t.streamOrder, s.StreamKey)
	}
	t.streams[s.StreamKey] = &cp
	return nil
}

// storedTime is t as a read from the store returns it (UTC microseconds;
// zero stays zero).
func storedTime(t time.Time) time.Time {
	if t.IsZero() {
		return t
	}
	return fromMicros(micros(t))
}

// DueStreams returns streams whose next timer is due, earliest first.
func (db *DB) DueStreams(ctx context.Context, now time.Time, limit int) ([]livehooks.StreamKey, error) {
	rows, err := db.read.QueryContext(ctx, `SELECT project_id, publish_domain, app, stream FROM streams
		WHERE next_timer IS NOT NULL AND next_timer <= ? ORDER BY next_timer LIMIT ?`, micros(now), limitOrDefault(limit))
	if err != nil {
		return nil, fmt.Errorf("sqlite: due streams: %w", err)
	}
	defer rows.Close()
	var keys []livehooks.StreamKey
	for rows.Next() {
		var k livehooks.StreamKey
		if err := rows.Scan(&k.ProjectID, &k.PublishDomain, &k.App, &k.Stream); err != nil {
			return nil, fmt.Errorf("sqlite: due streams: %w", err)
		}
		keys = append(keys, k)
	}
	return keys, rows.Err()
}

// PutDomain stores a domain's recording settings, sealing the storage secret.
func (db *DB) PutDomain(ctx context.Context, d *livehooks.DomainSettings) error {
	body, sealed, err := storerow.EncodeDomain(d, db.cipher)
	if err != nil {
		return fmt.Errorf("sqlite: %w", err)
	}
	return db.writeTx(ctx, func(tx *sql.Tx) error {
		_, err := tx.ExecContext(ctx, `INSERT INTO domains (project_id, publish_domain, settings, max_pause_ms, storage_secret, create_time, update_time)
			VALUES (?, ?, ?, ?, ?, ?, ?)
			ON CONFLICT (project_id, publish_domain) DO UPDATE SET settings = excluded.settings,
				max_pause_ms = excluded.max_pause_ms, storage_secret = excluded.storage_secret, update_time = excluded.update_time`,
			d.ProjectID, d.PublishDomain, string(body), d.MaxPause.Milliseconds(), sealed, micros(d.CreateTime), micros(d.UpdateTime))
		if err != nil {
			return fmt.Errorf("sqlite: store domain: %w", err)
		}
		return nil
	})
}

func (db *DB) scanDomain(row scanner) (*livehooks.DomainSettings, error) {
	var (
		project, body   string
		maxPause        int64
		sealed          []byte
		created, update int64
	)
	if err := row.Scan(&project, &body, &maxPause, &sealed, &created, &update); err != nil {
		return nil, err
	}
	d, err := storerow.DecodeDomain(project, []byte(body), time.Duration(maxPause)*time.Millisecond, sealed, fromMicros(created), fromMicros(update), db.cipher)
	if err != nil {
		return nil, fmt.Errorf("sqlite: %w", err)
	}
	return d, nil
}

const domainColumns = `project_id, settings, max_pause_ms, storage_secret, create_time, update_time`

// FindDomain returns a domain's settings.
func (db *DB) FindDomain(ctx context.Context, projectID, domain string) (*livehooks.DomainSettings, error) {
	d, err := db.scanDomain(db.read.QueryRowContext(ctx, `SELECT `+domainColumns+` FROM domains
		WHERE project_id = ? AND publish_domain = ?`, projectID, domain))
	if errors.Is(err, sql.ErrNoRows) {
		return nil, livehooks.Errorf(livehooks.ENOTFOUND, "publish domain %s has no recording settings", domain)
	}
	return d, err
}

// FindDomains lists a project's domain settings, ordered by domain.
func (db *DB) FindDomains(ctx context.Context, projectID string) ([]*livehooks.DomainSettings, error) {
	rows, err := db.read.QueryContext(ctx, `SELECT `+domainColumns+` FROM domains WHERE project_id = ? ORDER BY publish_domain`, projectID)
	if err != nil {
		return nil, fmt.Errorf("sqlite: list domains: %w", err)
	}
	defer rows.Close()
	var out []*livehooks.DomainSettings
	for rows.Next() {
		d, err := db.scanDomain(rows)
		if err != nil {
			return nil, err
		}
		out = append(out, d)
	}
	return out, rows.Err()
}

// DeleteDomain removes a domain's settings.
func (db *DB) DeleteDomain(ctx context.Context, projectID, domain string) error {
	return db.writeTx(ctx, func(tx *sql.Tx) error {
		res, err := tx.ExecContext(ctx, `DELETE FROM domains WHERE project_id = ? AND publish_domain = ?`, projectID, domain)
		if err != nil {
			return fmt.Errorf("sqlite: delete domain: %w", err)
		}
		if n, _ := res.RowsAffected(); n == 0 {
			return livehooks.Errorf(livehooks.ENOTFOUND, "publish domain %s has no recording settings", domain)
		}
		return nil
	})
}
