package postgres

import (
	"context"
	"embed"
	"fmt"
	"strings"
	"time"

	"github.com/jackc/pgx/v5"
	"github.com/jackc/pgx/v5/pgxpool"

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

// migrationLock is the advisory lock key (per database) that serializes the
// migrations of nodes starting at the same time.
const migrationLock int64 = 0x6c69766568_6f6f6b // "livehook"

// migrate applies the pending migrations in one transaction, so a database is
// never left half-migrated, and refuses a database migrated by a newer binary.
// The transaction holds an advisory lock: a node starting while another
// migrates waits for it, then finds nothing left to do.
func migrate(ctx context.Context, pool *pgxpool.Pool, c livehooks.Cipher, now time.Time) error {
	ms, err := migrations()
	if err != nil {
		return fmt.Errorf("migrate: %w", err)
	}
	tx, err := pool.Begin(ctx)
	if err != nil {
		return fmt.Errorf("migrate: %w", err)
	}
	defer tx.Rollback(context.WithoutCancel(ctx))
	if _, err := tx.Exec(ctx, `SELECT pg_advisory_xact_lock($1)`, migrationLock); err != nil {
		return fmt.Errorf("migrate: lock: %w", err)
	}
	if _, err := tx.Exec(ctx, `CREATE TABLE IF NOT EXISTS schema_migrations (
		version    integer PRIMARY KEY,
		name       text NOT NULL,
		applied_at timestamptz NOT NULL
	)`); err != nil {
		return fmt.Errorf("migrate: %w", err)
	}
	var current int
	if err := tx.QueryRow(ctx, `SELECT COALESCE(MAX(version), 0) FROM schema_migrations`).Scan(&current); err != nil {
		return fmt.Errorf("migrate: %w", err)
	}
	if latest := len(ms); current > latest {
		var name string
		_ = tx.QueryRow(ctx, `SELECT name FROM schema_migrations WHERE version = $1`, current).Scan(&name)
		return newerSchemaError(current, name, latest)
	}
	for _, m := range ms[current:] {
		// Without arguments pgx sends the file as one simple query: several
		// statements, in this transaction.
		if _, err := tx.Exec(ctx, m.SQL); err != nil {
			return fmt.Errorf("migration %s: %w", m.Name, err)
		}
		if strings.HasSuffix(m.Name, storerow.BindMigration) {
			if err := bindSealed(ctx, tx, c); err != nil {
				return fmt.Errorf("migration %s: %w", m.Name, err)
			}
		}
		if _, err := tx.Exec(ctx, `INSERT INTO schema_migrations (version, name, applied_at) VALUES ($1, $2, $3)`,
			m.Version, m.Name, ts(now)); err != nil {
			return fmt.Errorf("migration %s: %w", m.Name, err)
		}
	}
	if err := tx.Commit(ctx); err != nil {
		return fmt.Errorf("migrate: %w", err)
	}
	return nil
}

// bindSealed seals the callback keys and storage secrets again, bound to
// their rows (storerow.BindColumns).
func bindSealed(ctx context.Context, tx pgx.Tx, c livehooks.Cipher) error {
	return storerow.BindColumns(c, func(q string) (storerow.Rows, func(), error) {
		rows, err := tx.Query(ctx, q)
		if err != nil {
			return nil, nil, err
		}
		return rows, rows.Close, nil
	}, func(q string, args ...any) error {
		_, err := tx.Exec(ctx, q, args...)
		return err
	})
}

// newerSchemaError refuses a database that a newer livehooks migrated: this
// binary would misread what it does not know, so the operator must run one
// that knows the schema (rolling back means restoring a backup taken before
// the upgrade).
func newerSchemaError(current int, name string, latest int) error {
	return storerow.NewerSchemaError("postgres", current, name, latest)
}
