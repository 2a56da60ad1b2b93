package postgres

import (
	"context"
	"errors"
	"fmt"

	"github.com/jackc/pgx/v5"
)

// CheckSealed opens, with the store's cipher, one sealed value of each kind
// the store keeps (a callback key, a storage secret). It fails, naming the
// row, when the cipher is not the one they were sealed with — a migrated or
// restored store served with another master key — before anything is sent
// with a key that cannot be read.
func (db *DB) CheckSealed(ctx context.Context) error {
	if _, err := db.scanCallback(db.pool.QueryRow(ctx, `SELECT `+callbackColumns+` FROM callbacks
		WHERE key_sealed IS NOT NULL ORDER BY id LIMIT 1`)); err != nil && !errors.Is(err, pgx.ErrNoRows) {
		return err
	}
	if _, err := db.scanDomain(db.pool.QueryRow(ctx, `SELECT `+domainColumns+` FROM domains
		WHERE storage_secret IS NOT NULL ORDER BY project_id, publish_domain LIMIT 1`)); err != nil && !errors.Is(err, pgx.ErrNoRows) {
		return err
	}
	return nil
}

// LiveNodes returns the nodes whose last heartbeat has not expired: nodes
// serving this database now, which a tool that copies the store must not
// run beside.
func (db *DB) LiveNodes(ctx context.Context) ([]string, error) {
	rows, err := db.pool.Query(ctx, `SELECT node FROM nodes WHERE expires_at > now() ORDER BY node`)
	if err != nil {
		return nil, fmt.Errorf("postgres: live nodes: %w", err)
	}
	nodes, err := pgx.CollectRows(rows, pgx.RowTo[string])
	if err != nil {
		return nil, fmt.Errorf("postgres: live nodes: %w", err)
	}
	return nodes, nil
}
