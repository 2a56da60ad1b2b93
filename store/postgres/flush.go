package postgres

import (
	"context"
	"encoding/json"
	"errors"
	"fmt"
	"slices"
	"strconv"
	"strings"
	"time"

	"github.com/jackc/pgx/v5"
	"github.com/jackc/pgx/v5/pgconn"
	"github.com/jackc/pgx/v5/pgtype"

	"github.com/livehooks/livehooks"
)

// flush sends what a transaction holds in one round trip: one multi-row
// statement per kind of write (arrays, unnest), pipelined, then one Sync.
// Without a BEGIN of their own, PostgreSQL runs the statements of a pipeline
// as one transaction, which Sync commits; it stops at the first that fails
// and rolls the transaction back, with no ROLLBACK to send.
//
// The statements that come first check what the transaction took from
// memory (configs, streams) and that its events are new; when something does
// not hold, livehooks_conflict aborts the transaction as a serialization
// failure whose DETAIL says what was out of date, and Write runs fn again
// without it (conflict).
//
// A lane's deliveries must get their ids in the order their transactions
// commit, whichever node writes them: every lane the transaction touches is
// locked, in key order, before the deliveries draw their ids, and stays
// locked until the commit.
func (t *outboxTx) flush(ctx context.Context) error {
	if len(t.streamOrder) == 0 && len(t.events) == 0 && len(t.plans) == 0 && len(t.results) == 0 && len(t.defers) == 0 &&
		len(t.addJobs) == 0 && len(t.finishJobs) == 0 {
		return nil
	}
	if err := t.connect(ctx); err != nil {
		return fmt.Errorf("postgres: write: %w", err)
	}
	f := &flushing{t: t}
	if t.c.own == nil {
		f.queue(settingsSQL)
	}
	f.checkMatches()
	f.checkRequeues()
	f.writeStreams()
	f.writeFileJobs()
	f.insertEvents()
	f.lockLanes()
	f.insertDeliveries()
	f.recordResults()
	f.deferLanes()
	f.laneStates()
	conn, err := t.roundTrip(ctx, f.sqls...)
	if err != nil {
		return fmt.Errorf("postgres: write: %w", err)
	}
	if err := conn.SendBatch(ctx, &f.b).Close(); err != nil {
		f.failed(err)
		return fmt.Errorf("postgres: write: %w", err)
	}
	f.complete()
	return nil
}

// flushing is one flush: the batch and what its statements return.
type flushing struct {
	t    *outboxTx
	b    pgx.Batch
	sqls []string

	streams []*txStream          // in the order of the streams statement
	ids     []int64              // of the deliveries, in plan order
	finals  map[int]bool         // results that made their delivery final, by index
	lanes   map[string]laneState // every lane touched, as the transaction leaves it
	gone    bool                 // a 410 disabled a config: matches are out of date
}

// laneState is a lane's row at the end of a transaction.
type laneState struct {
	owner   *string
	nextAt  time.Time
	pending int
}

func (f *flushing) queue(sql string, args ...any) *pgx.QueuedQuery {
	f.sqls = append(f.sqls, sql)
	return f.b.Queue(sql, args...)
}

// writeSettings are the settings of Write's transactions: the lock timeout
// (see lockTimeout) and how their statements are planned. Each of them looks
// up the rows of its arrays by key, a few dozen at a time: an index lookup
// per row is the plan, however small the planner believes a table to be (a
// new table is analyzed only after a minute or more, and a table scan per
// transaction, or a hash of the whole table, grows with the table). The
// plans are made once per connection: planning each execution again costs as
// much as running some of the statements. Write's own connection has them
// from the start; a transaction on a connection of the pool sets them first
// (settingsSQL).
var writeSettings = [][2]string{
	{"lock_timeout", strconv.FormatInt(lockTimeout.Milliseconds(), 10)},
	{"enable_seqscan", "off"},
	{"enable_hashjoin", "off"},
	{"enable_mergejoin", "off"},
	{"plan_cache_mode", "force_generic_plan"},
}

// settingsSQL sets writeSettings for the transaction.
var settingsSQL = func() string {
	var sets []string
	for _, kv := range writeSettings {
		sets = append(sets, fmt.Sprintf("set_config('%s', '%s', true)", kv[0], kv[1]))
	}
	return "SELECT " + strings.Join(sets, ", ")
}()

// conflictMessage is the message of livehooks_conflict's error (migration
// 0003); its DETAIL says what conflicted: "configs", "requeue",
// "deliveries", "streams:" or "events:" and the ordinals of the rows.
const conflictMessage = "livehooks: write conflict"

// conflictStream is a stream's stored state in a conflict's DETAIL
// (staleStreamsJSON).
type conflictStream struct {
	Ord           int        `json:"ord"`
	State         string     `json:"state"`
	TaskID        string     `json:"task_id"`
	JobID         string     `json:"job_id"`
	FileSeq       int        `json:"file_seq"`
	FileStartedAt *time.Time `json:"file_started_at"`
	PublishedAt   *time.Time `json:"published_at"`
	OverAt        *time.Time `json:"over_at"`
	NextFileAt    *time.Time `json:"next_file_at"`
	UpdatedAt     time.Time  `json:"updated_at"`
	RecordFormat  string     `json:"record_format"`
	PendingFiles  int        `json:"pending_files"`
	Version       int64      `json:"version"`
}

// staleStreams decodes the stored states of a conflict's DETAIL by ord (1
// for the first stream of the statement); none when it holds none or is not
// what staleStreamsJSON writes.
func staleStreams(detail string) map[int]cachedStream {
	var rows []conflictStream
	if detail == "" || json.Unmarshal([]byte(detail), &rows) != nil {
		return nil
	}
	out := make(map[int]cachedStream, len(rows))
	for _, r := range rows {
		if r.Version <= 0 {
			continue
		}
		out[r.Ord] = cachedStream{version: r.Version, state: &livehooks.StreamState{
			State: r.State, TaskID: r.TaskID, JobID: r.JobID, FileSeq: r.FileSeq,
			FileStartedAt: fromOpt(r.FileStartedAt), PublishedAt: fromOpt(r.PublishedAt),
			OverAt: fromOpt(r.OverAt), NextFileAt: fromOpt(r.NextFileAt), UpdatedAt: r.UpdatedAt.UTC(),
			RecordFormat: r.RecordFormat, PendingFiles: r.PendingFiles,
		}}
	}
	return out
}

// failed learns from a conflict what the next run must not take from memory.
func (f *flushing) failed(err error) {
	var pgErr *pgconn.PgError
	if !errors.As(err, &pgErr) {
		// The commit may or may not have happened: forget the streams
		// written rather than remember a state that may not be stored.
		for _, s := range f.t.streamOrder {
			if s.put {
				f.t.db.streams.Delete(s.key)
			}
		}
		return
	}
	if !isConflict(err) {
		return
	}
	what, list, _ := strings.Cut(pgErr.Detail, ":")
	list, current, _ := strings.Cut(list, ";")
	var ords []int
	for s := range strings.SplitSeq(list, ",") {
		if n, err := strconv.Atoi(s); err == nil {
			ords = append(ords, n-1)
		}
	}
	run := f.t.run
	switch what {
	case "streams":
		// The conflict says what the other node stored: remember it, and
		// read again only the streams it has no row of.
		stored := staleStreams(current)
		for _, i := range ords {
			if i < 0 || i >= len(f.streams) {
				continue
			}
			k := f.streams[i].key
			f.t.db.streams.Delete(k)
			if c, ok := stored[i+1]; ok {
				c.state.StreamKey = k
				f.t.db.rememberStream(k, c)
				continue
			}
			run.stale = append(run.stale, k)
		}
	case "events":
		for _, i := range ords {
			if i >= 0 && i < len(f.t.events) {
				if run.existing == nil {
					run.existing = make(map[string]bool)
				}
				run.existing[f.t.events[i].e.ID] = true
			}
		}
	default: // configs, requeue, deliveries
		f.t.db.configs.Invalidate()
	}
}

// complete fills in what the calls returned, once the transaction committed,
// and remembers what it wrote.
func (f *flushing) complete() {
	t := f.t
	for i, p := range t.plans {
		p.d.ID = f.ids[i]
	}
	// LanePending is the count after the delivery's call: the count at the
	// end less what later calls changed in the lane.
	later := make(map[string]int)
	pi, ri := len(t.plans)-1, len(t.results)-1
	for call := t.calls; call > 0; call-- {
		var added []string
		for ; pi >= 0 && t.plans[pi].call == call; pi-- {
			p := t.plans[pi]
			if st, ok := f.lanes[p.d.Lane]; ok {
				p.d.LanePending = st.pending - later[p.d.Lane]
				p.d.Due = st.owner != nil && *st.owner == p.node && !st.nextAt.After(p.d.NextAttempt)
			}
			added = append(added, p.d.Lane)
		}
		for ; ri >= 0 && t.results[ri].call == call; ri-- {
			if f.finals[ri] {
				later[t.results[ri].state.Lane]--
			}
		}
		for _, lane := range added {
			later[lane]++
		}
	}
	for _, r := range t.results {
		st, ok := f.lanes[r.state.Lane]
		r.state.Open = ok && st.pending > 0 && st.owner != nil && *st.owner == r.node
	}
	for _, s := range t.streamOrder {
		switch {
		case s.put && s.read:
			t.db.rememberStream(s.key, cachedStream{state: copyStream(s.state), version: s.version + 1})
		case s.put:
			t.db.streams.Delete(s.key) // its version is unknown
		}
	}
	if f.gone {
		t.db.configs.Invalidate()
	}
}

// checkMatchesSQL matches each key again, key-share locking the config, and
// checks that it is the one in memory, with the same subscription and
// enabled or not. Deleting or disabling a config then waits for this
// transaction, so it sees (and settles) the deliveries added.
const checkMatchesSQL = `SELECT CASE WHEN bool_and(ok) THEN true ELSE livehooks_conflict('configs') END FROM (
	SELECT m.id IS NOT DISTINCT FROM NULLIF(k.id, '')
		AND (m.id IS NULL OR m.subs = k.subs AND (m.reason <> '') = k.disabled) AS ok
	FROM unnest($1::text[], $2::text[], $3::text[], $4::text[], $5::text[], $6::boolean[])
		AS k(project_id, publish_domain, app, id, subs, disabled)
	LEFT JOIN LATERAL (
		SELECT c.id, c.notify_event_subscription AS subs, c.disabled_reason AS reason FROM callbacks c
		WHERE c.project_id = k.project_id AND c.publish_domain = k.publish_domain AND c.app IN (k.app, '*')
		ORDER BY c.app = '*' LIMIT 1 FOR KEY SHARE OF c
	) m ON true
) x`

func (f *flushing) checkMatches() {
	n := len(f.t.matches)
	if n == 0 {
		return
	}
	projects, domains, apps := make([]string, 0, n), make([]string, 0, n), make([]string, 0, n)
	ids, subs, disabled := make([]string, 0, n), make([]string, 0, n), make([]bool, 0, n)
	for k, m := range f.t.matches {
		projects, domains, apps = append(projects, k.project), append(domains, k.domain), append(apps, k.app)
		ids, subs, disabled = append(ids, m.id), append(subs, m.column), append(disabled, m.disabled)
	}
	f.queue(checkMatchesSQL, projects, domains, apps, ids, subs, disabled)
}

// checkRequeuesSQL locks the configs and stored events that Requeue read,
// and checks that the configs are still enabled and the events still there.
const checkRequeuesSQL = `SELECT CASE WHEN
		(SELECT count(*) FROM (SELECT 1 FROM callbacks WHERE id = ANY($1) AND disabled_reason = ''
			ORDER BY id FOR KEY SHARE) c) = cardinality($1)
		AND (SELECT count(*) FROM (SELECT 1 FROM events WHERE uid = ANY($2) FOR KEY SHARE) e) = cardinality($2)
	THEN true ELSE livehooks_conflict('requeue') END`

func (f *flushing) checkRequeues() {
	if len(f.t.requeueConfigs) == 0 {
		return
	}
	f.queue(checkRequeuesSQL, sortedKeys(f.t.requeueConfigs), sortedKeys(f.t.requeueEvents))
}

// writeStreamsSQL writes and checks the streams of a transaction. Each row's
// kind says what the transaction did with the stream: 0 read it, 1 read
// then put it, 2 put it without reading. A stream read at a version is
// written only if still at that version (one read without a row only if it
// still has none), and one only read is share-locked at that version, so
// that no other node's transition of it commits in between.
var writeStreamsSQL = `WITH i AS (
	SELECT * FROM unnest($1::int[], $2::bigint[], $3::text[], $4::text[], $5::text[], $6::text[], $7::text[], $8::text[],
		$9::text[], $10::int[], $11::timestamptz[], $12::timestamptz[], $13::timestamptz[], $14::timestamptz[],
		$15::timestamptz[], $16::timestamptz[], $17::text[], $18::int[])
		WITH ORDINALITY AS i(kind, expected, project_id, publish_domain, app, stream, state, task_id, job_id, file_seq,
			file_started_at, published_at, over_at, next_file_at, updated_at, next_timer, record_format, pending_files, ord)
), upd AS (
	UPDATE streams s SET state = i.state, task_id = i.task_id, job_id = i.job_id, file_seq = i.file_seq,
		file_started_at = i.file_started_at, published_at = i.published_at, over_at = i.over_at,
		next_file_at = i.next_file_at, updated_at = i.updated_at, next_timer = i.next_timer,
		record_format = i.record_format, pending_files = i.pending_files, version = s.version + 1
	FROM i WHERE i.kind = 1 AND i.expected > 0 AND s.version = i.expected
		AND s.project_id = i.project_id AND s.publish_domain = i.publish_domain AND s.app = i.app AND s.stream = i.stream
	RETURNING i.ord
), ins AS (
	INSERT INTO streams (` + streamColumns + `, next_timer, version)
	SELECT project_id, publish_domain, app, stream, state, task_id, job_id, file_seq,
		file_started_at, published_at, over_at, next_file_at, updated_at, record_format, pending_files, next_timer, 1
	FROM i WHERE kind = 1 AND expected = 0
	ON CONFLICT (project_id, publish_domain, app, stream) DO NOTHING
	RETURNING project_id, publish_domain, app, stream
), blind AS (
	INSERT INTO streams AS s (` + streamColumns + `, next_timer, version)
	SELECT project_id, publish_domain, app, stream, state, task_id, job_id, file_seq,
		file_started_at, published_at, over_at, next_file_at, updated_at, record_format, pending_files, next_timer, 1
	FROM i WHERE kind = 2
	ON CONFLICT (project_id, publish_domain, app, stream) DO UPDATE SET
		state = excluded.state, task_id = excluded.task_id, job_id = excluded.job_id,
		file_seq = excluded.file_seq, file_started_at = excluded.file_started_at,
		published_at = excluded.published_at, over_at = excluded.over_at,
		next_file_at = excluded.next_file_at, updated_at = excluded.updated_at,
		next_timer = excluded.next_timer, record_format = excluded.record_format, pending_files = excluded.pending_files, version = s.version + 1
), seen AS (
	SELECT i.ord FROM i JOIN streams s ON s.project_id = i.project_id AND s.publish_domain = i.publish_domain
		AND s.app = i.app AND s.stream = i.stream
	WHERE i.kind = 0 AND i.expected > 0 AND s.version = i.expected
	FOR SHARE OF s
), ok AS (
	SELECT ord FROM upd
	UNION ALL SELECT i.ord FROM ins JOIN i USING (project_id, publish_domain, app, stream) WHERE i.kind = 1
	UNION ALL SELECT ord FROM seen
	UNION ALL SELECT ord FROM i WHERE kind = 0 AND expected = 0 AND NOT EXISTS (SELECT 1 FROM streams s
		WHERE s.project_id = i.project_id AND s.publish_domain = i.publish_domain AND s.app = i.app AND s.stream = i.stream)
	UNION ALL SELECT ord FROM i WHERE kind = 2
)
SELECT CASE WHEN (SELECT count(*) FROM ok) = cardinality($1) THEN true
	ELSE livehooks_conflict('streams:' || (SELECT string_agg(ord::text, ',') FROM i WHERE ord NOT IN (SELECT ord FROM ok))
		|| ';' || ` + staleStreamsJSON("i", "ok") + `) END`

// staleStreamsJSON is the SQL of a JSON array of the stored state of the
// streams of input (rows with project_id, publish_domain, app, stream and
// their ord) whose ord is not in the ords of ok: a conflict's DETAIL carries
// them after the list of ords, so that the next run of the transaction
// finds them in the cache instead of reading them in a round trip of its
// own. A stream without a row is not in the array.
func staleStreamsJSON(input, ok string) string {
	return `COALESCE((SELECT json_agg(json_build_object('ord', i.ord, 'state', s.state, 'task_id', s.task_id,
		'job_id', s.job_id, 'file_seq', s.file_seq, 'file_started_at', s.file_started_at, 'published_at', s.published_at,
		'over_at', s.over_at, 'next_file_at', s.next_file_at, 'updated_at', s.updated_at, 'record_format', s.record_format,
		'pending_files', s.pending_files, 'version', s.version))::text
	FROM ` + input + ` JOIN streams s ON s.project_id = i.project_id AND s.publish_domain = i.publish_domain
		AND s.app = i.app AND s.stream = i.stream
	WHERE i.ord NOT IN (SELECT ord FROM ` + ok + `)), '[]')`
}

// updateStreamsSQL is writeStreamsSQL when the transaction read every
// stream it wrote and wrote every stream it read, each of which had a state:
// the common case, in one plain statement.
var updateStreamsSQL = `WITH u AS (
	UPDATE streams s SET state = i.state, task_id = i.task_id, job_id = i.job_id, file_seq = i.file_seq,
		file_started_at = i.file_started_at, published_at = i.published_at, over_at = i.over_at,
		next_file_at = i.next_file_at, updated_at = i.updated_at, next_timer = i.next_timer,
		record_format = i.record_format, pending_files = i.pending_files, version = s.version + 1
	FROM unnest($1::int[], $2::bigint[], $3::text[], $4::text[], $5::text[], $6::text[], $7::text[], $8::text[],
		$9::text[], $10::int[], $11::timestamptz[], $12::timestamptz[], $13::timestamptz[], $14::timestamptz[],
		$15::timestamptz[], $16::timestamptz[], $17::text[], $18::int[])
		WITH ORDINALITY AS i(kind, expected, project_id, publish_domain, app, stream, state, task_id, job_id, file_seq,
			file_started_at, published_at, over_at, next_file_at, updated_at, next_timer, record_format, pending_files, ord)
	WHERE s.version = i.expected
		AND s.project_id = i.project_id AND s.publish_domain = i.publish_domain AND s.app = i.app AND s.stream = i.stream
	RETURNING i.ord
)
SELECT CASE WHEN count(*) = cardinality($1) THEN true
	ELSE livehooks_conflict('streams:' || (SELECT string_agg(o::text, ',') FROM generate_series(1, cardinality($1)) o
		WHERE o NOT IN (SELECT ord FROM u))
		|| ';' || ` + staleStreamsJSON("unnest($3::text[], $4::text[], $5::text[], $6::text[]) WITH ORDINALITY AS i(project_id, publish_domain, app, stream, ord)", "u") + `) END
FROM u`

func (f *flushing) writeStreams() {
	n := len(f.t.streamOrder)
	if n == 0 {
		return
	}
	var (
		kinds                                      = make([]int32, 0, n)
		expected                                   = make([]int64, 0, n)
		projects, domains, apps, streams           = make([]string, 0, n), make([]string, 0, n), make([]string, 0, n), make([]string, 0, n)
		states, tasks, jobs, formats               = make([]string, 0, n), make([]string, 0, n), make([]string, 0, n), make([]string, 0, n)
		seqs, pendings                             = make([]int32, 0, n), make([]int32, 0, n)
		started, published, over, nextFile, timers = make([]pgtype.Timestamptz, 0, n), make([]pgtype.Timestamptz, 0, n),
			make([]pgtype.Timestamptz, 0, n), make([]pgtype.Timestamptz, 0, n), make([]pgtype.Timestamptz, 0, n)
		updated = make([]time.Time, 0, n)
	)
	for _, s := range f.t.streamOrder {
		kind := int32(0)
		switch {
		case s.put && s.read:
			kind = 1
		case s.put:
			kind = 2
		}
		st := s.state
		if st == nil { // read, not put, none stored
			st = &livehooks.StreamState{}
		}
		f.streams = append(f.streams, s)
		kinds, expected = append(kinds, kind), append(expected, s.version)
		projects, domains = append(projects, s.key.ProjectID), append(domains, s.key.PublishDomain)
		apps, streams = append(apps, s.key.App), append(streams, s.key.Stream)
		states, tasks, jobs = append(states, st.State), append(tasks, st.TaskID), append(jobs, st.JobID)
		formats = append(formats, st.RecordFormat)
		seqs, pendings = append(seqs, int32(st.FileSeq)), append(pendings, int32(st.PendingFiles))
		started, published = append(started, optTimestamptz(st.FileStartedAt)), append(published, optTimestamptz(st.PublishedAt))
		over, nextFile = append(over, optTimestamptz(st.OverAt)), append(nextFile, optTimestamptz(st.NextFileAt))
		updated, timers = append(updated, ts(st.UpdatedAt)), append(timers, optTimestamptz(st.NextTimer()))
	}
	sql := updateStreamsSQL
	for i, k := range kinds {
		if k != 1 || expected[i] == 0 {
			sql = writeStreamsSQL
		}
	}
	f.queue(sql, kinds, expected, projects, domains, apps, streams, states, tasks, jobs, seqs,
		started, published, over, nextFile, updated, timers, formats, pendings)
}

// insertEventsSQL inserts the events, and aborts the transaction when one of
// them is stored already (ingest is idempotent per event ID): the next run
// skips it.
const insertEventsSQL = `WITH ins AS (
	INSERT INTO events (uid, project_id, type, publish_domain, app, stream, task_id, job_id, record_format,
		download_url, asset_id, file_size, record_duration, start_time, end_time, width, height, error_message,
		play_url, occurred_at, created_at)
	SELECT * FROM unnest($1::text[], $2::text[], $3::text[], $4::text[], $5::text[], $6::text[], $7::text[], $8::text[],
		$9::text[], $10::text[], $11::text[], $12::bigint[], $13::bigint[], $14::timestamptz[], $15::timestamptz[],
		$16::int[], $17::int[], $18::text[], $19::text[], $20::timestamptz[], $21::timestamptz[])
	ON CONFLICT (uid) DO NOTHING
	RETURNING uid
)
SELECT CASE WHEN count(*) = cardinality($1) THEN true
	ELSE livehooks_conflict('events:' || (SELECT string_agg(ord::text, ',') FROM unnest($1::text[]) WITH ORDINALITY AS i(uid, ord)
		WHERE uid NOT IN (SELECT uid FROM ins))) END
FROM ins`

func (f *flushing) insertEvents() {
	n := len(f.t.events)
	if n == 0 {
		return
	}
	text := func() []string { return make([]string, 0, n) }
	var (
		uids, projects, types, domains, apps, streams = text(), text(), text(), text(), text(), text()
		tasks, jobs, formats, urls, assets, errs      = text(), text(), text(), text(), text(), text()
		plays                                         = text()
		sizes, durations                              = make([]int64, 0, n), make([]int64, 0, n)
		starts, ends                                  = make([]pgtype.Timestamptz, 0, n), make([]pgtype.Timestamptz, 0, n)
		widths, heights                               = make([]int32, 0, n), make([]int32, 0, n)
		occurred, created                             = make([]time.Time, 0, n), make([]time.Time, 0, n)
	)
	for _, b := range f.t.events {
		e := b.e
		uids, projects, types = append(uids, e.ID), append(projects, e.ProjectID), append(types, string(e.Type))
		domains, apps, streams = append(domains, e.PublishDomain), append(apps, e.App), append(streams, e.Stream)
		tasks, jobs, formats = append(tasks, e.TaskID), append(jobs, e.JobID), append(formats, e.RecordFormat)
		urls, assets, errs = append(urls, e.DownloadURL), append(assets, e.AssetID), append(errs, e.ErrorMessage)
		plays = append(plays, e.PlayURL)
		sizes, durations = append(sizes, e.FileSize), append(durations, e.RecordDuration)
		starts, ends = append(starts, optTimestamptz(e.StartTime)), append(ends, optTimestamptz(e.EndTime))
		widths, heights = append(widths, int32(e.Width)), append(heights, int32(e.Height))
		occurred, created = append(occurred, ts(e.OccurredAt)), append(created, b.at)
	}
	f.queue(insertEventsSQL, uids, projects, types, domains, apps, streams, tasks, jobs, formats, urls, assets,
		sizes, durations, starts, ends, widths, heights, errs, plays, occurred, created)
}

// lockExpr locks, in this order: the configs that a 410 disables ($1), the
// configs of the other results ($2), every lane the transaction touches
// ($3), each in key order (the "C" collation: byte order, as Go sorts).
//
// A config that a 410 disables is locked for update, as DisableCallback
// does: that waits for the transactions that matched events to it (they
// hold a key-share lock until they commit), so that their deliveries are
// failed too, and the transactions that match events to it next wait for
// this one and find it disabled. DisableCallback and DeleteCallback lock a
// config first, then its deliveries and lanes: the key-share lock on the
// configs of the results makes them wait for this transaction rather than
// lock what it waits for. Two transactions that touch the same lanes lock
// them in the same order. The operands of + are evaluated in order.
func lockExpr(configs1, configs2, lanes int) string {
	return fmt.Sprintf(`(SELECT count(*) FROM (SELECT 1 FROM callbacks WHERE id = ANY($%d) ORDER BY id FOR UPDATE) g)
	+ (SELECT count(*) FROM (SELECT 1 FROM callbacks WHERE id = ANY($%d) ORDER BY id FOR KEY SHARE) c)
	+ (SELECT count(*) FROM (SELECT 1 FROM lanes WHERE lane = ANY($%d) ORDER BY lane FOR UPDATE) l)`, configs1, configs2, lanes)
}

// lockSQL takes the locks of lockExpr in a transaction that adds no delivery.
var lockSQL = `SELECT ` + lockExpr(1, 2, 3)

// upsertLanesSQL takes the locks of lockExpr ($8, $9, $10), before anything
// else, then creates each lane, due now and owned by the enqueuing node or,
// when its owner is "", free for its home node (home), or counts more pending
// deliveries in it, in key order. Either way the lane's row stays locked
// until commit.
var upsertLanesSQL = `INSERT INTO lanes AS l (lane, config_id, pending, next_at, owner, lease_until, home)
	SELECT lane, config_id, pending, next_at, NULLIF(owner, ''), CASE WHEN owner <> '' THEN lease_until END, home
	FROM unnest($1::text[], $2::text[], $3::int[], $4::timestamptz[], $5::text[], $6::timestamptz[], $7::text[])
		WITH ORDINALITY AS u(lane, config_id, pending, next_at, owner, lease_until, home, ord)
	WHERE ` + lockExpr(8, 9, 10) + ` >= 0
	ORDER BY ord
	ON CONFLICT (lane) DO UPDATE SET pending = l.pending + excluded.pending`

// lockLanes takes the locks (lockExpr) before the transaction changes any
// lane: a delivery's lane is locked before its id is drawn. A transaction
// that adds deliveries takes them in the lanes' upsert.
func (f *flushing) lockLanes() {
	t := f.t
	if len(t.plans) == 0 && len(t.results) == 0 && len(t.defers) == 0 &&
		len(t.addJobs) == 0 && len(t.finishJobs) == 0 {
		return
	}
	touched := make([]string, 0, len(t.plans)+len(t.results)+len(t.defers))
	for _, p := range t.plans {
		touched = append(touched, p.d.Lane)
	}
	var gone, others []string
	for _, r := range t.results {
		touched = append(touched, r.state.Lane)
		if r.gone != "" {
			gone = append(gone, r.configID)
		} else {
			others = append(others, r.configID)
		}
	}
	for _, d := range t.defers {
		touched = append(touched, d.lane)
	}
	locks := []any{sortedSet(gone), sortedSet(others), cleanAll(sortedSet(touched))}
	if len(t.plans) == 0 {
		f.queue(lockSQL, locks...)
		return
	}
	type newLane struct {
		configID, owner, home string
		count                 int32
		at                    time.Time
	}
	lanes := make(map[string]*newLane)
	for _, p := range t.plans {
		if l := lanes[p.d.Lane]; l != nil {
			l.count++
			continue
		}
		// A new lane is the enqueuing node's when it is the lane's home
		// (or no node list is known); else it is left free for its home.
		owner, home := t.db.newLane(p.d.Lane, p.node)
		lanes[p.d.Lane] = &newLane{configID: p.d.ConfigID, owner: owner, home: home, count: 1, at: p.d.NextAttempt}
	}
	keys := sortedKeys(lanes)
	n := len(keys)
	configs, owners, homes := make([]string, 0, n), make([]string, 0, n), make([]string, 0, n)
	counts := make([]int32, 0, n)
	nextAt, leases := make([]time.Time, 0, n), make([]time.Time, 0, n)
	for _, k := range keys {
		l := lanes[k]
		configs, owners, homes = append(configs, l.configID), append(owners, l.owner), append(homes, l.home)
		counts = append(counts, l.count)
		nextAt, leases = append(nextAt, l.at), append(leases, ts(l.at.Add(t.db.lease)))
	}
	f.queue(upsertLanesSQL, append([]any{keys, configs, counts, nextAt, owners, leases, homes}, locks...)...)
}

// insertDeliveriesSQL inserts the deliveries in plan order (their ids in that
// order), each with its event's row, and returns their ids. An event missing
// (deleted since Requeue read it) aborts the transaction. Each event is
// looked up by id on its own, whatever the planner thinks of the size of
// the table.
const insertDeliveriesSQL = `WITH ins AS (
	INSERT INTO deliveries (webhook_id, project_id, config_id, lane, event_pk, event_type, stream, status,
		next_attempt, created_at, updated_at)
	SELECT webhook_id, project_id, config_id, lane, event_pk, event_type, stream, 'pending', at, at, at
	FROM (SELECT d.*, (SELECT pk FROM events e WHERE e.uid = d.uid) AS event_pk
		FROM unnest($1::text[], $2::text[], $3::text[], $4::text[], $5::text[], $6::text[], $7::text[], $8::timestamptz[])
			WITH ORDINALITY AS d(uid, webhook_id, project_id, config_id, lane, event_type, stream, at, ord)
		OFFSET 0) d
	WHERE event_pk IS NOT NULL
	ORDER BY ord
	RETURNING id
)
SELECT array_agg(id ORDER BY id), CASE WHEN count(*) = cardinality($1) THEN true
	ELSE livehooks_conflict('deliveries') END FROM ins`

func (f *flushing) insertDeliveries() {
	n := len(f.t.plans)
	if n == 0 {
		return
	}
	text := func() []string { return make([]string, 0, n) }
	uids, webhooks, projects, configs, lanes, types, streams := text(), text(), text(), text(), text(), text(), text()
	at := make([]time.Time, 0, n)
	for _, p := range f.t.plans {
		d := p.d
		uids, webhooks, projects = append(uids, d.EventID), append(webhooks, d.WebhookID), append(projects, d.ProjectID)
		configs, lanes, types = append(configs, d.ConfigID), append(lanes, d.Lane), append(types, string(d.EventType))
		streams, at = append(streams, d.Stream), append(at, d.CreatedAt)
	}
	f.queue(insertDeliveriesSQL, uids, webhooks, projects, configs, lanes, types, streams, at).QueryRow(func(row pgx.Row) error {
		var ok bool
		if err := row.Scan(&f.ids, &ok); err != nil {
			return err
		}
		if len(f.ids) != n {
			return fmt.Errorf("inserted %d deliveries of %d", len(f.ids), n)
		}
		return nil
	})
}

// recordSQL records results: only a pending delivery moves (a result for a
// final or deleted delivery changes nothing); its attempt is stored with the
// delivery's new count of attempts; a retry frees the lane until its next
// attempt, a final status takes the delivery off its lane's count, and the
// last one deletes the lane; a 410 disables the config. It returns the
// results it recorded.
//
// The lanes are locked already (lockLanes): what the statement's snapshot
// says of their count is what it is. $12 is 'pending': a constant there would
// let the planner read every pending delivery from their partial index
// instead of looking each result's up by id.
const recordSQL = `WITH r AS (
	SELECT * FROM unnest($1::bigint[], $2::text[], $3::timestamptz[], $4::timestamptz[], $5::int[], $6::text[],
		$7::timestamptz[], $8::bigint[], $9::text[], $10::text[], $11::text[])
		WITH ORDINALITY AS r(id, status, next, now, status_code, last_error, at, latency_us, response, error, gone, ord)
), d AS (
	UPDATE deliveries SET
		status = r.status,
		attempts = deliveries.attempts + 1,
		next_attempt = CASE WHEN r.status = 'pending' THEN r.next ELSE deliveries.next_attempt END,
		updated_at = r.now,
		last_status = r.status_code,
		last_error = r.last_error,
		latency_ms = CASE WHEN r.status = 'succeeded'
			THEN floor(extract(epoch FROM r.now - deliveries.created_at) * 1000)::bigint ELSE deliveries.latency_ms END
	FROM r WHERE deliveries.id = r.id AND deliveries.status = $12
	RETURNING deliveries.id, deliveries.attempts, deliveries.lane, deliveries.project_id, deliveries.config_id,
		r.status, r.next, r.at, r.status_code, r.latency_us, r.response, r.error, r.gone, r.ord
), a AS (
	INSERT INTO attempts (delivery_id, n, at, status_code, latency_us, response, error)
	SELECT id, attempts, at, status_code, latency_us, response, error FROM d
), x AS (
	SELECT lane, count(*) FILTER (WHERE status <> 'pending') AS finals,
		(array_agg(next ORDER BY ord DESC) FILTER (WHERE status = 'pending'))[1] AS next
	FROM d GROUP BY lane
), l AS (
	UPDATE lanes SET
		pending = lanes.pending - x.finals,
		next_at = COALESCE(x.next, lanes.next_at),
		owner = CASE WHEN x.next IS NULL THEN lanes.owner END,
		lease_until = CASE WHEN x.next IS NULL THEN lanes.lease_until END
	FROM x WHERE lanes.lane = x.lane AND lanes.pending > x.finals
), done AS (
	DELETE FROM lanes USING x WHERE lanes.lane = x.lane AND lanes.pending <= x.finals
), g AS (
	UPDATE callbacks SET disabled_reason = d.gone FROM d
	WHERE d.gone <> '' AND callbacks.id = d.config_id AND callbacks.project_id = d.project_id
)
SELECT ord, status FROM d`

// disableGoneSQL fails the pending deliveries of a config that a 410 has
// disabled (those enqueued by the same transaction included) and deletes its
// lanes: the config's lanes are the range [$1, $2) (see laneRange).
const disableGoneSQL = `WITH c AS (
	SELECT disabled_reason FROM callbacks WHERE id = $3 AND disabled_reason <> ''
), f AS (
	UPDATE deliveries SET status = 'failed', last_error = (SELECT disabled_reason FROM c), updated_at = $4
	WHERE lane >= $1 AND lane < $2 AND status = 'pending' AND config_id = $3 AND EXISTS (SELECT 1 FROM c)
)
DELETE FROM lanes WHERE lane >= $1 AND lane < $2 AND config_id = $3 AND EXISTS (SELECT 1 FROM c)`

// recordResults records the results, in rounds of distinct deliveries (a
// delivery's second result in a transaction, if ever, goes after its first).
func (f *flushing) recordResults() {
	t := f.t
	if len(t.results) == 0 {
		return
	}
	f.finals = make(map[int]bool)
	var (
		gone   []string
		goneAt time.Time
	)
	for start := 0; start < len(t.results); {
		end, in := start, map[int64]bool{}
		for end < len(t.results) && !in[t.results[end].id] {
			in[t.results[end].id] = true
			end++
		}
		f.record(start, end)
		start = end
	}
	for _, r := range t.results {
		if r.gone != "" {
			gone, goneAt = append(gone, r.configID), r.now
		}
	}
	for _, id := range sortedSet(gone) {
		f.gone = true
		lo, hi := laneRange(id)
		f.queue(disableGoneSQL, lo, hi, id, goneAt)
	}
}

// record queues the statement of results [start, end).
func (f *flushing) record(start, end int) {
	n := end - start
	ids, statuses := make([]int64, 0, n), make([]string, 0, n)
	next, now, at := make([]time.Time, 0, n), make([]time.Time, 0, n), make([]time.Time, 0, n)
	codes, latencies := make([]int32, 0, n), make([]int64, 0, n)
	lastErrors, responses, errs, gone := make([]string, 0, n), make([]string, 0, n), make([]string, 0, n), make([]string, 0, n)
	for _, r := range f.t.results[start:end] {
		ids, statuses = append(ids, r.id), append(statuses, string(r.status))
		next, now, at = append(next, r.next), append(now, r.now), append(at, r.at)
		codes, latencies = append(codes, r.code), append(latencies, r.latencyUS)
		lastErrors, responses = append(lastErrors, r.lastError), append(responses, r.response)
		errs, gone = append(errs, r.errMsg), append(gone, r.gone)
	}
	f.queue(recordSQL, ids, statuses, next, now, codes, lastErrors, at, latencies, responses, errs, gone,
		string(livehooks.DeliveryPending)).Query(func(rows pgx.Rows) error {
		for rows.Next() {
			var (
				ord    int
				status string
			)
			if err := rows.Scan(&ord, &status); err != nil {
				return err
			}
			if status != string(livehooks.DeliveryPending) {
				f.finals[start+ord-1] = true
			}
		}
		return rows.Err()
	})
}

// deferLanesSQL frees lanes until their next attempt, for their home among
// the live nodes this store knows (empty when it knows none): a hand-over or a
// retry goes to the node that should deliver the lane.
const deferLanesSQL = `UPDATE lanes SET owner = NULL, lease_until = NULL, next_at = d.at, home = d.home
	FROM unnest($1::text[], $2::text[], $3::timestamptz[], $4::text[]) AS d(lane, node, at, home)
	WHERE lanes.lane = d.lane AND lanes.owner = d.node`

func (f *flushing) deferLanes() {
	n := len(f.t.defers)
	if n == 0 {
		return
	}
	lanes, nodes, at, homes := make([]string, 0, n), make([]string, 0, n), make([]time.Time, 0, n), make([]string, 0, n)
	for _, d := range f.t.defers {
		lanes, nodes, at = append(lanes, d.lane), append(nodes, d.node), append(at, d.at)
		homes = append(homes, f.t.db.homeOf(d.lane, ""))
	}
	f.queue(deferLanesSQL, lanes, nodes, at, homes)
}

// laneStatesSQL returns the touched lanes as the transaction leaves them, and
// notifies the other nodes (Listen) when one is free and due, waiting for a
// claim, or when the transaction added deliveries to another node's lane.
const laneStatesSQL = `WITH s AS (
	SELECT lane, owner, next_at, pending FROM lanes WHERE lane = ANY($1)
), n AS (
	SELECT pg_notify($2, $3) FROM s
	WHERE s.owner IS NULL AND s.next_at <= $4 OR s.owner <> $5 AND s.lane = ANY($6)
	LIMIT 1
)
SELECT lane, owner, next_at, pending, (SELECT count(*) FROM n) FROM s`

func (f *flushing) laneStates() {
	t := f.t
	touched := make([]string, 0, len(t.plans)+len(t.results)+len(t.defers))
	added := make([]string, 0, len(t.plans))
	for _, p := range t.plans {
		touched, added = append(touched, p.d.Lane), append(added, p.d.Lane)
	}
	for _, r := range t.results {
		touched = append(touched, r.state.Lane)
	}
	for _, d := range t.defers {
		touched = append(touched, d.lane)
	}
	if len(touched) == 0 {
		return
	}
	payload := cleanText(t.node)
	if payload == "" {
		payload = "-"
	}
	f.lanes = make(map[string]laneState)
	f.queue(laneStatesSQL, cleanAll(sortedSet(touched)), notifyChannel, payload, ts(t.db.clock.Now()),
		cleanText(t.node), sortedSet(added)).Query(func(rows pgx.Rows) error {
		for rows.Next() {
			var (
				lane  string
				st    laneState
				woken int
			)
			if err := rows.Scan(&lane, &st.owner, &st.nextAt, &st.pending, &woken); err != nil {
				return err
			}
			f.lanes[lane] = st
		}
		return rows.Err()
	})
}

// optTimestamptz is a timestamptz array element: NULL for a zero time.
func optTimestamptz(t time.Time) pgtype.Timestamptz {
	if t.IsZero() {
		return pgtype.Timestamptz{}
	}
	return pgtype.Timestamptz{Time: ts(t), Valid: true}
}

// sortedSet returns the distinct strings of ss in byte order.
func sortedSet(ss []string) []string {
	out := slices.Clone(ss)
	slices.Sort(out)
	return slices.Compact(out)
}

// sortedKeys returns the keys of m in byte order.
func sortedKeys[V any](m map[string]V) []string {
	out := make([]string, 0, len(m))
	for k := range m {
		out = append(out, k)
	}
	slices.Sort(out)
	return out
}

// cleanAll cleans each of ss (see cleanText), in place.
func cleanAll(ss []string) []string {
	for i, s := range ss {
		ss[i] = cleanText(s)
	}
	return ss
}
