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
// A method of tx that fails with a domain error (EINVALID, ENOTFOUND) has
// written nothing, so a group committer may drop that caller's operation and
// go on with the others in the same transaction; after any other error fn
// must return it (the transaction is rolled back).
func (db *DB) Write(ctx context.Context, fn func(tx livehooks.OutboxTx) error) error {
	return db.writeTx(ctx, func(tx *sql.Tx) error {
		return fn(&outboxTx{db: db, tx: tx, ctx: ctx})
	})
}

// outboxTx is the OutboxTx of one write transaction. It binds the prepared
// statements to the transaction on first use and caches the configs that
// events matched, so a batch of events of one stream costs a handful of
// index lookups per event.
type outboxTx struct {
	db      *DB
	tx      *sql.Tx
	ctx     context.Context
	stmts   [numStmts]*sql.Stmt
	configs map[matchKey]match
}

type matchKey struct{ project, domain, app string }

// match is the config an event of a matchKey goes to; id is "" when none.
type match struct {
	id       string
	subs     uint8 // bit i: subscribed to livehooks.EventTypes[i]
	disabled bool
}

func (t *outboxTx) stmt(i int) *sql.Stmt {
	if t.stmts[i] == nil {
		t.stmts[i] = t.tx.StmtContext(t.ctx, t.db.stmts[i])
	}
	return t.stmts[i]
}

func eventBit(et livehooks.EventType) uint8 {
	for i, e := range livehooks.EventTypes {
		if e == et {
			return 1 << i
		}
	}
	return 0
}

func (t *outboxTx) match(ctx context.Context, project, domain, app string) (match, error) {
	k := matchKey{project, domain, app}
	if m, ok := t.configs[k]; ok {
		return m, nil
	}
	var (
		m            match
		subs, reason string
	)
	err := t.stmt(stmtMatch).QueryRowContext(ctx, project, domain, app).Scan(&m.id, &subs, &reason)
	if errors.Is(err, sql.ErrNoRows) {
		m = match{}
	} else if err != nil {
		return match{}, fmt.Errorf("sqlite: match callback: %w", err)
	} else {
		for _, s := range storerow.SplitSubscription(subs) {
			m.subs |= eventBit(s)
		}
		m.disabled = reason != ""
	}
	if t.configs == nil {
		t.configs = make(map[matchKey]match)
	}
	t.configs[k] = m
	return m, nil
}

// Enqueue stores the events and a pending delivery for each event that a
// config matches (exact app, else `*`), is enabled and subscribed to. An event
// whose ID is already stored is skipped: ingest is idempotent per event ID.
func (t *outboxTx) Enqueue(ctx context.Context, node string, now time.Time, events []*livehooks.Event) ([]*livehooks.Delivery, error) {
	var (
		out   []*livehooks.Delivery
		depth = map[string]int{}
	)
	nowUS := micros(now)
	for _, e := range events {
		if e == nil {
			return nil, livehooks.Errorf(livehooks.EINVALID, "nil event")
		}
	}
	for _, e := range events {
		if e.ID == "" {
			e.ID = storerow.NewEventID()
		}
		if e.OccurredAt.IsZero() {
			e.OccurredAt = now
		}
		var pk int64
		err := t.stmt(stmtInsertEvent).QueryRowContext(ctx, e.ID, e.ProjectID, string(e.Type), e.PublishDomain, e.App,
			e.Stream, e.TaskID, e.JobID, e.RecordFormat, e.DownloadURL, e.AssetID, e.FileSize, e.RecordDuration,
			optMicros(e.StartTime), optMicros(e.EndTime), e.Width, e.Height, e.ErrorMessage, e.PlayURL,
			micros(e.OccurredAt), nowUS).Scan(&pk)
		if errors.Is(err, sql.ErrNoRows) {
			continue // already stored
		} else if err != nil {
			return nil, fmt.Errorf("sqlite: enqueue: insert event: %w", err)
		}
		m, err := t.match(ctx, e.ProjectID, e.PublishDomain, e.App)
		if err != nil {
			return nil, err
		}
		if m.id == "" || m.disabled || m.subs&eventBit(e.Type) == 0 {
			continue
		}
		d, err := t.insertDelivery(ctx, node, now, livehooks.WebhookID(e.ID, m.id), e.ProjectID, m.id, pk, e, depth)
		if err != nil {
			return nil, fmt.Errorf("sqlite: enqueue: %w", err)
		}
		if d != nil {
			out = append(out, d)
		}
	}
	setLanePending(out, depth)
	return out, nil
}

// setLanePending reports on each delivery its lane's depth after the call.
func setLanePending(ds []*livehooks.Delivery, depth map[string]int) {
	for _, d := range ds {
		d.LanePending = depth[d.Lane]
	}
}

// insertDelivery adds a pending delivery at the tail of its lane, creating the
// lane (owned by node) first, and records the lane's depth in depth. It
// returns the delivery when node owns the lane and the lane is not waiting
// for a retry, nil otherwise.
func (t *outboxTx) insertDelivery(ctx context.Context, node string, now time.Time, webhookID, project, configID string,
	eventPK int64, e *livehooks.Event, depth map[string]int) (*livehooks.Delivery, error) {
	nowUS := micros(now)
	lane := livehooks.LaneKey(configID, e.Stream)
	var (
		owner   sql.NullString
		nextAt  int64
		pending int
	)
	if err := t.stmt(stmtUpsertLane).QueryRowContext(ctx, lane, configID, nowUS, node, micros(now.Add(t.db.lease))).
		Scan(&owner, &nextAt, &pending); err != nil {
		return nil, fmt.Errorf("upsert lane: %w", err)
	}
	depth[lane] = pending
	var id int64
	if err := t.stmt(stmtInsertDelivery).QueryRowContext(ctx, webhookID, project, configID, lane, eventPK,
		string(e.Type), e.Stream, nowUS).Scan(&id); err != nil {
		return nil, fmt.Errorf("insert delivery: %w", err)
	}
	if !owner.Valid || owner.String != node || nextAt > nowUS {
		return nil, nil
	}
	at := fromMicros(nowUS)
	return &livehooks.Delivery{
		ID:          id,
		WebhookID:   webhookID,
		ProjectID:   project,
		ConfigID:    configID,
		Lane:        lane,
		EventID:     e.ID,
		EventType:   e.Type,
		Stream:      e.Stream,
		Status:      livehooks.DeliveryPending,
		NextAttempt: at,
		CreatedAt:   at,
		UpdatedAt:   at,
		Due:         true,
		Event:       e,
	}, nil
}

// Requeue adds a new pending delivery for each of ds at the tail of its lane.
// Each d names its config (ConfigID) and event (EventID, or Event.ID); its
// WebhookID is kept (livehooks.WebhookID of the event and config when empty).
// The rest is read from the database. The config must exist in the event's
// project and be enabled. Requeue does not check the subscription: the caller
// chose these events. Every d is checked before anything is written, so a
// domain error (ENOTFOUND, EINVALID) leaves the transaction untouched.
func (t *outboxTx) Requeue(ctx context.Context, node string, now time.Time, ds []*livehooks.Delivery) ([]*livehooks.Delivery, error) {
	type item struct {
		pk        int64
		event     *livehooks.Event
		configID  string
		webhookID string
	}
	items := make([]item, 0, len(ds))
	configs := map[string]error{} // config id → why it takes no delivery, nil when it does
	for _, d := range ds {
		if d == nil {
			return nil, livehooks.Errorf(livehooks.EINVALID, "nil delivery")
		}
		eventID := d.EventID
		if eventID == "" && d.Event != nil {
			eventID = d.Event.ID
		}
		pk, e, err := scanEvent(t.stmt(stmtEventByUID).QueryRowContext(ctx, eventID))
		if errors.Is(err, sql.ErrNoRows) {
			return nil, livehooks.Errorf(livehooks.ENOTFOUND, "event %s not found", truncate(eventID, 64))
		} else if err != nil {
			return nil, fmt.Errorf("sqlite: requeue: %w", err)
		}
		cerr, ok := configs[d.ConfigID+"\x00"+e.ProjectID]
		if !ok {
			var project, reason string
			err = t.stmt(stmtConfigState).QueryRowContext(ctx, d.ConfigID).Scan(&project, &reason)
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
	var (
		out   []*livehooks.Delivery
		depth = map[string]int{}
	)
	for _, it := range items {
		nd, err := t.insertDelivery(ctx, node, now, it.webhookID, it.event.ProjectID, it.configID, it.pk, it.event, depth)
		if err != nil {
			return nil, fmt.Errorf("sqlite: requeue: %w", err)
		}
		if nd != nil {
			out = append(out, nd)
		}
	}
	setLanePending(out, depth)
	return out, nil
}

var outcomeStatus = map[livehooks.Outcome]livehooks.DeliveryStatus{
	livehooks.OutcomeSucceeded: livehooks.DeliverySucceeded,
	livehooks.OutcomeRetry:     livehooks.DeliveryPending,
	livehooks.OutcomeFailed:    livehooks.DeliveryFailed,
	livehooks.OutcomeDead:      livehooks.DeliveryDead,
	livehooks.OutcomeGone:      livehooks.DeliveryFailed,
}

// Record stores the attempts and the deliveries' new status. A retry keeps the
// delivery pending until NextAttempt and releases its lane until then; a final
// outcome takes the delivery off its lane, deleting the lane with its last
// delivery; OutcomeGone also disables the config. Results for deliveries that
// are no longer pending change nothing. It returns one state per result, in
// order: the state of the result's lane once all results are recorded.
func (t *outboxTx) Record(ctx context.Context, node string, now time.Time, results []livehooks.Result) ([]livehooks.LaneState, error) {
	for _, r := range results {
		if r.Delivery == nil {
			return nil, livehooks.Errorf(livehooks.EINVALID, "result without a delivery")
		}
		if _, ok := outcomeStatus[r.Outcome]; !ok {
			return nil, livehooks.Errorf(livehooks.EINVALID, "unknown outcome %d", r.Outcome)
		}
	}
	states := make([]livehooks.LaneState, len(results))
	nowUS := micros(now)
	var deleted map[string]bool // lanes this call deleted: nothing brings them back in it
	for i, r := range results {
		status := outcomeStatus[r.Outcome]
		states[i].Lane = r.Delivery.Lane
		if states[i].Lane == "" {
			states[i].Lane = livehooks.LaneKey(r.Delivery.ConfigID, r.Delivery.Stream)
		}
		next := r.NextAttempt
		if next.IsZero() {
			next = now
		}
		lastError := r.Attempt.Error
		if r.Reason != "" {
			if lastError != "" {
				lastError += "; "
			}
			lastError += r.Reason
		}
		var (
			n                       int
			lane, project, configID string
		)
		err := t.stmt(stmtFinishDelivery).QueryRowContext(ctx, r.Delivery.ID, string(status), micros(next), nowUS,
			r.Attempt.StatusCode, lastError).Scan(&n, &lane, &project, &configID)
		if errors.Is(err, sql.ErrNoRows) {
			continue // final or deleted already
		} else if err != nil {
			return nil, fmt.Errorf("sqlite: record: %w", err)
		}
		states[i].Lane = lane
		at := r.Attempt.At
		if at.IsZero() {
			at = now
		}
		if _, err := t.stmt(stmtInsertAttempt).ExecContext(ctx, r.Delivery.ID, n, micros(at), r.Attempt.StatusCode,
			r.Attempt.Latency.Microseconds(), storerow.TruncateUTF8(r.Attempt.Response, MaxResponse), r.Attempt.Error); err != nil {
			return nil, fmt.Errorf("sqlite: record attempt: %w", err)
		}
		if status == livehooks.DeliveryPending {
			if _, err := t.stmt(stmtLaneRetry).ExecContext(ctx, lane, micros(next)); err != nil {
				return nil, fmt.Errorf("sqlite: record: release lane: %w", err)
			}
			continue
		}
		// One statement in the common case (the lane's last delivery); a
		// lane still holding others counts down instead.
		var one int
		err = t.stmt(stmtDeleteLastLane).QueryRowContext(ctx, lane).Scan(&one)
		if err == nil {
			if deleted == nil {
				deleted = map[string]bool{}
			}
			deleted[lane] = true
		} else if !errors.Is(err, sql.ErrNoRows) {
			return nil, fmt.Errorf("sqlite: record: delete lane: %w", err)
		} else {
			var pending int
			err = t.stmt(stmtLaneDone).QueryRowContext(ctx, lane).Scan(&pending)
			if err != nil && !errors.Is(err, sql.ErrNoRows) {
				return nil, fmt.Errorf("sqlite: record: %w", err)
			}
		}
		if r.Outcome == livehooks.OutcomeGone {
			if err := t.disable(ctx, project, configID, r.Reason, now); err != nil {
				return nil, err
			}
		}
	}
	// A lane is Open when it still has pending deliveries and node owns it;
	// later results (a retry, a 410) can change what an earlier one left. A
	// lane this call deleted is closed without asking.
	open := make(map[string]bool, len(states))
	for i := range states {
		lane := states[i].Lane
		o, ok := open[lane]
		if !ok && !deleted[lane] {
			var (
				owner   sql.NullString
				pending int
			)
			err := t.stmt(stmtLaneState).QueryRowContext(ctx, lane).Scan(&owner, &pending)
			if err != nil && !errors.Is(err, sql.ErrNoRows) {
				return nil, fmt.Errorf("sqlite: record: %w", err)
			}
			o = err == nil && pending > 0 && owner.Valid && owner.String == node
			open[lane] = o
		}
		states[i].Open = o
	}
	return states, nil
}

// disable disables a config inside the transaction (410 Gone) and forgets it
// in the match cache, so that later events of this transaction skip it.
func (t *outboxTx) disable(ctx context.Context, project, configID, reason string, now time.Time) error {
	if reason == "" {
		reason = "receiver answered 410 Gone"
	}
	if err := disable(ctx, t.tx, project, configID, reason, now); err != nil && livehooks.ErrorCode(err) != livehooks.ENOTFOUND {
		return err
	}
	for k, m := range t.configs {
		if m.id == configID {
			m.disabled = true
			t.configs[k] = m
		}
	}
	return nil
}

// Defer frees a lane node holds and makes it due at t, without an attempt.
// A lane node does not hold (any more) is left alone.
func (t *outboxTx) Defer(ctx context.Context, node, lane string, at time.Time) (livehooks.LaneState, error) {
	if _, err := t.stmt(stmtDeferLane).ExecContext(ctx, lane, node, micros(at)); err != nil {
		return livehooks.LaneState{}, fmt.Errorf("sqlite: defer lane: %w", err)
	}
	return livehooks.LaneState{Lane: lane, Open: false}, nil
}
