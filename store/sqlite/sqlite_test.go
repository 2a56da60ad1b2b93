package sqlite

import (
	"bytes"
	"context"
	"database/sql"
	"fmt"
	"os"
	"path/filepath"
	"regexp"
	"strings"
	"sync"
	"testing"
	"time"

	"github.com/livehooks/livehooks"
	"github.com/livehooks/livehooks/store/storerow"
)

var ctx = context.Background()

const secretKey = "PlaintextMustNeverAppear0123456789abcdefXYZ"

func testConfig(project, app string) *livehooks.CallbackConfig {
	c := &livehooks.CallbackConfig{
		ID: storerow.NewEventID(), ProjectID: project, PublishDomain: "d1.example.com", App: app,
		NotifyCallbackURL: "https://receiver.example/cb", CreateTime: time.Now(), UpdateTime: time.Now(),
	}
	c.Normalize()
	return c
}

func TestKeyNeverInPlaintext(t *testing.T) {
	t.Parallel()
	path := filepath.Join(t.TempDir(), "livehooks.db")
	db := openTest(t, path, Options{})
	c := testConfig("p1", "live")
	c.Key = secretKey
	if err := db.CreateCallback(ctx, c); err != nil {
		t.Fatal(err)
	}
	other := strings.ToUpper(secretKey[:20]) + "987654321987654321"
	if _, err := db.UpdateCallback(ctx, "p1", c.ID, livehooks.CallbackUpdate{PublishDomain: c.PublishDomain, App: c.App, Key: &other}, time.Now(), nil); err != nil {
		t.Fatal(err)
	}
	got, err := db.FindCallbackByID(ctx, "p1", c.ID)
	if err != nil {
		t.Fatal(err)
	}
	if got.Key != other {
		t.Fatal("key does not round-trip")
	}
	scan := func(when string) {
		t.Helper()
		files, _ := filepath.Glob(path + "*")
		if len(files) == 0 {
			t.Fatal("no database files")
		}
		for _, f := range files {
			b, err := os.ReadFile(f)
			if err != nil {
				t.Fatal(err)
			}
			for _, k := range []string{secretKey, other, secretKey[:16], other[:16]} {
				if bytes.Contains(b, []byte(k)) {
					t.Errorf("%s: %s contains a callback key in plaintext", when, filepath.Base(f))
				}
			}
		}
	}
	scan("open (WAL)")
	if err := db.Close(); err != nil {
		t.Fatal(err)
	}
	scan("closed (checkpointed)")
}

func TestDecryptErrorHasNoKey(t *testing.T) {
	t.Parallel()
	path := filepath.Join(t.TempDir(), "livehooks.db")
	db := openTest(t, path, Options{})
	c := testConfig("p1", "live")
	c.Key = secretKey
	if err := db.CreateCallback(ctx, c); err != nil {
		t.Fatal(err)
	}
	db.Close()
	wrong := openTest(t, path, Options{Cipher: otherCipher(t)})
	_, err := wrong.FindCallbackByID(ctx, "p1", c.ID)
	if err == nil {
		t.Fatal("a key sealed with another master key was opened")
	}
	if strings.Contains(err.Error(), secretKey) {
		t.Fatal("error contains the key")
	}
}

func TestMigrationsAcrossReopen(t *testing.T) {
	t.Parallel()
	path := filepath.Join(t.TempDir(), "livehooks.db")
	db := openTest(t, path, Options{})
	c := testConfig("p1", "live")
	if err := db.CreateCallback(ctx, c); err != nil {
		t.Fatal(err)
	}
	db.Close()
	for i := 0; i < 2; i++ {
		db = openTest(t, path, Options{})
		if _, err := db.FindCallbackByID(ctx, "p1", c.ID); err != nil {
			t.Fatalf("reopen %d: %v", i, err)
		}
		var n, v int
		if err := db.read.QueryRow(`SELECT COUNT(*), MAX(version) FROM schema_migrations`).Scan(&n, &v); err != nil {
			t.Fatal(err)
		}
		if n != SchemaVersion() || v != SchemaVersion() {
			t.Fatalf("schema_migrations: %d rows, version %d; want %d", n, v, SchemaVersion())
		}
		db.Close()
	}
}

func TestNewerSchemaRefused(t *testing.T) {
	t.Parallel()
	path := filepath.Join(t.TempDir(), "livehooks.db")
	db := openTest(t, path, Options{})
	if _, err := db.write.Exec(`INSERT INTO schema_migrations (version, name, applied_at) VALUES (?, 'from_the_future', 0)`, SchemaVersion()+1); err != nil {
		t.Fatal(err)
	}
	db.Close()
	_, err := Open(ctx, Options{Path: path, Cipher: testCipher(t)})
	if want := fmt.Sprintf("shows sqlite schema %d or more", SchemaVersion()+1); err == nil || !strings.Contains(err.Error(), want) {
		t.Fatalf("Open of a newer schema: %v, want it to say %q", err, want)
	}
}

func TestMigrationFiles(t *testing.T) {
	t.Parallel()
	ms, err := migrations()
	if err != nil {
		t.Fatal(err)
	}
	if len(ms) == 0 || ms[0].Version != 1 || ms[0].Name != "0001_init" {
		t.Fatalf("migrations %+v", ms)
	}
}

func pragma(t *testing.T, db interface {
	QueryRow(string, ...any) *sql.Row
}, name string) string {
	t.Helper()
	var v string
	if err := db.QueryRow("PRAGMA " + name).Scan(&v); err != nil {
		t.Fatal(err)
	}
	return v
}

func TestPragmas(t *testing.T) {
	t.Parallel()
	// FULL is SQLite's NORMAL plus livehooks' own fsync of the WAL before
	// any acknowledgement (DB.Sync), off the write lock.
	for _, tc := range []struct {
		opt, want string
		ownSync   bool
	}{{"", "1", true}, {"FULL", "1", true}, {"normal", "1", false}, {"EXTRA", "3", false}} {
		db := openTest(t, filepath.Join(t.TempDir(), "livehooks.db"), Options{Synchronous: tc.opt})
		if got := db.walPath != ""; got != tc.ownSync {
			t.Errorf("Synchronous %q: livehooks syncs the WAL itself: %v, want %v", tc.opt, got, tc.ownSync)
		}
		if err := db.Sync(); err != nil {
			t.Errorf("Synchronous %q: Sync: %v", tc.opt, err)
		}
		for name, conn := range map[string]*sql.DB{"write": db.write, "read": db.read} {
			if got := pragma(t, conn, "synchronous"); got != tc.want {
				t.Errorf("Synchronous %q: %s connection has synchronous=%s, want %s", tc.opt, name, got, tc.want)
			}
			if got := pragma(t, conn, "foreign_keys"); got != "1" {
				t.Errorf("%s connection: foreign_keys=%s", name, got)
			}
			if got := pragma(t, conn, "journal_mode"); got != "wal" {
				t.Errorf("%s connection: journal_mode=%s", name, got)
			}
			if got := pragma(t, conn, "busy_timeout"); got != "5000" {
				t.Errorf("%s connection: busy_timeout=%s", name, got)
			}
		}
		if got := pragma(t, db.read, "query_only"); got != "1" {
			t.Errorf("read pool: query_only=%s", got)
		}
	}
	if _, err := Open(ctx, Options{Path: filepath.Join(t.TempDir(), "x.db"), Cipher: testCipher(t), Synchronous: "OFF"}); err == nil {
		t.Error("synchronous=OFF accepted")
	}
	if _, err := Open(ctx, Options{Path: filepath.Join(t.TempDir(), "x.db")}); err == nil {
		t.Error("Open without a cipher succeeded")
	}
}

func TestPathWithURICharacters(t *testing.T) {
	t.Parallel()
	dir := filepath.Join(t.TempDir(), "a?b#c%d")
	if err := os.MkdirAll(dir, 0o700); err != nil {
		t.Fatal(err)
	}
	path := filepath.Join(dir, "livehooks.db")
	db := openTest(t, path, Options{})
	if err := db.Ping(ctx); err != nil {
		t.Fatal(err)
	}
	if _, err := os.Stat(path); err != nil {
		t.Fatalf("database not at %s: %v", path, err)
	}
}

// fullScan matches a plan step that reads a whole table rather than an index
// range (SQLite prints "SCAN t" or "SCAN t USING ... INDEX" for scans).
var fullScan = regexp.MustCompile(`^SCAN (\w+)$`)

func explain(t *testing.T, db *DB, q string, args ...any) []string {
	t.Helper()
	rows, err := db.write.Query("EXPLAIN QUERY PLAN "+q, args...)
	if err != nil {
		t.Fatalf("explain %s: %v", q, err)
	}
	defer rows.Close()
	var plan []string
	for rows.Next() {
		var id, parent, notused int
		var detail string
		if err := rows.Scan(&id, &parent, &notused, &detail); err != nil {
			t.Fatal(err)
		}
		plan = append(plan, detail)
	}
	return plan
}

// TestQueryPlans checks that the queries a large backlog would make slow go
// through indexes, on an empty database and after ANALYZE of a populated one.
func TestQueryPlans(t *testing.T) {
	t.Parallel()
	db := openTest(t, filepath.Join(t.TempDir(), "livehooks.db"), Options{})
	c := testConfig("p1", "live")
	cfg := &livehooks.CallbackConfig{ID: c.ID, ProjectID: "p1", PublishDomain: "d1.example.com", App: "*"}
	now := micros(time.Now())
	lo, hi := laneRange(c.ID)
	type query struct {
		name   string
		sql    string
		args   []any
		want   []string // indexes the plan must use; "a|b" for either
		scanOK []string // tables it may scan whole
		sortOK bool     // it sorts a few rows (at most limit)
	}
	cCount, cPage, cArgs := findCallbacksSQL(livehooks.CallbackFilter{ProjectID: "p1", PublishDomain: "d1.example.com"})
	dCount, dPage, dArgs := findDeliveriesSQL(livehooks.DeliveryFilter{ProjectID: "p1", ConfigID: c.ID, Status: livehooks.DeliveryFailed})
	pCount, pPage, pArgs := findDeliveriesSQL(livehooks.DeliveryFilter{ProjectID: "p1"})
	evAll, evAllArgs := findEventsSQL(cfg, time.Now().Add(-time.Hour), time.Now(), 10)
	cfg2 := *cfg
	cfg2.App = "live"
	evApp, evAppArgs := findEventsSQL(&cfg2, time.Now().Add(-time.Hour), time.Now(), 10)
	queries := []query{
		{"lane deliveries", laneDeliveriesSQL, []any{"x/s", 0, 10}, []string{"deliveries_lane"}, nil, false},
		{"match (tx)", stmtSQL[stmtMatch], []any{"p1", "d", "a"}, []string{"callbacks_match"}, nil, true},
		{"match", matchCallbackSQL, []any{"p1", "d", "a"}, []string{"callbacks_match"}, nil, true},
		{"finish deliveries", finishDeliveriesSQL(2), []any{1, "succeeded", now, now, 200, "", 2, "pending", now, now, 503, ""}, nil, []string{"r"}, false},
		{"known events", multiSQL["known-events"].build(2), []any{"a", "b"}, []string{"sqlite_autoindex_events_1"}, []string{"r"}, false},
		{"event by uid", stmtSQL[stmtEventByUID], []any{"x"}, []string{"sqlite_autoindex_events_1"}, nil, false},
		{"delete pending", deletePendingSQL, []any{lo, hi, c.ID}, []string{"deliveries_lane"}, nil, false},
		{"fail pending", failPendingSQL, []any{lo, hi, c.ID, "r", now}, []string{"deliveries_lane"}, nil, false},
		{"find delivery", findDeliverySQL, []any{1, "p1"}, nil, nil, false},
		{"attempts", attemptsSQL, []any{1}, []string{"sqlite_autoindex_attempts_1"}, nil, false},
		{"callbacks count", cCount, cArgs, []string{"callbacks_match"}, nil, false},
		{"callbacks page", cPage, append(cArgs, 10, 0), nil, nil, false},
		// The config filter reads the config id from deliveries_log's
		// entries; with one project in the table (after ANALYZE), a scan of
		// the table reads the same rows.
		{"deliveries count by config", dCount, dArgs, []string{"deliveries_log|SCAN d"}, []string{"d"}, false},
		{"deliveries page by config", dPage, append(dArgs, 10, 0), []string{"deliveries_log|SCAN d"}, []string{"d"}, false},
		{"deliveries count by project", pCount, pArgs, []string{"deliveries_log"}, nil, false},
		// With one project, scanning all deliveries newest first and stopping
		// at the page is as good as the index: allowed while nothing is sorted.
		{"deliveries page by project", pPage, append(pArgs, 10, 0), []string{"deliveries_log|SCAN d"}, []string{"d"}, false},
		{"events of a domain", evAll, evAllArgs, []string{"events_replay"}, nil, false},
		{"events of an app", evApp, evAppArgs, []string{"events_replay"}, nil, false},
		{"purge deliveries", purgeDeliveriesSQL, []any{1000, 100}, []string{"USING INTEGER PRIMARY KEY"}, nil, false},
		{"purge events", purgeEventsSQL, []any{1000, 100}, []string{"USING INTEGER PRIMARY KEY", "deliveries_event"}, nil, false},
		// Loading the lanes when the store opens reads every pending
		// delivery's entry in deliveries_lane, and each lane's head by key.
		{"load lanes", loadLanesSQL, nil, []string{"COVERING INDEX deliveries_lane", "USING INTEGER PRIMARY KEY"}, []string{"g"}, false},
	}
	check := func(when string) {
		for _, q := range queries {
			plan := explain(t, db, q.sql, q.args...)
			text := strings.Join(plan, "\n")
		want:
			for _, idx := range q.want {
				for _, alt := range strings.Split(idx, "|") {
					if strings.Contains(text, alt) {
						continue want
					}
				}
				t.Errorf("%s: %s: plan does not use %s:\n%s", when, q.name, idx, text)
			}
			// Pages are read in index order: never by sorting all matches.
			if strings.Contains(text, "TEMP B-TREE") && !q.sortOK {
				t.Errorf("%s: %s: plan sorts the matches:\n%s", when, q.name, text)
			}
			for _, step := range plan {
				if m := fullScan.FindStringSubmatch(step); m != nil && !contains(q.scanOK, m[1]) {
					t.Errorf("%s: %s: full scan of %s:\n%s", when, q.name, m[1], text)
				}
			}
		}
	}
	check("empty")

	// A backlog: one big lane, many small ones, finals, and a few configs.
	for _, app := range []string{"live", "vod", "*"} {
		cc := testConfig("p1", app)
		if app == "live" {
			cc.ID = c.ID
		}
		if err := db.CreateCallback(ctx, cc); err != nil {
			t.Fatal(err)
		}
	}
	err := db.Write(ctx, func(tx livehooks.OutboxTx) error {
		var events []*livehooks.Event
		for i := 0; i < 3000; i++ {
			stream := "big"
			if i%3 == 0 {
				stream = "s" + storerow.NewEventID()[:6]
			}
			events = append(events, &livehooks.Event{ProjectID: "p1", Type: livehooks.RecordFileComplete,
				PublishDomain: "d1.example.com", App: []string{"live", "vod", "other"}[i%3], Stream: stream})
		}
		ds, err := tx.Enqueue(ctx, "n", time.Now(), events)
		if err != nil {
			return err
		}
		var results []livehooks.Result
		for _, d := range ds[:500] {
			results = append(results, livehooks.Result{Delivery: d, Outcome: livehooks.OutcomeSucceeded})
		}
		_, err = tx.Record(ctx, "n", time.Now(), results)
		return err
	})
	if err != nil {
		t.Fatal(err)
	}
	if _, err := db.write.Exec("ANALYZE"); err != nil {
		t.Fatal(err)
	}
	check("after ANALYZE")
}

func contains(list []string, s string) bool {
	for _, v := range list {
		if v == s {
			return true
		}
	}
	return false
}

func TestWritePanicReleasesTheWriter(t *testing.T) {
	t.Parallel()
	db := openTest(t, filepath.Join(t.TempDir(), "livehooks.db"), Options{})
	if err := db.CreateCallback(ctx, testConfig("p1", "live")); err != nil {
		t.Fatal(err)
	}
	func() {
		defer func() {
			if recover() == nil {
				t.Fatal("panic swallowed")
			}
		}()
		_ = db.Write(ctx, func(tx livehooks.OutboxTx) error {
			if _, err := tx.Enqueue(ctx, "n", time.Now(), []*livehooks.Event{{ProjectID: "p1", Type: livehooks.RecordFileComplete,
				PublishDomain: "d1.example.com", App: "live", Stream: "s"}}); err != nil {
				t.Error(err)
			}
			panic("boom")
		})
	}()
	done := make(chan error, 1)
	go func() { done <- db.Write(ctx, func(livehooks.OutboxTx) error { return nil }) }()
	select {
	case err := <-done:
		if err != nil {
			t.Fatal(err)
		}
	case <-time.After(10 * time.Second):
		t.Fatal("the write connection is stuck after a panic in Write")
	}
	if n, err := db.PendingCount(ctx); err != nil || n != 0 {
		t.Fatalf("pending after a panicked Write = %d, %v; want 0", n, err)
	}
}

// TestReadersDoNotBlockTheWriter holds a read transaction open on the read
// pool while the writer commits, then checks the reader still sees its
// snapshot and a new read sees the write.
func TestReadersDoNotBlockTheWriter(t *testing.T) {
	t.Parallel()
	db := openTest(t, filepath.Join(t.TempDir(), "livehooks.db"), Options{})
	if err := db.CreateCallback(ctx, testConfig("p1", "live")); err != nil {
		t.Fatal(err)
	}
	rtx, err := db.read.BeginTx(ctx, &sql.TxOptions{ReadOnly: true})
	if err != nil {
		t.Fatal(err)
	}
	defer rtx.Rollback()
	count := func(q interface {
		QueryRowContext(context.Context, string, ...any) *sql.Row
	}) int {
		var n int
		if err := q.QueryRowContext(ctx, `SELECT COUNT(*) FROM deliveries`).Scan(&n); err != nil {
			t.Fatal(err)
		}
		return n
	}
	if n := count(rtx); n != 0 {
		t.Fatalf("deliveries = %d", n)
	}
	wctx, cancel := context.WithTimeout(ctx, 5*time.Second)
	defer cancel()
	err = db.Write(wctx, func(tx livehooks.OutboxTx) error {
		_, err := tx.Enqueue(wctx, "n", time.Now(), []*livehooks.Event{{ProjectID: "p1", Type: livehooks.RecordFileComplete,
			PublishDomain: "d1.example.com", App: "live", Stream: "s"}})
		return err
	})
	if err != nil {
		t.Fatalf("Write while a reader is open: %v", err)
	}
	if n := count(rtx); n != 0 {
		t.Fatalf("the open read transaction sees %d deliveries, want its snapshot (0)", n)
	}
	if n := count(db.read); n != 1 {
		t.Fatalf("a new read sees %d deliveries, want 1", n)
	}
}

// TestSyncAfterClose: a Sync that comes after Close (a background writer
// still running at shutdown) fails instead of opening the WAL again and
// leaving it open, and Syncs that race Close are safe (go test -race).
func TestSyncAfterClose(t *testing.T) {
	db := openTest(t, filepath.Join(t.TempDir(), "livehooks.db"), Options{})
	if err := db.CreateCallback(ctx, testConfig("p1", "live")); err != nil {
		t.Fatal(err)
	}
	var wg sync.WaitGroup
	for range 4 {
		wg.Go(func() {
			for range 50 {
				_ = db.Sync()
			}
		})
	}
	if err := db.Close(); err != nil {
		t.Fatal(err)
	}
	wg.Wait()
	// Closing the last connection removed the WAL; one left behind (a
	// reader of another process kept it) must not be opened again either.
	if err := os.WriteFile(db.walPath, nil, 0o600); err != nil {
		t.Fatal(err)
	}
	if err := db.Sync(); err == nil {
		t.Fatal("Sync after Close: no error")
	}
	if db.wal != nil {
		t.Fatal("the WAL file is open after Close")
	}
}
