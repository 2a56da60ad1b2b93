package sqlite

import (
	"context"
	"fmt"
	"sync"
	"time"

	"github.com/livehooks/livehooks"
	"github.com/livehooks/livehooks/store/storerow"
)

// Lanes live in memory (migration 0008): one process opens a store's file,
// so the lanes' counts, due times and leases need no table that every group
// commit keeps in step with the deliveries. A transaction notes what it does
// to lanes (laneOp) and the ops are applied when it has committed, under
// commitMu, so the lanes follow the deliveries' commits in their order; the
// lanes view derives them from the pending deliveries when the store opens.

// memLane is a lane: a (config, stream) with pending deliveries.
type memLane struct {
	config     string
	pending    int
	nextAt     int64 // due at (Unix µs)
	owned      bool  // a node holds the lease: owner, until leaseUntil
	owner      string
	leaseUntil int64
}

// free ends the lane's lease and makes it due at at.
func (l *memLane) free(at int64) {
	l.nextAt, l.owned, l.owner, l.leaseUntil = at, false, "", 0
}

// laneTable is the store's lanes. A lane in it has pending deliveries: its
// zero value is a lane that does not exist.
type laneTable struct {
	mu      sync.Mutex
	m       map[string]*memLane
	pending int64 // the sum of every lane's pending
}

// load fills the table from the lanes view: every lane free, due when its
// head delivery is.
func (lt *laneTable) load(ctx context.Context, db *DB) error {
	rows, err := db.write.QueryContext(ctx, loadLanesSQL)
	if err != nil {
		return fmt.Errorf("sqlite: load lanes: %w", err)
	}
	defer rows.Close()
	lt.mu.Lock()
	defer lt.mu.Unlock()
	lt.m, lt.pending = map[string]*memLane{}, 0
	for rows.Next() {
		var (
			key string
			l   memLane
		)
		if err := rows.Scan(&key, &l.config, &l.pending, &l.nextAt); err != nil {
			return fmt.Errorf("sqlite: load lanes: %w", err)
		}
		lt.m[key] = &l
		lt.pending += int64(l.pending)
	}
	if err := rows.Err(); err != nil {
		return fmt.Errorf("sqlite: load lanes: %w", err)
	}
	return nil
}

type laneOpKind int

const (
	// laneAdd counts n new pending deliveries; a lane that did not exist is
	// created owned by node until until, due at at.
	laneAdd laneOpKind = iota
	// laneSettle takes n settled deliveries off the count; the lane goes
	// with its last one.
	laneSettle
	// laneRetry frees the lane until at (its head's next attempt).
	laneRetry
	// laneDefer frees the lane until at if node holds it.
	laneDefer
	// laneDropConfig deletes every lane of config (its pending deliveries
	// were failed or deleted).
	laneDropConfig
)

// laneOp is one change a transaction made to the lanes, applied when it has
// committed.
type laneOp struct {
	kind   laneOpKind
	lane   string
	config string
	node   string
	n      int
	at     int64
	until  int64
}

// apply runs ops in order; the caller holds lt.mu.
func (lt *laneTable) apply(ops []laneOp) {
	for _, op := range ops {
		switch op.kind {
		case laneAdd:
			l := lt.m[op.lane]
			if l == nil {
				l = &memLane{config: op.config, nextAt: op.at, owned: true, owner: op.node, leaseUntil: op.until}
				lt.m[op.lane] = l
			}
			l.pending += op.n
			lt.pending += int64(op.n)
		case laneSettle:
			l := lt.m[op.lane]
			if l == nil {
				continue
			}
			n := min(op.n, l.pending)
			l.pending -= n
			lt.pending -= int64(n)
			if l.pending <= 0 {
				delete(lt.m, op.lane)
			}
		case laneRetry:
			if l := lt.m[op.lane]; l != nil {
				l.free(op.at)
			}
		case laneDefer:
			if l := lt.m[op.lane]; l != nil && l.owned && l.owner == op.node {
				l.free(op.at)
			}
		case laneDropConfig:
			for k, l := range lt.m {
				if l.config == op.config {
					lt.pending -= int64(l.pending)
					delete(lt.m, k)
				}
			}
		}
	}
}

// ClaimLanes leases to node, until now+lease, up to max lanes that are due
// (next_at <= now) and free or whose lease expired, earliest due first
// (then by key).
func (db *DB) ClaimLanes(ctx context.Context, node string, now time.Time, lease time.Duration, max int) ([]livehooks.Lane, error) {
	if max <= 0 {
		return nil, nil
	}
	if err := ctx.Err(); err != nil {
		return nil, fmt.Errorf("sqlite: claim lanes: %w", err)
	}
	nowUS, until := micros(now), micros(now.Add(lease))
	lt := &db.lanes
	lt.mu.Lock()
	defer lt.mu.Unlock()
	var got []storerow.Claimed
	for k, l := range lt.m {
		if l.nextAt <= nowUS && (!l.owned || l.leaseUntil < nowUS) {
			got = append(got, storerow.Claimed{Lane: livehooks.Lane{Key: k, ConfigID: l.config}, NextAt: fromMicros(l.nextAt)})
		}
	}
	out := storerow.ClaimOrder(got)
	out = out[:min(len(out), max)]
	for _, c := range out {
		l := lt.m[c.Key]
		l.owned, l.owner, l.leaseUntil = true, node, until
	}
	return out, nil
}

// RenewLeases extends every lease node holds to until.
func (db *DB) RenewLeases(ctx context.Context, node string, until time.Time) error {
	if err := ctx.Err(); err != nil {
		return fmt.Errorf("sqlite: renew leases: %w", err)
	}
	u := micros(until)
	db.lanes.mu.Lock()
	defer db.lanes.mu.Unlock()
	for _, l := range db.lanes.m {
		if l.owned && l.owner == node {
			l.leaseUntil = u
		}
	}
	return nil
}

// ReleaseLanes frees every lane node holds; their due times are kept, so
// due lanes are claimable at once.
func (db *DB) ReleaseLanes(ctx context.Context, node string) error {
	if err := ctx.Err(); err != nil {
		return fmt.Errorf("sqlite: release lanes: %w", err)
	}
	db.lanes.mu.Lock()
	defer db.lanes.mu.Unlock()
	for _, l := range db.lanes.m {
		if l.owned && l.owner == node {
			l.free(l.nextAt)
		}
	}
	return nil
}

// PendingCount returns the number of pending deliveries, counted by the
// lanes.
func (db *DB) PendingCount(ctx context.Context) (int64, error) {
	if err := ctx.Err(); err != nil {
		return 0, fmt.Errorf("sqlite: pending count: %w", err)
	}
	db.lanes.mu.Lock()
	defer db.lanes.mu.Unlock()
	return db.lanes.pending, nil
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

// snapshot returns the states of keys; the caller holds lt.mu.
func (lt *laneTable) snapshot(keys map[string]memLane) {
	for k := range keys {
		if l := lt.m[k]; l != nil {
			keys[k] = *l
		} else {
			keys[k] = memLane{}
		}
	}
}
