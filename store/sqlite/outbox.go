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

// MaxResponse is how much of a receiver's answer an attempt keeps.
const MaxResponse = 1024

// Write runs fn in one write transaction (BEGIN IMMEDIATE). fn must only use
// tx: the single write connection is busy until fn returns, so a call to
// another writing method of db from inside fn would wait for itself.
//
// The hot writes of fn (events, deliveries, stream states, results) are held
// and written together when fn returns (see batch.go); what tx's methods
// returned is complete when Write returns.
//
// A method of tx that fails with a domain error (EINVALID, ENOTFOUND) has
// written nothing, so a group committer may drop that caller's operation and
// go on with the others in the same transaction; after any other error fn
// must return it (the transaction is rolled back).
func (db *DB) Write(ctx context.Context, fn func(tx livehooks.OutboxTx) error) error {
	if err := db.WriteDeferSync(ctx, fn); err != nil {
		return err
	}
	return db.Sync()
}

// WriteDeferSync is Write without the wait for the disk: the transaction is
// committed, visible to readers, and durable once Sync returns. A group
// committer acknowledges its writers after Sync, while the next transaction
// already runs (groupcommit.DeferredSyncer).
func (db *DB) WriteDeferSync(ctx context.Context, fn func(tx livehooks.OutboxTx) error) error {
	// The statements of a write run to its end: SQLite waits for nothing
	// that a deadline could cut short (a lock wait has busy_timeout), and a
	// context that can end costs the driver a goroutine and a progress
	// handler per statement, and database/sql one per transaction and query.
	ctx = context.WithoutCancel(ctx)
	var t *outboxTx
	err := db.commitTx(ctx, func(tx *sql.Tx) error {
		// The write connection is ours until the transaction ends: the id
		// counters and the caches are too.
		t = &outboxTx{db: db, tx: tx, ctx: ctx, pk: db.nextPK, id: db.nextID, goneConfigs: map[string]string{}}
		if err := fn(t); err != nil {
			return err
		}
		return t.flush()
	}, func() { t.lanesCommitted() })
	if t == nil {
		return err
	}
	if err != nil {
		// Nothing of the transaction stays: neither its ids nor what the
		// caches learnt from it.
		db.nextPK, db.nextID = t.pk, t.id
		db.cache.streams.Invalidate()
		db.cache.configs.Invalidate()
		return err
	}
	gen := db.cache.streams.Gen()
	for _, k := range t.streamOrder {
		db.cache.putStream(k, t.streams[k], gen)
	}
	return nil
}

// outboxTx is the OutboxTx of one write transaction: it holds the hot writes
// until flush (batch.go) and binds prepared statements to the transaction on
// first use.
type outboxTx struct {
	db    *DB
	tx    *sql.Tx
	ctx   context.Context
	stmts [numStmts]*sql.Stmt

	pk, id int64 // the id counters when the transaction began

	events      []*heldEvent
	deliveries  []*heldDelivery
	results     []*heldResult // not flushed yet
	allResults  []*heldResult
	streams     map[livehooks.StreamKey]*livehooks.StreamState
	streamOrder []livehooks.StreamKey
	streamAt    map[livehooks.StreamKey]int // a stream's last index in streamOrder
	// streamsWritten counts the streamOrder entries flushed; a stream put
	// again after a flush is appended again.
	streamsWritten int
	// laneOps are the transaction's lane changes in order, applied when it
	// has committed; touched are the lanes whose final state its callers
	// get (lanesCommitted).
	laneOps     []laneOp
	touched     map[string]memLane
	calls       int               // Enqueue and Requeue calls so far
	goneConfigs map[string]string // config id → project, disabled by a 410 in this transaction
}

func (t *outboxTx) stmt(i int) *sql.Stmt {
	if t.stmts[i] == nil {
		t.stmts[i] = t.tx.StmtContext(t.ctx, t.db.stmts[i])
	}
	return t.stmts[i]
}

// match returns the config an event of (project, domain, app) goes to. The
// answers are cached until a config changes (caches).
func (t *outboxTx) match(project, domain, app string) (match, error) {
	k := matchKey{project, domain, app}
	gen := t.db.cache.configs.Gen()
	if m, ok := t.db.cache.configs.Get(k); ok {
		return m, nil
	}
	var (
		m            match
		subs, reason string
	)
	err := t.stmt(stmtMatch).QueryRowContext(t.ctx, project, domain, app).Scan(&m.id, &subs, &reason)
	if errors.Is(err, sql.ErrNoRows) {
		m = match{}
	} else if err != nil {
		return match{}, fmt.Errorf("sqlite: match callback: %w", err)
	} else {
		m.subs, m.disabled = storerow.SubscriptionMask(subs), reason != ""
	}
	t.db.cache.configs.Put(k, m, gen)
	return m, nil
}

// Enqueue holds the events and a pending delivery for each event that a
// config matches (exact app, else `*`), is enabled and subscribed to. An event
// whose ID is already stored is skipped when the transaction is flushed:
// ingest is idempotent per event ID.
func (t *outboxTx) Enqueue(ctx context.Context, node string, now time.Time, events []*livehooks.Event) ([]*livehooks.Delivery, error) {
	for _, e := range events {
		if e == nil {
			return nil, livehooks.Errorf(livehooks.EINVALID, "nil event")
		}
	}
	var out []*livehooks.Delivery
	nowUS := micros(now)
	at := fromMicros(nowUS)
	t.calls++
	for _, e := range events {
		if e.ID == "" {
			e.ID = storerow.NewEventID()
		}
		if e.OccurredAt.IsZero() {
			e.OccurredAt = now
		}
		he := &heldEvent{e: e, nowUS: nowUS}
		t.events = append(t.events, he)
		m, err := t.match(e.ProjectID, e.PublishDomain, e.App)
		if err != nil {
			return nil, err
		}
		if m.id == "" || m.disabled || m.subs&storerow.EventMask(e.Type) == 0 {
			continue
		}
		d := storerow.NewDelivery(livehooks.WebhookID(e.ID, m.id), m.id, e, at)
		t.deliveries = append(t.deliveries, &heldDelivery{d: d, event: he, node: node, nowUS: nowUS, call: t.calls})
		out = append(out, d)
	}
	return out, nil
}

// Requeue adds a new pending delivery for each of ds at the tail of its lane.
// Each d names its config (ConfigID) and event (EventID, or Event.ID); its
// WebhookID is kept (livehooks.WebhookID of the event and config when empty).
// The rest is read from the database. The config must exist in the event's
// project and be enabled. Requeue does not check the subscription: the caller
// chose these events. Every d is checked before anything is written, so a
// domain error (ENOTFOUND, EINVALID) leaves the transaction untouched.
//
// Requeue is rare (manual retry, replay): it writes what the transaction
// holds first, so that it finds events enqueued earlier in it.
func (t *outboxTx) Requeue(ctx context.Context, node string, now time.Time, ds []*livehooks.Delivery) ([]*livehooks.Delivery, error) {
	for _, d := range ds {
		if d == nil {
			return nil, livehooks.Errorf(livehooks.EINVALID, "nil delivery")
		}
	}
	if len(ds) == 0 {
		return nil, nil
	}
	if err := t.flush(); err != nil {
		return nil, err
	}
	type item struct {
		pk        int64
		event     *livehooks.Event
		configID  string
		webhookID string
	}
	items := make([]item, 0, len(ds))
	configs := map[string]error{} // config id → why it takes no delivery, nil when it does
	for _, d := range ds {
		eventID := d.EventID
		if eventID == "" && d.Event != nil {
			eventID = d.Event.ID
		}
		pk, e, err := scanEvent(t.stmt(stmtEventByUID).QueryRowContext(t.ctx, eventID))
		if errors.Is(err, sql.ErrNoRows) {
			return nil, livehooks.Errorf(livehooks.ENOTFOUND, "event %s not found", truncate(eventID, 64))
		} else if err != nil {
			return nil, fmt.Errorf("sqlite: requeue: %w", err)
		}
		cerr, ok := configs[d.ConfigID+"\x00"+e.ProjectID]
		if !ok {
			var project, reason string
			err = t.stmt(stmtConfigState).QueryRowContext(t.ctx, d.ConfigID).Scan(&project, &reason)
			switch {
			case errors.Is(err, sql.ErrNoRows) || err == nil && project != e.ProjectID:
				cerr = errNotFound(d.ConfigID)
			case err != nil:
				return nil, fmt.Errorf("sqlite: requeue: %w", err)
			case reason != "":
				cerr = livehooks.Errorf(livehooks.EINVALID, "callback configuration %s is disabled (%s): update it to enable it again",
					truncate(d.ConfigID, 64), reason)
			}
			configs[d.ConfigID+"\x00"+e.ProjectID] = cerr
		}
		if cerr != nil {
			return nil, cerr
		}
		webhookID := d.WebhookID
		if webhookID == "" {
			webhookID = livehooks.WebhookID(e.ID, d.ConfigID)
		}
		items = append(items, item{pk, e, d.ConfigID, webhookID})
	}
	out := make([]*livehooks.Delivery, 0, len(items))
	nowUS := micros(now)
	t.calls++
	for _, it := range items {
		d := storerow.NewDelivery(it.webhookID, it.configID, it.event, fromMicros(nowUS))
		t.deliveries = append(t.deliveries, &heldDelivery{d: d, eventPK: it.pk, node: node, nowUS: nowUS, call: t.calls})
		out = append(out, d)
	}
	return out, nil
}

// Record holds the attempts and the deliveries' new status until the flush.
// A retry keeps the delivery pending until NextAttempt and releases its lane
// until then; a final outcome takes the delivery off its lane, deleting the
// lane with its last delivery; OutcomeGone also disables the config. Results
// for deliveries that are no longer pending change nothing. It returns one
// state per result, in order, filled in when Write returns: the state of the
// result's lane at the end of the transaction.
func (t *outboxTx) Record(ctx context.Context, node string, now time.Time, results []livehooks.Result) ([]livehooks.LaneState, error) {
	if err := storerow.CheckResults(results); err != nil {
		return nil, err
	}
	states := make([]livehooks.LaneState, len(results))
	nowUS := micros(now)
	for i, r := range results {
		states[i].Lane = storerow.ResultLane(r)
		t.touch(states[i].Lane)
		h := &heldResult{r: r, node: node, nowUS: nowUS, state: &states[i], status: storerow.OutcomeStatus(r.Outcome)}
		t.results = append(t.results, h)
		t.allResults = append(t.allResults, h)
	}
	return states, nil
}

// disable disables a config inside the transaction (410 Gone) and forgets it
// in the match cache, so that later events of this transaction skip it.
func (t *outboxTx) disable(project, configID, reason string, now time.Time) error {
	switch err := disable(t.ctx, t.tx, project, configID, reason, now); {
	case err == nil:
		t.laneOps = append(t.laneOps, laneOp{kind: laneDropConfig, config: configID})
	case livehooks.ErrorCode(err) != livehooks.ENOTFOUND:
		return err
	}
	t.db.configChanged()
	return nil
}

// Defer frees a lane node holds and makes it due at t, without an attempt.
// A lane node does not hold (any more) is left alone.
func (t *outboxTx) Defer(ctx context.Context, node, lane string, at time.Time) (livehooks.LaneState, error) {
	// Rare (a destination's breaker opened): in order with what the
	// transaction holds, whose lane changes the flush notes.
	if err := t.flush(); err != nil {
		return livehooks.LaneState{}, err
	}
	t.laneOps = append(t.laneOps, laneOp{kind: laneDefer, lane: lane, node: node, at: micros(at)})
	return livehooks.LaneState{Lane: lane, Open: false}, nil
}
