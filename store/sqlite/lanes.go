package sqlite

import (
	"context"
	"database/sql"
	"fmt"
	"time"

	"github.com/livehooks/livehooks"
	"github.com/livehooks/livehooks/store/storerow"
)

// ClaimLanes leases to node, until now+lease, up to max lanes that are due
// (next_at <= now) and free or whose lease expired, earliest next_at first.
// Free lanes and expired leases come from two partial indexes, so a claim
// never walks the lanes other nodes are busy with.
func (db *DB) ClaimLanes(ctx context.Context, node string, now time.Time, lease time.Duration, max int) ([]livehooks.Lane, error) {
	if max <= 0 {
		return nil, nil
	}
	var got []storerow.Claimed
	err := db.writeTx(ctx, func(tx *sql.Tx) error {
		rows, err := tx.QueryContext(ctx, claimLanesSQL, node, micros(now.Add(lease)), micros(now), max)
		if err != nil {
			return err
		}
		defer rows.Close()
		for rows.Next() {
			var (
				c      storerow.Claimed
				nextAt int64
			)
			if err := rows.Scan(&c.Lane.Key, &c.Lane.ConfigID, &nextAt); err != nil {
				return err
			}
			c.NextAt = fromMicros(nextAt)
			got = append(got, c)
		}
		return rows.Err()
	})
	if err != nil {
		return nil, fmt.Errorf("sqlite: claim lanes: %w", err)
	}
	return storerow.ClaimOrder(got), nil
}

// RenewLeases extends every lease node holds to until.
func (db *DB) RenewLeases(ctx context.Context, node string, until time.Time) error {
	if _, err := db.write.ExecContext(ctx, renewLeasesSQL, micros(until), node); err != nil {
		return fmt.Errorf("sqlite: renew leases: %w", err)
	}
	return nil
}

// ReleaseLanes frees every lane node holds; their next_at is kept, so due
// lanes are claimable at once.
func (db *DB) ReleaseLanes(ctx context.Context, node string) error {
	if _, err := db.write.ExecContext(ctx, releaseLanesSQL, node); err != nil {
		return fmt.Errorf("sqlite: release lanes: %w", err)
	}
	return nil
}

// LaneDeliveries returns up to limit pending deliveries of lane with ids above
// afterID, in id order, with their events. It reads the partial index of
// pending deliveries by lane: a lane's page costs O(limit) whatever the
// backlog.
func (db *DB) LaneDeliveries(ctx context.Context, lane string, afterID int64, limit int) ([]*livehooks.Delivery, error) {
	rows, err := db.read.QueryContext(ctx, laneDeliveriesSQL, lane, afterID, limitOrDefault(limit))
	if err != nil {
		return nil, fmt.Errorf("sqlite: lane deliveries: %w", err)
	}
	ds, err := scanDeliveries(rows, true)
	if err != nil {
		return nil, fmt.Errorf("sqlite: lane deliveries: %w", err)
	}
	return ds, nil
}
