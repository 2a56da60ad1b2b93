package main

import (
	"bytes"
	"context"
	"encoding/hex"
	"os"
	"path/filepath"
	"reflect"
	"strings"
	"sync/atomic"
	"testing"
	"time"
)

// runCommand runs livehooks in-process to the end with the environment env
// and returns what it printed.
func runCommand(env map[string]string, args ...string) (string, error) {
	var out bytes.Buffer
	err := run(context.Background(), args, func(k string) string { return env[k] }, nil, &out, &out)
	return out.String(), err
}

// TestMigrateStoreToPostgresAndBack: a SQLite store left by a serve under
// load (callbacks pending towards a receiver that was down, others
// delivered, streams recording) moves to PostgreSQL with migrate-store,
// and back to a new data directory with the same content; serve on
// PostgreSQL then delivers exactly what was pending, once each, in order,
// nothing that had been delivered, and the streams' tasks carry on. Misuse
// is refused: a source in use, a target that holds data, a database with
// live nodes.
func TestMigrateStoreToPostgresAndBack(t *testing.T) {
	pgURL := testDatabaseURL(t)
	var phase atomic.Int32
	phase.Store(1)
	up := newRecordingReceiver(t, &phase)
	down := newRecordingReceiver(t, &phase)
	down.down.Store(true)

	dirA := t.TempDir()
	a := start(t, nil, "serve", "--listen", "127.0.0.1:0", "--data-dir", dirA, "--token", "T:p",
		"--allow-callback-cidr", "127.0.0.0/8", "--log-format", "json")
	baseA := a.serveAddr(t)
	createConfigs(t, baseA, up, down)
	if status, body := request(t, "PUT", baseA+"/v1/p/record/domains/push1.example.com", "T",
		`{"record_format":"FLV","max_pause_seconds":60,"download_url_template":"https://cdn.example.com/{app}/{stream}/{file}"}`); status != 201 {
		t.Fatalf("domain settings: %d %s", status, body)
	}
	load := startIngest(t, baseA)
	waitFor(t, 20*time.Second, "ingest under way", func() bool { return len(load.snapshot()) >= 60 && len(up.arrivals()) >= 30 })
	load.halt()

	migrate := func(env map[string]string, args ...string) (string, error) {
		return runCommand(env, append([]string{"migrate-store"}, args...)...)
	}
	if _, err := migrate(nil, "--from", dirA, "--to", pgURL); err == nil || !strings.Contains(err.Error(), "in use") {
		t.Fatalf("migrate-store from a data directory in use: %v", err)
	}
	tasks := load.tasks
	if err := a.stop(t); err != nil {
		t.Fatalf("serve A: %v", err)
	}
	srcFile := filepath.Join(dirA, storeFile)
	pending, succeeded, assets := storeDeliveries(t, srcFile)
	if len(pending) == 0 || len(succeeded) == 0 {
		t.Fatalf("the source holds %d pending and %d succeeded deliveries: the test needs both", len(pending), len(succeeded))
	}

	for _, bad := range [][]string{
		{"--from", dirA},
		{"--from", dirA, "--to", t.TempDir()},
		{"--from", t.TempDir(), "--to", pgURL},
	} {
		if _, err := migrate(nil, bad...); err == nil {
			t.Errorf("migrate-store %v: no error", bad)
		}
	}
	out, err := migrate(nil, "--from", dirA, "--to", pgURL)
	if err != nil {
		t.Fatalf("migrate-store to PostgreSQL: %v\n%s", err, out)
	}
	t.Logf("%s", out)
	if !strings.Contains(out, "next: livehooks serve --database-url") || strings.Contains(out, "password") {
		t.Fatalf("migrate-store output:\n%s", out)
	}
	if _, err := migrate(nil, "--from", dirA, "--to", pgURL); err == nil || !strings.Contains(err.Error(), "not empty") || !strings.Contains(err.Error(), "--force") {
		t.Fatalf("migrate-store into a database that holds data: %v", err)
	}

	key, err := os.ReadFile(filepath.Join(dirA, "master.key"))
	if err != nil {
		t.Fatal(err)
	}
	env := map[string]string{"LIVEHOOKS_MASTER_KEY": hex.EncodeToString(key), "LIVEHOOKS_LOG_FORMAT": "json"}

	// And back, into a new data directory: the same deliveries and events.
	dirC := t.TempDir()
	if _, err := migrate(map[string]string{}, "--from", pgURL, "--to", dirC); err == nil || !strings.Contains(err.Error(), "LIVEHOOKS_MASTER_KEY") {
		t.Fatalf("migrate-store from PostgreSQL without a master key: %v", err)
	}
	if _, err := migrate(map[string]string{"LIVEHOOKS_MASTER_KEY": strings.Repeat("ab", 32)}, "--from", pgURL, "--to", dirC); err == nil || !strings.Contains(err.Error(), "does not decrypt") {
		t.Fatalf("migrate-store with another master key: %v", err)
	}
	if out, err := migrate(env, "--from", pgURL, "--to", dirC); err != nil {
		t.Fatalf("migrate-store back to SQLite: %v\n%s", err, out)
	}
	p2, s2, a2 := storeDeliveries(t, filepath.Join(dirC, storeFile))
	if !reflect.DeepEqual(p2, pending) || !reflect.DeepEqual(s2, succeeded) || !reflect.DeepEqual(a2, assets) {
		t.Fatalf("after SQLite → PostgreSQL → SQLite: %d pending, %d succeeded, %d events; want %d, %d, %d",
			len(p2), len(s2), len(a2), len(pending), len(succeeded), len(assets))
	}

	// serve on PostgreSQL continues where SQLite stopped.
	phase.Store(2)
	down.down.Store(false)
	b := start(t, env, "serve", "--listen", "127.0.0.1:0", "--data-dir", t.TempDir(), "--database-url", pgURL, "--token", "T:p",
		"--allow-callback-cidr", "127.0.0.0/8", "--node-id", "pg1")
	baseB := b.serveAddr(t)
	checkContinuation(t, baseB, []*recordingReceiver{up, down}, pending, succeeded, tasks["s0"])
	if status, body := request(t, "GET", baseB+"/v1/p/record/domains/push1.example.com", "T", ""); status != 200 || !strings.Contains(body, "cdn.example.com") {
		t.Fatalf("domain settings after the migration: %d %s", status, body)
	}
	if _, err := migrate(env, "--from", pgURL, "--to", t.TempDir()); err == nil || !strings.Contains(err.Error(), "nodes are running") {
		t.Fatalf("migrate-store from a database with a live node: %v", err)
	}
}
