package postgres

import (
	"fmt"
	"regexp"
	"strings"
	"sync"
	"testing"
	"time"

	"github.com/livehooks/livehooks"
	"github.com/livehooks/livehooks/store/storerow"
)

// TestWritePlans checks how Write's statements are planned: once per
// connection (generic plans), on tables as the planner sees them when they
// are new, as in a new database. Every table is read through an index, by
// key, whatever the planner believes of its size: a plan that scans a table,
// or a whole index, would cost more with every row the table grows by.
func TestWritePlans(t *testing.T) {
	t.Parallel()
	url := testDatabase(t)
	openTest(t, url, Options{})
	conn := rawConn(t, url)
	now := time.Now()
	texts := []string{"x"}
	times := []time.Time{now}
	for _, tc := range []struct {
		name string
		sql  string
		args []any
	}{
		{"domain configs", domainConfigsSQL, []any{"p", "d"}},
		{"read stream", readStreamSQL, []any{"p", "d", "a", "s"}},
		{"requeue events", requeueEventsSQL, []any{texts}},
		{"requeue configs", requeueConfigsSQL, []any{texts}},
		{"lock", lockSQL, []any{texts, texts, texts}},
		{"check matches", checkMatchesSQL, []any{texts, texts, texts, texts, texts, []bool{false}}},
		{"check requeues", checkRequeuesSQL, []any{texts, texts}},
		{"write streams", writeStreamsSQL, []any{[]int32{1}, []int64{1}, texts, texts, texts, texts, texts, texts, texts,
			[]int32{1}, times, times, times, times, times, times, texts, []int32{0}}},
		{"update streams", updateStreamsSQL, []any{[]int32{1}, []int64{1}, texts, texts, texts, texts, texts, texts, texts,
			[]int32{1}, times, times, times, times, times, times, texts, []int32{0}}},
		{"insert events", insertEventsSQL, []any{texts, texts, texts, texts, texts, texts, texts, texts, texts, texts, texts,
			[]int64{1}, []int64{1}, times, times, []int32{1}, []int32{1}, texts, texts, times, times}},
		{"upsert lanes", upsertLanesSQL, []any{texts, texts, []int32{1}, times, texts, times, texts, texts, texts, texts}},
		{"insert deliveries", insertDeliveriesSQL, []any{texts, texts, texts, texts, texts, texts, texts, times}},
		{"record", recordSQL, []any{[]int64{1}, texts, times, times, []int32{200}, texts, times, []int64{1}, texts, texts, texts, "pending"}},
		{"disable gone", disableGoneSQL, []any{"c/", "c0", "c", now}},
		{"defer lanes", deferLanesSQL, []any{texts, texts, times, texts}},
		{"lane states", laneStatesSQL, []any{texts, "c", "n", now, "n", texts}},
	} {
		t.Run(tc.name, func(t *testing.T) {
			tx, err := conn.Begin(ctx)
			if err != nil {
				t.Fatal(err)
			}
			defer tx.Rollback(ctx)
			if _, err := tx.Exec(ctx, settingsSQL); err != nil {
				t.Fatal(err)
			}
			name := "plan_" + strings.ReplaceAll(tc.name, " ", "_")
			if _, err := tx.Prepare(ctx, name, tc.sql); err != nil {
				t.Fatal(err)
			}
			// EXPLAIN takes no parameters: the arguments go in as literals.
			params := make([]string, len(tc.args))
			for i, a := range tc.args {
				params[i] = literal(a)
			}
			rows, err := tx.Query(ctx, fmt.Sprintf("EXPLAIN EXECUTE %s(%s)", name, strings.Join(params, ", ")))
			if err != nil {
				t.Fatal(err)
			}
			var plan []string
			for rows.Next() {
				var line string
				if err := rows.Scan(&line); err != nil {
					t.Fatal(err)
				}
				plan = append(plan, line)
			}
			if err := rows.Err(); err != nil {
				t.Fatal(err)
			}
			if bad := badScans(plan); len(bad) > 0 {
				t.Errorf("%s:\n%s\nin plan:\n%s", tc.name, strings.Join(bad, "\n"), strings.Join(plan, "\n"))
			}
		})
	}
}

// literal returns v as an SQL literal of unknown type, which EXECUTE casts
// to the statement's parameter type.
func literal(v any) string {
	switch v := v.(type) {
	case time.Time:
		return "'" + v.UTC().Format(time.RFC3339Nano) + "'"
	case []time.Time:
		return "'{\"" + v[0].UTC().Format(time.RFC3339Nano) + "\"}'"
	case []string, []int32, []int64, []bool:
		return "'{" + strings.Trim(fmt.Sprint(v), "[]") + "}'"
	}
	return "'" + fmt.Sprint(v) + "'"
}

var scanNode = regexp.MustCompile(`(Seq Scan|Index Scan|Index Only Scan|Bitmap Index Scan|Hash Join|Merge Join)( Backward)?(?: using (\S+))?(?: on (\S+))?`)

// badScans returns the nodes of plan that read a whole table or index, or
// hash or merge one.
func badScans(plan []string) []string {
	var bad []string
	for i, line := range plan {
		m := scanNode.FindStringSubmatch(line)
		if m == nil {
			continue
		}
		switch m[1] {
		case "Seq Scan", "Hash Join", "Merge Join":
			bad = append(bad, strings.TrimSpace(line))
			continue
		}
		// An index scan needs a condition on the index, among the node's
		// own lines (deeper than the node, before its first child).
		depth := len(line) - len(strings.TrimLeft(line, " "))
		cond := false
		for _, next := range plan[i+1:] {
			d := len(next) - len(strings.TrimLeft(next, " "))
			if d <= depth || strings.Contains(next, "->") {
				break
			}
			if strings.Contains(next, "Index Cond:") {
				cond = true
			}
		}
		if !cond {
			bad = append(bad, strings.TrimSpace(line)+" (no index condition)")
		}
	}
	return bad
}

// TestFlushIsAtomic fails a transaction at its last check, after it wrote a
// stream and an event: nothing of it stays.
func TestFlushIsAtomic(t *testing.T) {
	t.Parallel()
	url := testDatabase(t)
	db := openTest(t, url, Options{})
	tx := &outboxTx{db: db, run: &writeRun{}, matches: map[matchKey]match{}}
	defer tx.release(ctx)
	key := livehooks.StreamKey{ProjectID: "p1", PublishDomain: "d1.example.com", App: "live", Stream: "s1"}
	if err := tx.PutStream(ctx, &livehooks.StreamState{StreamKey: key, State: livehooks.StreamLive, UpdatedAt: time.Now()}); err != nil {
		t.Fatal(err)
	}
	if _, err := tx.Enqueue(ctx, "A", time.Now(), []*livehooks.Event{testEvent("live", "s1")}); err != nil {
		t.Fatal(err)
	}
	// A delivery of an event that is not there: the deliveries' check fails.
	e := testEvent("live", "s1")
	e.ID = "missing"
	tx.plans = append(tx.plans, planned{d: storerow.NewDelivery("w", "c", e, time.Now()), node: "A", call: tx.calls})
	err := tx.flush(ctx)
	if !isConflict(err) {
		t.Fatalf("flush: %v, want a conflict", err)
	}
	conn := rawConn(t, url)
	var streams, events int
	if err := conn.QueryRow(ctx, `SELECT (SELECT count(*) FROM streams), (SELECT count(*) FROM events)`).Scan(&streams, &events); err != nil {
		t.Fatal(err)
	}
	if streams != 0 || events != 0 {
		t.Fatalf("%d streams and %d events left by a transaction that failed", streams, events)
	}
	if status := tx.c.Conn().PgConn().TxStatus(); status != 'I' {
		t.Fatalf("connection left in transaction status %c", status)
	}
}

// TestRoundTrips counts Write's round trips: one per transaction once what
// it reads is in memory, whatever the transaction holds; a read where it is
// not; three when another node changed a stream it wrote (the failed
// transaction, the stream read again, the transaction again).
func TestRoundTrips(t *testing.T) {
	t.Parallel()
	url := testDatabase(t)
	a, b := openTest(t, url, Options{}), openTest(t, url, Options{})
	c := testConfig("p1", "live")
	c.NotifyEventSubscription = livehooks.EventTypes
	if err := a.CreateCallback(ctx, c); err != nil {
		t.Fatal(err)
	}
	key := livehooks.StreamKey{ProjectID: "p1", PublishDomain: "d1.example.com", App: "live", Stream: "s1"}
	step := func(tx livehooks.OutboxTx, stream string) ([]*livehooks.Delivery, error) {
		k := key
		k.Stream = stream
		st, err := tx.Stream(ctx, k)
		if err != nil {
			return nil, err
		}
		if st == nil {
			st = &livehooks.StreamState{StreamKey: k, State: livehooks.StreamLive}
		}
		st.FileSeq++
		st.UpdatedAt = time.Now()
		if err := tx.PutStream(ctx, st); err != nil {
			return nil, err
		}
		return tx.Enqueue(ctx, "A", time.Now(), []*livehooks.Event{testEvent("live", stream)})
	}
	trips := func(db *DB, fn func(tx livehooks.OutboxTx) error) int64 {
		t.Helper()
		before := db.WriteRoundTrips()
		if err := db.Write(ctx, fn); err != nil {
			t.Fatal(err)
		}
		return db.WriteRoundTrips() - before
	}
	// The first Write reads the config (a round trip of its own).
	var ds []*livehooks.Delivery
	if n := trips(a, func(tx livehooks.OutboxTx) (err error) { ds, err = step(tx, "s1"); return err }); n != 2 {
		t.Fatalf("first write: %d round trips, want 2 (the config, the transaction)", n)
	}
	// Write's own connection has its settings from the start.
	for _, kv := range writeSettings {
		var v string
		if err := a.writes.conns[0].conn.QueryRow(ctx, "SELECT current_setting($1)", kv[0]).Scan(&v); err != nil {
			t.Fatal(err)
		}
		if want := kv[1]; v != want && v != want+"ms" {
			t.Fatalf("%s = %s on Write's connection, want %s", kv[0], v, want)
		}
	}
	for i := range 5 {
		var next []*livehooks.Delivery
		n := trips(a, func(tx livehooks.OutboxTx) error {
			next = nil
			for s := range 10 {
				got, err := step(tx, fmt.Sprintf("s%d", s))
				if err != nil {
					return err
				}
				next = append(next, got...)
			}
			var results []livehooks.Result
			for _, d := range ds {
				results = append(results, livehooks.Result{Delivery: d, Outcome: livehooks.OutcomeSucceeded,
					Attempt: livehooks.Attempt{N: 1, StatusCode: 200}})
			}
			_, err := tx.Record(ctx, "A", time.Now(), results)
			return err
		})
		if n != 1 {
			t.Fatalf("write %d: %d round trips, want 1", i, n)
		}
		ds = next
	}
	// Node B writes s1 (B opened before A wrote it: it takes s1 as new,
	// and the conflict tells it the stored state, with which it runs again);
	// A's memory of s1 is out of date: the same, in two round trips, not a
	// third to read s1.
	if n := trips(b, func(tx livehooks.OutboxTx) error { _, err := step(tx, "s1"); return err }); n != 3 {
		t.Fatalf("B's first write: %d round trips, want 3 (the config, the conflict, the run again)", n)
	}
	if n := trips(a, func(tx livehooks.OutboxTx) error { _, err := step(tx, "s1"); return err }); n != 2 {
		t.Fatalf("write after another node's: %d round trips, want 2 (the conflict, which carries s1's state, and the run again)", n)
	}
	var seq int
	if err := rawConn(t, url).QueryRow(ctx, `SELECT file_seq FROM streams WHERE stream = 's1'`).Scan(&seq); err != nil || seq != 8 {
		t.Fatalf("file_seq %d (%v), want 8: every transition applied once", seq, err)
	}
}

// Writes that run at once (a group committer with several transactions in
// flight) each get a connection of Write's own, with the statements
// prepared: one round trip each, the first time and after.
func TestConcurrentWritesOneRoundTripEach(t *testing.T) {
	t.Parallel()
	url := testDatabase(t)
	db := openTest(t, url, Options{})
	c := testConfig("p1", "live")
	c.NotifyEventSubscription = livehooks.EventTypes
	if err := db.CreateCallback(ctx, c); err != nil {
		t.Fatal(err)
	}
	enqueue := func(stream string) func(tx livehooks.OutboxTx) error {
		return func(tx livehooks.OutboxTx) error {
			_, err := tx.Enqueue(ctx, "A", time.Now(), []*livehooks.Event{testEvent("live", stream)})
			return err
		}
	}
	// The config is read once, by a Write alone.
	if err := db.Write(ctx, enqueue("s0")); err != nil {
		t.Fatal(err)
	}
	const n = 4
	for round := range 2 {
		before := db.WriteRoundTrips()
		var started, wg sync.WaitGroup
		started.Add(n)
		errs := make(chan error, n)
		for i := range n {
			wg.Add(1)
			go func() {
				defer wg.Done()
				errs <- db.Write(ctx, func(tx livehooks.OutboxTx) error {
					// Hold every Write until all have begun: they
					// flush together, each on its own connection.
					started.Done()
					started.Wait()
					return enqueue(fmt.Sprintf("r%d-s%d", round, i))(tx)
				})
			}()
		}
		wg.Wait()
		close(errs)
		for err := range errs {
			if err != nil {
				t.Fatal(err)
			}
		}
		if got := db.WriteRoundTrips() - before; got != n {
			t.Fatalf("round %d: %d round trips for %d Writes at once, want %d", round, got, n, n)
		}
	}
	db.writes.mu.Lock()
	conns := len(db.writes.conns)
	db.writes.mu.Unlock()
	if conns != n {
		t.Fatalf("%d connections of Write's own, want %d", conns, n)
	}
	var stored int
	if err := rawConn(t, url).QueryRow(ctx, `SELECT count(*) FROM events`).Scan(&stored); err != nil || stored != 2*n+1 {
		t.Fatalf("%d events stored (%v), want %d", stored, err, 2*n+1)
	}
}

// A 410 recorded by one node while another enqueues to the same config
// leaves no delivery of it pending: the enqueues before it are failed with
// the others, those after it find the config disabled.
func TestGoneWhileEnqueueing(t *testing.T) {
	t.Parallel()
	url := testDatabase(t)
	a, b := openTest(t, url, Options{}), openTest(t, url, Options{})
	for round := range 5 {
		c := testConfig("p1", fmt.Sprintf("app%d", round))
		if err := a.CreateCallback(ctx, c); err != nil {
			t.Fatal(err)
		}
		var first []*livehooks.Delivery
		if err := a.Write(ctx, func(tx livehooks.OutboxTx) (err error) {
			first, err = tx.Enqueue(ctx, "A", time.Now(), []*livehooks.Event{testEvent(c.App, "s0")})
			return err
		}); err != nil {
			t.Fatal(err)
		}
		done := make(chan struct{})
		go func() {
			defer close(done)
			for i := range 30 {
				if err := b.Write(ctx, func(tx livehooks.OutboxTx) error {
					_, err := tx.Enqueue(ctx, "B", time.Now(), []*livehooks.Event{testEvent(c.App, fmt.Sprintf("s%d", i%4))})
					return err
				}); err != nil {
					t.Error(err)
				}
			}
		}()
		if err := a.Write(ctx, func(tx livehooks.OutboxTx) error {
			_, err := tx.Record(ctx, "A", time.Now(), []livehooks.Result{{Delivery: first[0], Outcome: livehooks.OutcomeGone,
				Attempt: livehooks.Attempt{N: 1, StatusCode: 410}}})
			return err
		}); err != nil {
			t.Fatal(err)
		}
		<-done
		ds, _, err := a.FindDeliveries(ctx, livehooks.DeliveryFilter{ProjectID: "p1", ConfigID: c.ID, Status: livehooks.DeliveryPending})
		if err != nil || len(ds) != 0 {
			t.Fatalf("round %d: %d deliveries of a config disabled by a 410 still pending (%v)", round, len(ds), err)
		}
	}
	var lanes int
	if err := rawConn(t, url).QueryRow(ctx, `SELECT count(*) FROM lanes`).Scan(&lanes); err != nil || lanes != 0 {
		t.Fatalf("%d lanes left (%v)", lanes, err)
	}
}
