package postgres

import (
	"context"
	"fmt"
	"slices"
	"time"

	"github.com/jackc/pgx/v5"

	"github.com/livehooks/livehooks"
)

// heldFileJob is a file job to insert at flush.
type heldFileJob struct {
	j          *livehooks.FileJob
	node       string
	now, until time.Time
}

// finishedJob is a file job to delete (doneEvent "") or keep at flush.
type finishedJob struct {
	id        int64
	doneEvent string
}

// AddFileJob holds a file job, owned by node until now+lease, for the flush.
// The flush inserts it after the streams are written: the stream's row is
// locked first, so the ids of a stream's jobs follow the order in which their
// transactions commit, whichever node writes them.
func (t *outboxTx) AddFileJob(ctx context.Context, node string, now time.Time, lease time.Duration, j *livehooks.FileJob) error {
	if err := validStreamKey(j.StreamKey); err != nil {
		return err
	}
	if !validText(node, j.Path, j.LastError) {
		return livehooks.Errorf(livehooks.EINVALID, "invalid file job")
	}
	t.addJobs = append(t.addJobs, heldFileJob{j: j, node: node, now: ts(now), until: ts(now.Add(lease))})
	return nil
}

// FinishFileJob holds a job's end for the flush.
func (t *outboxTx) FinishFileJob(ctx context.Context, id int64, doneEvent string) error {
	if !validText(doneEvent) {
		return livehooks.Errorf(livehooks.EINVALID, "invalid event id")
	}
	t.finishJobs = append(t.finishJobs, finishedJob{id, doneEvent})
	return nil
}

const insertFileJobsSQL = `INSERT INTO file_jobs (project_id, publish_domain, app, stream, path, duration_us, finished_at,
		attempts, next_attempt, last_error, owner, lease_until, created_at)
	SELECT p, d, a, s, path, dur, fin, att, nxt, err, own, lease, created
	FROM unnest($1::text[], $2::text[], $3::text[], $4::text[], $5::text[], $6::bigint[], $7::timestamptz[],
		$8::int[], $9::timestamptz[], $10::text[], $11::text[], $12::timestamptz[], $13::timestamptz[])
		WITH ORDINALITY AS j(p, d, a, s, path, dur, fin, att, nxt, err, own, lease, created, ord)
	ORDER BY ord`

const finishFileJobsSQL = `WITH f AS (
	SELECT * FROM unnest($1::bigint[], $2::text[]) AS f(id, done_event)
), gone AS (
	DELETE FROM file_jobs j USING f WHERE j.id = f.id AND f.done_event = ''
)
UPDATE file_jobs j SET done_event = f.done_event, owner = NULL FROM f WHERE j.id = f.id AND f.done_event <> ''`

func (f *flushing) writeFileJobs() {
	t := f.t
	if n := len(t.addJobs); n > 0 {
		text := func() []string { return make([]string, 0, n) }
		var (
			projects, domains, apps, streams, paths, errs, owners = text(), text(), text(), text(), text(), text(), text()
			durs                                                  = make([]int64, 0, n)
			atts                                                  = make([]int32, 0, n)
			fins, nexts, leases, created                          = make([]time.Time, 0, n), make([]time.Time, 0, n), make([]time.Time, 0, n), make([]time.Time, 0, n)
		)
		for _, h := range t.addJobs {
			j := h.j
			next := j.NextAttempt
			if next.IsZero() {
				next = h.now
			}
			projects, domains, apps, streams = append(projects, j.ProjectID), append(domains, j.PublishDomain), append(apps, j.App), append(streams, j.Stream)
			paths, errs, owners = append(paths, j.Path), append(errs, j.LastError), append(owners, h.node)
			durs, atts = append(durs, j.Duration.Microseconds()), append(atts, int32(j.Attempts))
			fins, nexts, leases, created = append(fins, ts(j.FinishedAt)), append(nexts, ts(next)), append(leases, h.until), append(created, h.now)
		}
		f.queue(insertFileJobsSQL, projects, domains, apps, streams, paths, durs, fins, atts, nexts, errs, owners, leases, created)
	}
	if n := len(t.finishJobs); n > 0 {
		ids, events := make([]int64, 0, n), make([]string, 0, n)
		for _, j := range t.finishJobs {
			ids, events = append(ids, j.id), append(events, j.doneEvent)
		}
		f.queue(finishFileJobsSQL, ids, events)
	}
}

// claimFileJobsSQL leases the due head job of each stream: a stream's later
// jobs wait for the head, whatever their own due time. Jobs another node is
// claiming at the same moment are skipped.
const claimFileJobsSQL = `UPDATE file_jobs f SET owner = $1, lease_until = $2
	FROM (SELECT j.id FROM file_jobs j
		WHERE j.done_event = '' AND j.next_attempt <= $3 AND (j.owner IS NULL OR j.owner = $1 OR j.lease_until <= $3)
			AND NOT EXISTS (SELECT 1 FROM file_jobs p WHERE p.done_event = '' AND p.project_id = j.project_id
				AND p.publish_domain = j.publish_domain AND p.app = j.app AND p.stream = j.stream AND p.id < j.id)
		ORDER BY j.id LIMIT $4 FOR UPDATE SKIP LOCKED) c
	WHERE f.id = c.id
	RETURNING f.id, f.project_id, f.publish_domain, f.app, f.stream, f.path, f.duration_us, f.finished_at,
		f.attempts, f.next_attempt, f.last_error, f.created_at`

// ClaimFileJobs leases due jobs to node.
func (db *DB) ClaimFileJobs(ctx context.Context, node string, now time.Time, lease time.Duration, max int) ([]*livehooks.FileJob, error) {
	if max <= 0 {
		return nil, nil
	}
	if !validText(node) {
		return nil, livehooks.Errorf(livehooks.EINVALID, "invalid node id")
	}
	var jobs []*livehooks.FileJob
	err := db.writeTx(ctx, func(tx pgx.Tx) error {
		jobs = nil
		rows, err := tx.Query(ctx, claimFileJobsSQL, node, ts(now.Add(lease)), ts(now), max)
		if err != nil {
			return err
		}
		defer rows.Close()
		for rows.Next() {
			var (
				j   livehooks.FileJob
				dur int64
			)
			if err := rows.Scan(&j.ID, &j.ProjectID, &j.PublishDomain, &j.App, &j.Stream, &j.Path, &dur, &j.FinishedAt,
				&j.Attempts, &j.NextAttempt, &j.LastError, &j.CreatedAt); err != nil {
				return err
			}
			j.Duration = time.Duration(dur) * time.Microsecond
			j.FinishedAt, j.NextAttempt, j.CreatedAt = j.FinishedAt.UTC(), j.NextAttempt.UTC(), j.CreatedAt.UTC()
			jobs = append(jobs, &j)
		}
		return rows.Err()
	})
	if err != nil {
		return nil, fmt.Errorf("postgres: claim file jobs: %w", err)
	}
	slices.SortFunc(jobs, func(a, b *livehooks.FileJob) int { return int(a.ID - b.ID) })
	return jobs, nil
}

// RenewFileJobs extends node's job leases.
func (db *DB) RenewFileJobs(ctx context.Context, node string, until time.Time) error {
	if _, err := db.pool.Exec(ctx, `UPDATE file_jobs SET lease_until = $1 WHERE owner = $2 AND done_event = ''`, ts(until), node); err != nil {
		return fmt.Errorf("postgres: renew file jobs: %w", err)
	}
	return nil
}

// RetryFileJob puts a job back until next.
func (db *DB) RetryFileJob(ctx context.Context, node string, id int64, attempts int, next time.Time, lastError string) error {
	tag, err := db.pool.Exec(ctx, `UPDATE file_jobs SET attempts = $1, next_attempt = $2, last_error = $3, owner = NULL, lease_until = '-infinity'
		WHERE id = $4 AND owner = $5 AND done_event = ''`, attempts, ts(next), cleanText(truncate(lastError, 1024)), id, node)
	if err != nil {
		return fmt.Errorf("postgres: retry file job: %w", err)
	}
	if tag.RowsAffected() == 0 {
		return livehooks.Errorf(livehooks.ENOTFOUND, "file job %d is not held by %s", id, node)
	}
	return nil
}

// ReleaseFileJobs frees node's jobs.
func (db *DB) ReleaseFileJobs(ctx context.Context, node string) error {
	if _, err := db.pool.Exec(ctx, `UPDATE file_jobs SET owner = NULL, lease_until = '-infinity' WHERE owner = $1`, node); err != nil {
		return fmt.Errorf("postgres: release file jobs: %w", err)
	}
	return nil
}

// FinishedFileJobs returns finished jobs with their event's delivery counts.
func (db *DB) FinishedFileJobs(ctx context.Context, limit int) ([]*livehooks.FinishedFileJob, error) {
	rows, err := db.pool.Query(ctx, `SELECT j.id, j.project_id, j.path, j.done_event,
			count(d.id) FILTER (WHERE d.status = 'pending'), count(d.id) FILTER (WHERE d.status = 'succeeded'),
			count(d.id) FILTER (WHERE d.status IN ('failed', 'dead'))
		FROM file_jobs j
		LEFT JOIN events e ON e.uid = j.done_event
		LEFT JOIN deliveries d ON d.event_pk = e.pk
		WHERE j.done_event <> ''
		GROUP BY j.id ORDER BY j.id LIMIT $1`, limitOrDefault(limit))
	if err != nil {
		return nil, fmt.Errorf("postgres: finished file jobs: %w", err)
	}
	defer rows.Close()
	var out []*livehooks.FinishedFileJob
	for rows.Next() {
		var (
			j                          livehooks.FinishedFileJob
			pending, succeeded, failed int64
		)
		if err := rows.Scan(&j.ID, &j.ProjectID, &j.Path, &j.EventID, &pending, &succeeded, &failed); err != nil {
			return nil, fmt.Errorf("postgres: finished file jobs: %w", err)
		}
		j.Pending, j.Succeeded, j.Failed = int(pending), int(succeeded), int(failed)
		out = append(out, &j)
	}
	if err := rows.Err(); err != nil {
		return nil, fmt.Errorf("postgres: finished file jobs: %w", err)
	}
	return out, nil
}

// FileJobPending reports whether an unfinished job names the file.
func (db *DB) FileJobPending(ctx context.Context, path string) (bool, error) {
	var pending bool
	err := db.pool.QueryRow(ctx, `SELECT EXISTS (SELECT 1 FROM file_jobs WHERE path = $1 AND done_event = '')`, path).Scan(&pending)
	if err != nil {
		return false, fmt.Errorf("postgres: pending file job: %w", err)
	}
	return pending, nil
}

// DeleteFileJob removes a job.
func (db *DB) DeleteFileJob(ctx context.Context, id int64) error {
	if _, err := db.pool.Exec(ctx, `DELETE FROM file_jobs WHERE id = $1`, id); err != nil {
		return fmt.Errorf("postgres: delete file job: %w", err)
	}
	return nil
}
