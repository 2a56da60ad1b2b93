package main

import (
	"bytes"
	"context"
	"path/filepath"
	"strings"
	"testing"
)

// TestOperationsHelpAndMisuse: the operations commands explain themselves
// and every misuse gets an error that says what to do.
func TestOperationsHelpAndMisuse(t *testing.T) {
	for args, wants := range map[string][]string{
		"serve --help":         {"--tls-cert", "--tls-key", "LIVEHOOKS_TLS_CERT", "HTTP/2"},
		"backup --help":        {"VACUUM INTO", "FILE.master.key", "--without-secrets", "pg_dump", "LIVEHOOKS_DATA_DIR"},
		"restore --help":       {"--force", "pg_restore", "master key"},
		"migrate-store --help": {"--from", "--to", "--force", "postgres://", "master key"},
		"version":              {"store schema: sqlite "},
	} {
		var out bytes.Buffer
		if err := run(context.Background(), strings.Fields(args), func(string) string { return "" }, nil, &out, &out); err != nil {
			t.Fatalf("%s: %v", args, err)
		}
		for _, w := range wants {
			if !strings.Contains(out.String(), w) {
				t.Errorf("%s lacks %q", args, w)
			}
		}
	}
	dir := t.TempDir()
	// A data directory in use: its store has a write-ahead log.
	live := t.TempDir()
	srv := start(t, nil, "serve", "--listen", "127.0.0.1:0", "--data-dir", live, "--dev", "--log-format", "json")
	srv.serveAddr(t)
	pg := map[string]string{"LIVEHOOKS_DATABASE_URL": "postgres://x@127.0.0.1/db"}
	for _, tc := range []struct {
		args []string
		env  map[string]string
		want string
	}{
		{[]string{"backup"}, nil, "give the file to write"},
		{[]string{"backup", filepath.Join(dir, "no", "such", "b.db"), "--data-dir", dir}, nil, "no store to back up"},
		{[]string{"backup", "b.db"}, pg, "pg_dump"},
		{[]string{"restore"}, nil, "give the backup to restore"},
		{[]string{"restore", "b.db"}, pg, "pg_restore"},
		{[]string{"restore", filepath.Join(dir, "missing.db"), "--data-dir", dir}, nil, "missing.db is not a backup file"},
		{[]string{"restore", filepath.Join(live, "livehooks.db"), "--data-dir", dir}, nil, "not a backup"},
		{[]string{"migrate-store", "--to", dir}, nil, "needs --from and --to"},
		{[]string{"migrate-store", "--from", "postgres://a@h/x", "--to", "postgresql://b@h/y"}, nil, "both PostgreSQL"},
	} {
		var out bytes.Buffer
		getenv := func(k string) string { return tc.env[k] }
		if err := run(context.Background(), tc.args, getenv, nil, &out, &out); err == nil || !strings.Contains(err.Error(), tc.want) {
			t.Errorf("%v: %v, want an error saying %q", tc.args, err, tc.want)
		}
	}
}
