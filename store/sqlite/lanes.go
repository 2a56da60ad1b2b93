package sqlite

import (
	"context"
	"database/sql"
	"fmt"
	"sort"
	"time"

	"github.com/livehooks/livehooks"
)

// ClaimLanes leases to node, until now+lease, up to max lanes that are due
// (next_at <= now) and free or whose lease expired, earliest next_at first.
// Free lanes and expired leases come from two partial indexes, so a claim
// never walks the lanes other nodes are busy with.
func (db *DB) ClaimLanes(ctx context.Context, node string, now time.Time, lease time.Duration, max int) ([]livehooks.Lane, error) {
	if max <= 0 {
		return nil, nil
	}
	type claimed struct {
		lane   livehooks.Lane
		nextAt int64
	}
	var got []claimed
	err := db.writeTx(ctx, func(tx *sql.Tx) error {
		rows, err := tx.QueryContext(ctx, claimLanesSQL, node, micros(now.Add(lease)), micros(now), max)
		if err != nil {
			return err
		}
		defer rows.Close()
		for rows.Next() {
			var c claimed
			if err := rows.Scan(&c.lane.Key, &c.lane.ConfigID, &c.nextAt); err != nil {
				return err
			}
			got = append(got, c)
		}
		return rows.Err()
	})
	if err != nil {
		return nil, fmt.Errorf("sqlite: claim lanes: %w", err)
	}
	sort.Slice(got, func(i, j int) bool {
		if got[i].nextAt != got[j].nextAt {
			return got[i].nextAt < got[j].nextAt
		}
		return got[i].lane.Key < got[j].lane.Key
	})
	lanes := make([]livehooks.Lane, len(got))
	for i, c := range got {
		lanes[i] = c.lane
	}
	return lanes, nil
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
