package sqlite

import (
	"context"
	"database/sql"
	"errors"
)

// CheckSealed opens, with the store's cipher, one sealed value of each kind
// the store keeps (a callback key, a storage secret). It fails, naming the
// row, when the cipher is not the one they were sealed with — a restored or
// migrated store served with another master key — before anything is sent
// with a key that cannot be read.
func (db *DB) CheckSealed(ctx context.Context) error {
	if _, err := db.scanCallback(db.read.QueryRowContext(ctx, `SELECT `+callbackColumns+` FROM callbacks
		WHERE key_sealed IS NOT NULL ORDER BY id LIMIT 1`)); err != nil && !errors.Is(err, sql.ErrNoRows) {
		return err
	}
	if _, err := db.scanDomain(db.read.QueryRowContext(ctx, `SELECT `+domainColumns+` FROM domains
		WHERE storage_secret IS NOT NULL ORDER BY project_id, publish_domain LIMIT 1`)); err != nil && !errors.Is(err, sql.ErrNoRows) {
		return err
	}
	return nil
}
