package postgres

import (
	"bytes"
	"strings"
	"testing"
	"time"

	"github.com/jackc/pgx/v5"

	"github.com/livehooks/livehooks"
	"github.com/livehooks/livehooks/store/storerow"
	"github.com/livehooks/livehooks/store/storetest"
)

// v2Data is a database of schema version 2 as the store of that version
// left it: configs, events, pending and final deliveries with their
// attempts, the lanes of the pending ones, a stream's recording state and a
// domain's settings.
const v2Data = `
INSERT INTO callbacks (id, project_id, publish_domain, app, notify_callback_url, notify_event_subscription,
	sign_type, disabled_reason, create_time, update_time) VALUES
	('c1', 'p1', 'd1.example.com', 'live', 'https://r.example/1', 'RECORD_NEW_FILE_START,RECORD_FILE_COMPLETE', 'HMACSHA256', '', $1, $1),
	('c2', 'p1', 'd1.example.com', '*', 'https://r.example/2', 'RECORD_FILE_COMPLETE', 'HMACSHA256', '', $1, $1),
	('c3', 'p1', 'd2.example.com', 'live', 'https://r.example/3', 'RECORD_FILE_COMPLETE', 'HMACSHA256', 'receiver answered 410 Gone', $1, $1);

INSERT INTO events (uid, project_id, type, publish_domain, app, stream, task_id, job_id, download_url, file_size,
	occurred_at, created_at) VALUES
	('e1', 'p1', 'RECORD_FILE_COMPLETE', 'd1.example.com', 'live', 's1', 't1', 'j1', 'https://cdn/1.flv', 1, $1, $1),
	('e2', 'p1', 'RECORD_FILE_COMPLETE', 'd1.example.com', 'live', 's1', 't1', 'j2', 'https://cdn/2.flv', 2, $1, $1),
	('e3', 'p1', 'RECORD_FILE_COMPLETE', 'd1.example.com', 'live', 's1', 't1', 'j3', 'https://cdn/3.flv', 3, $1, $1),
	('e4', 'p1', 'RECORD_FILE_COMPLETE', 'd1.example.com', 'live', 's1', 't1', 'j4', 'https://cdn/4.flv', 4, $1, $1),
	('e5', 'p1', 'RECORD_FILE_COMPLETE', 'd1.example.com', 'live', 's2', 't2', 'j5', 'https://cdn/5.flv', 5, $1, $1),
	('e6', 'p1', 'RECORD_FILE_COMPLETE', 'd1.example.com', 'vod', 's1', 't3', 'j6', 'https://cdn/6.flv', 6, $1, $1),
	('e7', 'p1', 'RECORD_START', 'd1.example.com', 'live', 's1', 't1', '', '', 0, $1, $1);

INSERT INTO deliveries (webhook_id, project_id, config_id, lane, event_pk, event_type, stream, status, attempts,
	next_attempt, created_at, updated_at, last_status, last_error, latency_ms)
SELECT 'msg_' || uid, 'p1', c, c || '/' || stream, pk, type, stream, status, attempts, $1, $1, $1, last_status, '', 0
FROM events JOIN (VALUES
	('e1', 'c1', 'succeeded', 1, 200), ('e2', 'c1', 'failed', 1, 404), ('e3', 'c1', 'pending', 1, 503),
	('e4', 'c1', 'pending', 0, 0), ('e5', 'c1', 'pending', 0, 0), ('e6', 'c2', 'dead', 2, 500)
) AS d(e, c, status, attempts, last_status) ON d.e = uid
ORDER BY uid;

INSERT INTO attempts (delivery_id, n, at, status_code, latency_us, response, error)
SELECT id, n, $1, last_status, 1000, 'answer', '' FROM deliveries, generate_series(1, attempts) AS n;

INSERT INTO lanes (lane, config_id, pending, next_at, owner, lease_until) VALUES
	('c1/s1', 'c1', 2, $1, NULL, NULL),
	('c1/s2', 'c1', 1, $1, 'old-node', $1);

INSERT INTO streams (project_id, publish_domain, app, stream, state, task_id, job_id, file_seq, updated_at) VALUES
	('p1', 'd1.example.com', 'live', 's1', 'live', 't1', 'j4', 4, $1);

INSERT INTO domains (project_id, publish_domain, settings, max_pause_ms, create_time, update_time) VALUES
	('p1', 'd1.example.com', '{"publish_domain":"d1.example.com","record_format":"FLV"}', 30000, $1, $1);
`

// schemaAt makes the database at url as a binary of schema version upTo
// left it, holding data (statements that take then as $1), and returns a
// connection to it.
func schemaAt(t *testing.T, url string, upTo int, data string, then time.Time) *pgx.Conn {
	t.Helper()
	ms, err := migrations()
	if err != nil {
		t.Fatal(err)
	}
	conn := rawConn(t, url)
	tx, err := conn.Begin(ctx)
	if err != nil {
		t.Fatal(err)
	}
	if _, err := tx.Exec(ctx, `CREATE TABLE schema_migrations (version integer PRIMARY KEY, name text NOT NULL, applied_at timestamptz NOT NULL)`); err != nil {
		t.Fatal(err)
	}
	for _, m := range ms {
		if m.Version > upTo {
			break
		}
		if _, err := tx.Exec(ctx, m.SQL); err != nil {
			t.Fatalf("%s: %v", m.Name, err)
		}
		if _, err := tx.Exec(ctx, `INSERT INTO schema_migrations VALUES ($1, $2, $3)`, m.Version, m.Name, then); err != nil {
			t.Fatal(err)
		}
	}
	// The data, one statement at a time (with an argument, pgx sends one).
	for _, stmt := range splitStatements(data) {
		if _, err := tx.Exec(ctx, stmt, then); err != nil {
			t.Fatalf("%s: %v", stmt, err)
		}
	}
	if err := tx.Commit(ctx); err != nil {
		t.Fatal(err)
	}
	return conn
}

// TestMigrateFromVersion2 migrates a database holding what the store of
// schema version 2 wrote and checks that the store serves it: the delivery
// log, the pending deliveries (in order, behind new ones), replay, the
// recording state and retention.
func TestMigrateFromVersion2(t *testing.T) {
	t.Parallel()
	url := testDatabase(t)
	then := time.Date(2026, 1, 2, 3, 4, 5, 0, time.UTC)
	conn := schemaAt(t, url, 2, v2Data, then)

	db := openTest(t, url, Options{})
	var version int
	if err := conn.QueryRow(ctx, `SELECT max(version) FROM schema_migrations`).Scan(&version); err != nil || version != SchemaVersion() {
		t.Fatalf("schema version %d (%v), want %d", version, err, SchemaVersion())
	}

	// The delivery log.
	log, total, err := db.FindDeliveries(ctx, livehooks.DeliveryFilter{ProjectID: "p1"})
	if err != nil || total != 6 || len(log) != 6 {
		t.Fatalf("log: %d of %d (%v)", len(log), total, err)
	}
	byEvent := map[string]*livehooks.Delivery{}
	for _, d := range log {
		byEvent[d.EventID] = d
	}
	d3, err := db.FindDelivery(ctx, "p1", byEvent["e3"].ID)
	if err != nil || d3.Status != livehooks.DeliveryPending || len(d3.AttemptsList) != 1 || d3.Event.DownloadURL != "https://cdn/3.flv" {
		t.Fatalf("old pending delivery: %+v (%v)", d3, err)
	}
	if n, err := db.PendingCount(ctx); err != nil || n != 3 {
		t.Fatalf("pending %d (%v), want 3", n, err)
	}

	// The pending deliveries are claimed and sent in order, a new event's
	// delivery behind them.
	now := time.Now()
	lanes, err := db.ClaimLanes(ctx, "n1", now, time.Minute, 10)
	if err != nil || len(lanes) != 2 {
		t.Fatalf("claimed %v (%v), want both old lanes", lanes, err)
	}
	s1, err := db.LaneDeliveries(ctx, "c1/s1", 0, 10)
	if err != nil || len(s1) != 2 || s1[0].EventID != "e3" || s1[1].EventID != "e4" || s1[0].Event == nil {
		t.Fatalf("lane c1/s1: %v (%v)", s1, err)
	}
	var fresh []*livehooks.Delivery
	if err := db.Write(ctx, func(tx livehooks.OutboxTx) (err error) {
		fresh, err = tx.Enqueue(ctx, "n1", now, []*livehooks.Event{{ProjectID: "p1", Type: livehooks.RecordFileComplete,
			PublishDomain: "d1.example.com", App: "live", Stream: "s1"}})
		return err
	}); err != nil {
		t.Fatal(err)
	}
	if len(fresh) != 1 || !fresh[0].Due || fresh[0].LanePending != 3 || fresh[0].ID <= s1[1].ID {
		t.Fatalf("new delivery in an old lane: %+v", fresh)
	}
	s2, err := db.LaneDeliveries(ctx, "c1/s2", 0, 10)
	if err != nil || len(s2) != 1 {
		t.Fatalf("lane c1/s2: %v (%v)", s2, err)
	}
	var results []livehooks.Result
	for _, d := range append(append(s1, fresh...), s2...) {
		results = append(results, livehooks.Result{Delivery: d, Outcome: livehooks.OutcomeSucceeded,
			Attempt: livehooks.Attempt{At: now, StatusCode: 200, Response: "ok"}})
	}
	var states []livehooks.LaneState
	if err := db.Write(ctx, func(tx livehooks.OutboxTx) (err error) {
		states, err = tx.Record(ctx, "n1", now, results)
		return err
	}); err != nil {
		t.Fatal(err)
	}
	for _, st := range states {
		if st.Open {
			t.Fatalf("lane %s open after its last delivery", st.Lane)
		}
	}
	if n, err := db.PendingCount(ctx); err != nil || n != 0 {
		t.Fatalf("pending %d (%v) after delivering them all", n, err)
	}
	d3, err = db.FindDelivery(ctx, "p1", byEvent["e3"].ID)
	if err != nil || d3.Status != livehooks.DeliverySucceeded || len(d3.AttemptsList) != 2 || d3.AttemptsList[1].N != 2 {
		t.Fatalf("old delivery after its second attempt: %+v (%v)", d3, err)
	}

	// Replay of an old event to its config, with the old webhook id.
	c1, err := db.FindCallbackByID(ctx, "p1", "c1")
	if err != nil {
		t.Fatal(err)
	}
	events, err := db.FindEvents(ctx, c1, time.Time{}, time.Time{}, 100)
	if err != nil || len(events) != 7 || events[0].ID != "e1" || !events[0].IngestedAt.Equal(then) {
		t.Fatalf("events of c1: %d (%v)", len(events), err)
	}
	var replayed []*livehooks.Delivery
	if err := db.Write(ctx, func(tx livehooks.OutboxTx) (err error) {
		replayed, err = tx.Requeue(ctx, "n1", now, []*livehooks.Delivery{{ConfigID: "c1", EventID: "e1"}})
		return err
	}); err != nil {
		t.Fatal(err)
	}
	if len(replayed) != 1 || replayed[0].WebhookID != livehooks.WebhookID("e1", "c1") || replayed[0].Event.JobID != "j1" {
		t.Fatalf("replayed %+v", replayed)
	}

	// The recording state carries on from the stored one.
	key := livehooks.StreamKey{ProjectID: "p1", PublishDomain: "d1.example.com", App: "live", Stream: "s1"}
	for range 2 {
		if err := db.Write(ctx, func(tx livehooks.OutboxTx) error {
			st, err := tx.Stream(ctx, key)
			if err != nil || st == nil || st.TaskID != "t1" || (st.FileSeq == 4 && st.RecordFormat != "") {
				t.Fatalf("old stream state %+v (%v)", st, err)
			}
			st.FileSeq++
			st.RecordFormat = livehooks.FormatMP4
			return tx.PutStream(ctx, st)
		}); err != nil {
			t.Fatal(err)
		}
	}
	var (
		seq    int
		format string
	)
	if err := conn.QueryRow(ctx, `SELECT file_seq, record_format FROM streams`).Scan(&seq, &format); err != nil || seq != 6 || format != "MP4" {
		t.Fatalf("file_seq %d, record_format %q (%v), want 6, MP4", seq, format, err)
	}
	if d, err := db.FindDomain(ctx, "p1", "d1.example.com"); err != nil || d.RecordFormat != "FLV" {
		t.Fatalf("domain %+v (%v)", d, err)
	}

	// Retention: final deliveries go with their attempts, and the events
	// no delivery refers to any more; the replayed event stays.
	for {
		n, err := db.Purge(ctx, now.Add(time.Hour), 2)
		if err != nil {
			t.Fatal(err)
		}
		if n == 0 {
			break
		}
	}
	var deliveries, attempts, orphans int
	var left []string
	if err := conn.QueryRow(ctx, `SELECT (SELECT count(*) FROM deliveries), (SELECT count(*) FROM attempts),
		(SELECT count(*) FROM attempts a WHERE NOT EXISTS (SELECT 1 FROM deliveries d WHERE d.id = a.delivery_id)),
		(SELECT array_agg(uid ORDER BY uid) FROM events)`).Scan(&deliveries, &attempts, &orphans, &left); err != nil {
		t.Fatal(err)
	}
	if deliveries != 1 || attempts != 0 || orphans != 0 || len(left) != 1 || left[0] != "e1" {
		t.Fatalf("after purge: %d deliveries, %d attempts (%d orphans), events %v", deliveries, attempts, orphans, left)
	}
}

// splitStatements splits SQL without quoted semicolons into statements.
func splitStatements(sql string) []string {
	var out []string
	for _, s := range strings.Split(sql, ";") {
		if s = strings.TrimSpace(s); s != "" {
			out = append(out, s)
		}
	}
	return out
}

// TestMigrateBindsSealedValues: see storetest.MigrateBindsSealedValues.
func TestMigrateBindsSealedValues(t *testing.T) {
	t.Parallel()
	url := testDatabase(t)
	ms, err := migrations()
	if err != nil {
		t.Fatal(err)
	}
	conn := rawConn(t, url)
	exec := func(q string, args ...any) {
		t.Helper()
		if _, err := conn.Exec(ctx, q, args...); err != nil {
			t.Fatalf("%s: %v", q, err)
		}
	}
	storetest.MigrateBindsSealedValues(t, bytes.Repeat([]byte{9}, 32), storetest.Backend{
		Prepare: func(configs []storetest.SealedRow, secret []byte) {
			exec(`CREATE TABLE schema_migrations (version integer PRIMARY KEY, name text NOT NULL, applied_at timestamptz NOT NULL)`)
			for _, m := range ms {
				if strings.HasSuffix(m.Name, storerow.BindMigration) {
					break
				}
				exec(m.SQL)
				exec(`INSERT INTO schema_migrations VALUES ($1, $2, now())`, m.Version, m.Name)
			}
			for _, c := range configs {
				exec(`INSERT INTO callbacks (id, project_id, publish_domain, app, notify_callback_url, notify_event_subscription, sign_type, key_sealed, create_time, update_time)
					VALUES ($1, $2, $3, 'live', 'https://r.example/cb', 'RECORD_FILE_COMPLETE', 'HMACSHA256', $4, now(), now())`, c.ID, c.ProjectID, c.PublishDomain, c.KeySealed)
			}
			exec(`INSERT INTO domains (project_id, publish_domain, settings, max_pause_ms, storage_secret, create_time, update_time)
				VALUES ('A', 'a.example.com', '{"publish_domain":"a.example.com","storage":{"endpoint":"s3.example.com","bucket":"rec","access_key":"AK"}}', 30000, $1, now(), now())`, secret)
		},
		Open: func() livehooks.Store { return openTest(t, url, Options{}) },
		Key: func(id string) []byte {
			var b []byte
			if err := conn.QueryRow(ctx, `SELECT key_sealed FROM callbacks WHERE id = $1`, id).Scan(&b); err != nil {
				t.Fatal(err)
			}
			return b
		},
		SetKey: func(id string, sealed []byte) { exec(`UPDATE callbacks SET key_sealed = $1 WHERE id = $2`, sealed, id) },
	})
}
