package postgres

import (
	"context"
	"errors"
	"fmt"
	"time"

	"github.com/jackc/pgx/v5"

	"github.com/livehooks/livehooks"
	"github.com/livehooks/livehooks/store/storerow"
)

func validStreamKey(k livehooks.StreamKey) error {
	if !validText(k.ProjectID, k.PublishDomain, k.App, k.Stream) {
		return livehooks.Errorf(livehooks.EINVALID, "invalid stream key")
	}
	return nil
}

// Stream returns a stream's recording state, nil when it has none: as this
// transaction last put it, else as this node last committed or read it,
// else as read from the database (a round trip). The transaction commits
// only if no other node changed the stream meanwhile (see flush.go), so that
// two nodes handling the same stream apply their transitions one after the
// other, each seeing the state the other left.
func (t *outboxTx) Stream(ctx context.Context, key livehooks.StreamKey) (*livehooks.StreamState, error) {
	if err := validStreamKey(key); err != nil {
		return nil, err
	}
	if s, ok := t.streams[key]; ok {
		return copyStream(s.state), nil
	}
	c, ok := t.db.streams.Get(key)
	if !ok && !t.db.cachedAll() {
		got, err := t.readStreams(ctx, []livehooks.StreamKey{key})
		if err != nil {
			return nil, err
		}
		c = got[key]
	}
	t.addStream(&txStream{key: key, state: c.state, version: c.version, read: true})
	return copyStream(c.state), nil
}

// PutStream stores a stream's recording state (insert or replace) when the
// transaction commits, with its next timer indexed for DueStreams.
func (t *outboxTx) PutStream(ctx context.Context, s *livehooks.StreamState) error {
	if err := validStreamKey(s.StreamKey); err != nil {
		return err
	}
	if e, ok := t.streams[s.StreamKey]; ok {
		e.state, e.put = storedStream(s), true
		return nil
	}
	t.addStream(&txStream{key: s.StreamKey, state: storedStream(s), put: true})
	return nil
}

func (t *outboxTx) addStream(s *txStream) {
	if t.streams == nil {
		t.streams = make(map[livehooks.StreamKey]*txStream)
	}
	t.streams[s.key] = s
	t.streamOrder = append(t.streamOrder, s)
}

// DueStreams returns streams whose next timer is due, earliest first.
func (db *DB) DueStreams(ctx context.Context, now time.Time, limit int) ([]livehooks.StreamKey, error) {
	rows, err := db.pool.Query(ctx, `SELECT project_id, publish_domain, app, stream FROM streams
		WHERE next_timer IS NOT NULL AND next_timer <= $1 ORDER BY next_timer LIMIT $2`, ts(now), limitOrDefault(limit))
	if err != nil {
		return nil, fmt.Errorf("postgres: due streams: %w", err)
	}
	defer rows.Close()
	var keys []livehooks.StreamKey
	for rows.Next() {
		var k livehooks.StreamKey
		if err := rows.Scan(&k.ProjectID, &k.PublishDomain, &k.App, &k.Stream); err != nil {
			return nil, fmt.Errorf("postgres: due streams: %w", err)
		}
		keys = append(keys, k)
	}
	if err := rows.Err(); err != nil {
		return nil, fmt.Errorf("postgres: due streams: %w", err)
	}
	return keys, nil
}

func errNoDomain(domain string) error {
	return livehooks.Errorf(livehooks.ENOTFOUND, "publish domain %s has no recording settings", truncate(domain, 253))
}

// PutDomain stores a domain's recording settings, sealing the storage secret.
// Replacing settings keeps their create time.
func (db *DB) PutDomain(ctx context.Context, d *livehooks.DomainSettings) error {
	if !validText(d.ProjectID, d.PublishDomain) {
		return livehooks.Errorf(livehooks.EINVALID, "invalid project or publish domain")
	}
	body, sealed, err := storerow.EncodeDomain(d, db.cipher)
	if err != nil {
		return fmt.Errorf("postgres: %w", err)
	}
	err = db.writeTx(ctx, func(tx pgx.Tx) error {
		_, err := tx.Exec(ctx, `INSERT INTO domains (project_id, publish_domain, settings, max_pause_ms, storage_secret, create_time, update_time)
			VALUES ($1, $2, $3, $4, $5, $6, $7)
			ON CONFLICT (project_id, publish_domain) DO UPDATE SET settings = excluded.settings,
				max_pause_ms = excluded.max_pause_ms, storage_secret = excluded.storage_secret, update_time = excluded.update_time`,
			d.ProjectID, d.PublishDomain, string(body), d.MaxPause.Milliseconds(), sealed, ts(d.CreateTime), ts(d.UpdateTime))
		return err
	})
	if err != nil {
		return fmt.Errorf("postgres: store domain: %w", err)
	}
	return nil
}

const domainColumns = `project_id, settings::text, max_pause_ms, storage_secret, create_time, update_time`

func (db *DB) scanDomain(row pgx.Row) (*livehooks.DomainSettings, error) {
	var (
		project, body   string
		maxPause        int64
		sealed          []byte
		created, update time.Time
	)
	if err := row.Scan(&project, &body, &maxPause, &sealed, &created, &update); err != nil {
		return nil, err
	}
	d, err := storerow.DecodeDomain(project, []byte(body), time.Duration(maxPause)*time.Millisecond, sealed, created, update, db.cipher)
	if err != nil {
		return nil, fmt.Errorf("postgres: %w", err)
	}
	return d, nil
}

// FindDomain returns a domain's settings.
func (db *DB) FindDomain(ctx context.Context, projectID, domain string) (*livehooks.DomainSettings, error) {
	if !validText(projectID, domain) {
		return nil, errNoDomain(domain)
	}
	d, err := db.scanDomain(db.pool.QueryRow(ctx, `SELECT `+domainColumns+` FROM domains
		WHERE project_id = $1 AND publish_domain = $2`, projectID, domain))
	if errors.Is(err, pgx.ErrNoRows) {
		return nil, errNoDomain(domain)
	} else if err != nil {
		return nil, fmt.Errorf("postgres: find domain: %w", err)
	}
	return d, nil
}

// FindDomains lists a project's domain settings, ordered by domain.
func (db *DB) FindDomains(ctx context.Context, projectID string) ([]*livehooks.DomainSettings, error) {
	if !validText(projectID) {
		return nil, nil
	}
	rows, err := db.pool.Query(ctx, `SELECT `+domainColumns+` FROM domains WHERE project_id = $1
		ORDER BY publish_domain COLLATE "C"`, projectID)
	if err != nil {
		return nil, fmt.Errorf("postgres: list domains: %w", err)
	}
	defer rows.Close()
	var out []*livehooks.DomainSettings
	for rows.Next() {
		d, err := db.scanDomain(rows)
		if err != nil {
			return nil, fmt.Errorf("postgres: list domains: %w", err)
		}
		out = append(out, d)
	}
	if err := rows.Err(); err != nil {
		return nil, fmt.Errorf("postgres: list domains: %w", err)
	}
	return out, nil
}

// DeleteDomain removes a domain's settings.
func (db *DB) DeleteDomain(ctx context.Context, projectID, domain string) error {
	if !validText(projectID, domain) {
		return errNoDomain(domain)
	}
	tag, err := db.pool.Exec(ctx, `DELETE FROM domains WHERE project_id = $1 AND publish_domain = $2`, projectID, domain)
	if err != nil {
		return fmt.Errorf("postgres: delete domain: %w", err)
	}
	if tag.RowsAffected() == 0 {
		return errNoDomain(domain)
	}
	return nil
}
