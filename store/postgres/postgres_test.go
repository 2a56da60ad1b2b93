package postgres

import (
	"bytes"
	"context"
	"errors"
	"fmt"
	"strings"
	"sync"
	"testing"
	"time"

	"github.com/jackc/pgx/v5"

	"github.com/livehooks/livehooks"
	"github.com/livehooks/livehooks/aesgcm"
	"github.com/livehooks/livehooks/store/storerow"
)

var ctx = context.Background()

const (
	secretKey     = "PlaintextMustNeverAppear0123456789abcdefXYZ"
	storageSecret = "StorageSecretMustNeverAppear0123456789"
)

func testConfig(project, app string) *livehooks.CallbackConfig {
	c := &livehooks.CallbackConfig{
		ID: storerow.NewEventID(), ProjectID: project, PublishDomain: "d1.example.com", App: app,
		NotifyCallbackURL: "https://receiver.example/cb", CreateTime: time.Now(), UpdateTime: time.Now(),
	}
	c.Normalize()
	return c
}

func testEvent(app, stream string) *livehooks.Event {
	return &livehooks.Event{ProjectID: "p1", Type: livehooks.RecordFileComplete, PublishDomain: "d1.example.com",
		App: app, Stream: stream, TaskID: "t1", JobID: "j1"}
}

// rawConn connects to the database of url directly, bypassing the store.
// explain returns the plan of a query with its arguments, one line a node.
func explain(t *testing.T, conn *pgx.Conn, name, sql string, args ...any) string {
	t.Helper()
	rows, err := conn.Query(ctx, "EXPLAIN "+sql, args...)
	if err != nil {
		t.Fatalf("%s: %v", name, err)
	}
	var plan []string
	for rows.Next() {
		var line string
		if err := rows.Scan(&line); err != nil {
			t.Fatal(err)
		}
		plan = append(plan, line)
	}
	rows.Close()
	return strings.Join(plan, "\n")
}

func rawConn(t *testing.T, url string) *pgx.Conn {
	t.Helper()
	conn, err := pgx.Connect(ctx, url)
	if err != nil {
		t.Fatal(err)
	}
	t.Cleanup(func() { conn.Close(ctx) })
	return conn
}

func TestSecretsNeverInPlaintext(t *testing.T) {
	t.Parallel()
	url := testDatabase(t)
	db := openTest(t, url, Options{})
	c := testConfig("p1", "live")
	c.Key = secretKey
	if err := db.CreateCallback(ctx, c); err != nil {
		t.Fatal(err)
	}
	other := strings.ToUpper(secretKey[:20]) + "987654321987654321"
	if _, err := db.UpdateCallback(ctx, "p1", c.ID, livehooks.CallbackUpdate{PublishDomain: c.PublishDomain, App: c.App, Key: &other}, time.Now(), nil); err != nil {
		t.Fatal(err)
	}
	if got, err := db.FindCallbackByID(ctx, "p1", c.ID); err != nil || got.Key != other {
		t.Fatalf("key does not round-trip (err %v)", err)
	}
	d := &livehooks.DomainSettings{ProjectID: "p1", PublishDomain: "d1.example.com", RecordFormat: "FLV",
		Storage:    &livehooks.StorageSettings{Endpoint: "s3.example.com", Bucket: "b", AccessKey: "AK", SecretKey: storageSecret},
		CreateTime: time.Now(), UpdateTime: time.Now()}
	if err := db.PutDomain(ctx, d); err != nil {
		t.Fatal(err)
	}
	if got, err := db.FindDomain(ctx, "p1", "d1.example.com"); err != nil || got.Storage.SecretKey != storageSecret {
		t.Fatalf("storage secret does not round-trip (err %v)", err)
	}

	// The raw columns: sealed bytes, and the settings without the secret.
	conn := rawConn(t, url)
	var sealed []byte
	if err := conn.QueryRow(ctx, `SELECT key_sealed FROM callbacks WHERE id = $1`, c.ID).Scan(&sealed); err != nil {
		t.Fatal(err)
	}
	var settings string
	var secret []byte
	if err := conn.QueryRow(ctx, `SELECT settings::text, storage_secret FROM domains`).Scan(&settings, &secret); err != nil {
		t.Fatal(err)
	}
	if len(sealed) == 0 || len(secret) == 0 {
		t.Fatal("secrets not stored")
	}
	for name, b := range map[string][]byte{"callbacks.key_sealed": sealed, "domains.settings": []byte(settings), "domains.storage_secret": secret} {
		for _, k := range []string{secretKey, other, secretKey[:16], other[:16], storageSecret, storageSecret[:16]} {
			if bytes.Contains(b, []byte(k)) {
				t.Errorf("%s holds a secret in plaintext", name)
			}
		}
	}
	// Nothing else in the database holds one either.
	var dump string
	if err := conn.QueryRow(ctx, `SELECT string_agg(t::text, '|') FROM (
		SELECT row_to_json(c)::text AS t FROM callbacks c UNION ALL SELECT row_to_json(d)::text FROM domains d) x`).Scan(&dump); err != nil {
		t.Fatal(err)
	}
	if strings.Contains(dump, secretKey[:16]) || strings.Contains(dump, other[:16]) || strings.Contains(dump, storageSecret[:16]) {
		t.Error("a secret is stored in plaintext")
	}

	// Another master key cannot read them, and its error does not leak them.
	wrong, err := aesgcm.New(bytes.Repeat([]byte{8}, aesgcm.KeySize))
	if err != nil {
		t.Fatal(err)
	}
	db2 := openTest(t, url, Options{Cipher: wrong})
	_, err = db2.FindCallbackByID(ctx, "p1", c.ID)
	if err == nil || strings.Contains(err.Error(), other) || !strings.Contains(err.Error(), c.ID) {
		t.Fatalf("FindCallbackByID with another master key: %v", err)
	}
}

func TestMigrationsConcurrentOpens(t *testing.T) {
	t.Parallel()
	url := testDatabase(t)
	const opens = 4
	var wg sync.WaitGroup
	errs := make([]error, opens)
	for i := range opens {
		wg.Go(func() {
			db, err := Open(ctx, Options{URL: url, Cipher: testCipher(t), MaxConns: 2})
			if err == nil {
				db.Close()
			}
			errs[i] = err
		})
	}
	wg.Wait()
	for i, err := range errs {
		if err != nil {
			t.Fatalf("Open %d: %v", i, err)
		}
	}
	conn := rawConn(t, url)
	var n, top int
	if err := conn.QueryRow(ctx, `SELECT count(*), max(version) FROM schema_migrations`).Scan(&n, &top); err != nil {
		t.Fatal(err)
	}
	if n != SchemaVersion() || top != SchemaVersion() {
		t.Fatalf("schema_migrations has %d rows up to %d, want %d", n, top, SchemaVersion())
	}

	// A reopen applies nothing; a newer schema is refused.
	openTest(t, url, Options{})
	if _, err := conn.Exec(ctx, `INSERT INTO schema_migrations (version, name, applied_at) VALUES ($1, 'future', now())`, SchemaVersion()+1); err != nil {
		t.Fatal(err)
	}
	_, err := Open(ctx, Options{URL: url, Cipher: testCipher(t)})
	if want := fmt.Sprintf("shows postgres schema %d or more", SchemaVersion()+1); err == nil || !strings.Contains(err.Error(), want) {
		t.Fatalf("Open of a newer schema: %v, want it to say %q", err, want)
	}
}

func TestMigrationFiles(t *testing.T) {
	ms, err := migrations()
	if err != nil {
		t.Fatal(err)
	}
	if len(ms) == 0 || SchemaVersion() != len(ms) {
		t.Fatalf("%d migrations, schema version %d", len(ms), SchemaVersion())
	}
}

func TestOpenErrors(t *testing.T) {
	t.Parallel()
	if _, err := Open(ctx, Options{Cipher: testCipher(t)}); err == nil {
		t.Error("Open without URL succeeded")
	}
	if _, err := Open(ctx, Options{URL: adminURL()}); err == nil {
		t.Error("Open without Cipher succeeded")
	}
	_, err := Open(ctx, Options{URL: "postgres://user:hunter2secret@[bad", Cipher: testCipher(t)})
	if err == nil || strings.Contains(err.Error(), "hunter2secret") {
		t.Errorf("Open with a bad URL: %v", err)
	}
}

// wakes counts Listen's calls of wake.
type wakes chan struct{}

func (w wakes) wake() {
	select {
	case w <- struct{}{}:
	default:
	}
}

func (w wakes) wait(t *testing.T, what string) {
	t.Helper()
	select {
	case <-w:
	case <-time.After(10 * time.Second):
		t.Fatalf("no notification: %s", what)
	}
}

// drain forgets wakes already counted.
func (w wakes) drain() {
	for {
		select {
		case <-w:
		default:
			return
		}
	}
}

func TestNotifyReachesOtherNodes(t *testing.T) {
	t.Parallel()
	url := testDatabase(t)
	a := openTest(t, url, Options{})
	b := openTest(t, url, Options{})
	w := make(wakes, 16)
	lctx, stop := context.WithCancel(ctx)
	done := make(chan error, 1)
	go func() { done <- b.Listen(lctx, w.wake) }()
	t.Cleanup(func() {
		stop()
		if err := <-done; err != nil {
			t.Errorf("Listen: %v", err)
		}
	})
	w.wait(t, "Listen wakes once it listens")

	c := testConfig("p1", "live")
	if err := a.CreateCallback(ctx, c); err != nil {
		t.Fatal(err)
	}
	enqueue := func(node string, e *livehooks.Event) []*livehooks.Delivery {
		t.Helper()
		var ds []*livehooks.Delivery
		if err := a.Write(ctx, func(tx livehooks.OutboxTx) (err error) {
			ds, err = tx.Enqueue(ctx, node, time.Now(), []*livehooks.Event{e})
			return err
		}); err != nil {
			t.Fatal(err)
		}
		return ds
	}
	// B's event into the lane A owns: stored, not B's to send; A is woken.
	ds := enqueue("A", testEvent("live", "s1"))
	w.drain()
	if got := enqueue("B", testEvent("live", "s1")); len(got) != 1 || got[0].Due {
		t.Fatalf("B got %d deliveries of A's lane, due %v", len(got), len(got) > 0 && got[0].Due)
	}
	w.wait(t, "enqueue into another node's lane")

	// A retry due at once frees the lane: the nodes are woken to claim it.
	if err := a.Write(ctx, func(tx livehooks.OutboxTx) error {
		_, err := tx.Record(ctx, "A", time.Now(), []livehooks.Result{{Delivery: ds[0], Outcome: livehooks.OutcomeRetry,
			Attempt: livehooks.Attempt{N: 1, StatusCode: 503}, NextAttempt: time.Now().Add(-time.Second)}})
		return err
	}); err != nil {
		t.Fatal(err)
	}
	w.wait(t, "retry due now")

	// A graceful stop hands the lanes back.
	if lanes, err := a.ClaimLanes(ctx, "A", time.Now(), time.Minute, 10); err != nil || len(lanes) != 1 {
		t.Fatalf("claim: %v %v", lanes, err)
	}
	w.drain()
	if err := a.ReleaseLanes(ctx, "A"); err != nil {
		t.Fatal(err)
	}
	w.wait(t, "lanes released")

	// A lane handed back due now (Defer) wakes them too.
	if _, err := a.ClaimLanes(ctx, "A", time.Now(), time.Minute, 10); err != nil {
		t.Fatal(err)
	}
	w.drain()
	if err := a.Write(ctx, func(tx livehooks.OutboxTx) error {
		_, err := tx.Defer(ctx, "A", ds[0].Lane, time.Now().Add(-time.Millisecond))
		return err
	}); err != nil {
		t.Fatal(err)
	}
	w.wait(t, "lane deferred to now")

	// Listen survives losing its connection: it reconnects, wakes at once
	// for what it may have missed, and hears the next notification.
	conn := rawConn(t, url)
	var killed bool
	if err := conn.QueryRow(ctx, `SELECT bool_or(pg_terminate_backend(pid)) FROM pg_stat_activity
		WHERE datname = current_database() AND application_name = $1`, listenApplication).Scan(&killed); err != nil || !killed {
		t.Fatalf("terminate the listener: %v %v", killed, err)
	}
	w.wait(t, "wake after reconnecting")
	w.drain()
	enqueue("B", testEvent("live", "s1"))
	w.wait(t, "notification after reconnecting")
}

func TestLockCycleRunsWriteAgain(t *testing.T) {
	t.Parallel()
	url := testDatabase(t)
	db := openTest(t, url, Options{})
	if err := db.CreateCallback(ctx, testConfig("p1", "live")); err != nil {
		t.Fatal(err)
	}
	// Two transactions take the same two lanes, enqueued in opposite
	// orders: each locks them in key order, so neither waits for the other
	// in a cycle; each event is stored once.
	var (
		firstHeld, secondHeld = make(chan struct{}), make(chan struct{})
		once1, once2          sync.Once
	)
	enq := func(tx livehooks.OutboxTx, node, stream string) error {
		_, err := tx.Enqueue(ctx, node, time.Now(), []*livehooks.Event{testEvent("live", stream)})
		return err
	}
	write := func(node, first, second string, held, other chan struct{}, once *sync.Once) error {
		return db.Write(ctx, func(tx livehooks.OutboxTx) error {
			if err := enq(tx, node, first); err != nil {
				return err
			}
			once.Do(func() { close(held) })
			<-other
			return enq(tx, node, second)
		})
	}
	var wg sync.WaitGroup
	errs := make([]error, 2)
	wg.Go(func() { errs[0] = write("A", "s1", "s2", firstHeld, secondHeld, &once1) })
	wg.Go(func() { errs[1] = write("B", "s2", "s1", secondHeld, firstHeld, &once2) })
	wg.Wait()
	for _, err := range errs {
		if err != nil {
			t.Fatalf("Write: %v", err)
		}
	}
	if n, err := db.PendingCount(ctx); err != nil || n != 4 {
		t.Fatalf("pending %d (%v), want 4: each event once", n, err)
	}

	// A lane held past lockTimeout by another transaction: Write gives up
	// waiting and runs again until the lane is free.
	conn := rawConn(t, url)
	lane := livehooks.LaneKey(testConfigID(t, db), "s1")
	tx, err := conn.Begin(ctx)
	if err != nil {
		t.Fatal(err)
	}
	if _, err := tx.Exec(ctx, `SELECT 1 FROM lanes WHERE lane = $1 FOR UPDATE`, lane); err != nil {
		t.Fatal(err)
	}
	retries := db.retries.Load()
	done := make(chan error, 1)
	runs := 0
	go func() {
		done <- db.Write(ctx, func(tx livehooks.OutboxTx) error {
			runs++
			return enq(tx, "A", "s1")
		})
	}()
	waitUntil(t, "Write to give up waiting for the lane", 10*time.Second, func() bool { return db.retries.Load() > retries })
	if err := tx.Commit(ctx); err != nil {
		t.Fatal(err)
	}
	if err := <-done; err != nil {
		t.Fatalf("Write: %v", err)
	}
	if runs < 2 {
		t.Fatalf("%d runs: want the write run again", runs)
	}
	ds, total, err := db.FindDeliveries(ctx, livehooks.DeliveryFilter{ProjectID: "p1"})
	if err != nil || total != 5 || len(ds) != 5 {
		t.Fatalf("deliveries %d of %d (%v)", len(ds), total, err)
	}
}

// testConfigID returns the id of the only config of project p1.
func testConfigID(t *testing.T, db *DB) string {
	t.Helper()
	cs, _, err := db.FindCallbacks(ctx, livehooks.CallbackFilter{ProjectID: "p1"})
	if err != nil || len(cs) != 1 {
		t.Fatalf("configs of p1: %d (%v)", len(cs), err)
	}
	return cs[0].ID
}

func TestUnstorableTextIsCleaned(t *testing.T) {
	t.Parallel()
	db := openTest(t, testDatabase(t), Options{})
	c := testConfig("p1", "live")
	c.NotifyEventSubscription = livehooks.EventTypes
	if err := db.CreateCallback(ctx, c); err != nil {
		t.Fatal(err)
	}
	e := testEvent("live", "s1")
	e.Type, e.ErrorMessage = livehooks.RecordFailed, "bad\x00byte \xff"
	var ds []*livehooks.Delivery
	if err := db.Write(ctx, func(tx livehooks.OutboxTx) (err error) {
		ds, err = tx.Enqueue(ctx, "A", time.Now(), []*livehooks.Event{e})
		return err
	}); err != nil {
		t.Fatalf("enqueue of an event with NUL and invalid UTF-8: %v", err)
	}
	if e.ErrorMessage != "bad\uFFFDbyte \uFFFD" {
		t.Fatalf("event text %q: want what is stored", e.ErrorMessage)
	}
	// A receiver's binary answer is kept as text.
	if err := db.Write(ctx, func(tx livehooks.OutboxTx) error {
		_, err := tx.Record(ctx, "A", time.Now(), []livehooks.Result{{Delivery: ds[0], Outcome: livehooks.OutcomeSucceeded,
			Attempt: livehooks.Attempt{N: 1, StatusCode: 200, Response: "\x00\x01\xfe\xff binary"}}})
		return err
	}); err != nil {
		t.Fatalf("record of a binary answer: %v", err)
	}
	d, err := db.FindDelivery(ctx, "p1", ds[0].ID)
	if err != nil {
		t.Fatal(err)
	}
	if d.Event.ErrorMessage != e.ErrorMessage || d.AttemptsList[0].Response != "\uFFFD\x01\uFFFD binary" {
		t.Fatalf("stored %q, %q", d.Event.ErrorMessage, d.AttemptsList[0].Response)
	}
	// Lookups by such keys find nothing, without an error.
	if _, err := db.FindCallbackByID(ctx, "p1", "x\x00"); livehooks.ErrorCode(err) != livehooks.ENOTFOUND {
		t.Fatalf("FindCallbackByID with NUL: %v", err)
	}
	if ds, n, err := db.FindDeliveries(ctx, livehooks.DeliveryFilter{ProjectID: "p1", Stream: "\xff"}); err != nil || n != 0 || len(ds) != 0 {
		t.Fatalf("FindDeliveries with invalid UTF-8: %v %d %v", ds, n, err)
	}
}

// A node's transition of a stream waits for another node's on the same
// stream, so neither overwrites what the other did.
func TestStreamTransitionsSerialize(t *testing.T) {
	t.Parallel()
	url := testDatabase(t)
	a, b := openTest(t, url, Options{}), openTest(t, url, Options{})
	key := livehooks.StreamKey{ProjectID: "p1", PublishDomain: "d1.example.com", App: "live", Stream: "s1"}
	const perNode = 20
	var wg sync.WaitGroup
	errs := make(chan error, 2*perNode)
	for _, db := range []*DB{a, b} {
		wg.Go(func() {
			for range perNode {
				errs <- db.Write(ctx, func(tx livehooks.OutboxTx) error {
					st, err := tx.Stream(ctx, key)
					if err != nil {
						return err
					}
					if st == nil {
						st = &livehooks.StreamState{StreamKey: key, State: livehooks.StreamLive}
					}
					st.FileSeq++
					st.UpdatedAt = time.Now()
					return tx.PutStream(ctx, st)
				})
			}
		})
	}
	wg.Wait()
	close(errs)
	for err := range errs {
		if err != nil {
			t.Fatal(err)
		}
	}
	var st *livehooks.StreamState
	if err := a.Write(ctx, func(tx livehooks.OutboxTx) (err error) { st, err = tx.Stream(ctx, key); return err }); err != nil {
		t.Fatal(err)
	}
	if st.FileSeq != 2*perNode {
		t.Fatalf("file_seq %d after %d increments: updates were lost", st.FileSeq, 2*perNode)
	}
}

// Deleting or disabling a config while another node enqueues to it never
// leaves a pending delivery without a lane.
func TestDeleteWhileEnqueueing(t *testing.T) {
	t.Parallel()
	url := testDatabase(t)
	a, b := openTest(t, url, Options{}), openTest(t, url, Options{})
	for round := range 10 {
		c := testConfig("p1", fmt.Sprintf("app%d", round))
		if err := a.CreateCallback(ctx, c); err != nil {
			t.Fatal(err)
		}
		var wg sync.WaitGroup
		wg.Go(func() {
			for i := range 20 {
				err := b.Write(ctx, func(tx livehooks.OutboxTx) error {
					_, err := tx.Enqueue(ctx, "B", time.Now(), []*livehooks.Event{testEvent(c.App, fmt.Sprintf("s%d", i%3))})
					return err
				})
				if err != nil {
					t.Error(err)
				}
			}
		})
		var err error
		if round%2 == 0 {
			err = a.DeleteCallback(ctx, "p1", c.ID)
		} else {
			err = a.DisableCallback(ctx, "p1", c.ID, "gone")
		}
		if err != nil {
			t.Fatal(err)
		}
		wg.Wait()
	}
	conn := rawConn(t, url)
	var orphans, counted, pending int
	if err := conn.QueryRow(ctx, `SELECT
		(SELECT count(*) FROM deliveries d WHERE status = 'pending' AND NOT EXISTS (SELECT 1 FROM lanes l WHERE l.lane = d.lane)),
		(SELECT COALESCE(sum(pending), 0) FROM lanes),
		(SELECT count(*) FROM deliveries WHERE status = 'pending')`).Scan(&orphans, &counted, &pending); err != nil {
		t.Fatal(err)
	}
	if orphans != 0 || counted != pending {
		t.Fatalf("%d pending deliveries without a lane; lanes count %d of %d pending", orphans, counted, pending)
	}
}

func TestListenStopsWithContext(t *testing.T) {
	t.Parallel()
	db := openTest(t, testDatabase(t), Options{})
	lctx, cancel := context.WithCancel(ctx)
	w := make(wakes, 1)
	done := make(chan error, 1)
	go func() { done <- db.Listen(lctx, w.wake) }()
	w.wait(t, "listening")
	cancel()
	select {
	case err := <-done:
		if err != nil && !errors.Is(err, context.Canceled) {
			t.Fatal(err)
		}
	case <-time.After(5 * time.Second):
		t.Fatal("Listen did not return after its context was canceled")
	}
}

// TestQueryPlans checks that the hot statements can use indexes (with
// sequential scans disabled, as the tables are too small to prefer one), and
// the ones they are meant to where the choice is not the planner's whim on
// empty tables: lane key ranges in particular need the "C" collation.
func TestQueryPlans(t *testing.T) {
	t.Parallel()
	url := testDatabase(t)
	openTest(t, url, Options{})
	conn := rawConn(t, url)
	if _, err := conn.Exec(ctx, `SET enable_seqscan = off`); err != nil {
		t.Fatal(err)
	}
	now := time.Now()
	lo, hi := laneRange("cfg")
	for _, tc := range []struct {
		name string
		sql  string
		args []any
		want []string
	}{
		{"domain configs", domainConfigsSQL, []any{"p", "d"}, nil},
		{"lane deliveries", laneDeliveriesSQL, []any{"cfg/s", int64(0), 10}, []string{"deliveries_lane"}},
		{"claim", claimLanesSQL, []any{"n", now, now, 10}, []string{"lanes_free", "lanes_leased"}},
		{"renew", renewSQL, []any{"n", now}, []string{"lanes_owner"}},
		{"record", recordSQL, []any{[]int64{1}, []string{"succeeded"}, []time.Time{now}, []time.Time{now}, []int32{200},
			[]string{""}, []time.Time{now}, []int64{1}, []string{""}, []string{""}, []string{""}, "pending"},
			[]string{"lanes_pkey"}},
		{"purge deliveries", purgeDeliveriesSQL, []any{now, 10}, []string{"deliveries_created", "attempts_pkey"}},
		{"purge candidates", purgeCandidatesSQL, []any{now, 10}, []string{"deliveries_event"}},
		{"delete pending of a config", deletePendingSQL, []any{lo, hi, "cfg"}, []string{"deliveries_lane"}},
		{"fail pending of a config", failPendingSQL, []any{lo, hi, "cfg", "gone", now}, []string{"deliveries_lane"}},
		{"lanes of a config", deleteConfigLanesSQL, []any{lo, hi, "cfg"}, []string{"lanes_pkey"}},
	} {
		text := explain(t, conn, tc.name, tc.sql, tc.args...)
		for _, idx := range tc.want {
			if !strings.Contains(text, idx) {
				t.Errorf("%s does not use %s:\n%s", tc.name, idx, text)
			}
		}
		if strings.Contains(text, "Seq Scan") {
			t.Errorf("%s scans a table:\n%s", tc.name, text)
		}
	}
}
