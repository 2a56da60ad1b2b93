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

// Write reads what it needs from memory, not from the database: the config
// each event goes to and the recording state of streams. Several nodes share
// the database, so what a node remembers may be out of date; the
// transaction checks in SQL that what it relied on still holds, and aborts
// (as a serialization failure) when it does not. Write then forgets what was
// out of date and runs the transaction again (see flush.go).

type matchKey struct{ project, domain, app string }

// match is the config an event of a matchKey goes to; id is "" when none.
type match struct {
	id       string
	column   string // the subscription column, as stored
	subs     uint8  // storerow.SubscriptionMask(column)
	disabled bool
}

// takes reports whether the config delivers events of type typ: there is
// one, it is enabled and subscribed to typ.
func (m match) takes(typ livehooks.EventType) bool {
	return m.id != "" && !m.disabled && m.subs&storerow.EventMask(typ) != 0
}

// domainKey is a publish domain of a project: the cache holds the configs
// of a domain together, so that one read answers for every app.
type domainKey struct{ project, domain string }

// domainConfigs are a domain's configs by app, `*` included.
type domainConfigs map[string]match

// match returns the config an event of app goes to: the exact app's, else
// the `*` one.
func (dc domainConfigs) match(app string) match {
	if m, ok := dc[app]; ok {
		return m
	}
	return dc["*"]
}

// domainConfigsSQL reads the configs of a domain.
const domainConfigsSQL = `SELECT app, id, notify_event_subscription, disabled_reason FROM callbacks
	WHERE project_id = $1 AND publish_domain = $2`

// loadMatches finds the configs that events go to, from the transaction,
// else the cache, else the database, in one round trip for all the domains
// the cache does not hold.
func (t *outboxTx) loadMatches(ctx context.Context, events []*livehooks.Event) error {
	var misses []domainKey
	missing := map[domainKey]bool{}
	for _, e := range events {
		k := matchKey{e.ProjectID, e.PublishDomain, e.App}
		if _, ok := t.matches[k]; ok {
			continue
		}
		dk := domainKey{e.ProjectID, e.PublishDomain}
		if dc, ok := t.db.configs.Get(dk); ok {
			t.matches[k] = dc.match(e.App)
			continue
		}
		if !missing[dk] {
			missing[dk] = true
			misses = append(misses, dk)
		}
	}
	if len(misses) == 0 {
		return nil
	}
	gen := t.db.configs.Gen()
	conn, err := t.roundTrip(ctx, domainConfigsSQL)
	if err != nil {
		return fmt.Errorf("postgres: match callback: %w", err)
	}
	read := make(map[domainKey]domainConfigs, len(misses))
	b := &pgx.Batch{}
	for _, dk := range misses {
		b.Queue(domainConfigsSQL, dk.project, dk.domain).Query(func(rows pgx.Rows) error {
			dc := domainConfigs{}
			for rows.Next() {
				var (
					app, reason string
					m           match
				)
				if err := rows.Scan(&app, &m.id, &m.column, &reason); err != nil {
					return err
				}
				m.subs, m.disabled = storerow.SubscriptionMask(m.column), reason != ""
				dc[app] = m
			}
			read[dk] = dc
			t.db.configs.Put(dk, dc, gen)
			return rows.Err()
		})
	}
	if err := conn.SendBatch(ctx, b).Close(); err != nil {
		return fmt.Errorf("postgres: match callback: %w", err)
	}
	for _, e := range events {
		k := matchKey{e.ProjectID, e.PublishDomain, e.App}
		if dc, ok := read[domainKey{k.project, k.domain}]; ok {
			if _, done := t.matches[k]; !done {
				t.matches[k] = dc.match(e.App)
			}
		}
	}
	return nil
}

// cachedStream is a stream's committed recording state (nil when it has
// none) and its version, which counts the writes of its row (0: no row).
type cachedStream struct {
	state   *livehooks.StreamState
	version int64
}

// txStream is a stream that a transaction read or wrote.
type txStream struct {
	key     livehooks.StreamKey
	state   *livehooks.StreamState // as read, then as last put
	version int64                  // the version read
	read    bool                   // false: put without reading it first
	put     bool
}

// rememberStream keeps a stream's state in the cache unless the cache holds
// a newer version already (another transaction of this node committed one).
func (db *DB) rememberStream(key livehooks.StreamKey, c cachedStream) {
	db.streams.Update(key, func(old cachedStream, ok bool) (cachedStream, bool) {
		if ok && old.version > c.version {
			return old, true
		}
		return c, true
	})
}

// copyStream returns a copy of s that the caller may change.
func copyStream(s *livehooks.StreamState) *livehooks.StreamState {
	if s == nil {
		return nil
	}
	cp := *s
	return &cp
}

// storedStream returns a copy of s as the database returns it once stored:
// text cleaned, times in UTC to the microsecond.
func storedStream(s *livehooks.StreamState) *livehooks.StreamState {
	cp := *s
	cp.State, cp.TaskID, cp.JobID = cleanText(s.State), cleanText(s.TaskID), cleanText(s.JobID)
	cp.RecordFormat = cleanText(s.RecordFormat)
	for _, p := range []*time.Time{&cp.FileStartedAt, &cp.PublishedAt, &cp.OverAt, &cp.NextFileAt, &cp.UpdatedAt} {
		if !p.IsZero() {
			*p = ts(*p)
		}
	}
	return &cp
}

const streamColumns = `project_id, publish_domain, app, stream, state, task_id, job_id, file_seq,
	file_started_at, published_at, over_at, next_file_at, updated_at, record_format, pending_files`

const readStreamSQL = `SELECT ` + streamColumns + `, version FROM streams
	WHERE project_id = $1 AND publish_domain = $2 AND app = $3 AND stream = $4`

// preloadStreams is how many streams Open reads into the cache at most.
const preloadStreams = storerow.MaxCached / 2

// loadStreams reads every stream into the cache when there are not too many
// (a new database has none). As long as the cache holds them all, a stream
// it does not hold has no state, unless another node created it since: Write
// takes it as new without reading it, and the insert that checks it is new
// finds out otherwise.
func (db *DB) loadStreams(ctx context.Context) error {
	gen := db.streams.Gen()
	rows, err := db.pool.Query(ctx, `SELECT `+streamColumns+`, version FROM streams LIMIT $1`, preloadStreams+1)
	if err != nil {
		return fmt.Errorf("load streams: %w", err)
	}
	var all []cachedStream
	for rows.Next() && len(all) <= preloadStreams {
		c, err := scanStream(rows)
		if err != nil {
			rows.Close()
			return fmt.Errorf("load streams: %w", err)
		}
		all = append(all, c)
	}
	rows.Close()
	if err := rows.Err(); err != nil {
		return fmt.Errorf("load streams: %w", err)
	}
	if len(all) > preloadStreams {
		return nil
	}
	for _, c := range all {
		db.streams.Put(c.state.StreamKey, c, gen)
	}
	if db.streams.Gen() == gen {
		db.allStreams.Store(gen + 1)
	}
	return nil
}

// cachedAll reports whether the cache holds every stream (see loadStreams).
func (db *DB) cachedAll() bool { return db.allStreams.Load() == db.streams.Gen()+1 }

// readStreams reads streams' state and version from the database, in one
// round trip, and keeps them in the cache too.
func (t *outboxTx) readStreams(ctx context.Context, keys []livehooks.StreamKey) (map[livehooks.StreamKey]cachedStream, error) {
	conn, err := t.roundTrip(ctx, readStreamSQL)
	if err != nil {
		return nil, fmt.Errorf("postgres: load stream: %w", err)
	}
	got := make(map[livehooks.StreamKey]cachedStream, len(keys))
	b := &pgx.Batch{}
	for _, k := range keys {
		b.Queue(readStreamSQL, k.ProjectID, k.PublishDomain, k.App, k.Stream).QueryRow(func(row pgx.Row) error {
			c, err := scanStream(row)
			if err != nil {
				return err
			}
			got[k] = c
			t.db.rememberStream(k, c)
			return nil
		})
	}
	if err := conn.SendBatch(ctx, b).Close(); err != nil {
		return nil, fmt.Errorf("postgres: load stream: %w", err)
	}
	return got, nil
}

// scanStream reads a row of readStreamSQL; no row is a stream without
// state.
func scanStream(row pgx.Row) (cachedStream, error) {
	var (
		s                                  livehooks.StreamState
		started, published, over, nextFile *time.Time
		version                            int64
	)
	err := row.Scan(&s.ProjectID, &s.PublishDomain, &s.App, &s.Stream, &s.State, &s.TaskID, &s.JobID, &s.FileSeq,
		&started, &published, &over, &nextFile, &s.UpdatedAt, &s.RecordFormat, &s.PendingFiles, &version)
	if errors.Is(err, pgx.ErrNoRows) {
		return cachedStream{}, nil
	} else if err != nil {
		return cachedStream{}, err
	}
	s.FileStartedAt, s.PublishedAt = fromOpt(started), fromOpt(published)
	s.OverAt, s.NextFileAt, s.UpdatedAt = fromOpt(over), fromOpt(nextFile), s.UpdatedAt.UTC()
	return cachedStream{state: &s, version: version}, nil
}
