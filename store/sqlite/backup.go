package sqlite

import (
	"context"
	"crypto/rand"
	"database/sql"
	"encoding/hex"
	"fmt"
	"os"
	"path/filepath"

	"github.com/livehooks/livehooks/internal/durable"
)

// Summary is what a store file holds.
type Summary struct {
	SchemaVersion                        int
	Configs, Events, Deliveries, Pending int64
	Bytes                                int64
}

func (s Summary) String() string {
	return fmt.Sprintf("%d callback configs, %d events, %d deliveries (%d pending), %d bytes",
		s.Configs, s.Events, s.Deliveries, s.Pending, s.Bytes)
}

// openReadOnly opens the store file at path for reading only. In WAL mode
// such a reader neither blocks a livehooks serving the file (another process
// included) nor waits for it, and each of its transactions sees one
// consistent snapshot. A file migrated by a newer livehooks is refused.
func openReadOnly(ctx context.Context, path string) (*sql.DB, int, error) {
	db, err := sql.Open("sqlite", "file:"+escapePath(path)+"?mode=ro&_pragma=busy_timeout(10000)")
	if err != nil {
		return nil, 0, fmt.Errorf("sqlite: open %s: %w", path, err)
	}
	var version int
	var name sql.NullString
	if err := db.QueryRowContext(ctx, `SELECT version, name FROM schema_migrations ORDER BY version DESC LIMIT 1`).Scan(&version, &name); err != nil {
		db.Close()
		return nil, 0, fmt.Errorf("sqlite: %s is not a livehooks store: %w", path, err)
	}
	if latest := SchemaVersion(); version > latest {
		db.Close()
		return nil, 0, fmt.Errorf("sqlite: %s: %w", path, newerSchemaError(version, name.String, latest))
	}
	return db, version, nil
}

// Inspect checks the store file at path (SQLite's integrity check, a schema
// this binary knows) and says what it holds. It only reads.
func Inspect(ctx context.Context, path string) (Summary, error) {
	db, version, err := openReadOnly(ctx, path)
	if err != nil {
		return Summary{}, err
	}
	defer db.Close()
	s := Summary{SchemaVersion: version}
	var ok string
	if err := db.QueryRowContext(ctx, `PRAGMA quick_check`).Scan(&ok); err != nil {
		return s, fmt.Errorf("sqlite: check %s: %w", path, err)
	}
	if ok != "ok" {
		return s, fmt.Errorf("sqlite: %s is damaged: %s", path, ok)
	}
	if err := db.QueryRowContext(ctx, `SELECT (SELECT COUNT(*) FROM callbacks), (SELECT COUNT(*) FROM events),
		(SELECT COUNT(*) FROM deliveries), (SELECT COUNT(*) FROM deliveries WHERE status = 'pending')`).Scan(
		&s.Configs, &s.Events, &s.Deliveries, &s.Pending); err != nil {
		return s, fmt.Errorf("sqlite: inspect %s: %w", path, err)
	}
	fi, err := os.Stat(path)
	if err != nil {
		return s, fmt.Errorf("sqlite: %w", err)
	}
	s.Bytes = fi.Size()
	return s, nil
}

// Backup writes a consistent copy of the store file at path to target, a
// new file (mode 0600), while a livehooks may be serving the file: SQLite's
// VACUUM INTO copies one snapshot, taken through a read-only connection, so
// the copy holds every transaction committed before Backup began and ingest
// and delivery go on meanwhile. The copy is checked, synced and only then
// linked to target, so target never names half a copy; an existing target
// is refused.
func Backup(ctx context.Context, path, target string) (Summary, error) {
	db, _, err := openReadOnly(ctx, path)
	if err != nil {
		return Summary{}, err
	}
	defer db.Close()
	// VACUUM INTO fills an empty file: created here, it is 0600 from its
	// first byte.
	var suffix [6]byte
	_, _ = rand.Read(suffix[:])
	tmp := target + ".partial-" + hex.EncodeToString(suffix[:])
	f, err := os.OpenFile(tmp, os.O_CREATE|os.O_EXCL|os.O_WRONLY, 0o600)
	if err != nil {
		return Summary{}, fmt.Errorf("sqlite: backup: %w", err)
	}
	f.Close()
	defer os.Remove(tmp)
	if _, err := db.ExecContext(ctx, `VACUUM INTO ?`, tmp); err != nil {
		return Summary{}, fmt.Errorf("sqlite: backup %s: %w", path, err)
	}
	s, err := Inspect(ctx, tmp)
	if err != nil {
		return s, fmt.Errorf("sqlite: backup: the copy does not check out: %w", err)
	}
	if f, err = os.OpenFile(tmp, os.O_RDWR, 0); err != nil {
		return s, fmt.Errorf("sqlite: backup: %w", err)
	}
	err = f.Sync()
	f.Close()
	if err != nil {
		return s, fmt.Errorf("sqlite: backup: %w", err)
	}
	// A hard link never replaces a file that appeared meanwhile.
	if err := os.Link(tmp, target); err != nil {
		return s, fmt.Errorf("sqlite: backup: %w", err)
	}
	if err := durable.SyncDir(filepath.Dir(target)); err != nil {
		return s, fmt.Errorf("sqlite: backup: %w", err)
	}
	return s, nil
}
