package postgres

import (
	"context"
	"errors"
	"fmt"
	"sort"
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
// A method of tx that fails with a domain error (EINVALID, ENOTFOUND) has
// written nothing, so a group committer may drop that caller's operation and
// go on with the others in the same transaction; after any other error fn
// must return it (PostgreSQL refuses every further statement of the
// transaction, which is rolled back).
//
// When PostgreSQL aborts the transaction for a deadlock with another node's,
// Write runs fn again in a new transaction: fn must keep no state between
// runs that a second run would get wrong.
//
// When the transaction added deliveries to lanes that another node owns, or
// left lanes free and due, it notifies the other nodes on commit (Listen).
func (db *DB) Write(ctx context.Context, fn func(tx livehooks.OutboxTx) error) error {
	return db.writeTx(ctx, func(tx pgx.Tx) error {
		t := &outboxTx{db: db, tx: tx}
		if err := fn(t); err != nil {
			return err
		}
		if t.notify != "" {
			if _, err := tx.Exec(ctx, `SELECT pg_notify($1, $2)`, notifyChannel, t.notify); err != nil {
				return fmt.Errorf("postgres: notify: %w", err)
			}
		}
		return nil
	})
}

// outboxTx is the OutboxTx of one write transaction. It caches the configs
// that events matched: the transaction holds a key-share lock on each, so
// they cannot be disabled or deleted under it by another transaction.
type outboxTx struct {
	db      *DB
	tx      pgx.Tx
	configs map[matchKey]match
	notify  string // node to name in a notification sent on commit; "" for none
}

type matchKey struct{ project, domain, app string }

// match is the config an event of a matchKey goes to; id is "" when none.
type match struct {
	id       string
	subs     uint8 // bit i: subscribed to livehooks.EventTypes[i]
	disabled bool
}

func eventBit(et livehooks.EventType) uint8 {
	for i, e := range livehooks.EventTypes {
		if e == et {
			return 1 << i
		}
	}
	return 0
}

// wake asks for a notification on commit.
func (t *outboxTx) wake(node string) {
	if t.notify == "" {
		t.notify = cleanText(node)
		if t.notify == "" {
			t.notify = "-"
		}
	}
}

// matchSQL takes the exact app before `*`, and a key-share lock on the
// config: DeleteCallback and DisableCallback wait for this transaction, so
// they see (and settle) the deliveries it adds.
const matchSQL = `SELECT id, notify_event_subscription, disabled_reason FROM callbacks
	WHERE project_id = $1 AND publish_domain = $2 AND app IN ($3, '*') ORDER BY app = '*' LIMIT 1 FOR KEY SHARE`

func (t *outboxTx) match(ctx context.Context, project, domain, app string) (match, error) {
	k := matchKey{project, domain, app}
	if m, ok := t.configs[k]; ok {
		return m, nil
	}
	var (
		m            match
		subs, reason string
	)
	err := t.tx.QueryRow(ctx, matchSQL, project, domain, app).Scan(&m.id, &subs, &reason)
	if errors.Is(err, pgx.ErrNoRows) {
		m = match{}
	} else if err != nil {
		return match{}, fmt.Errorf("postgres: match callback: %w", err)
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

const eventColumns = `e.pk, e.uid, e.project_id, e.type, e.publish_domain, e.app, e.stream, e.task_id, e.job_id,
	e.record_format, e.download_url, e.asset_id, e.file_size, e.record_duration, e.start_time, e.end_time,
	e.width, e.height, e.error_message, e.play_url, e.occurred_at, e.created_at`

// A known event id is skipped (no row returned): ingest is idempotent.
const insertEventSQL = `INSERT INTO events (uid, project_id, type, publish_domain, app, stream, task_id, job_id,
	record_format, download_url, asset_id, file_size, record_duration, start_time, end_time,
	width, height, error_message, play_url, occurred_at, created_at)
	VALUES ($1, $2, $3, $4, $5, $6, $7, $8, $9, $10, $11, $12, $13, $14, $15, $16, $17, $18, $19, $20, $21)
	ON CONFLICT (uid) DO NOTHING RETURNING pk`

// upsertLaneSQL creates a lane owned by the enqueuing node and due now, or
// counts more pending deliveries in an existing one. Either way it locks the
// lane's row until commit: a lane's deliveries get their ids in the order
// their transactions commit, whichever node writes them.
const upsertLaneSQL = `INSERT INTO lanes AS l (lane, config_id, pending, next_at, owner, lease_until)
	VALUES ($1, $2, $3, $4, $5, $6)
	ON CONFLICT (lane) DO UPDATE SET pending = l.pending + excluded.pending
	RETURNING l.owner, l.next_at, l.pending`

const insertDeliverySQL = `INSERT INTO deliveries (webhook_id, project_id, config_id, lane, event_pk, event_type,
	stream, status, next_attempt, created_at, updated_at)
	VALUES ($1, $2, $3, $4, $5, $6, $7, 'pending', $8, $8, $8) RETURNING id`

// planned is a delivery to add: its event and config.
type planned struct {
	pk        int64
	event     *livehooks.Event
	project   string
	configID  string
	lane      string
	webhookID string
}

// Enqueue stores the events and a pending delivery for each event that a
// config matches (exact app, else `*`), is enabled and subscribed to. An event
// whose ID is already stored is skipped: ingest is idempotent per event ID.
// Text that PostgreSQL cannot store (NUL, invalid UTF-8) is replaced with
// U+FFFD in the events themselves, so what is sent is what is stored.
func (t *outboxTx) Enqueue(ctx context.Context, node string, now time.Time, events []*livehooks.Event) ([]*livehooks.Delivery, error) {
	for _, e := range events {
		if e == nil {
			return nil, livehooks.Errorf(livehooks.EINVALID, "nil event")
		}
	}
	if len(events) == 0 {
		return nil, nil
	}
	now = ts(now)
	b := &pgx.Batch{}
	for _, e := range events {
		if e.ID == "" {
			e.ID = storerow.NewEventID()
		}
		if e.OccurredAt.IsZero() {
			e.OccurredAt = now
		}
		cleanEvent(e)
		b.Queue(insertEventSQL, e.ID, e.ProjectID, string(e.Type), e.PublishDomain, e.App,
			e.Stream, e.TaskID, e.JobID, e.RecordFormat, e.DownloadURL, e.AssetID, e.FileSize, e.RecordDuration,
			optTime(e.StartTime), optTime(e.EndTime), e.Width, e.Height, e.ErrorMessage, e.PlayURL,
			ts(e.OccurredAt), now)
	}
	pks := make([]int64, len(events)) // 0: already stored
	br := t.tx.SendBatch(ctx, b)
	for i := range events {
		err := br.QueryRow().Scan(&pks[i])
		if err != nil && !errors.Is(err, pgx.ErrNoRows) {
			br.Close()
			return nil, fmt.Errorf("postgres: enqueue: insert event: %w", err)
		}
	}
	if err := br.Close(); err != nil {
		return nil, fmt.Errorf("postgres: enqueue: insert event: %w", err)
	}
	var plan []planned
	for i, e := range events {
		if pks[i] == 0 {
			continue
		}
		m, err := t.match(ctx, e.ProjectID, e.PublishDomain, e.App)
		if err != nil {
			return nil, err
		}
		if m.id == "" || m.disabled || m.subs&eventBit(e.Type) == 0 {
			continue
		}
		plan = append(plan, planned{pk: pks[i], event: e, project: e.ProjectID, configID: m.id,
			lane: livehooks.LaneKey(m.id, e.Stream), webhookID: livehooks.WebhookID(e.ID, m.id)})
	}
	out, err := t.insertDeliveries(ctx, node, now, plan)
	if err != nil {
		return nil, fmt.Errorf("postgres: enqueue: %w", err)
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

// laneState is a lane's row after an upsert.
type laneState struct {
	owner   *string
	nextAt  time.Time
	pending int
}

// insertDeliveries adds the planned deliveries at the tail of their lanes in
// one round trip: first the lanes, in key order (two transactions upserting
// the same lanes then lock them in the same order), then the deliveries in
// plan order. It returns the deliveries whose lane node owns and that are
// due, with LanePending set.
func (t *outboxTx) insertDeliveries(ctx context.Context, node string, now time.Time, plan []planned) ([]*livehooks.Delivery, error) {
	if len(plan) == 0 {
		return nil, nil
	}
	counts := map[string]int{}
	configOf := map[string]string{}
	for _, p := range plan {
		counts[p.lane]++
		configOf[p.lane] = p.configID
	}
	keys := make([]string, 0, len(counts))
	for k := range counts {
		keys = append(keys, k)
	}
	sort.Strings(keys)
	b := &pgx.Batch{}
	leaseUntil := ts(now.Add(t.db.lease))
	for _, k := range keys {
		b.Queue(upsertLaneSQL, k, configOf[k], counts[k], now, node, leaseUntil)
	}
	for _, p := range plan {
		b.Queue(insertDeliverySQL, p.webhookID, p.project, p.configID, p.lane, p.pk, string(p.event.Type), p.event.Stream, now)
	}
	br := t.tx.SendBatch(ctx, b)
	defer br.Close()
	lanes := make(map[string]laneState, len(keys))
	for _, k := range keys {
		var st laneState
		if err := br.QueryRow().Scan(&st.owner, &st.nextAt, &st.pending); err != nil {
			return nil, fmt.Errorf("upsert lane: %w", err)
		}
		lanes[k] = st
		if st.owner == nil && !st.nextAt.After(now) || st.owner != nil && *st.owner != node {
			// Free and due (waiting for a claim), or another node's: wake
			// the nodes, the owner included.
			t.wake(node)
		}
	}
	var out []*livehooks.Delivery
	for _, p := range plan {
		var id int64
		if err := br.QueryRow().Scan(&id); err != nil {
			return nil, fmt.Errorf("insert delivery: %w", err)
		}
		st := lanes[p.lane]
		if st.owner == nil || *st.owner != node || st.nextAt.After(now) {
			continue
		}
		out = append(out, &livehooks.Delivery{
			ID:          id,
			WebhookID:   p.webhookID,
			ProjectID:   p.project,
			ConfigID:    p.configID,
			Lane:        p.lane,
			EventID:     p.event.ID,
			EventType:   p.event.Type,
			Stream:      p.event.Stream,
			Status:      livehooks.DeliveryPending,
			NextAttempt: now,
			CreatedAt:   now,
			UpdatedAt:   now,
			LanePending: st.pending,
			Due:         true,
			Event:       p.event,
		})
	}
	if err := br.Close(); err != nil {
		return nil, err
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
	// The events, key-share locked so that Purge leaves them alone.
	b := &pgx.Batch{}
	for _, d := range ds {
		eventID := d.EventID
		if eventID == "" && d.Event != nil {
			eventID = d.Event.ID
		}
		if !validText(eventID, d.ConfigID) {
			return nil, livehooks.Errorf(livehooks.ENOTFOUND, "event %s not found", truncate(eventID, 64))
		}
		b.Queue(`SELECT `+eventColumns+` FROM events e WHERE e.uid = $1 FOR KEY SHARE`, eventID)
	}
	type found struct {
		pk    int64
		event *livehooks.Event
	}
	events := make([]found, len(ds))
	br := t.tx.SendBatch(ctx, b)
	for i, d := range ds {
		pk, e, err := scanEvent(br.QueryRow())
		if errors.Is(err, pgx.ErrNoRows) {
			br.Close()
			eventID := d.EventID
			if eventID == "" && d.Event != nil {
				eventID = d.Event.ID
			}
			return nil, livehooks.Errorf(livehooks.ENOTFOUND, "event %s not found", truncate(eventID, 64))
		} else if err != nil {
			br.Close()
			return nil, fmt.Errorf("postgres: requeue: %w", err)
		}
		events[i] = found{pk, e}
	}
	if err := br.Close(); err != nil {
		return nil, fmt.Errorf("postgres: requeue: %w", err)
	}
	configs := map[string]error{} // config id and project → why it takes no delivery, nil when it does
	plan := make([]planned, 0, len(ds))
	for i, d := range ds {
		e := events[i].event
		k := d.ConfigID + "\x00" + e.ProjectID
		cerr, ok := configs[k]
		if !ok {
			var project, reason string
			err := t.tx.QueryRow(ctx, `SELECT project_id, disabled_reason FROM callbacks WHERE id = $1 FOR KEY SHARE`, d.ConfigID).
				Scan(&project, &reason)
			switch {
			case errors.Is(err, pgx.ErrNoRows) || err == nil && project != e.ProjectID:
				cerr = errNotFound(d.ConfigID)
			case err != nil:
				return nil, fmt.Errorf("postgres: requeue: %w", err)
			case reason != "":
				cerr = livehooks.Errorf(livehooks.EINVALID, "callback configuration %s is disabled (%s): update it to enable it again",
					truncate(d.ConfigID, 64), reason)
			}
			configs[k] = cerr
		}
		if cerr != nil {
			return nil, cerr
		}
		webhookID := cleanText(d.WebhookID)
		if webhookID == "" {
			webhookID = livehooks.WebhookID(e.ID, d.ConfigID)
		}
		plan = append(plan, planned{pk: events[i].pk, event: e, project: e.ProjectID, configID: d.ConfigID,
			lane: livehooks.LaneKey(d.ConfigID, e.Stream), webhookID: webhookID})
	}
	out, err := t.insertDeliveries(ctx, node, now, plan)
	if err != nil {
		return nil, fmt.Errorf("postgres: requeue: %w", err)
	}
	return out, nil
}

var outcomeStatus = map[livehooks.Outcome]livehooks.DeliveryStatus{
	livehooks.OutcomeSucceeded: livehooks.DeliverySucceeded,
	livehooks.OutcomeRetry:     livehooks.DeliveryPending,
	livehooks.OutcomeFailed:    livehooks.DeliveryFailed,
	livehooks.OutcomeDead:      livehooks.DeliveryDead,
	livehooks.OutcomeGone:      livehooks.DeliveryFailed,
}

// recordSQL records one result: only a pending delivery moves (a result for
// a final or deleted delivery returns no row and changes nothing); the
// attempt is stored; a retry frees the lane until the next attempt, a final
// status takes the delivery off its lane's count.
const recordSQL = `WITH d AS (
		UPDATE deliveries SET
			status = $2,
			attempts = attempts + 1,
			next_attempt = CASE WHEN $2 = 'pending' THEN $3::timestamptz ELSE next_attempt END,
			updated_at = $4::timestamptz,
			last_status = $5::integer,
			last_error = $6,
			latency_ms = CASE WHEN $2 = 'succeeded'
				THEN floor(extract(epoch FROM $4::timestamptz - created_at) * 1000)::bigint ELSE latency_ms END
		WHERE id = $1 AND status = 'pending'
		RETURNING id, attempts, lane, project_id, config_id
	), a AS (
		INSERT INTO attempts (delivery_id, n, at, status_code, latency_us, response, error)
		SELECT id, attempts, $7::timestamptz, $5::integer, $8::bigint, $9::text, $10::text FROM d
	), l AS (
		UPDATE lanes SET
			pending = lanes.pending - CASE WHEN $2 = 'pending' THEN 0 ELSE 1 END,
			next_at = CASE WHEN $2 = 'pending' THEN $3::timestamptz ELSE lanes.next_at END,
			owner = CASE WHEN $2 = 'pending' THEN NULL ELSE lanes.owner END,
			lease_until = CASE WHEN $2 = 'pending' THEN NULL ELSE lanes.lease_until END
		FROM d WHERE lanes.lane = d.lane
	)
	SELECT lane, project_id, config_id FROM d`

// The last final delivery of a lane deletes it.
const deleteDoneLaneSQL = `DELETE FROM lanes WHERE lane = (SELECT lane FROM deliveries WHERE id = $1) AND pending <= 0`

// Record stores the attempts and the deliveries' new status. A retry keeps the
// delivery pending until NextAttempt and releases its lane until then; a final
// outcome takes the delivery off its lane, deleting the lane with its last
// delivery; OutcomeGone also disables the config. Results for deliveries that
// are no longer pending change nothing. It returns one state per result, in
// order: the state of the result's lane once all results are recorded.
//
// Results are sent in pipelined batches, each ending at an OutcomeGone, so
// that a config disabled by a result is disabled before the later results
// are recorded, as if they were recorded one by one.
func (t *outboxTx) Record(ctx context.Context, node string, now time.Time, results []livehooks.Result) ([]livehooks.LaneState, error) {
	for _, r := range results {
		if r.Delivery == nil {
			return nil, livehooks.Errorf(livehooks.EINVALID, "result without a delivery")
		}
		if _, ok := outcomeStatus[r.Outcome]; !ok {
			return nil, livehooks.Errorf(livehooks.EINVALID, "unknown outcome %d", r.Outcome)
		}
	}
	now = ts(now)
	states := make([]livehooks.LaneState, len(results))
	for i, r := range results {
		states[i].Lane = r.Delivery.Lane
		if states[i].Lane == "" {
			states[i].Lane = livehooks.LaneKey(r.Delivery.ConfigID, r.Delivery.Stream)
		}
	}
	for start := 0; start < len(results); {
		end := start
		for end < len(results) && results[end].Outcome != livehooks.OutcomeGone {
			end++
		}
		if end < len(results) {
			end++ // the Gone result closes the chunk
		}
		if err := t.record(ctx, node, now, results[start:end], states[start:end]); err != nil {
			return nil, err
		}
		start = end
	}
	// A lane is Open when it still has pending deliveries and node owns it;
	// later results (a retry, a 410) can change what an earlier one left.
	lanes := make([]string, 0, len(states))
	for _, st := range states {
		lanes = append(lanes, st.Lane)
	}
	open := make(map[string]bool, len(lanes))
	rows, err := t.tx.Query(ctx, `SELECT lane, owner, pending FROM lanes WHERE lane = ANY($1)`, lanes)
	if err != nil {
		return nil, fmt.Errorf("postgres: record: %w", err)
	}
	for rows.Next() {
		var (
			lane    string
			owner   *string
			pending int
		)
		if err := rows.Scan(&lane, &owner, &pending); err != nil {
			rows.Close()
			return nil, fmt.Errorf("postgres: record: %w", err)
		}
		open[lane] = pending > 0 && owner != nil && *owner == node
	}
	rows.Close()
	if err := rows.Err(); err != nil {
		return nil, fmt.Errorf("postgres: record: %w", err)
	}
	for i := range states {
		states[i].Open = open[states[i].Lane]
	}
	return states, nil
}

// record records a chunk of results in one round trip; only its last result
// may be an OutcomeGone.
func (t *outboxTx) record(ctx context.Context, node string, now time.Time, results []livehooks.Result, states []livehooks.LaneState) error {
	b := &pgx.Batch{}
	for _, r := range results {
		status := outcomeStatus[r.Outcome]
		next := ts(r.NextAttempt)
		if r.NextAttempt.IsZero() {
			next = now
		}
		lastError := r.Attempt.Error
		if r.Reason != "" {
			if lastError != "" {
				lastError += "; "
			}
			lastError += r.Reason
		}
		at := r.Attempt.At
		if at.IsZero() {
			at = now
		}
		b.Queue(recordSQL, r.Delivery.ID, string(status), next, now, r.Attempt.StatusCode, cleanText(lastError),
			ts(at), r.Attempt.Latency.Microseconds(), storerow.TruncateUTF8(cleanText(r.Attempt.Response), MaxResponse),
			cleanText(r.Attempt.Error))
		b.Queue(deleteDoneLaneSQL, r.Delivery.ID)
		if status == livehooks.DeliveryPending && !next.After(now) {
			t.wake(node) // the lane is free and due at once
		}
	}
	br := t.tx.SendBatch(ctx, b)
	var gone *livehooks.Result
	var goneProject, goneConfig string
	for i, r := range results {
		var lane, project, configID string
		err := br.QueryRow().Scan(&lane, &project, &configID)
		if err != nil && !errors.Is(err, pgx.ErrNoRows) {
			br.Close()
			return fmt.Errorf("postgres: record: %w", err)
		}
		if err == nil {
			states[i].Lane = lane
			if r.Outcome == livehooks.OutcomeGone {
				gone, goneProject, goneConfig = &results[i], project, configID
			}
		}
		if _, err := br.Exec(); err != nil {
			br.Close()
			return fmt.Errorf("postgres: record: delete lane: %w", err)
		}
	}
	if err := br.Close(); err != nil {
		return fmt.Errorf("postgres: record: %w", err)
	}
	if gone != nil {
		return t.disable(ctx, goneProject, goneConfig, gone.Reason, now)
	}
	return nil
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
	if !validText(node, lane) {
		return livehooks.LaneState{Lane: lane}, nil
	}
	tag, err := t.tx.Exec(ctx, `UPDATE lanes SET owner = NULL, lease_until = NULL, next_at = $3 WHERE lane = $1 AND owner = $2`,
		lane, node, ts(at))
	if err != nil {
		return livehooks.LaneState{}, fmt.Errorf("postgres: defer lane: %w", err)
	}
	if tag.RowsAffected() > 0 && !at.After(t.db.clock.Now()) {
		t.wake(node) // handed back due now: another node should take it
	}
	return livehooks.LaneState{Lane: lane, Open: false}, nil
}
