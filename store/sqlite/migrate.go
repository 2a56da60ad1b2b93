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
func SchemaVersion() int {
	ms, err := migrations()
	if err != nil || len(ms) == 0 {
		return 0
	}
	return ms[len(ms)-1].Version
}

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
// their rows (storerow.Bind).
func bindSealed(ctx context.Context, tx *sql.Tx, c livehooks.Cipher) error {
	for _, col := range storerow.SealedColumns {
		var (
			values []storerow.Sealed
			keys   [][2]string
		)
		rows, err := tx.QueryContext(ctx, fmt.Sprintf(`SELECT %s, project_id, %s FROM %s WHERE %[1]s IS NOT NULL`, col.Column, col.Key, col.Table))
		if err != nil {
			return err
		}
		for rows.Next() {
			var v storerow.Sealed
			var k [2]string
			if err := rows.Scan(&v.Value, &k[0], &k[1]); err != nil {
				rows.Close()
				return err
			}
			v.AD = col.AD(k[0], k[1])
			values, keys = append(values, v), append(keys, k)
		}
		rows.Close()
		if err := rows.Err(); err != nil {
			return err
		}
		if err := storerow.Bind(c, values); err != nil {
			return fmt.Errorf("%s.%s: %w", col.Table, col.Column, err)
		}
		update := fmt.Sprintf(`UPDATE %s SET %s = ? WHERE project_id = ? AND %s = ?`, col.Table, col.Column, col.Key)
		for i, k := range keys {
			if _, err := tx.ExecContext(ctx, update, values[i].Value, k[0], k[1]); err != nil {
				return err
			}
		}
	}
	return nil
}

// newerSchemaError refuses a database that a newer livehooks migrated: this
// binary would misread what it does not know, so the operator must run one
// that knows the schema (rolling back means restoring a backup taken before
// the upgrade).
func newerSchemaError(current int, name string, latest int) error {
	if name != "" {
		name = " (" + name + ")"
	}
	return fmt.Errorf("database schema version %d%s is newer than this binary's (%d): it was migrated by a newer livehooks; run a livehooks whose \"livehooks version\" shows sqlite schema %d or more", current, name, latest, current)
}
