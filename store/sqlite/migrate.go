package sqlite

import (
	"context"
	"database/sql"
	"embed"
	"fmt"
	"strings"
	"time"

	"github.com/livehooks/livehooks"
	"github.com/livehooks/livehooks/store/storerow"
)

//go:embed migrations/*.sql
var migrationFS embed.FS

// migrations returns the embedded migrations in version order.
func migrations() ([]storerow.Migration, error) {
	return storerow.Migrations(migrationFS, "migrations")
}

// SchemaVersion is the newest schema version this binary knows.
func SchemaVersion() int { return storerow.LatestVersion(migrations()) }

// migrate applies the pending migrations in one transaction, so a database is
// never left half-migrated, and refuses a database migrated by a newer binary.
func migrate(ctx context.Context, db *sql.DB, c livehooks.Cipher, now time.Time) error {
	ms, err := migrations()
	if err != nil {
		return fmt.Errorf("migrate: %w", err)
	}
	tx, err := db.BeginTx(ctx, nil)
	if err != nil {
		return fmt.Errorf("migrate: %w", err)
	}
	defer tx.Rollback()
	if _, err := tx.ExecContext(ctx, `CREATE TABLE IF NOT EXISTS schema_migrations (
		version    INTEGER PRIMARY KEY,
		name       TEXT NOT NULL,
		applied_at INTEGER NOT NULL
	)`); err != nil {
		return fmt.Errorf("migrate: %w", err)
	}
	var current int
	if err := tx.QueryRowContext(ctx, `SELECT COALESCE(MAX(version), 0) FROM schema_migrations`).Scan(&current); err != nil {
		return fmt.Errorf("migrate: %w", err)
	}
	if latest := len(ms); current > latest {
		var name string
		_ = tx.QueryRowContext(ctx, `SELECT name FROM schema_migrations WHERE version = ?`, current).Scan(&name)
		return newerSchemaError(current, name, latest)
	}
	for _, m := range ms[current:] {
		if _, err := tx.ExecContext(ctx, m.SQL); err != nil {
			return fmt.Errorf("migration %s: %w", m.Name, err)
		}
		if strings.HasSuffix(m.Name, storerow.BindMigration) {
			if err := bindSealed(ctx, tx, c); err != nil {
				return fmt.Errorf("migration %s: %w", m.Name, err)
			}
		}
		if _, err := tx.ExecContext(ctx, `INSERT INTO schema_migrations (version, name, applied_at) VALUES (?, ?, ?)`,
			m.Version, m.Name, micros(now)); err != nil {
			return fmt.Errorf("migration %s: %w", m.Name, err)
		}
	}
	if err := tx.Commit(); err != nil {
		return fmt.Errorf("migrate: %w", err)
	}
	return nil
}

// bindSealed seals the callback keys and storage secrets again, bound to
// their rows (storerow.BindColumns).
func bindSealed(ctx context.Context, tx *sql.Tx, c livehooks.Cipher) error {
	return storerow.BindColumns(c, func(q string) (storerow.Rows, func(), error) {
		rows, err := tx.QueryContext(ctx, q)
		if err != nil {
			return nil, nil, err
		}
		return rows, func() { rows.Close() }, nil
	}, func(q string, args ...any) error {
		_, err := tx.ExecContext(ctx, q, args...)
		return err
	})
}

// newerSchemaError refuses a database that a newer livehooks migrated: this
// binary would misread what it does not know, so the operator must run one
// that knows the schema (rolling back means restoring a backup taken before
// the upgrade).
func newerSchemaError(current int, name string, latest int) error {
	return storerow.NewerSchemaError("sqlite", current, name, latest)
}
