package sqlite

import (
	"database/sql"
	"fmt"
	"path/filepath"
	"testing"
	"time"

	"github.com/livehooks/livehooks"
)

// TestMigrateFileJobsFromVersion4 opens a database of the schema before the
// file jobs (version 4) holding a stream's state, and checks that the stream
// keeps it, with no pending file, and that file jobs are added, claimed and
// finished with it.
func TestMigrateFileJobsFromVersion4(t *testing.T) {
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
	stmts := []string{`CREATE TABLE schema_migrations (version INTEGER PRIMARY KEY, name TEXT NOT NULL, applied_at INTEGER NOT NULL)`}
	for _, m := range ms {
		if m.Version <= 4 {
			stmts = append(stmts, m.SQL, `INSERT INTO schema_migrations VALUES (`+itoa(m.Version)+`, '`+m.Name+`', 0)`)
		}
	}
	old := time.Date(2026, 11, 1, 0, 0, 0, 0, time.UTC).UnixMicro()
	stmts = append(stmts, `INSERT INTO streams (project_id, publish_domain, app, stream, state, task_id, job_id, file_seq, over_at, next_timer, updated_at)
		VALUES ('p1', 'd1.example.com', 'live', 's1', 'paused', 't1', 'j4', 4, `+itoa(int(old))+`, `+itoa(int(old))+`, `+itoa(int(old))+`)`)
	for _, q := range stmts {
		if _, err := raw.Exec(q); err != nil {
			t.Fatalf("%s: %v", q, err)
		}
	}
	raw.Close()

	db := openTest(t, path, Options{})
	key := livehooks.StreamKey{ProjectID: "p1", PublishDomain: "d1.example.com", App: "live", Stream: "s1"}
	if due, err := db.DueStreams(ctx, time.Now(), 10); err != nil || len(due) != 1 || due[0] != key {
		t.Fatalf("due streams after the migration: %v %v", due, err)
	}
	now := time.Now()
	err = db.Write(ctx, func(tx livehooks.OutboxTx) error {
		st, err := tx.Stream(ctx, key)
		if err != nil {
			return err
		}
		if st == nil || st.State != livehooks.StreamPaused || st.TaskID != "t1" || st.JobID != "j4" || st.FileSeq != 4 || st.PendingFiles != 0 {
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
	if err != nil || len(jobs) != 1 || jobs[0].Path != "/rec/s1-5.flv" || jobs[0].ID != 1 {
		t.Fatalf("claim: %+v %v", jobs, err)
	}
	err = db.Write(ctx, func(tx livehooks.OutboxTx) error { return tx.FinishFileJob(ctx, jobs[0].ID, "") })
	if err != nil {
		t.Fatal(err)
	}
	if jobs, _ := db.ClaimFileJobs(ctx, "n1", now, time.Minute, 10); len(jobs) != 0 {
		t.Fatalf("a finished job is claimed: %+v", jobs)
	}
}

func itoa(n int) string { return fmt.Sprint(n) }
