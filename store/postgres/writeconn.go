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

// maxWriteConns caps Write's own connections: one per group commit in
// flight (groupcommit.Options.Concurrent, at most 8).
const maxWriteConns = 8

// writeConns are Write's own connections, outside the pool: the group
// committer's transactions find their statements prepared on them, and their
// round trips are only the transactions'. There are as many as Writes have
// run at once (one, unless the committer runs several transactions in
// flight), up to maxWriteConns; a Write that finds them all busy past that
// takes a connection from the pool.
type writeConns struct {
	mu     sync.Mutex // guards conns and closed
	conns  []*writeConn
	closed bool
}

// writeConn is one of Write's own connections.
type writeConn struct {
	mu       sync.Mutex // held by the Write using conn
	conn     *pgx.Conn
	lastUsed time.Time
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

// free locks and returns a free connection of Write's own, a new one if
// all are busy and there may be more; nil when there is none.
func (ws *writeConns) free() (*writeConn, error) {
	ws.mu.Lock()
	defer ws.mu.Unlock()
	if ws.closed {
		return nil, fmt.Errorf("store closed")
	}
	for _, w := range ws.conns {
		if w.mu.TryLock() {
			return w, nil
		}
	}
	if len(ws.conns) == maxWriteConns {
		return nil, nil
	}
	w := &writeConn{}
	w.mu.Lock()
	ws.conns = append(ws.conns, w)
	return w, nil
}

// acquire returns a free connection of Write's own, (re)connecting it if
// needed, else one of the pool's. A connection idle for a while is pinged
// first (a round trip, counted): a connection that the server or the
// network dropped fails there and is replaced, not in the middle of the
// transaction.
func (db *DB) acquire(ctx context.Context) (conn, error) {
	w, err := db.writes.free()
	if err != nil {
		return conn{}, err
	}
	if w == nil {
		c, err := db.pool.Acquire(context.WithValue(ctx, writeAcquire{}, true))
		return conn{pooled: c}, err
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
		// Its statements are prepared now, in round trips of the
		// connection's, not of the transaction that asked for it.
		var setup atomic.Int64
		if err := db.prepareCounted(ctx, c, &setup, writeSQL()...); err != nil {
			c.Close(ctx)
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

// openWriteConn connects Write's first own connection, with Write's
// statements prepared, when the store opens.
func (db *DB) openWriteConn(ctx context.Context) error {
	c, err := db.acquire(ctx)
	if err != nil {
		return fmt.Errorf("write connection: %w", err)
	}
	c.release()
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

// closeWriteConn closes Write's own connections, each once the Write using
// it is done.
func (db *DB) closeWriteConn() {
	ws := &db.writes
	ws.mu.Lock()
	ws.closed = true
	conns := ws.conns
	ws.mu.Unlock()
	for _, w := range conns {
		w.mu.Lock()
		if w.conn != nil {
			ctx, cancel := context.WithTimeout(context.Background(), time.Second)
			w.conn.Close(ctx)
			cancel()
		}
		w.mu.Unlock()
	}
}
