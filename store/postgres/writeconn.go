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

// writeConn is one of Write's two connections, outside the pool: the group
// committer's transactions come one after the other, at most two in flight
// (pipeline.go), and find their statements prepared on them. A Write that
// finds both busy (more Writes at the same time) takes a connection from the
// pool instead.
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

// acquire returns one of Write's own connections if one is free,
// (re)connecting it if needed, else one of the pool's. A connection idle for a while is
// pinged first (a round trip, counted): a connection that the server or the
// network dropped fails there and is replaced, not in the middle of the
// transaction.
func (db *DB) acquire(ctx context.Context) (conn, error) {
	var w *writeConn
	for i := range db.writes {
		if db.writes[i].mu.TryLock() {
			w = &db.writes[i]
			break
		}
	}
	if w == nil {
		c, err := db.pool.Acquire(context.WithValue(ctx, writeAcquire{}, true))
		return conn{pooled: c}, err
	}
	if w.closed {
		w.mu.Unlock()
		return conn{}, fmt.Errorf("store closed")
	}
	if w.conn != nil && !w.conn.IsClosed() && time.Since(w.lastUsed) > time.Second {
		db.roundTrips.Add(1)
		start := time.Now()
		if err := w.conn.Ping(ctx); err != nil {
			w.conn.Close(ctx)
		} else {
			db.pipe.pinged(time.Since(start))
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
	return []string{settingsSQL, chainStartSQL, chainNextSQL, checkMatchesSQL, checkRequeuesSQL, writeStreamsSQL, updateStreamsSQL, insertEventsSQL,
		lockSQL, upsertLanesSQL, insertDeliveriesSQL, recordSQL, disableGoneSQL, deferLanesSQL, laneStatesSQL,
		domainConfigsSQL, readStreamSQL, requeueEventsSQL, requeueConfigsSQL, insertFileJobsSQL, finishFileJobsSQL}
}

// openWriteConns connects Write's own connections and prepares Write's
// statements on them, when the store opens: these round trips are the
// connections', not a transaction's.
func (db *DB) openWriteConns(ctx context.Context) error {
	var held []conn
	defer func() {
		for _, c := range held {
			c.release()
		}
	}()
	for range db.writes {
		c, err := db.acquire(ctx)
		if err != nil {
			return fmt.Errorf("write connection: %w", err)
		}
		held = append(held, c)
		var setup atomic.Int64
		if err := db.prepareCounted(ctx, c.Conn(), &setup, writeSQL()...); err != nil {
			return fmt.Errorf("write connection: %w", err)
		}
		// The round trip to the server, for pipe.Ready: the quickest of a
		// few pings.
		var least time.Duration
		for i := range 3 {
			start := time.Now()
			if err := c.Conn().Ping(ctx); err != nil {
				return fmt.Errorf("write connection: %w", err)
			}
			if took := time.Since(start); i == 0 || took < least {
				least = took
			}
		}
		db.pipe.pinged(least)
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

// closeWriteConns closes Write's own connections, once the Writes using
// them are done.
func (db *DB) closeWriteConns() {
	for i := range db.writes {
		w := &db.writes[i]
		w.mu.Lock()
		w.closed = true
		if w.conn != nil {
			ctx, cancel := context.WithTimeout(context.Background(), time.Second)
			w.conn.Close(ctx)
			cancel()
		}
		w.mu.Unlock()
	}
}
