package postgres

import (
	"context"
	"fmt"
	"math"
	"time"

	"github.com/jackc/pgx/v5"

	"github.com/livehooks/livehooks"
	"github.com/livehooks/livehooks/store/storerow"
)

// MaxResponse is how much of a receiver's answer an attempt keeps.
const MaxResponse = 1024

// notifyChannel is the channel nodes wake each other on (see Listen). The
// payload is the id of the node that sent it.
const notifyChannel = "livehooks_lanes"

// Write runs fn in one transaction; its writes commit together or not at all.
//
// The methods of tx hold their writes back: when fn returns, Write sends
// them as a few multi-row statements that make one transaction, in one
// round trip (flush.go). What the methods need to read comes from memory
// where it can (cache.go), else from the database at once. What Enqueue,
// Requeue and Record return is complete when Write returns.
//
// A method of tx that fails with a domain error (EINVALID, ENOTFOUND) holds
// nothing, so a group committer may drop that caller's operation and go on
// with the others in the same transaction; after any other error fn must
// return it.
//
// When the transaction conflicts with another — what it took from memory was
// changed by another node, an event it inserts is stored already, a
// deadlock, a lock wait past lockTimeout — Write forgets what was out of date
// and runs fn again in a new transaction: fn must keep no state between runs
// that a second run would get wrong.
//
// When the transaction added deliveries to lanes that another node owns, or
// left lanes free and due, it notifies the other nodes on commit (Listen).
func (db *DB) Write(ctx context.Context, fn func(tx livehooks.OutboxTx) error) error {
	run := &writeRun{}
	return db.retry(ctx, func() error {
		t := &outboxTx{db: db, run: run, matches: make(map[matchKey]match)}
		defer t.release(ctx)
		if stale := run.stale; len(stale) > 0 {
			// What the last run found out of date, read again at once
			// rather than one stream at a time.
			run.stale = nil
			if _, err := t.readStreams(ctx, stale); err != nil {
				return err
			}
		}
		if err := fn(t); err != nil {
			return err
		}
		return t.flush(ctx)
	})
}

// writeRun is what the runs of one Write learn from each other's conflicts.
type writeRun struct {
	existing map[string]bool       // ids of events stored already: skipped
	stale    []livehooks.StreamKey // streams to read before the next run
}

// outboxTx is the OutboxTx of one run of Write: what fn's calls hold until
// flush.
type outboxTx struct {
	db  *DB
	run *writeRun
	c   *conn // acquired at the first round trip

	// calls counts the calls of Enqueue, Requeue and Record: a delivery's
	// LanePending counts what the calls after its own changed in its lane.
	calls int
	node  string // the first node named: the notification's payload

	events   []bufferedEvent
	eventIDs map[string]*livehooks.Event // the events to insert, by ID
	matches  map[matchKey]match          // what events were matched with, checked at flush
	plans    []planned                   // deliveries to insert, in id order

	requeueConfigs map[string]bool // configs requeued to: must be enabled at flush
	requeueEvents  map[string]bool // stored events requeued: locked at flush

	streams     map[livehooks.StreamKey]*txStream
	streamOrder []*txStream

	results []bufferedResult
	defers  []deferred

	addJobs    []heldFileJob
	finishJobs []finishedJob
}

// bufferedEvent is an event to insert, ingested at.
type bufferedEvent struct {
	e  *livehooks.Event
	at time.Time
}

// planned is a delivery to insert; flush fills in its ID, LanePending, Due.
type planned struct {
	d    *livehooks.Delivery
	node string
	call int
}

// bufferedResult is a result to record; flush fills in its lane's state.
type bufferedResult struct {
	id                          int64
	status                      livehooks.DeliveryStatus
	next, now, at               time.Time
	code                        int32
	lastError, response, errMsg string
	latencyUS                   int64
	gone                        string // the reason a 410 disables the config, "" when none
	configID                    string
	node                        string
	call                        int
	state                       *livehooks.LaneState // in the slice Record returned
}

// deferred is a lane node hands back until at.
type deferred struct {
	lane, node string
	at         time.Time
}

// roundTrip returns the transaction's connection for one round trip with
// sqls, which it prepares first if the connection has not yet, and counts
// the round trip as Write's.
func (t *outboxTx) roundTrip(ctx context.Context, sqls ...string) (*pgx.Conn, error) {
	if err := t.connect(ctx); err != nil {
		return nil, err
	}
	conn := t.c.Conn()
	if err := t.db.prepare(ctx, conn, sqls...); err != nil {
		return nil, err
	}
	t.db.roundTrips.Add(1)
	return conn, nil
}

// connect acquires the transaction's connection, if it has none yet.
func (t *outboxTx) connect(ctx context.Context) error {
	if t.c != nil {
		return nil
	}
	c, err := t.db.acquire(ctx)
	if err != nil {
		return err
	}
	t.c = &c
	return nil
}

// release gives the connection back. A transaction is never left open on it
// (flush's pipeline commits or rolls back by itself), unless something
// failed half-way: then it is rolled back first (another round trip).
func (t *outboxTx) release(ctx context.Context) {
	if t.c == nil {
		return
	}
	if pc := t.c.Conn().PgConn(); !pc.IsClosed() && pc.TxStatus() != 'I' {
		t.db.roundTrips.Add(1)
		rctx, cancel := context.WithTimeout(context.WithoutCancel(ctx), 5*time.Second)
		// A failed rollback closes the connection, and the pool drops it.
		_ = pc.Exec(rctx, "ROLLBACK").Close()
		cancel()
	}
	t.c.release()
	t.c = nil
}

// call starts a call of Enqueue, Requeue or Record.
func (t *outboxTx) call(node string) {
	t.calls++
	if t.node == "" {
		t.node = node
	}
}

// Enqueue holds the events and a pending delivery for each event that a
// config matches (exact app, else `*`), is enabled and subscribed to. An event
// whose ID is stored already, or held already by this transaction, is
// skipped: ingest is idempotent per event ID. Text that PostgreSQL cannot
// store (NUL, invalid UTF-8) is replaced with U+FFFD in the events
// themselves, so what is sent is what is stored.
func (t *outboxTx) Enqueue(ctx context.Context, node string, now time.Time, events []*livehooks.Event) ([]*livehooks.Delivery, error) {
	for _, e := range events {
		if e == nil {
			return nil, livehooks.Errorf(livehooks.EINVALID, "nil event")
		}
		if e.Width < math.MinInt32 || e.Width > math.MaxInt32 || e.Height < math.MinInt32 || e.Height > math.MaxInt32 {
			return nil, livehooks.Errorf(livehooks.EINVALID, "event width or height out of range")
		}
	}
	if len(events) == 0 {
		return nil, nil
	}
	now = ts(now)
	t.call(node)
	var fresh []*livehooks.Event
	for _, e := range events {
		if e.ID == "" {
			e.ID = storerow.NewEventID()
		}
		if e.OccurredAt.IsZero() {
			e.OccurredAt = now
		}
		cleanEvent(e)
		if t.run.existing[e.ID] || t.eventIDs[e.ID] != nil {
			continue
		}
		if t.eventIDs == nil {
			t.eventIDs = make(map[string]*livehooks.Event)
		}
		t.eventIDs[e.ID] = e
		t.events = append(t.events, bufferedEvent{e, now})
		fresh = append(fresh, e)
	}
	if err := t.loadMatches(ctx, fresh); err != nil {
		return nil, err
	}
	var out []*livehooks.Delivery
	for _, e := range fresh {
		m := t.matches[matchKey{e.ProjectID, e.PublishDomain, e.App}]
		if !m.takes(e.Type) {
			continue
		}
		d := storerow.NewDelivery(livehooks.WebhookID(e.ID, m.id), m.id, e, now)
		t.plans = append(t.plans, planned{d: d, node: node, call: t.calls})
		out = append(out, d)
	}
	return out, nil
}

// cleanEvent makes an event's text storable (see cleanText).
func cleanEvent(e *livehooks.Event) {
	for _, p := range []*string{&e.ID, &e.ProjectID, &e.PublishDomain, &e.App, &e.Stream, &e.TaskID, &e.JobID,
		&e.RecordFormat, &e.DownloadURL, &e.AssetID, &e.ErrorMessage, &e.PlayURL} {
		*p = cleanText(*p)
	}
	e.Type = livehooks.EventType(cleanText(string(e.Type)))
}

const eventColumns = `e.pk, e.uid, e.project_id, e.type, e.publish_domain, e.app, e.stream, e.task_id, e.job_id,
	e.record_format, e.download_url, e.asset_id, e.file_size, e.record_duration, e.start_time, e.end_time,
	e.width, e.height, e.error_message, e.play_url, e.occurred_at, e.created_at`

const (
	requeueEventsSQL  = `SELECT ` + eventColumns + ` FROM events e WHERE e.uid = ANY($1)`
	requeueConfigsSQL = `SELECT id, project_id, disabled_reason FROM callbacks WHERE id = ANY($1)`
)

// Requeue holds a new pending delivery for each of ds at the tail of its
// lane. Each d names its config (ConfigID) and event (EventID, or Event.ID);
// its WebhookID is kept (livehooks.WebhookID of the event and config when
// empty). The rest is read from the database (a round trip), or from the
// transaction for an event it enqueued. The config must exist in the event's
// project and be enabled. Requeue does not check the subscription: the caller
// chose these events. Every d is checked before anything is held, so a
// domain error (ENOTFOUND, EINVALID) leaves the transaction untouched.
func (t *outboxTx) Requeue(ctx context.Context, node string, now time.Time, ds []*livehooks.Delivery) ([]*livehooks.Delivery, error) {
	for _, d := range ds {
		if d == nil {
			return nil, livehooks.Errorf(livehooks.EINVALID, "nil delivery")
		}
	}
	if len(ds) == 0 {
		return nil, nil
	}
	now = ts(now)
	eventIDs := make([]string, len(ds))
	var toRead, configIDs []string
	seen := map[string]bool{}
	for i, d := range ds {
		eventIDs[i] = d.EventID
		if eventIDs[i] == "" && d.Event != nil {
			eventIDs[i] = d.Event.ID
		}
		if !validText(eventIDs[i], d.ConfigID) {
			return nil, livehooks.Errorf(livehooks.ENOTFOUND, "event %s not found", truncate(eventIDs[i], 64))
		}
		if t.eventIDs[eventIDs[i]] == nil && !seen["e"+eventIDs[i]] {
			seen["e"+eventIDs[i]] = true
			toRead = append(toRead, eventIDs[i])
		}
		if !seen["c"+d.ConfigID] {
			seen["c"+d.ConfigID] = true
			configIDs = append(configIDs, d.ConfigID)
		}
	}
	events := make(map[string]*livehooks.Event, len(ds))
	type config struct{ project, reason string }
	configs := make(map[string]config, len(configIDs))
	conn, err := t.roundTrip(ctx, requeueEventsSQL, requeueConfigsSQL)
	if err != nil {
		return nil, fmt.Errorf("postgres: requeue: %w", err)
	}
	b := &pgx.Batch{}
	b.Queue(requeueEventsSQL, toRead).Query(func(rows pgx.Rows) error {
		for rows.Next() {
			_, e, err := scanEvent(rows)
			if err != nil {
				return err
			}
			events[e.ID] = e
		}
		return rows.Err()
	})
	b.Queue(requeueConfigsSQL, configIDs).Query(func(rows pgx.Rows) error {
		for rows.Next() {
			var id string
			var c config
			if err := rows.Scan(&id, &c.project, &c.reason); err != nil {
				return err
			}
			configs[id] = c
		}
		return rows.Err()
	})
	if err := conn.SendBatch(ctx, b).Close(); err != nil {
		return nil, fmt.Errorf("postgres: requeue: %w", err)
	}
	for i := range ds {
		if e := t.eventIDs[eventIDs[i]]; e != nil {
			events[eventIDs[i]] = e
		} else if events[eventIDs[i]] == nil {
			return nil, livehooks.Errorf(livehooks.ENOTFOUND, "event %s not found", truncate(eventIDs[i], 64))
		}
	}
	out := make([]*livehooks.Delivery, len(ds))
	for i, d := range ds {
		e := events[eventIDs[i]]
		c, ok := configs[d.ConfigID]
		switch {
		case !ok || c.project != e.ProjectID:
			return nil, errNotFound(d.ConfigID)
		case c.reason != "":
			return nil, livehooks.Errorf(livehooks.EINVALID, "callback configuration %s is disabled (%s): update it to enable it again",
				truncate(d.ConfigID, 64), c.reason)
		}
		webhookID := cleanText(d.WebhookID)
		if webhookID == "" {
			webhookID = livehooks.WebhookID(e.ID, d.ConfigID)
		}
		out[i] = storerow.NewDelivery(webhookID, d.ConfigID, e, now)
	}
	t.call(node)
	for i, d := range out {
		t.plans = append(t.plans, planned{d: d, node: node, call: t.calls})
		if t.requeueConfigs == nil {
			t.requeueConfigs, t.requeueEvents = make(map[string]bool), make(map[string]bool)
		}
		t.requeueConfigs[d.ConfigID] = true
		if t.eventIDs[eventIDs[i]] == nil {
			t.requeueEvents[eventIDs[i]] = true
		}
	}
	return out, nil
}

// Record holds the attempts and the deliveries' new status. A retry keeps the
// delivery pending until NextAttempt and releases its lane until then; a final
// outcome takes the delivery off its lane, deleting the lane with its last
// delivery; OutcomeGone also disables the config, failing its pending
// deliveries, those enqueued by the same transaction included. A result for
// a delivery that is no longer pending changes nothing. It returns one state
// per result, in order, filled in when Write returns: the state of the
// result's lane at the end of the transaction.
func (t *outboxTx) Record(ctx context.Context, node string, now time.Time, results []livehooks.Result) ([]livehooks.LaneState, error) {
	if err := storerow.CheckResults(results); err != nil {
		return nil, err
	}
	now = ts(now)
	t.call(node)
	states := make([]livehooks.LaneState, len(results))
	for i, r := range results {
		states[i].Lane = storerow.ResultLane(r)
		br := bufferedResult{
			id: r.Delivery.ID, status: storerow.OutcomeStatus(r.Outcome), next: ts(r.NextAttempt), now: now, at: ts(r.Attempt.At),
			code: int32(max(min(r.Attempt.StatusCode, math.MaxInt32), math.MinInt32)), latencyUS: r.Attempt.Latency.Microseconds(),
			response: storerow.TruncateUTF8(cleanText(r.Attempt.Response), MaxResponse), errMsg: cleanText(r.Attempt.Error),
			configID: cleanText(r.Delivery.ConfigID), node: node, call: t.calls, state: &states[i],
		}
		if r.NextAttempt.IsZero() {
			br.next = now
		}
		if r.Attempt.At.IsZero() {
			br.at = now
		}
		br.lastError = cleanText(storerow.LastError(r))
		if r.Outcome == livehooks.OutcomeGone {
			br.gone = cleanText(storerow.GoneReason(r))
		}
		t.results = append(t.results, br)
	}
	return states, nil
}

// Defer frees a lane node holds and makes it due at t, without an attempt,
// when the transaction commits. A lane node does not hold (any more) is left
// alone.
func (t *outboxTx) Defer(ctx context.Context, node, lane string, at time.Time) (livehooks.LaneState, error) {
	if validText(node, lane) {
		t.defers = append(t.defers, deferred{lane: lane, node: node, at: ts(at)})
	}
	return livehooks.LaneState{Lane: lane, Open: false}, nil
}
