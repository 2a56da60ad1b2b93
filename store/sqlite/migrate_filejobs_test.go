package sqlite

import (
	"path/filepath"
	"testing"
	"time"

	"github.com/livehooks/livehooks"
	"github.com/livehooks/livehooks/store/storetest"
)

// TestMigrateFileJobsFromVersion5 opens a database of the schema before the
// file jobs (version 5) holding a paused stream, and checks that the stream
// keeps its state and timer, with no pending file, and that file jobs work
// with it.
func TestMigrateFileJobsFromVersion5(t *testing.T) {
	t.Parallel()
	path := filepath.Join(t.TempDir(), "livehooks.db")
	raw := schemaAt(t, path, 5)
	old := time.Date(2026, 11, 1, 0, 0, 0, 0, time.UTC).UnixMicro()
	if _, err := raw.Exec(`INSERT INTO streams (project_id, publish_domain, app, stream, state, task_id, job_id, file_seq, over_at, next_timer, updated_at)
		VALUES ('p1', 'd1.example.com', 'live', 's1', 'paused', 't1', 'j4', 4, ?1, ?1, ?1)`, old); err != nil {
		t.Fatal(err)
	}
	raw.Close()

	db := openTest(t, path, Options{})
	key := livehooks.StreamKey{ProjectID: "p1", PublishDomain: "d1.example.com", App: "live", Stream: "s1"}
	if due, err := db.DueStreams(ctx, time.Now(), 10); err != nil || len(due) != 1 || due[0] != key {
		t.Fatalf("due streams after the migration: %v %v", due, err)
	}
	storetest.FileJobsOnOldStream(t, db, key, &livehooks.StreamState{State: livehooks.StreamPaused, TaskID: "t1", JobID: "j4", FileSeq: 4})
}
