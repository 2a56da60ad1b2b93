package main

import (
	"crypto/rand"
	"encoding/hex"
	"os"
	"os/exec"
	"path/filepath"
	"sync/atomic"
	"testing"
	"time"
)

// TestPgDumpRestoreServes checks what the README says about PostgreSQL
// backups: a pg_dump -Fc of a database livehooks serves, restored with
// pg_restore --no-owner into an empty database, serves on from where the dump
// was taken — pending callbacks go out, once each, in order, nothing that
// had been delivered, and the streams' tasks carry on.
func TestPgDumpRestoreServes(t *testing.T) {
	dump, err1 := exec.LookPath("pg_dump")
	restore, err2 := exec.LookPath("pg_restore")
	if err1 != nil || err2 != nil {
		if os.Getenv("CI") == "" {
			t.Skip("pg_dump/pg_restore are not installed (Debian package postgresql-client; .ci/run installs it)")
		}
		t.Fatal("pg_dump/pg_restore are not installed under CI")
	}
	dbA, dbB := testDatabaseURL(t), testDatabaseURL(t)
	var phase atomic.Int32
	phase.Store(1)
	up := newRecordingReceiver(t, &phase)
	down := newRecordingReceiver(t, &phase)
	down.down.Store(true)
	var mk [32]byte
	_, _ = rand.Read(mk[:])
	env := map[string]string{"LIVEHOOKS_MASTER_KEY": hex.EncodeToString(mk[:]), "LIVEHOOKS_LOG_FORMAT": "json"}
	serveArgs := func(db string) []string {
		return []string{"serve", "--listen", "127.0.0.1:0", "--data-dir", t.TempDir(), "--database-url", db, "--token", "T:p",
			"--allow-callback-cidr", "127.0.0.0/8", "--node-id", "n-" + db[len(db)-6:], "--node-heartbeat", "200ms", "--node-timeout", "600ms"}
	}
	a := start(t, env, serveArgs(dbA)...)
	baseA := a.serveAddr(t)
	createConfigs(t, baseA, up, down)
	load := startIngest(t, baseA)
	waitFor(t, 20*time.Second, "ingest under way", func() bool { return len(load.snapshot()) >= 40 && len(up.arrivals()) >= 20 })
	load.halt()
	tasks := load.tasks
	if err := a.stop(t); err != nil {
		t.Fatalf("serve A: %v", err)
	}

	file := filepath.Join(t.TempDir(), "livehooks.dump")
	if out, err := exec.Command(dump, "-Fc", "-d", dbA, "-f", file).CombinedOutput(); err != nil {
		t.Fatalf("pg_dump: %v\n%s", err, out)
	}
	if out, err := exec.Command(restore, "--no-owner", "-d", dbB, file).CombinedOutput(); err != nil {
		t.Fatalf("pg_restore: %v\n%s", err, out)
	}
	// What was pending and what was delivered, read from the restored
	// database through a round trip back to SQLite (migrate-store).
	dir := t.TempDir()
	if out, err := runCommand(env, "migrate-store", "--from", dbB, "--to", dir); err != nil {
		t.Fatalf("migrate-store of the restored database: %v\n%s", err, out)
	}
	pending, succeeded, _ := storeDeliveries(t, filepath.Join(dir, storeFile))
	if len(pending) == 0 || len(succeeded) == 0 {
		t.Fatalf("the dump holds %d pending and %d succeeded deliveries: the test needs both", len(pending), len(succeeded))
	}

	phase.Store(2)
	down.down.Store(false)
	baseB := start(t, env, serveArgs(dbB)...).serveAddr(t)
	checkContinuation(t, baseB, []*recordingReceiver{up, down}, pending, succeeded, tasks["s0"])
}
