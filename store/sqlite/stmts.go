package sqlite

// Statements of the hot paths, prepared once on the write connection.
// The writes of a group commit are multi-row statements (batch.go).
const (
	stmtMatch = iota
	stmtEventByUID
	stmtConfigState
	stmtStream
	numStmts
)

const eventColumns = `e.pk, e.uid, e.project_id, e.type, e.publish_domain, e.app, e.stream, e.task_id, e.job_id,
	e.record_format, e.download_url, e.asset_id, e.file_size, e.record_duration, e.start_time, e.end_time,
	e.width, e.height, e.error_message, e.play_url, e.occurred_at, e.created_at`

const deliveryColumns = `d.id, d.webhook_id, d.project_id, d.config_id, d.lane, e.uid, d.event_type, d.stream,
	d.status, d.attempts, d.next_attempt, d.created_at, d.updated_at, d.last_status, d.last_error, d.latency_ms`

var stmtSQL = [numStmts]string{
	// The exact app sorts before `*`: two lookups of the unique index.
	stmtMatch: `SELECT id, notify_event_subscription, disabled_reason FROM callbacks
		WHERE project_id = ? AND publish_domain = ? AND app IN (?, '*') ORDER BY app = '*' LIMIT 1`,

	stmtEventByUID: `SELECT ` + eventColumns + ` FROM events e WHERE e.uid = ?`,

	stmtConfigState: `SELECT project_id, disabled_reason FROM callbacks WHERE id = ?`,

	stmtStream: streamSQL,
}

// Queries run once per call. They are constants so that the tests can check
// their plans (EXPLAIN QUERY PLAN) against the indexes.
const (
	// The lanes view (migration 0008) derives each lane from its pending
	// deliveries.
	loadLanesSQL = `SELECT lane, config_id, pending, next_at FROM lanes`

	laneDeliveriesSQL = `SELECT ` + deliveryColumns + `, ` + eventColumns + `
		FROM deliveries d INDEXED BY deliveries_lane JOIN events e ON e.pk = d.event_pk
		WHERE d.lane = ? AND d.status = 'pending' AND d.id > ?
		ORDER BY d.id LIMIT ?`

	matchCallbackSQL = `SELECT ` + callbackColumns + ` FROM callbacks
		WHERE project_id = ? AND publish_domain = ? AND app IN (?, '*') ORDER BY app = '*' LIMIT 1`

	// The pending deliveries of a config are a range of lane keys (see
	// laneRange).
	deletePendingSQL = `DELETE FROM deliveries
		WHERE lane >= ?1 AND lane < ?2 AND status = 'pending' AND config_id = ?3`

	failPendingSQL = `UPDATE deliveries SET status = 'failed', last_error = ?4, updated_at = ?5
		WHERE lane >= ?1 AND lane < ?2 AND status = 'pending' AND config_id = ?3`

	findDeliverySQL = `SELECT ` + deliveryColumns + `, ` + eventColumns + `
		FROM deliveries d JOIN events e ON e.pk = d.event_pk WHERE d.id = ? AND d.project_id = ?`

	attemptsSQL = `SELECT n, at, status_code, latency_us, response, error
		FROM attempts WHERE delivery_id = ? ORDER BY n`

	// Final deliveries and unreferenced events up to a key (the retention
	// cutoff's, see DB.cutoff), oldest first: the scan starts at the oldest
	// rows, so it passes over only the old ones that stay.
	purgeDeliveriesSQL = `DELETE FROM deliveries WHERE id IN (
		SELECT id FROM deliveries WHERE id <= ? AND status <> 'pending' ORDER BY id LIMIT ?)`

	purgeEventsSQL = `DELETE FROM events WHERE pk IN (
		SELECT pk FROM events e WHERE e.pk <= ?
		AND NOT EXISTS (SELECT 1 FROM deliveries d WHERE d.event_pk = e.pk)
		ORDER BY e.pk LIMIT ?)`
)

// laneRange returns the bounds of the lane keys of a config: every
// livehooks.LaneKey(configID, stream) is in [lo, hi), as '0' follows '/'.
func laneRange(configID string) (lo, hi string) {
	return configID + "/", configID + "0"
}
