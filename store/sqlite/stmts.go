package sqlite

// Statements of the hot paths, prepared once on the write connection.
const (
	stmtInsertEvent = iota
	stmtMatch
	stmtUpsertLane
	stmtInsertDelivery
	stmtEventByUID
	stmtConfigState
	stmtFinishDelivery
	stmtInsertAttempt
	stmtLaneRetry
	stmtLaneDone
	stmtDeleteLane
	stmtLaneState
	stmtDeferLane
	numStmts
)

const eventColumns = `e.pk, e.uid, e.project_id, e.type, e.publish_domain, e.app, e.stream, e.task_id, e.job_id,
	e.record_format, e.download_url, e.asset_id, e.file_size, e.record_duration, e.start_time, e.end_time,
	e.width, e.height, e.error_message, e.play_url, e.occurred_at, e.created_at`

const deliveryColumns = `d.id, d.webhook_id, d.project_id, d.config_id, d.lane, e.uid, d.event_type, d.stream,
	d.status, d.attempts, d.next_attempt, d.created_at, d.updated_at, d.last_status, d.last_error, d.latency_ms`

var stmtSQL = [numStmts]string{
	// A known event id is skipped (no row returned): ingest is idempotent.
	stmtInsertEvent: `INSERT INTO events (uid, project_id, type, publish_domain, app, stream, task_id, job_id,
		record_format, download_url, asset_id, file_size, record_duration, start_time, end_time,
		width, height, error_message, play_url, occurred_at, created_at)
		VALUES (?, ?, ?, ?, ?, ?, ?, ?, ?, ?, ?, ?, ?, ?, ?, ?, ?, ?, ?, ?, ?)
		ON CONFLICT (uid) DO NOTHING RETURNING pk`,

	// The exact app sorts before `*`: two lookups of the unique index.
	stmtMatch: `SELECT id, notify_event_subscription, disabled_reason FROM callbacks
		WHERE project_id = ? AND publish_domain = ? AND app IN (?, '*') ORDER BY app = '*' LIMIT 1`,

	// A new lane is owned by the enqueuing node and due now; an existing one
	// only counts one more pending delivery.
	stmtUpsertLane: `INSERT INTO lanes (lane, config_id, pending, next_at, owner, lease_until)
		VALUES (?1, ?2, 1, ?3, ?4, ?5)
		ON CONFLICT (lane) DO UPDATE SET pending = pending + 1
		RETURNING owner, next_at, pending`,

	stmtInsertDelivery: `INSERT INTO deliveries (webhook_id, project_id, config_id, lane, event_pk, event_type,
		stream, status, next_attempt, created_at, updated_at)
		VALUES (?1, ?2, ?3, ?4, ?5, ?6, ?7, 'pending', ?8, ?8, ?8) RETURNING id`,

	stmtEventByUID: `SELECT ` + eventColumns + ` FROM events e WHERE e.uid = ?`,

	stmtConfigState: `SELECT project_id, disabled_reason FROM callbacks WHERE id = ?`,

	// Only a pending delivery moves: results for final or deleted deliveries
	// return no row and are ignored.
	stmtFinishDelivery: `UPDATE deliveries SET
		status = ?2,
		attempts = attempts + 1,
		next_attempt = CASE WHEN ?2 = 'pending' THEN ?3 ELSE next_attempt END,
		updated_at = ?4,
		last_status = ?5,
		last_error = ?6,
		latency_ms = CASE WHEN ?2 = 'succeeded' THEN (?4 - created_at) / 1000 ELSE latency_ms END
		WHERE id = ?1 AND status = 'pending'
		RETURNING attempts, lane, project_id, config_id`,

	stmtInsertAttempt: `INSERT INTO attempts (delivery_id, n, at, status_code, latency_us, response, error)
		VALUES (?, ?, ?, ?, ?, ?, ?)`,

	stmtLaneRetry: `UPDATE lanes SET next_at = ?2, owner = NULL, lease_until = 0 WHERE lane = ?1`,

	stmtLaneDone: `UPDATE lanes SET pending = pending - 1 WHERE lane = ? RETURNING pending, owner`,

	stmtDeleteLane: `DELETE FROM lanes WHERE lane = ?`,

	stmtLaneState: `SELECT owner, pending FROM lanes WHERE lane = ?`,

	stmtDeferLane: `UPDATE lanes SET owner = NULL, lease_until = 0, next_at = ?3 WHERE lane = ?1 AND owner = ?2`,
}
