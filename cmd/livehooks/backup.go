package main

import (
	"bytes"
	"context"
	"crypto/rand"
	"database/sql"
	"encoding/hex"
	"errors"
	"fmt"
	"io"
	"io/fs"
	"os"
	"path/filepath"
	"strings"

	"github.com/spf13/cobra"

	"github.com/livehooks/livehooks"
	"github.com/livehooks/livehooks/aesgcm"
	"github.com/livehooks/livehooks/auth"
	"github.com/livehooks/livehooks/fileserve"
	"github.com/livehooks/livehooks/store/sqlite"
)

// storeFile is the embedded store's file in the data directory.
const storeFile = "livehooks.db"

// Files a backup keeps beside the store copy, named FILE + suffix: without
// the master key the callback keys and storage secrets in the copy cannot be
// decrypted, the credentials are what clients and media servers use, and
// the download key signs the links to recordings livehooks serves (links
// already handed out stay valid only with it).
var backupCompanions = []struct{ name, suffix string }{
	{aesgcm.KeyFile, ".master.key"},
	{auth.CredentialsFile, ".credentials.json"},
	{fileserve.KeyFile, ".download.key"},
}

func newBackupCommand(e *env) *cobra.Command {
	var dataDir string
	var withoutSecrets bool
	cmd := &cobra.Command{
		Use:   "backup FILE",
		Short: "Copy the embedded SQLite store consistently, while livehooks runs",
		Long: `Write a consistent copy of the data directory's SQLite store to FILE.

livehooks may keep running: the copy is a snapshot of one transaction taken
by SQLite (VACUUM INTO) through a read-only connection, so ingest and delivery
go on meanwhile and the copy holds every event acknowledged before the backup
started. FILE must not exist.

Beside FILE, backup writes FILE.master.key (the data directory's master key,
mode 0600: without it the callback keys and storage secrets in the copy cannot
be decrypted), FILE.credentials.json (the generated credentials) and
FILE.download.key (the key of served recordings' links), each 0600, when the
data directory has them. With LIVEHOOKS_MASTER_KEY set, keep that value with
the backup yourself. --without-secrets copies none of them: keep them some
other way.

Bring a backup back with "livehooks restore FILE". For PostgreSQL
(--database-url) use pg_dump and pg_restore instead (see the README).`,
		Example: `  livehooks backup /var/backups/livehooks-$(date +%F).db --data-dir /var/lib/livehooks`,
		Args:    exactArgs(1, "backup FILE: give the file to write"),
		RunE: func(cmd *cobra.Command, args []string) error {
			return backup(cmd.Context(), e, dataDir, args[0], !withoutSecrets)
		},
	}
	cmd.Flags().StringVar(&dataDir, "data-dir", "./data", "data directory of the store to copy")
	envFlag(cmd.Flags(), "data-dir", "LIVEHOOKS_DATA_DIR")
	cmd.Flags().BoolVar(&withoutSecrets, "without-secrets", false, "do not write FILE.master.key, FILE.credentials.json and FILE.download.key beside the copy")
	return cmd
}

// exactArgs is cobra.ExactArgs with a message that says what to give.
func exactArgs(n int, usage string) cobra.PositionalArgs {
	return func(_ *cobra.Command, args []string) error {
		if len(args) != n {
			return errors.New(usage)
		}
		return nil
	}
}

// refusePostgres stops an embedded-store command run for a PostgreSQL
// deployment, where the database's own tools do the job.
func refusePostgres(getenv func(string) string, command, instead string) error {
	if getenv("LIVEHOOKS_DATABASE_URL") != "" {
		return fmt.Errorf("%s works on the embedded SQLite store, and LIVEHOOKS_DATABASE_URL says this installation uses PostgreSQL: use %s (see the README, \"Backups\")", command, instead)
	}
	return nil
}

func backup(ctx context.Context, e *env, dataDir, target string, withSecrets bool) error {
	if err := refusePostgres(e.getenv, "livehooks backup", "pg_dump"); err != nil {
		return err
	}
	src := filepath.Join(dataDir, storeFile)
	if _, err := os.Stat(src); err != nil {
		return fmt.Errorf("no store to back up at %s (is --data-dir right?): %w", src, err)
	}
	targets := []string{target}
	if withSecrets {
		for _, c := range backupCompanions {
			if _, err := os.Stat(filepath.Join(dataDir, c.name)); err == nil {
				targets = append(targets, target+c.suffix)
			}
		}
	}
	if fi, err := os.Stat(filepath.Dir(target)); err != nil || !fi.IsDir() {
		return fmt.Errorf("backup: %s is not a directory to write %s into", filepath.Dir(target), filepath.Base(target))
	}
	for _, t := range targets {
		if _, err := os.Lstat(t); err == nil {
			return fmt.Errorf("%s exists: backup never overwrites a file; choose another name or remove it", t)
		}
	}

	db, err := openSQLiteReadOnly(ctx, src)
	if err != nil {
		return err
	}
	defer db.Close()

	// VACUUM INTO fills an empty file, which is created here so that the
	// copy is 0600 from its first byte, under a temporary name so that FILE
	// only ever names a finished copy.
	tmp, err := createExclusive(target + ".partial-" + randomSuffix())
	if err != nil {
		return fmt.Errorf("backup: %w", err)
	}
	defer os.Remove(tmp)
	if _, err := db.ExecContext(ctx, `VACUUM INTO ?`, tmp); err != nil {
		return fmt.Errorf("backup: copy %s: %w", src, err)
	}
	summary, err := checkStoreFile(ctx, tmp)
	if err != nil {
		return fmt.Errorf("backup: the copy does not check out: %w", err)
	}
	if err := syncFile(tmp); err != nil {
		return fmt.Errorf("backup: %w", err)
	}
	// A hard link never replaces a file that appeared meanwhile.
	if err := os.Link(tmp, target); err != nil {
		return fmt.Errorf("backup: %w", err)
	}
	fmt.Fprintf(e.stdout, "backup: wrote %s: %s, a consistent snapshot of %s\n", target, summary, src)
	if withSecrets {
		for _, c := range backupCompanions {
			from, to := filepath.Join(dataDir, c.name), target+c.suffix
			if err := copyFileExclusive(from, to); errors.Is(err, fs.ErrNotExist) && !fileExists(from) {
				continue
			} else if err != nil {
				return fmt.Errorf("backup: %w", err)
			}
			fmt.Fprintf(e.stdout, "backup: wrote %s (mode 0600): keep it with the backup, as safely as the data directory\n", to)
		}
	}
	if e.getenv(aesgcm.EnvMasterKey) != "" {
		fmt.Fprintf(e.stdout, "backup: the master key comes from %s: keep its value with this backup; without it the callback keys in the copy cannot be decrypted\n", aesgcm.EnvMasterKey)
	}
	return syncDir(filepath.Dir(target))
}

// openSQLiteReadOnly opens an SQLite store for reading only. In WAL mode a
// reader neither blocks the running livehooks nor waits for it, and sees
// one consistent snapshot per transaction. A schema newer than this binary
// is refused.
func openSQLiteReadOnly(ctx context.Context, path string) (*sql.DB, error) {
	db, err := sql.Open("sqlite", "file:"+sqliteURIPath(path)+"?mode=ro&_pragma=busy_timeout(10000)")
	if err != nil {
		return nil, fmt.Errorf("open %s: %w", path, err)
	}
	version, err := sqliteSchemaVersion(ctx, db)
	if err != nil {
		db.Close()
		return nil, fmt.Errorf("%s is not a livehooks store: %w", path, err)
	}
	if version > sqlite.SchemaVersion() {
		db.Close()
		return nil, fmt.Errorf("%s has schema version %d, newer than this livehooks knows (%d): use a livehooks whose schema version is %d or more (livehooks version says it)",
			path, version, sqlite.SchemaVersion(), version)
	}
	return db, nil
}

func sqliteSchemaVersion(ctx context.Context, db *sql.DB) (int, error) {
	var v int
	err := db.QueryRowContext(ctx, `SELECT COALESCE(MAX(version), 0) FROM schema_migrations`).Scan(&v)
	return v, err
}

// checkStoreFile runs SQLite's integrity check on a store file and
// describes what it holds.
func checkStoreFile(ctx context.Context, path string) (string, error) {
	db, err := openSQLiteReadOnly(ctx, path)
	if err != nil {
		return "", err
	}
	defer db.Close()
	var ok string
	if err := db.QueryRowContext(ctx, `PRAGMA quick_check`).Scan(&ok); err != nil {
		return "", err
	}
	if ok != "ok" {
		return "", fmt.Errorf("integrity check: %s", ok)
	}
	var configs, events, deliveries, pending int64
	if err := db.QueryRowContext(ctx, `SELECT (SELECT COUNT(*) FROM callbacks), (SELECT COUNT(*) FROM events),
		(SELECT COUNT(*) FROM deliveries), (SELECT COUNT(*) FROM deliveries WHERE status = 'pending')`).Scan(&configs, &events, &deliveries, &pending); err != nil {
		return "", err
	}
	fi, err := os.Stat(path)
	if err != nil {
		return "", err
	}
	return fmt.Sprintf("%d callback configs, %d events, %d deliveries (%d pending), %d bytes", configs, events, deliveries, pending, fi.Size()), nil
}

// sqliteURIPath makes a file name safe inside a SQLite URI.
func sqliteURIPath(p string) string {
	return strings.NewReplacer("%", "%25", "?", "%3f", "#", "%23").Replace(p)
}

func randomSuffix() string {
	var b [6]byte
	_, _ = rand.Read(b[:])
	return hex.EncodeToString(b[:])
}

// createExclusive creates an empty 0600 file that did not exist.
func createExclusive(path string) (string, error) {
	f, err := os.OpenFile(path, os.O_CREATE|os.O_EXCL|os.O_WRONLY, 0o600)
	if err != nil {
		return "", err
	}
	return path, f.Close()
}

// copyFileExclusive copies from to a new 0600 file to, synced.
func copyFileExclusive(from, to string) error {
	in, err := os.Open(from)
	if err != nil {
		return err
	}
	defer in.Close()
	out, err := os.OpenFile(to, os.O_CREATE|os.O_EXCL|os.O_WRONLY, 0o600)
	if err != nil {
		return err
	}
	if _, err := io.Copy(out, in); err != nil {
		out.Close()
		os.Remove(to)
		return fmt.Errorf("copy %s to %s: %w", from, to, err)
	}
	if err := out.Sync(); err != nil {
		out.Close()
		os.Remove(to)
		return err
	}
	return out.Close()
}

func sameFileContent(a, b string) bool {
	x, err1 := os.ReadFile(a)
	y, err2 := os.ReadFile(b)
	return err1 == nil && err2 == nil && bytes.Equal(x, y)
}

func fileExists(path string) bool {
	_, err := os.Stat(path)
	return err == nil
}

func syncFile(path string) error {
	f, err := os.OpenFile(path, os.O_RDWR, 0)
	if err != nil {
		return err
	}
	defer f.Close()
	return f.Sync()
}

func syncDir(dir string) error {
	d, err := os.Open(dir)
	if err != nil {
		return err
	}
	defer d.Close()
	return d.Sync()
}

// checkSealed proves that the store's cipher opens what the store holds
// sealed: it reads one callback with a key and one domain with a storage
// secret through the store, which decrypts them. first runs a query that
// returns two strings, ok false when it returns no row.
func checkSealed(ctx context.Context, store interface {
	FindCallbackByID(ctx context.Context, projectID, id string) (*livehooks.CallbackConfig, error)
	FindDomain(ctx context.Context, projectID, domain string) (*livehooks.DomainSettings, error)
}, first func(query string) (a, b string, ok bool, err error)) error {
	const wrongKey = "the master key in use does not decrypt the store's %s (%s): use the master key of the installation the store comes from (its master.key file or LIVEHOOKS_MASTER_KEY): %w"
	project, id, ok, err := first(`SELECT project_id, id FROM callbacks WHERE key_sealed IS NOT NULL ORDER BY id LIMIT 1`)
	if err != nil {
		return err
	}
	if ok {
		if _, err := store.FindCallbackByID(ctx, project, id); err != nil {
			return fmt.Errorf(wrongKey, "callback keys", "config "+id, err)
		}
	}
	project, domain, ok, err := first(`SELECT project_id, publish_domain FROM domains WHERE storage_secret IS NOT NULL ORDER BY project_id, publish_domain LIMIT 1`)
	if err != nil {
		return err
	}
	if ok {
		if _, err := store.FindDomain(ctx, project, domain); err != nil {
			return fmt.Errorf(wrongKey, "storage secrets", "domain "+domain, err)
		}
	}
	return nil
}

// sqlFirst is checkSealed's first for a database/sql database.
func sqlFirst(ctx context.Context, db *sql.DB) func(string) (string, string, bool, error) {
	return func(query string) (string, string, bool, error) {
		var a, b string
		err := db.QueryRowContext(ctx, query).Scan(&a, &b)
		if errors.Is(err, sql.ErrNoRows) {
			return "", "", false, nil
		}
		return a, b, err == nil, err
	}
}
