package postgres

import (
	"fmt"
	"testing"
	"time"

	"github.com/livehooks/livehooks"
)

// A transaction sent while another is in flight is built on what the one
// ahead writes, commits after it, and only if it committed. Here the one
// ahead fails (another node changed its stream): it runs again, then the
// one behind it, whose first run was built on a state never stored, runs
// again too. Every transition applies once, in the order sent.
func TestPipelinedFailureRunsAgainInOrder(t *testing.T) {
	t.Parallel()
	url := testDatabase(t)
	a, b := openTest(t, url, Options{}), openTest(t, url, Options{})
	if err := a.CreateCallback(ctx, testConfig("p1", "live")); err != nil {
		t.Fatal(err)
	}
	key := livehooks.StreamKey{ProjectID: "p1", PublishDomain: "d1.example.com", App: "live", Stream: "s1"}
	// step advances s1's file_seq by one and enqueues an event named after
	// the file_seq it read.
	step := func(db *DB, seen *[]int) func(tx livehooks.OutboxTx) error {
		return func(tx livehooks.OutboxTx) error {
			st, err := tx.Stream(ctx, key)
			if err != nil {
				return err
			}
			if st == nil {
				st = &livehooks.StreamState{StreamKey: key, State: livehooks.StreamLive}
			}
			*seen = append(*seen, st.FileSeq)
			e := testEvent("live", "s1")
			e.ID = fmt.Sprintf("after-%d", st.FileSeq)
			st.FileSeq++
			st.UpdatedAt = time.Now()
			if err := tx.PutStream(ctx, st); err != nil {
				return err
			}
			_, err = tx.Enqueue(ctx, "A", time.Now(), []*livehooks.Event{e})
			return err
		}
	}
	var seenA0, seenB, seen1, seen2 []int
	if err := a.Write(ctx, step(a, &seenA0)); err != nil {
		t.Fatal(err)
	}
	// B writes s1 behind A's back: A's memory of it is out of date.
	if err := b.Write(ctx, step(b, &seenB)); err != nil {
		t.Fatal(err)
	}
	wait1, err := a.WritePipelined(ctx, step(a, &seen1))
	if err != nil {
		t.Fatal(err)
	}
	wait2, err := a.WritePipelined(ctx, step(a, &seen2))
	if err != nil {
		t.Fatal(err)
	}
	if len(seen2) != 1 || seen2[0] != seen1[0]+1 {
		t.Fatalf("the second was built on %v, the first read %v: want the first's state", seen2, seen1)
	}
	trips1, err := wait1()
	if err != nil {
		t.Fatal(err)
	}
	trips2, err := wait2()
	if err != nil {
		t.Fatal(err)
	}
	if trips1 < 2 || trips2 < 2 {
		t.Fatalf("round trips %d and %d: both should have run again", trips1, trips2)
	}
	if last1, last2 := seen1[len(seen1)-1], seen2[len(seen2)-1]; last1 != 2 || last2 != 3 {
		t.Fatalf("last runs read file_seq %d and %d, want 2 and 3", last1, last2)
	}
	conn := rawConn(t, url)
	var seq int
	if err := conn.QueryRow(ctx, `SELECT file_seq FROM streams WHERE stream = 's1'`).Scan(&seq); err != nil || seq != 4 {
		t.Fatalf("file_seq %d (%v), want 4: every transition applied once", seq, err)
	}
	// The deliveries of the events drew their ids in the order sent.
	rows, err := conn.Query(ctx, `SELECT e.uid FROM deliveries d JOIN events e ON e.pk = d.event_pk ORDER BY d.id`)
	if err != nil {
		t.Fatal(err)
	}
	var order []string
	for rows.Next() {
		var uid string
		if err := rows.Scan(&uid); err != nil {
			t.Fatal(err)
		}
		order = append(order, uid)
	}
	if err := rows.Err(); err != nil {
		t.Fatal(err)
	}
	if want := "[after-0 after-1 after-2 after-3]"; fmt.Sprint(order) != want {
		t.Fatalf("deliveries in id order: %v, want %s", order, want)
	}
	// Nothing of the runs that failed stays in memory: the next write reads
	// what is stored.
	var seen3 []int
	if err := a.Write(ctx, step(a, &seen3)); err != nil {
		t.Fatal(err)
	}
	if seen3[len(seen3)-1] != 4 {
		t.Fatalf("the next write read file_seq %v, want 4", seen3)
	}
}

// The link of a transaction sent behind another waits for that one's
// commit, however late the one ahead reaches the server, and a store's
// chain starts again once nothing is in flight.
func TestPipelinedChain(t *testing.T) {
	t.Parallel()
	url := testDatabase(t)
	db := openTest(t, url, Options{})
	if err := db.CreateCallback(ctx, testConfig("p1", "live")); err != nil {
		t.Fatal(err)
	}
	const n = 40
	waits := make([]func() (int, error), 0, n)
	for i := range n {
		w, err := db.WritePipelined(ctx, func(tx livehooks.OutboxTx) error {
			_, err := tx.Enqueue(ctx, "A", time.Now(), []*livehooks.Event{testEvent("live", fmt.Sprintf("s%d", i%3))})
			return err
		})
		if err != nil {
			t.Fatal(err)
		}
		waits = append(waits, w)
		if len(waits) > 2 {
			// As the committer does: at most two in flight.
			if _, err := waits[0](); err != nil {
				t.Fatal(err)
			}
			waits = waits[1:]
		}
	}
	for _, w := range waits {
		if trips, err := w(); err != nil || trips != 1 {
			t.Fatalf("%d round trips (%v), want 1", trips, err)
		}
	}
	var seq int64
	var writer string
	if err := rawConn(t, url).QueryRow(ctx, `SELECT writer, seq FROM write_chains`).Scan(&writer, &seq); err != nil {
		t.Fatal(err)
	}
	if writer != db.pipe.writer || seq != n {
		t.Fatalf("write_chains: %s at %d, want %s at %d", writer, seq, db.pipe.writer, n)
	}
	if db.retries.Load() != 0 {
		t.Fatalf("%d transactions ran again", db.retries.Load())
	}
	if err := db.Close(); err != nil {
		t.Fatal(err)
	}
	var rows int
	if err := rawConn(t, url).QueryRow(ctx, `SELECT count(*) FROM write_chains`).Scan(&rows); err != nil || rows != 0 {
		t.Fatalf("%d write_chains rows after Close (%v)", rows, err)
	}
}
