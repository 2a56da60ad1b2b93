package postgres

import (
	"context"
	"fmt"
	"time"

	"github.com/jackc/pgx/v5"

	"github.com/livehooks/livehooks"
	"github.com/livehooks/livehooks/store/storerow"
)

// claimLanesSQL leases due lanes that are free or whose lease expired, from
// two partial indexes, so that a claim never walks the lanes live nodes are
// busy with. SKIP LOCKED passes over lanes that another transaction holds (a
// node claiming them, or enqueuing into them): concurrent claims by several
// nodes never wait for each other nor take the same lane.
const claimLanesSQL = `WITH free AS (
		SELECT lane, next_at FROM lanes WHERE owner IS NULL AND next_at <= $3
		ORDER BY next_at LIMIT $4 FOR UPDATE SKIP LOCKED
	), expired AS (
		SELECT lane, next_at FROM lanes WHERE owner IS NOT NULL AND lease_until < $3 AND next_at <= $3
		ORDER BY lease_until LIMIT $4 FOR UPDATE SKIP LOCKED
	), picked AS (
		SELECT lane FROM (SELECT lane, next_at FROM free UNION ALL SELECT lane, next_at FROM expired) due
		ORDER BY next_at, lane LIMIT $4
	)
	UPDATE lanes SET owner = $1, lease_until = $2 FROM picked WHERE lanes.lane = picked.lane
	RETURNING lanes.lane, lanes.config_id, lanes.next_at`

// ClaimLanes leases to node, until now+lease, up to max lanes that are due
// (next_at <= now) and free or whose lease expired, earliest next_at first.
func (db *DB) ClaimLanes(ctx context.Context, node string, now time.Time, lease time.Duration, max int) ([]livehooks.Lane, error) {
	if max <= 0 {
		return nil, nil
	}
	if !validText(node) {
		return nil, livehooks.Errorf(livehooks.EINVALID, "invalid node id")
	}
	return db.claim(ctx, claimLanesSQL, node, ts(now.Add(lease)), ts(now), max)
}

// claim runs a claim statement whose arguments are the node, the end of the
// lease, now and max (then any others), and returns the lanes it leased,
// earliest next_at first. The statement is its own transaction, one round
// trip: it waits for no lock (SKIP LOCKED), so it needs neither
// writeTx's lock timeout nor a BEGIN and a COMMIT of its own.
//
// It reads the lanes without bitmap scans. Lanes come and go with their
// deliveries, and each claim, release and drained lane leaves index entries
// of dead row versions until a vacuum, up to a minute away: an index scan
// marks those it meets as dead, and the next scans skip them, where a bitmap
// scan visits every one of them again at each claim (thousands under load,
// milliseconds of the server per claim).
func (db *DB) claim(ctx context.Context, sql string, args ...any) ([]livehooks.Lane, error) {
	var got []storerow.Claimed
	err := db.retry(ctx, func() error {
		got = got[:0]
		b := &pgx.Batch{}
		b.Queue(`SET LOCAL enable_bitmapscan = off`)
		b.Queue(sql, args...).Query(func(rows pgx.Rows) error {
			for rows.Next() {
				var c storerow.Claimed
				if err := rows.Scan(&c.Lane.Key, &c.Lane.ConfigID, &c.NextAt); err != nil {
					return err
				}
				got = append(got, c)
			}
			return rows.Err()
		})
		return db.pool.SendBatch(ctx, b).Close()
	})
	if err != nil {
		return nil, fmt.Errorf("postgres: claim lanes: %w", err)
	}
	return storerow.ClaimOrder(got), nil
}

// ownedSQL locks node's lanes in key order, the order Enqueue locks lanes
// in, which makes deadlocks with enqueuing transactions rarer.
const ownedSQL = `SELECT lane FROM lanes WHERE owner = $1 ORDER BY lane FOR UPDATE`

// renewSQL extends the leases of node's lanes that no other transaction
// holds. Waiting for those would put the renewal, which touches every lane
// of the node, in a lock cycle with nearly any batch of enqueues and
// results; a renewal that waits past the lease loses the lanes.
const renewSQL = `UPDATE lanes SET lease_until = $2 WHERE lane IN (
	SELECT lane FROM lanes WHERE owner = $1 AND lease_until < $2 FOR UPDATE SKIP LOCKED)`

// RenewLeases extends every lease node holds to until. Lanes that other
// transactions hold at that moment (for the few milliseconds of a commit)
// are renewed by the next rounds, a moment later, until none is left or ctx
// ends.
func (db *DB) RenewLeases(ctx context.Context, node string, until time.Time) error {
	if !validText(node) {
		return livehooks.Errorf(livehooks.EINVALID, "invalid node id")
	}
	until = ts(until)
	for pause := time.Millisecond; ; pause = min(2*pause, 50*time.Millisecond) {
		if _, err := db.pool.Exec(ctx, renewSQL, node, until); err != nil {
			return fmt.Errorf("postgres: renew leases: %w", err)
		}
		var left bool
		if err := db.pool.QueryRow(ctx, `SELECT EXISTS (SELECT 1 FROM lanes WHERE owner = $1 AND lease_until < $2)`,
			node, until).Scan(&left); err != nil {
			return fmt.Errorf("postgres: renew leases: %w", err)
		}
		if !left {
			return nil
		}
		select {
		case <-ctx.Done():
			return fmt.Errorf("postgres: renew leases: some lanes stayed busy: %w", ctx.Err())
		case <-time.After(pause):
		}
	}
}

// ReleaseLanes frees every lane node holds; their next_at is kept, so due
// lanes are claimable at once, and the other nodes are woken to claim them,
// each its lanes' home among the nodes still live (a node releases its
// lanes before it leaves: no home is recorded).
func (db *DB) ReleaseLanes(ctx context.Context, node string) error {
	if !validText(node) {
		return livehooks.Errorf(livehooks.EINVALID, "invalid node id")
	}
	now := ts(db.clock.Now())
	err := db.writeTx(ctx, func(tx pgx.Tx) error {
		// A data-modifying WITH runs to completion whatever the query reads.
		_, err := tx.Exec(ctx, `WITH released AS (
				UPDATE lanes SET owner = NULL, lease_until = NULL, home = ''
				WHERE lane = ANY (ARRAY(`+ownedSQL+`)) AND owner = $1
				RETURNING next_at
			)
			SELECT pg_notify($2, $1) WHERE EXISTS (SELECT 1 FROM released WHERE next_at <= $3)`,
			node, notifyChannel, now)
		return err
	})
	if err != nil {
		return fmt.Errorf("postgres: release lanes: %w", err)
	}
	return nil
}

const laneDeliveriesSQL = `SELECT ` + deliveryColumns + `, ` + eventColumns + `
	FROM deliveries d JOIN events e ON e.pk = d.event_pk
	WHERE d.lane = $1 AND d.status = 'pending' AND d.id > $2
	ORDER BY d.id LIMIT $3`

// LaneDeliveries returns up to limit pending deliveries of lane with ids
// above afterID, in id order, with their events, from the partial index of
// pending deliveries by lane: a page costs O(limit) whatever the backlog.
func (db *DB) LaneDeliveries(ctx context.Context, lane string, afterID int64, limit int) ([]*livehooks.Delivery, error) {
	if !validText(lane) {
		return []*livehooks.Delivery{}, nil
	}
	rows, err := db.pool.Query(ctx, laneDeliveriesSQL, lane, afterID, limitOrDefault(limit))
	if err != nil {
		return nil, fmt.Errorf("postgres: lane deliveries: %w", err)
	}
	ds, err := scanDeliveries(rows, true)
	if err != nil {
		return nil, fmt.Errorf("postgres: lane deliveries: %w", err)
	}
	return ds, nil
}
