package postgres

import (
	"testing"
	"time"

	"github.com/livehooks/livehooks"
)

// TestMigrateFileJobsFromVersion5 migrates a database of the schema before
// the file jobs (version 5, holding v2Data) and checks that its streams keep
// their state, with no pending file, and that file jobs are added, claimed
// and finished with them.
func TestMigrateFileJobsFromVersion5(t *testing.T) {
	t.Parallel()
	url := testDatabase(t)
	ms, err := migrations()
	if err != nil {
		t.Fatal(err)
	}
	then := time.Date(2026, 1, 2, 3, 4, 5, 0, time.UTC)
	conn := rawConn(t, url)
	tx, err := conn.Begin(ctx)
	if err != nil {
		t.Fatal(err)
	}
	if _, err := tx.Exec(ctx, `CREATE TABLE schema_migrations (version integer PRIMARY KEY, name text NOT NULL, applied_at timestamptz NOT NULL)`); err != nil {
		t.Fatal(err)
	}
	for _, m := range ms {
		if m.Version > 5 {
			break
		}
		if _, err := tx.Exec(ctx, m.SQL); err != nil {
			t.Fatalf("%s: %v", m.Name, err)
		}
		if _, err := tx.Exec(ctx, `INSERT INTO schema_migrations VALUES ($1, $2, $3)`, m.Version, m.Name, then); err != nil {
			t.Fatal(err)
		}
	}
	for _, stmt := range splitStatements(v2Data) {
		if _, err := tx.Exec(ctx, stmt, then); err != nil {
			t.Fatalf("%s: %v", stmt, err)
		}
	}
	if err := tx.Commit(ctx); err != nil {
		t.Fatal(err)
	}

	db := openTest(t, url, Options{})
	key := livehooks.StreamKey{ProjectID: "p1", PublishDomain: "d1.example.com", App: "live", Stream: "s1"}
	now := time.Now()
	err = db.Write(ctx, func(tx livehooks.OutboxTx) error {
		st, err := tx.Stream(ctx, key)
		if err != nil {
			return err
		}
		if st == nil || st.State != livehooks.StreamLive || st.TaskID != "t1" || st.JobID != "j4" || st.FileSeq != 4 || st.PendingFiles != 0 {
			t.Errorf("stream after the migration: %+v", st)
			return nil
		}
		st.PendingFiles++
		if err := tx.PutStream(ctx, st); err != nil {
			return err
		}
		return tx.AddFileJob(ctx, "n1", now, time.Minute, &livehooks.FileJob{StreamKey: key, Path: "/rec/s1-5.flv", FinishedAt: now})
	})
	if err != nil {
		t.Fatal(err)
	}
	jobs, err := db.ClaimFileJobs(ctx, "n1", now, time.Minute, 10)
	if err != nil || len(jobs) != 1 || jobs[0].Path != "/rec/s1-5.flv" {
		t.Fatalf("claim: %+v %v", jobs, err)
	}
	err = db.Write(ctx, func(tx livehooks.OutboxTx) error {
		st, err := tx.Stream(ctx, key)
		if err != nil || st.PendingFiles != 1 {
			t.Errorf("pending files: %+v %v", st, err)
		}
		return tx.FinishFileJob(ctx, jobs[0].ID, "")
	})
	if err != nil {
		t.Fatal(err)
	}
	if jobs, _ := db.ClaimFileJobs(ctx, "n1", now, time.Minute, 10); len(jobs) != 0 {
		t.Fatalf("a finished job is claimed: %+v", jobs)
	}
}
