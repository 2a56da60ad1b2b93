package sqlite

import (
	"bytes"
	"database/sql"
	"path/filepath"
	"strings"
	"testing"
	"time"

	"github.com/livehooks/livehooks"
	"github.com/livehooks/livehooks/store/storerow"
	"github.com/livehooks/livehooks/store/storetest"
)

// schemaAt makes the database at path as a binary of schema version upTo
// left it, empty, and returns a connection to it for the test's rows.
func schemaAt(t *testing.T, path string, upTo int) *sql.DB {
	t.Helper()
	ms, err := migrations()
	if err != nil {
		t.Fatal(err)
	}
	raw, err := sql.Open("sqlite", "file:"+path+"?_pragma=journal_mode(WAL)")
	if err != nil {
		t.Fatal(err)
	}
	if _, err := raw.Exec(`CREATE TABLE schema_migrations (version INTEGER PRIMARY KEY, name TEXT NOT NULL, applied_at INTEGER NOT NULL)`); err != nil {
		t.Fatal(err)
	}
	for _, m := range ms {
		if m.Version > upTo {
			break
		}
		if _, err := raw.Exec(m.SQL); err != nil {
			t.Fatalf("%s: %v", m.Name, err)
		}
		if _, err := raw.Exec(`INSERT INTO schema_migrations VALUES (?, ?, 0)`, m.Version, m.Name); err != nil {
			t.Fatal(err)
		}
	}
	return raw
}

// TestMigrateWritePathFromVersion2 opens a database written by the previous
// schema (migrations 0001 and 0002, rows as that version wrote them: a pending
// delivery in a lane, a final one with its attempt, purged ids behind it) and
// checks that the store carries on: the log still shows both deliveries, the
// pending one is claimed, sent and recorded, new ids continue after the old
// ones, and Purge finds the old rows without the dropped indexes.
func TestMigrateWritePathFromVersion2(t *testing.T) {
	t.Parallel()
	path := filepath.Join(t.TempDir(), "livehooks.db")
	raw := schemaAt(t, path, 2)
	old := time.Date(2026, 11, 1, 0, 0, 0, 0, time.UTC)
	c := testConfig("p1", "live")
	us := func(t time.Time) int64 { return t.UnixMicro() }
	lane := livehooks.LaneKey(c.ID, "s1")
	rows := []struct {
		q    string
		args []any
	}{
		{`INSERT INTO callbacks VALUES (?, 'p1', 'd1.example.com', 'live', 'https://receiver.example/cb', 'RECORD_FILE_COMPLETE', 'HMACSHA256', '', NULL, '', ?, ?)`,
			[]any{c.ID, us(old), us(old)}},
		{`INSERT INTO events (pk, uid, project_id, type, publish_domain, app, stream, occurred_at, created_at) VALUES
			(1, 'aaaaaaaaaaaaaaaaaaaaaaaaaaaaaaaa', 'p1', 'RECORD_FILE_COMPLETE', 'd1.example.com', 'live', 's0', ?1, ?1),
			(2, 'bbbbbbbbbbbbbbbbbbbbbbbbbbbbbbbb', 'p1', 'RECORD_FILE_COMPLETE', 'd1.example.com', 'live', 's1', ?1, ?1)`, []any{us(old)}},
		{`INSERT INTO deliveries (id, webhook_id, project_id, config_id, lane, event_pk, event_type, stream, status, attempts,
			next_attempt, created_at, updated_at, last_status) VALUES
			(7, 'msg_a', 'p1', ?1, ?2, 1, 'RECORD_FILE_COMPLETE', 's0', 'succeeded', 1, ?3, ?3, ?3, 200),
			(8, 'msg_b', 'p1', ?1, ?4, 2, 'RECORD_FILE_COMPLETE', 's1', 'pending', 0, ?3, ?3, ?3, 0)`,
			[]any{c.ID, livehooks.LaneKey(c.ID, "s0"), us(old), lane}},
		{`INSERT INTO attempts VALUES (7, 1, ?, 200, 1500, 'ok', '')`, []any{us(old)}},
		{`INSERT INTO lanes VALUES (?, ?, 1, ?, NULL, 0)`, []any{lane, c.ID, us(old)}},
		// Deliveries up to 20 existed and were purged: ids are never reused.
		{`UPDATE sqlite_sequence SET seq = 20 WHERE name = 'deliveries'`, nil},
		{`INSERT INTO streams (project_id, publish_domain, app, stream, state, task_id, updated_at) VALUES ('p1', 'd1.example.com', 'live', 's1', 'live', 't1', ?)`,
			[]any{us(old)}},
	}
	for _, r := range rows {
		if _, err := raw.Exec(r.q, r.args...); err != nil {
			t.Fatalf("%s: %v", r.q, err)
		}
	}
	raw.Close()

	db := openTest(t, path, Options{})
	done := findDeliveryT(t, db, 7)
	if done.Status != livehooks.DeliverySucceeded || len(done.AttemptsList) != 1 || done.Event.ID != "aaaaaaaaaaaaaaaaaaaaaaaaaaaaaaaa" {
		t.Fatalf("final delivery after the migration: %+v", done)
	}
	lanes, err := db.ClaimLanes(ctx, "n1", time.Now(), time.Minute, 10)
	if err != nil || len(lanes) != 1 || lanes[0].Key != lane {
		t.Fatalf("claim: %v %v", lanes, err)
	}
	ds, err := db.LaneDeliveries(ctx, lane, 0, 10)
	if err != nil || len(ds) != 1 || ds[0].ID != 8 {
		t.Fatalf("lane deliveries: %v %v", ds, err)
	}
	var states []livehooks.LaneState
	var fresh []*livehooks.Delivery
	now := time.Now()
	if err := db.Write(ctx, func(tx livehooks.OutboxTx) (err error) {
		states, err = tx.Record(ctx, "n1", now, []livehooks.Result{{Delivery: ds[0], Outcome: livehooks.OutcomeSucceeded,
			Attempt: livehooks.Attempt{N: 1, At: now, StatusCode: 200}}})
		if err != nil {
			return err
		}
		st, err := tx.Stream(ctx, livehooks.StreamKey{ProjectID: "p1", PublishDomain: "d1.example.com", App: "live", Stream: "s1"})
		if err != nil || st == nil || st.TaskID != "t1" || st.RecordFormat != "" {
			t.Errorf("stream state after the migration: %+v %v", st, err)
		} else {
			st.RecordFormat = livehooks.FormatMP4
			if err := tx.PutStream(ctx, st); err != nil {
				return err
			}
		}
		fresh, err = tx.Enqueue(ctx, "n1", now, []*livehooks.Event{{ProjectID: "p1", Type: livehooks.RecordFileComplete,
			PublishDomain: "d1.example.com", App: "live", Stream: "s2"}})
		return err
	}); err != nil {
		t.Fatal(err)
	}
	if states[0].Open {
		t.Errorf("lane still open after its last delivery: %+v", states)
	}
	if len(fresh) != 1 || fresh[0].ID != 21 || !fresh[0].Due {
		t.Fatalf("new delivery after the migration: %+v", fresh)
	}
	var format string
	if err := db.read.QueryRowContext(ctx, `SELECT record_format FROM streams WHERE stream = 's1'`).Scan(&format); err != nil || format != "MP4" {
		t.Errorf("record_format %q (%v) written to the migrated row, want MP4", format, err)
	}
	if got := findDeliveryT(t, db, 8).Status; got != livehooks.DeliverySucceeded {
		t.Fatalf("old pending delivery is %s after its result", got)
	}
	// The old final deliveries and their events go; the new one stays.
	n, err := db.Purge(ctx, old.Add(time.Hour), 100)
	if err != nil || n != 4 {
		t.Fatalf("purge: %d %v, want 4 rows (2 deliveries, 2 events)", n, err)
	}
	findDeliveryT(t, db, 21)
}

func findDeliveryT(t *testing.T, db *DB, id int64) *livehooks.Delivery {
	t.Helper()
	d, err := db.FindDelivery(ctx, "p1", id)
	if err != nil {
		t.Fatalf("delivery %d: %v", id, err)
	}
	return d
}

// TestMigrateBindsSealedValues: see storetest.MigrateBindsSealedValues.
func TestMigrateBindsSealedValues(t *testing.T) {
	t.Parallel()
	path := filepath.Join(t.TempDir(), "livehooks.db")
	ms, err := migrations()
	if err != nil {
		t.Fatal(err)
	}
	raw, err := sql.Open("sqlite", "file:"+path+"?_pragma=journal_mode(WAL)")
	if err != nil {
		t.Fatal(err)
	}
	defer raw.Close()
	exec := func(q string, args ...any) {
		t.Helper()
		if _, err := raw.Exec(q, args...); err != nil {
			t.Fatalf("%s: %v", q, err)
		}
	}
	storetest.MigrateBindsSealedValues(t, bytes.Repeat([]byte{9}, 32), storetest.Backend{
		Prepare: func(configs []storetest.SealedRow, secret []byte) {
			exec(`CREATE TABLE schema_migrations (version INTEGER PRIMARY KEY, name TEXT NOT NULL, applied_at INTEGER NOT NULL)`)
			for _, m := range ms {
				if strings.HasSuffix(m.Name, storerow.BindMigration) {
					break
				}
				exec(m.SQL)
				exec(`INSERT INTO schema_migrations VALUES (?, ?, 0)`, m.Version, m.Name)
			}
			for _, c := range configs {
				exec(`INSERT INTO callbacks (id, project_id, publish_domain, app, notify_callback_url, notify_event_subscription, sign_type, key_sealed, create_time, update_time)
					VALUES (?, ?, ?, 'live', 'https://r.example/cb', 'RECORD_FILE_COMPLETE', 'HMACSHA256', ?, 0, 0)`, c.ID, c.ProjectID, c.PublishDomain, c.KeySealed)
			}
			exec(`INSERT INTO domains (project_id, publish_domain, settings, max_pause_ms, storage_secret, create_time, update_time)
				VALUES ('A', 'a.example.com', '{"publish_domain":"a.example.com","storage":{"endpoint":"s3.example.com","bucket":"rec","access_key":"AK"}}', 30000, ?, 0, 0)`, secret)
		},
		Open: func() livehooks.Store { return openTest(t, path, Options{}) },
		Key: func(id string) []byte {
			var b []byte
			if err := raw.QueryRow(`SELECT key_sealed FROM callbacks WHERE id = ?`, id).Scan(&b); err != nil {
				t.Fatal(err)
			}
			return b
		},
		SetKey: func(id string, sealed []byte) { exec(`UPDATE callbacks SET key_sealed = ? WHERE id = ?`, sealed, id) },
	})
}
