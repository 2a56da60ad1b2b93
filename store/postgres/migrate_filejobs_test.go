package postgres

import (
	"testing"
	"time"

	"github.com/livehooks/livehooks"
	"github.com/livehooks/livehooks/store/storetest"
)

// TestMigrateFileJobsFromVersion6 migrates a database of the schema before
// the file jobs (version 6, holding v2Data) and checks that its streams keep
// their state, with no pending file, and that file jobs work with them.
func TestMigrateFileJobsFromVersion6(t *testing.T) {
	t.Parallel()
	url := testDatabase(t)
	schemaAt(t, url, 6, v2Data, time.Date(2026, 1, 2, 3, 4, 5, 0, time.UTC))
	db := openTest(t, url, Options{})
	storetest.FileJobsOnOldStream(t, db, livehooks.StreamKey{ProjectID: "p1", PublishDomain: "d1.example.com", App: "live", Stream: "s1"},
		&livehooks.StreamState{State: livehooks.StreamLive, TaskID: "t1", JobID: "j4", FileSeq: 4})
}
