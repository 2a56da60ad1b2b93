package sqlite

import (
	"context"
	"database/sql"
	"fmt"
	"strings"

	"github.com/livehooks/livehooks"
	"github.com/livehooks/livehooks/store/storerow"
)

// A group-commit transaction holds its hot writes (events, deliveries, stream
// states, attempt results) back and writes them when fn returns, one
// multi-row statement per table and chunk, instead of a few statements per
// event: with SQLite in the process, the cost of a statement (binding,
// stepping, the database/sql layer) is what bounds durable throughput, not
// the rows it writes. Ids are drawn in memory (the process is the only
// writer), so nothing has to come back from the database before the next
// write; what the callers get back (delivery ids, lane states) is filled in
// by lanesCommitted, before Write returns. Lanes are in memory (lanes.go):
// the flush notes what it does to them, applied once the transaction commits.

// chunkSizes are the row counts of the prepared multi-row statements; a flush
// of n rows uses the largest that fit, so up to 255 rows take as many
// statements as n has bits set: a group commit's usual 5–20 rows of a kind take one
// to four, where sizes 8 and 1 alone made 15 rows eight statements. Each
// statement costs its own step set-up, reset and database/sql call; each
// prepared size costs memory (these eight, 1 MB more than 128, 32, 8 and 1
// did; every size up to 32 would cost 8 MB for no gain measurable by the
// bench).
var chunkSizes = [...]int{128, 64, 32, 16, 8, 4, 2, 1}

type multiKey struct {
	kind string
	rows int
}

// multiStmts are the prepared multi-row statements of the write connection.
type multiStmts struct {
	m map[multiKey]*sql.Stmt
}

func (c *multiStmts) prepare(ctx context.Context, db *sql.DB) error {
	c.m = map[multiKey]*sql.Stmt{}
	for kind, q := range multiSQL {
		for _, n := range chunkSizes {
			s, err := db.PrepareContext(ctx, q.build(n))
			if err != nil {
				return fmt.Errorf("prepare %s: %w", kind, err)
			}
			c.m[multiKey{kind, n}] = s
		}
	}
	return nil
}

func (c *multiStmts) close() error {
	var first error
	for _, s := range c.m {
		if err := s.Close(); err != nil && first == nil {
			first = err
		}
	}
	c.m = nil
	return first
}

// rowsSQL repeats a row of cols placeholders n times: "(?, ?), (?, ?)".
func rowsSQL(cols, n int) string {
	row := "(" + strings.TrimSuffix(strings.Repeat("?, ", cols), ", ") + ")"
	return strings.TrimSuffix(strings.Repeat(row+", ", n), ", ")
}

// execRows runs a multi-row statement over args, cols values a row, in
// chunks; build returns the statement text for n rows. Statements that
// return rows give them to scan.
func (t *outboxTx) execRows(kind string, args []any, scan func(*sql.Rows) error) error {
	cols := multiSQL[kind].cols
	for len(args) > 0 {
		rows := len(args) / cols
		n := chunkSizes[len(chunkSizes)-1]
		for _, size := range chunkSizes {
			if size <= rows {
				n = size
				break
			}
		}
		s := t.tx.StmtContext(t.ctx, t.db.multi.m[multiKey{kind, n}])
		chunk := args[:n*cols]
		args = args[n*cols:]
		if scan == nil {
			if _, err := s.ExecContext(t.ctx, chunk...); err != nil {
				return fmt.Errorf("%s: %w", kind, err)
			}
			continue
		}
		rs, err := s.QueryContext(t.ctx, chunk...)
		if err != nil {
			return fmt.Errorf("%s: %w", kind, err)
		}
		for rs.Next() {
			if err := scan(rs); err != nil {
				rs.Close()
				return fmt.Errorf("%s: %w", kind, err)
			}
		}
		if err := rs.Close(); err != nil {
			return fmt.Errorf("%s: %w", kind, err)
		}
		if err := rs.Err(); err != nil {
			return fmt.Errorf("%s: %w", kind, err)
		}
	}
	return nil
}

// multiSQL are the multi-row statements of the write path by kind: the
// values per row and the text for n rows. Each is prepared for every chunk
// size when the store opens (a statement cannot be prepared on the single
// write connection while a transaction holds it).
var multiSQL = map[string]struct {
	cols  int
	build func(n int) string
}{
	// The lookup joins a VALUES list rather than test `IN (?, …)`: SQLite
	// copies an IN list into a temporary index before it seeks the table,
	// and a join seeks straight from the list (storebench: 3–5 % less CPU
	// per event, lower in nine of ten interleaved pairs).
	"known-events": {1, func(n int) string {
		return `WITH r (uid) AS (VALUES ` + rowsSQL(1, n) + `) SELECT e.uid FROM r JOIN events e ON e.uid = r.uid`
	}},
	"insert-events": {22, func(n int) string {
		return `INSERT INTO events (` + eventInsertColumns + `) VALUES ` + rowsSQL(22, n)
	}},
	"insert-deliveries": {12, func(n int) string {
		return `INSERT INTO deliveries (id, webhook_id, project_id, config_id, lane, event_pk, event_type, stream,
		status, next_attempt, created_at, updated_at) VALUES ` + rowsSQL(12, n)
	}},
	"put-streams": {16, func(n int) string {
		return `INSERT INTO streams (` + streamColumns + `, next_timer) VALUES ` + rowsSQL(16, n) + `
		ON CONFLICT (project_id, publish_domain, app, stream) DO UPDATE SET
		state = excluded.state, task_id = excluded.task_id, job_id = excluded.job_id, file_seq = excluded.file_seq,
		file_started_at = excluded.file_started_at, published_at = excluded.published_at, over_at = excluded.over_at,
		next_file_at = excluded.next_file_at, updated_at = excluded.updated_at, next_timer = excluded.next_timer,
		record_format = excluded.record_format, pending_files = excluded.pending_files`
	}},
	"insert-attempts": {7, func(n int) string {
		return `INSERT INTO attempts (delivery_id, n, at, status_code, latency_us, response, error) VALUES ` + rowsSQL(7, n)
	}},
	"finish-deliveries": {6, finishDeliveriesSQL},
}

// heldEvent is an event waiting to be written.
type heldEvent struct {
	e     *livehooks.Event
	pk    int64 // 0 until written; -1 when it was stored already (skipped)
	nowUS int64
}

// heldDelivery is a delivery waiting to be written, or written and waiting
// for its lane's final state.
type heldDelivery struct {
	d       *livehooks.Delivery
	event   *heldEvent // the event enqueued with it, nil for a requeue
	eventPK int64      // a requeue's stored event
	call    int        // the Enqueue or Requeue call that added it
	node    string
	nowUS   int64
	written bool
	skipped bool // its event was stored before: no delivery
}

// heldResult is an attempt result waiting to be written; state is where its
// lane's final state goes.
type heldResult struct {
	r      livehooks.Result
	node   string
	nowUS  int64
	state  *livehooks.LaneState
	status livehooks.DeliveryStatus
}

const eventInsertColumns = `pk, uid, project_id, type, publish_domain, app, stream, task_id, job_id,
	record_format, download_url, asset_id, file_size, record_duration, start_time, end_time,
	width, height, error_message, play_url, occurred_at, created_at`

// flush writes what is held, in this order: events, deliveries, stream
// states, attempt results, noting what they do to the lanes in the same
// order.
func (t *outboxTx) flush() error {
	if err := t.flushEvents(); err != nil {
		return err
	}
	if err := t.flushDeliveries(); err != nil {
		return err
	}
	if err := t.flushStreams(); err != nil {
		return err
	}
	return t.flushResults()
}

func (t *outboxTx) flushEvents() error {
	var fresh []*heldEvent
	for _, h := range t.events {
		if h.pk == 0 {
			fresh = append(fresh, h)
		}
	}
	if len(fresh) == 0 {
		return nil
	}
	// Ingest is idempotent per event id: an id stored before, or twice in
	// this transaction, is written once.
	seen := make(map[string]bool, len(fresh))
	var ids []any
	for _, h := range fresh {
		if seen[h.e.ID] {
			h.pk = -1
			continue
		}
		seen[h.e.ID] = true
		ids = append(ids, h.e.ID)
	}
	stored := map[string]bool{}
	err := t.execRows("known-events", ids, func(rs *sql.Rows) error {
		var uid string
		if err := rs.Scan(&uid); err != nil {
			return err
		}
		stored[uid] = true
		return nil
	})
	if err != nil {
		return fmt.Errorf("sqlite: enqueue: %w", err)
	}
	var args []any
	for _, h := range fresh {
		if h.pk == -1 || stored[h.e.ID] {
			h.pk = -1
			continue
		}
		t.db.nextPK++
		h.pk = t.db.nextPK
		e := h.e
		args = append(args, h.pk, e.ID, e.ProjectID, string(e.Type), e.PublishDomain, e.App,
			e.Stream, e.TaskID, e.JobID, e.RecordFormat, e.DownloadURL, e.AssetID, e.FileSize, e.RecordDuration,
			optMicros(e.StartTime), optMicros(e.EndTime), e.Width, e.Height, e.ErrorMessage, e.PlayURL,
			micros(e.OccurredAt), h.nowUS)
	}
	if err := t.execRows("insert-events", args, nil); err != nil {
		return fmt.Errorf("sqlite: enqueue: %w", err)
	}
	return nil
}

func (t *outboxTx) flushDeliveries() error {
	adds := map[string]int{} // lane → its index in ops
	var ops []laneOp
	var todo []*heldDelivery
	for _, h := range t.deliveries {
		if h.written || h.skipped {
			continue
		}
		if h.event != nil {
			if h.event.pk <= 0 { // stored before: skipped
				h.skipped = true
				continue
			}
			h.eventPK = h.event.pk
		}
		todo = append(todo, h)
		// A new lane is owned by the enqueuing node and due now; an
		// existing one only counts more pending deliveries.
		i, ok := adds[h.d.Lane]
		if !ok {
			i = len(ops)
			adds[h.d.Lane] = i
			ops = append(ops, laneOp{kind: laneAdd, lane: h.d.Lane, config: h.d.ConfigID, node: h.node,
				at: h.nowUS, until: h.nowUS + t.db.lease.Microseconds()})
		}
		ops[i].n++
	}
	if len(todo) == 0 {
		return nil
	}
	t.laneOps = append(t.laneOps, ops...)
	args := make([]any, 0, 12*len(todo))
	for _, h := range todo {
		t.db.nextID++
		d := h.d
		d.ID = t.db.nextID
		args = append(args, d.ID, d.WebhookID, d.ProjectID, d.ConfigID, d.Lane, h.eventPK, string(d.EventType), d.Stream,
			string(livehooks.DeliveryPending), h.nowUS, h.nowUS, h.nowUS)
		h.written = true
		t.touch(d.Lane)
	}
	if err := t.execRows("insert-deliveries", args, nil); err != nil {
		return fmt.Errorf("sqlite: enqueue: %w", err)
	}
	return nil
}

func (t *outboxTx) flushStreams() error {
	if len(t.streamOrder) == t.streamsWritten {
		return nil
	}
	var args []any
	for _, k := range t.streamOrder[t.streamsWritten:] {
		s := t.streams[k]
		args = append(args, s.ProjectID, s.PublishDomain, s.App, s.Stream, s.State, s.TaskID, s.JobID, s.FileSeq,
			optMicros(s.FileStartedAt), optMicros(s.PublishedAt), optMicros(s.OverAt), optMicros(s.NextFileAt),
			micros(s.UpdatedAt), s.RecordFormat, s.PendingFiles, optMicros(s.NextTimer()))
	}
	t.streamsWritten = len(t.streamOrder)
	if err := t.execRows("put-streams", args, nil); err != nil {
		return fmt.Errorf("sqlite: store streams: %w", err)
	}
	return nil
}

// flushResults records the held results: one UPDATE of the deliveries that
// are still pending, one INSERT of their attempts, then the lanes: final
// outcomes count theirs down (a lane goes with its last delivery), retries
// release theirs until the next attempt; a 410 disables its config.
func (t *outboxTx) flushResults() error {
	held := t.results
	t.results = nil
	for len(held) > 0 {
		// A delivery settles once per statement: a second result for the
		// same delivery goes in the next round (it then finds it final).
		var (
			round, later []*heldResult
			ids          = map[int64]bool{}
		)
		for _, h := range held {
			if ids[h.r.Delivery.ID] {
				later = append(later, h)
				continue
			}
			ids[h.r.Delivery.ID] = true
			round = append(round, h)
		}
		if err := t.recordRound(round); err != nil {
			return err
		}
		held = later
	}
	return nil
}

type settled struct {
	attempts          int
	lane              string
	project, configID string
}

func (t *outboxTx) recordRound(round []*heldResult) error {
	args := make([]any, 0, 6*len(round))
	for _, h := range round {
		r := h.r
		next := micros(r.NextAttempt)
		if r.NextAttempt.IsZero() {
			next = h.nowUS
		}
		args = append(args, r.Delivery.ID, string(h.status), next, h.nowUS, r.Attempt.StatusCode, storerow.LastError(r))
	}
	done := make(map[int64]settled, len(round))
	// Only a pending delivery moves: results for final or deleted deliveries
	// return no row and are ignored.
	err := t.execRows("finish-deliveries", args, func(rs *sql.Rows) error {
		var (
			id int64
			s  settled
		)
		if err := rs.Scan(&id, &s.attempts, &s.lane, &s.project, &s.configID); err != nil {
			return err
		}
		done[id] = s
		return nil
	})
	if err != nil {
		return fmt.Errorf("sqlite: record: %w", err)
	}
	var (
		attempts []any
		retries  = map[string]int64{}
		finals   = map[string]int{}
		gone     []*heldResult
	)
	for _, h := range round {
		r := h.r
		s, ok := done[r.Delivery.ID]
		if !ok {
			continue // final or deleted already
		}
		h.state.Lane = s.lane
		t.touch(s.lane)
		at := r.Attempt.At
		if at.IsZero() {
			at = fromMicros(h.nowUS)
		}
		attempts = append(attempts, r.Delivery.ID, s.attempts, micros(at), r.Attempt.StatusCode,
			r.Attempt.Latency.Microseconds(), storerow.TruncateUTF8(r.Attempt.Response, MaxResponse), r.Attempt.Error)
		if h.status == livehooks.DeliveryPending {
			next := micros(r.NextAttempt)
			if r.NextAttempt.IsZero() {
				next = h.nowUS
			}
			retries[s.lane] = next
			continue
		}
		finals[s.lane]++
		if r.Outcome == livehooks.OutcomeGone {
			gone = append(gone, h)
			t.goneConfigs[s.configID] = s.project
		}
	}
	if err := t.execRows("insert-attempts", attempts, nil); err != nil {
		return fmt.Errorf("sqlite: record attempt: %w", err)
	}
	// Ops on different lanes commute: map order will do.
	for k, n := range finals {
		t.laneOps = append(t.laneOps, laneOp{kind: laneSettle, lane: k, n: n})
	}
	for k, at := range retries {
		t.laneOps = append(t.laneOps, laneOp{kind: laneRetry, lane: k, at: at})
	}
	for _, h := range gone {
		s := done[h.r.Delivery.ID]
		if err := t.disable(s.project, s.configID, storerow.GoneReason(h.r), fromMicros(h.nowUS)); err != nil {
			return err
		}
	}
	return nil
}

// finishDeliveriesSQL moves n deliveries that are still pending to their
// new status; results for final or deleted deliveries return no row.
func finishDeliveriesSQL(n int) string {
	return `WITH r (id, status, next, now, code, err) AS (VALUES ` + rowsSQL(6, n) + `)
		UPDATE deliveries SET
			status = r.status,
			attempts = attempts + 1,
			next_attempt = CASE WHEN r.status = 'pending' THEN r.next ELSE next_attempt END,
			updated_at = r.now,
			last_status = r.code,
			last_error = r.err,
			latency_ms = CASE WHEN r.status = 'succeeded' THEN (r.now - created_at) / 1000 ELSE latency_ms END
		FROM r WHERE deliveries.id = r.id AND deliveries.status = 'pending'
		RETURNING deliveries.id, deliveries.attempts, deliveries.lane, deliveries.project_id, deliveries.config_id`
}

// touch notes a lane whose final state lanesCommitted reads.
func (t *outboxTx) touch(lane string) {
	if t.touched == nil {
		t.touched = map[string]memLane{}
	}
	t.touched[lane] = memLane{}
}

// lanesCommitted runs once the transaction has committed, before the next
// one begins: it applies the transaction's lane changes and completes what
// the callers got from the lanes' states: each delivery's ID (set at flush),
// LanePending and Due, each result's lane state.
func (t *outboxTx) lanesCommitted() {
	lt := &t.db.lanes
	lt.mu.Lock()
	lt.apply(t.laneOps)
	lt.snapshot(t.touched)
	lt.mu.Unlock()
	// A delivery's LanePending is its lane's depth after the call that added
	// it: the final depth less what later calls added.
	after, call := map[string]int{}, map[string]int{}
	for i := len(t.deliveries) - 1; i >= 0; i-- {
		h := t.deliveries[i]
		if i == len(t.deliveries)-1 || h.call != t.deliveries[i+1].call {
			for lane, n := range call {
				after[lane] += n
			}
			clear(call)
		}
		if !h.written {
			continue
		}
		row := t.touched[h.d.Lane]
		h.d.LanePending = row.pending - after[h.d.Lane]
		call[h.d.Lane]++
		_, gone := t.goneConfigs[h.d.ConfigID]
		h.d.Due = row.pending > 0 && row.owned && row.owner == h.node && row.nextAt <= h.nowUS && !gone
	}
	for _, h := range t.allResults {
		row := t.touched[h.state.Lane]
		h.state.Open = row.pending > 0 && row.owned && row.owner == h.node
	}
}
