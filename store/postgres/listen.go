package postgres

import (
	"context"
	"fmt"
	"time"

	"github.com/jackc/pgx/v5"
)

// Backoff of Listen's reconnections, and how long it waits for a
// notification before it checks that the connection is still alive.
const (
	listenMinBackoff = 100 * time.Millisecond
	listenMaxBackoff = 10 * time.Second
	listenPing       = 30 * time.Second
)

// listenApplication names Listen's connection in pg_stat_activity.
const listenApplication = "livehooks listen"

// Listen wakes this node when another one needs it: it holds a connection of
// its own LISTENing on the lanes channel and calls wake for each
// notification. Nodes notify when they add deliveries to lanes another node
// owns, or leave lanes free and due (a retry due now, a lane handed back,
// a graceful shutdown); wake should make the dispatcher claim due lanes (a
// delivery.Dispatcher's Wake).
//
// A lost connection is logged and opened again with backoff; wake is also
// called after every (re)connection, for what was missed meanwhile. Listen
// returns nil once ctx is done.
func (db *DB) Listen(ctx context.Context, wake func()) error {
	backoff := listenMinBackoff
	for {
		listening, err := db.listen(ctx, wake)
		if ctx.Err() != nil {
			return nil
		}
		if listening {
			backoff = listenMinBackoff
		}
		db.logger.Warn("postgres: listen for notifications: reconnecting", "channel", notifyChannel, "error", err, "in", backoff)
		select {
		case <-ctx.Done():
			return nil
		case <-time.After(backoff):
		}
		backoff = min(2*backoff, listenMaxBackoff)
	}
}

// listen runs one connection until it fails; listening reports whether it
// got as far as LISTEN.
func (db *DB) listen(ctx context.Context, wake func()) (listening bool, err error) {
	cfg := db.pool.Config().ConnConfig // a copy
	cfg.RuntimeParams["application_name"] = listenApplication
	conn, err := pgx.ConnectConfig(ctx, cfg)
	if err != nil {
		return false, fmt.Errorf("connect: %w", err)
	}
	defer func() {
		cctx, cancel := context.WithTimeout(context.WithoutCancel(ctx), time.Second)
		defer cancel()
		conn.Close(cctx)
	}()
	if _, err := conn.Exec(ctx, "LISTEN "+notifyChannel); err != nil {
		return false, fmt.Errorf("listen: %w", err)
	}
	wake()
	for {
		wctx, cancel := context.WithTimeout(ctx, listenPing)
		_, err := conn.WaitForNotification(wctx)
		cancel()
		switch {
		case err == nil:
			wake()
		case ctx.Err() != nil:
			return true, ctx.Err()
		case wctx.Err() != nil:
			// Quiet for a while: make sure the connection is still there.
			pctx, cancel := context.WithTimeout(ctx, 5*time.Second)
			err := conn.Ping(pctx)
			cancel()
			if err != nil {
				return true, fmt.Errorf("ping: %w", err)
			}
		default:
			return true, fmt.Errorf("wait for notification: %w", err)
		}
	}
}
