package sqlite

import (
	"context"
	"database/sql"
	"fmt"
	"slices"
	"time"

	"github.com/livehooks/livehooks"
)

// File jobs are few (one per recorded file) next to events and deliveries:
// they are written by plain statements in the transaction, not held back.

const fileJobColumns = `id, project_id, publish_domain, app, stream, path, duration_us, finished_at,
	attempts, next_attempt, last_error, created_at`

// AddFileJob stores a file job owned by node until now+lease.
func (t *outboxTx) AddFileJob(ctx context.Context, node string, now time.Time, lease time.Duration, j *livehooks.FileJob) error {
	if err := j.StreamKey.Validate(); err != nil {
		return err
	}
	next := j.NextAttempt
	if next.IsZero() {
		next = now
	}
	_, err := t.tx.ExecContext(t.ctx, `INSERT INTO file_jobs (project_id, publish_domain, app, stream, path, duration_us,
		finished_at, attempts, next_attempt, last_error, owner, lease_until, created_at)
		VALUES (?, ?, ?, ?, ?, ?, ?, ?, ?, ?, ?, ?, ?)`,
		j.ProjectID, j.PublishDomain, j.App, j.Stream, j.Path, j.Duration.Microseconds(), micros(j.FinishedAt),
		j.Attempts, micros(next), j.LastError, node, micros(now.Add(lease)), micros(now))
	if err != nil {
		return fmt.Errorf("sqlite: add file job: %w", err)
	}
	return nil
}

// FinishFileJob deletes a job, or keeps it for its event's deliveries.
func (t *outboxTx) FinishFileJob(ctx context.Context, id int64, doneEvent string) error {
	var err error
	if doneEvent == "" {
		_, err = t.tx.ExecContext(t.ctx, `DELETE FROM file_jobs WHERE id = ?`, id)
	} else {
		_, err = t.tx.ExecContext(t.ctx, `UPDATE file_jobs SET done_event = ?, owner = NULL WHERE id = ?`, doneEvent, id)
	}
	if err != nil {
		return fmt.Errorf("sqlite: finish file job: %w", err)
	}
	return nil
}

// claimFileJobsSQL leases the due head job of each stream: a stream's later
// jobs wait for the head, whatever their own due time.
const claimFileJobsSQL = `UPDATE file_jobs SET owner = ?1, lease_until = ?2
	WHERE id IN (SELECT j.id FROM file_jobs j
		WHERE j.done_event = '' AND j.next_attempt <= ?3 AND (j.owner IS NULL OR j.owner = ?1 OR j.lease_until <= ?3)
			AND NOT EXISTS (SELECT 1 FROM file_jobs p WHERE p.done_event = '' AND p.project_id = j.project_id
				AND p.publish_domain = j.publish_domain AND p.app = j.app AND p.stream = j.stream AND p.id < j.id)
		ORDER BY j.id LIMIT ?4)
	RETURNING ` + fileJobColumns

const dueFileJobsSQL = `SELECT EXISTS (SELECT 1 FROM file_jobs
	WHERE done_event = '' AND next_attempt <= ?2 AND (owner IS NULL OR owner = ?1 OR lease_until <= ?2))`

// ClaimFileJobs leases due jobs to node.
func (db *DB) ClaimFileJobs(ctx context.Context, node string, now time.Time, lease time.Duration, max int) ([]*livehooks.FileJob, error) {
	if max <= 0 {
		return nil, nil
	}
	// Workers poll: look on a read connection first, so that an empty poll
	// costs neither the write connection nor an fsync.
	var due bool
	if err := db.read.QueryRowContext(ctx, dueFileJobsSQL, node, micros(now)).Scan(&due); err != nil {
		return nil, fmt.Errorf("sqlite: claim file jobs: %w", err)
	}
	if !due {
		return nil, nil
	}
	var jobs []*livehooks.FileJob
	err := db.writeTx(ctx, func(tx *sql.Tx) error {
		jobs = nil
		rows, err := tx.QueryContext(ctx, claimFileJobsSQL, node, micros(now.Add(lease)), micros(now), max)
		if err != nil {
			return err
		}
		defer rows.Close()
		for rows.Next() {
			var (
				j                            livehooks.FileJob
				dur, finished, next, created int64
			)
			if err := rows.Scan(&j.ID, &j.ProjectID, &j.PublishDomain, &j.App, &j.Stream, &j.Path, &dur, &finished,
				&j.Attempts, &next, &j.LastError, &created); err != nil {
				return err
			}
			j.Duration = time.Duration(dur) * time.Microsecond
			j.FinishedAt, j.NextAttempt, j.CreatedAt = fromMicros(finished), fromMicros(next), fromMicros(created)
			jobs = append(jobs, &j)
		}
		return rows.Err()
	})
	if err != nil {
		return nil, fmt.Errorf("sqlite: claim file jobs: %w", err)
	}
	slices.SortFunc(jobs, func(a, b *livehooks.FileJob) int { return int(a.ID - b.ID) })
	return jobs, nil
}

// RenewFileJobs extends node's job leases.
func (db *DB) RenewFileJobs(ctx context.Context, node string, until time.Time) error {
	if _, err := db.write.ExecContext(ctx, `UPDATE file_jobs SET lease_until = ? WHERE owner = ? AND done_event = ''`, micros(until), node); err != nil {
		return fmt.Errorf("sqlite: renew file jobs: %w", err)
	}
	return nil
}

// RetryFileJob puts a job back until next.
func (db *DB) RetryFileJob(ctx context.Context, node string, id int64, attempts int, next time.Time, lastError string) error {
	var n int64
	err := db.writeTx(ctx, func(tx *sql.Tx) error {
		res, err := tx.ExecContext(ctx, `UPDATE file_jobs SET attempts = ?, next_attempt = ?, last_error = ?, owner = NULL, lease_until = 0
			WHERE id = ? AND owner = ? AND done_event = ''`, attempts, micros(next), truncate(lastError, 1024), id, node)
		if err != nil {
			return err
		}
		n, err = res.RowsAffected()
		return err
	})
	if err != nil {
		return fmt.Errorf("sqlite: retry file job: %w", err)
	}
	if n == 0 {
		return livehooks.Errorf(livehooks.ENOTFOUND, "file job %d is not held by %s", id, node)
	}
	return nil
}

// ReleaseFileJobs frees node's jobs.
func (db *DB) ReleaseFileJobs(ctx context.Context, node string) error {
	if _, err := db.write.ExecContext(ctx, `UPDATE file_jobs SET owner = NULL, lease_until = 0 WHERE owner = ?`, node); err != nil {
		return fmt.Errorf("sqlite: release file jobs: %w", err)
	}
	return nil
}

// FinishedFileJobs returns finished jobs with their event's delivery counts.
func (db *DB) FinishedFileJobs(ctx context.Context, limit int) ([]*livehooks.FinishedFileJob, error) {
	rows, err := db.read.QueryContext(ctx, `SELECT j.id, j.project_id, j.path, j.done_event,
			COALESCE(SUM(d.status = 'pending'), 0), COALESCE(SUM(d.status = 'succeeded'), 0),
			COALESCE(SUM(d.status IN ('failed', 'dead')), 0)
		FROM file_jobs j
		LEFT JOIN events e ON e.uid = j.done_event
		LEFT JOIN deliveries d ON d.event_pk = e.pk
		WHERE j.done_event <> ''
		GROUP BY j.id ORDER BY j.id LIMIT ?`, limitOrDefault(limit))
	if err != nil {
		return nil, fmt.Errorf("sqlite: finished file jobs: %w", err)
	}
	defer rows.Close()
	var out []*livehooks.FinishedFileJob
	for rows.Next() {
		var j livehooks.FinishedFileJob
		if err := rows.Scan(&j.ID, &j.ProjectID, &j.Path, &j.EventID, &j.Pending, &j.Succeeded, &j.Failed); err != nil {
			return nil, fmt.Errorf("sqlite: finished file jobs: %w", err)
		}
		out = append(out, &j)
	}
	return out, rows.Err()
}

// FileJobPending reports whether an unfinished job names the file.
func (db *DB) FileJobPending(ctx context.Context, path string) (bool, error) {
	var n int
	err := db.read.QueryRowContext(ctx, `SELECT count(*) FROM file_jobs WHERE path = ? AND done_event = ''`, path).Scan(&n)
	if err != nil {
		return false, fmt.Errorf("sqlite: pending file job: %w", err)
	}
	return n > 0, nil
}

// DeleteFileJob removes a job.
func (db *DB) DeleteFileJob(ctx context.Context, id int64) error {
	err := db.writeTx(ctx, func(tx *sql.Tx) error {
		_, err := tx.ExecContext(ctx, `DELETE FROM file_jobs WHERE id = ?`, id)
		return err
	})
	if err != nil {
		return fmt.Errorf("sqlite: delete file job: %w", err)
	}
	return nil
}
