package postgres

import (
	"context"
	"fmt"
	"sync"
	"sync/atomic"
	"time"

	"github.com/jackc/pgx/v5"
	"github.com/jackc/pgx/v5/pgxpool"
)

// writeApplication names Write's own connection in pg_stat_activity.
const writeApplication = "livehooks write"

// writeConn is the connection of Write, outside the pool: the group
// committer's transactions come one after the other and find their
// statements prepared on it. A Write that finds it busy (another Write at
// the same time) takes a connection from the pool instead.
type writeConn struct {
	mu       sync.Mutex // held by the Write using conn
	conn     *pgx.Conn
	lastUsed time.Time
	closed   bool
}

// conn is a connection a Write holds: Write's own, or one of the pool's.
type conn struct {
	own    *writeConn
	pooled *pgxpool.Conn
}

func (c conn) Conn() *pgx.Conn {
	if c.own != nil {
		return c.own.conn
	}
	return c.pooled.Conn()
}

// acquire returns Write's own connection if it is free, (re)connecting it
// if needed, else one of the pool's. A connection idle for a while is
// pinged first (a round trip, counted): a connection that the server or the
// network dropped fails there and is replaced, not in the middle of the
// transaction.
func (db *DB) acquire(ctx context.Context) (conn, error) {
	w := &db.write
	if !w.mu.TryLock() {
		c, err := db.pool.Acquire(context.WithValue(ctx, writeAcquire{}, true))
		return conn{pooled: c}, err
	}
	if w.closed {
		w.mu.Unlock()
		return conn{}, fmt.Errorf("store closed")
	}
	if w.conn != nil && !w.conn.IsClosed() && time.Since(w.lastUsed) > time.Second {
		db.roundTrips.Add(1)
		if err := w.conn.Ping(ctx); err != nil {
			w.conn.Close(ctx)
		}
	}
	if w.conn == nil || w.conn.IsClosed() {
		cfg := db.pool.Config().ConnConfig // a copy
		cfg.RuntimeParams["application_name"] = writeApplication
		for _, kv := range writeSettings {
			cfg.RuntimeParams[kv[0]] = kv[1]
		}
		c, err := pgx.ConnectConfig(ctx, cfg)
		if err != nil {
			w.mu.Unlock()
			return conn{}, err
		}
		w.conn = c
	}
	return conn{own: w}, nil
}

// writeSQL is every statement Write may send.
func writeSQL() []string {
	return []string{settingsSQL, checkMatchesSQL, checkRequeuesSQL, writeStreamsSQL, updateStreamsSQL, insertEventsSQL,
		lockSQL, upsertLanesSQL, insertDeliveriesSQL, recordSQL, disableGoneSQL, deferLanesSQL, laneStatesSQL,
		domainConfigsSQL, readStreamSQL, requeueEventsSQL, requeueConfigsSQL, insertFileJobsSQL, finishFileJobsSQL}
}

// openWriteConn connects Write's own connection and prepares Write's
// statements on it, when the store opens: these round trips are the
// connection's, not a transaction's.
func (db *DB) openWriteConn(ctx context.Context) error {
	c, err := db.acquire(ctx)
	if err != nil {
		return fmt.Errorf("write connection: %w", err)
	}
	defer c.release()
	var setup atomic.Int64
	if err := db.prepareCounted(ctx, c.Conn(), &setup, writeSQL()...); err != nil {
		return fmt.Errorf("write connection: %w", err)
	}
	return nil
}

// release gives the connection back.
func (c conn) release() {
	if c.own != nil {
		c.own.lastUsed = time.Now()
		c.own.mu.Unlock()
		return
	}
	c.pooled.Release()
}

// closeWriteConn closes Write's own connection, once the Write using it is
// done.
func (db *DB) closeWriteConn() {
	w := &db.write
	w.mu.Lock()
	defer w.mu.Unlock()
	w.closed = true
	if w.conn != nil {
		ctx, cancel := context.WithTimeout(context.Background(), time.Second)
		defer cancel()
		w.conn.Close(ctx)
	}
}
