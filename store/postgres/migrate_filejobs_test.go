package postgres

import (
	"slices"
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

// TestMigrateLaneHomeFromVersion8 migrates a database from before lanes
// recorded their home (version 8, holding v2Data: a free lane and one leased
// by a node that is gone): the free lane has no home recorded, and the node
// whose home it is among the live ones claims it; the other, once its lease
// has expired.
func TestMigrateLaneHomeFromVersion8(t *testing.T) {
	t.Parallel()
	url := testDatabase(t)
	then := time.Now().Add(-time.Hour)
	conn := schemaAt(t, url, 8, v2Data, then)
	db := openTest(t, url, Options{})
	var homeless int
	if err := conn.QueryRow(ctx, `SELECT count(*) FROM lanes WHERE home = ''`).Scan(&homeless); err != nil || homeless != 2 {
		t.Fatalf("lanes with no home: %d (%v), want 2", homeless, err)
	}
	live := []string{"n1", "n2"}
	byHome := map[string][]string{}
	for _, k := range []string{"c1/s1", "c1/s2"} {
		h := LaneHome(k, live)
		byHome[h] = append(byHome[h], k)
	}
	for _, n := range live {
		got, err := db.ClaimHomeLanes(ctx, n, live, time.Now(), time.Minute, 10)
		if err != nil {
			t.Fatal(err)
		}
		if keys := laneKeys(got); !slices.Equal(sortedCopy(keys), sortedCopy(byHome[n])) {
			t.Errorf("%s claimed %q, want %q", n, keys, byHome[n])
		}
	}
}
