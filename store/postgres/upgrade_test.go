package postgres

import (
	"sync"
	"testing"
	"time"
)

// TestNodesUpgradingTogetherMigrateOnce: several nodes of a new release start
// at once on a database an older release left (schema version 2, with
// data and a key sealed the old way). Every node opens, each migration is
// applied once (the re-sealing of keys would fail a second time: a value
// bound to its row no longer opens as an unbound one), and the data serves.
func TestNodesUpgradingTogetherMigrateOnce(t *testing.T) {
	t.Parallel()
	url := testDatabase(t)
	then := time.Date(2026, 11, 1, 12, 0, 0, 0, time.UTC)
	conn := schemaAt(t, url, 2, v2Data, then)
	const key = "UpgradeKey0123456789abcdefghijABCDEFGHIJ"
	sealed, err := testCipher(t).Seal([]byte(key), nil)
	if err != nil {
		t.Fatal(err)
	}
	if _, err := conn.Exec(ctx, `UPDATE callbacks SET key_sealed = $1 WHERE id = 'c1'`, sealed); err != nil {
		t.Fatal(err)
	}

	const nodes = 4
	var wg sync.WaitGroup
	dbs := make([]*DB, nodes)
	errs := make([]error, nodes)
	for i := range nodes {
		wg.Go(func() { dbs[i], errs[i] = Open(ctx, Options{URL: url, Cipher: testCipher(t), MaxConns: 2}) })
	}
	wg.Wait()
	for i, err := range errs {
		if err != nil {
			t.Fatalf("node %d: %v", i, err)
		}
		defer dbs[i].Close()
	}
	var rows, versions int
	if err := conn.QueryRow(ctx, `SELECT count(*), count(DISTINCT version) FROM schema_migrations`).Scan(&rows, &versions); err != nil {
		t.Fatal(err)
	}
	if rows != SchemaVersion() || versions != SchemaVersion() {
		t.Fatalf("schema_migrations: %d rows of %d versions, want %d once each", rows, versions, SchemaVersion())
	}
	for i, db := range dbs {
		c, err := db.FindCallbackByID(ctx, "p1", "c1")
		if err != nil || c.Key != key {
			t.Fatalf("node %d reads c1: %v", i, err)
		}
	}
	if n, err := dbs[0].PendingCount(ctx); err != nil || n != 3 {
		t.Fatalf("pending deliveries after the upgrade: %d, %v; want the 3 the old release left", n, err)
	}
}
