package postgres

import (
	"context"
	"errors"
	"fmt"
	"log/slog"
	"math/rand/v2"
	"strings"
	"sync/atomic"
	"time"
	"unicode/utf8"

	"github.com/jackc/pgx/v5"
	"github.com/jackc/pgx/v5/pgconn"
	"github.com/jackc/pgx/v5/pgxpool"

	"github.com/livehooks/livehooks"
	"github.com/livehooks/livehooks/store/storerow"
)

// DefaultLease is how long a node owns a lane it creates at Enqueue before
// another node may take it over, unless Options.Lease says otherwise.
const DefaultLease = 30 * time.Second

// Options configure Open.
type Options struct {
	// URL is the PostgreSQL connection string (postgres://user@host/db?…);
	// pgxpool's pool_* parameters are honoured.
	URL string
	// Cipher encrypts callback keys and storage secrets at rest. Required.
	Cipher livehooks.Cipher
	// Clock tells the time where the caller gives none (DisableCallback,
	// migrations, whether a released lane is due). Default: the system clock.
	Clock livehooks.Clock
	// Lease is how long the lease of a lane created by Enqueue or Requeue
	// lasts. Default: DefaultLease.
	Lease time.Duration
	// MaxConns caps the connection pool (Listen uses one more connection of
	// its own). Default: the URL's pool_max_conns, else pgxpool's default.
	MaxConns int32
	// Logger receives what Listen cannot return: lost connections and
	// reconnections. Default: discard.
	Logger *slog.Logger
	// AdvertiseURL is the base URL (http://host:port) at which the other
	// nodes reach this node's API, published with its heartbeat; "" for
	// none: the others then ingest what they get for this node themselves.
	AdvertiseURL string
}

// DB is a livehooks.Store on a PostgreSQL database that several nodes may
// share.
type DB struct {
	pool   *pgxpool.Pool
	cipher livehooks.Cipher
	clock  livehooks.Clock
	lease  time.Duration
	logger *slog.Logger
	url    string                   // Options.AdvertiseURL
	view   atomic.Pointer[nodeView] // the last heartbeat's live nodes (nodes.go)

	retries    atomic.Int64 // transactions run again after a lock conflict (tests read it)
	roundTrips atomic.Int64 // network round trips of Write (WriteRoundTrips)
	writes     writeConns   // Write's own connections

	// What Write reads from memory instead of the database; see cache.go.
	configs storerow.Cache[domainKey, domainConfigs]
	streams storerow.Cache[livehooks.StreamKey, cachedStream]
	// allStreams is 1 + the generation of streams while it holds every
	// stream that had a state when the store opened, 0 otherwise.
	allStreams atomic.Uint64
}

var _ livehooks.Store = (*DB)(nil)

// Open connects to the database at opts.URL, applies pending migrations (one
// node at a time: they run under an advisory lock) and returns the store. It
// refuses a database whose schema is newer than this binary.
func Open(ctx context.Context, opts Options) (*DB, error) {
	if opts.URL == "" {
		return nil, errors.New("postgres: open: Options.URL is required")
	}
	if opts.Cipher == nil {
		return nil, errors.New("postgres: open: Options.Cipher is required (keys are never stored in plaintext)")
	}
	cfg, err := pgxpool.ParseConfig(opts.URL)
	if err != nil {
		// The parse error may repeat the URL, password included.
		return nil, errors.New("postgres: open: invalid database URL")
	}
	if opts.MaxConns > 0 {
		cfg.MaxConns = opts.MaxConns
	}
	db := &DB{cipher: opts.Cipher, clock: opts.Clock, lease: opts.Lease, logger: opts.Logger, url: opts.AdvertiseURL}
	if db.clock == nil {
		db.clock = livehooks.SystemClock{}
	}
	if db.lease <= 0 {
		db.lease = DefaultLease
	}
	if db.logger == nil {
		db.logger = slog.New(slog.DiscardHandler)
	}
	// A connection idle for a while is pinged when acquired: a round trip
	// that a Write pays for.
	cfg.ShouldPing = func(ctx context.Context, p pgxpool.ShouldPingParams) bool {
		ping := p.IdleDuration > time.Second
		if ping && ctx.Value(writeAcquire{}) != nil {
			db.roundTrips.Add(1)
		}
		return ping
	}
	where := cfg.ConnConfig.Host + "/" + cfg.ConnConfig.Database
	if db.pool, err = pgxpool.NewWithConfig(ctx, cfg); err != nil {
		return nil, fmt.Errorf("postgres: open %s: %w", where, err)
	}
	if err := migrate(ctx, db.pool, db.cipher, db.clock.Now()); err != nil {
		db.pool.Close()
		return nil, fmt.Errorf("postgres: open %s: %w", where, err)
	}
	if err := db.loadStreams(ctx); err != nil {
		db.pool.Close()
		return nil, fmt.Errorf("postgres: open %s: %w", where, err)
	}
	if err := db.openWriteConn(ctx); err != nil {
		db.pool.Close()
		return nil, fmt.Errorf("postgres: open %s: %w", where, err)
	}
	return db, nil
}

// Ping checks that the database answers.
func (db *DB) Ping(ctx context.Context) error {
	if err := db.pool.Ping(ctx); err != nil {
		return fmt.Errorf("postgres: ping: %w", err)
	}
	return nil
}

// rttPings is how many pings RoundTripTime takes.
const rttPings = 10

// RoundTripTime returns the shortest of ten pings on one connection: how far
// the database server is. The shortest, not a typical one: a busy machine or
// server only ever adds to a round trip. Nodes started together on the
// bench's two cores, each taking the median of five pings of a local server,
// found 0.5 ms once in nine starts, and that node then ran four group
// commits in flight, as for a distant database (twice the transactions, each
// a third of the size, for the same deliveries).
func (db *DB) RoundTripTime(ctx context.Context) (time.Duration, error) {
	c, err := db.pool.Acquire(ctx)
	if err != nil {
		return 0, fmt.Errorf("postgres: ping: %w", err)
	}
	defer c.Release()
	var shortest time.Duration
	for i := range rttPings {
		start := time.Now()
		if err := c.Ping(ctx); err != nil {
			return 0, fmt.Errorf("postgres: ping: %w", err)
		}
		if rtt := time.Since(start); i == 0 || rtt < shortest {
			shortest = rtt
		}
	}
	return shortest, nil
}

// Close closes Write's connection and the pool, waiting for connections in
// use to be released. Listen stops with its own context.
func (db *DB) Close() error {
	db.closeWriteConn()
	db.pool.Close()
	return nil
}

// Lock waits of write transactions. Lane rows are locked in the order each
// transaction meets them (that is what orders a lane's deliveries across
// nodes), so two nodes' batches can deadlock. PostgreSQL finds a deadlock
// only after deadlock_timeout (1 s by default, settable by superusers
// only), while every transaction waiting behind it stalls; a write gives up
// waiting after lockTimeout instead, and runs again.
const (
	lockTimeout   = 200 * time.Millisecond
	maxTxAttempts = 20
)

var beginWrite = fmt.Sprintf("BEGIN; SET LOCAL lock_timeout = %d", lockTimeout.Milliseconds())

// writeTx runs fn in a transaction and commits it. When PostgreSQL aborts
// the transaction for a deadlock, a serialization failure or a lock wait
// past lockTimeout, writeTx runs it again from the start, after a short
// random pause: fn must have no effects outside tx that a second run would
// break.
func (db *DB) writeTx(ctx context.Context, fn func(tx pgx.Tx) error) error {
	return db.retry(ctx, func() error {
		return db.runTx(ctx, pgx.TxOptions{BeginQuery: beginWrite}, fn)
	})
}

// retry runs try until it succeeds, fails for good or maxTxAttempts runs
// failed, with a short random pause, growing, before each new run. Write's
// first runs again after a conflict of its checks go at once: the next run
// no longer relies on what was out of date.
func (db *DB) retry(ctx context.Context, try func() error) error {
	for attempt := 1; ; attempt++ {
		err := try()
		if err == nil || attempt == maxTxAttempts || !retryable(err) || ctx.Err() != nil {
			return err
		}
		db.retries.Add(1)
		if attempt <= 2 && isConflict(err) {
			continue
		}
		pause := time.Duration(rand.Int64N(int64(min(attempt, 10)) * int64(10*time.Millisecond)))
		select {
		case <-time.After(pause):
		case <-ctx.Done():
			return err
		}
	}
}

// readTx runs fn in a read-only transaction with one snapshot.
func (db *DB) readTx(ctx context.Context, fn func(tx pgx.Tx) error) error {
	return db.runTx(ctx, pgx.TxOptions{IsoLevel: pgx.RepeatableRead, AccessMode: pgx.ReadOnly}, fn)
}

// runTx rolls the transaction back if fn fails or panics.
func (db *DB) runTx(ctx context.Context, opts pgx.TxOptions, fn func(tx pgx.Tx) error) error {
	tx, err := db.pool.BeginTx(ctx, opts)
	if err != nil {
		return fmt.Errorf("postgres: begin: %w", err)
	}
	defer func() {
		// A no-op after Commit. A failed rollback closes the connection,
		// and the pool drops it.
		rctx, cancel := context.WithTimeout(context.WithoutCancel(ctx), 5*time.Second)
		defer cancel()
		_ = tx.Rollback(rctx)
	}()
	if err := fn(tx); err != nil {
		return err
	}
	if err := tx.Commit(ctx); err != nil {
		return fmt.Errorf("postgres: commit: %w", err)
	}
	return nil
}

// SQLSTATEs the store tells apart.
const (
	codeUniqueViolation      = "23505"
	codeSerializationFailure = "40001"
	codeDeadlockDetected     = "40P01"
	codeLockNotAvailable     = "55P03"
)

// WriteRoundTrips returns the network round trips that Write made so far:
// one per transaction when what it needs is in memory, more when it reads
// first (a cache miss, Requeue), prepares statements on a new connection, or
// runs a transaction again after a conflict (groupcommit.RoundTripCounter).
func (db *DB) WriteRoundTrips() int64 { return db.roundTrips.Load() }

// writeAcquire marks the context of Write's connection acquisitions, whose
// liveness pings are Write's round trips.
type writeAcquire struct{}

// preparedKey names, in a connection's CustomData, the set of statements
// prepare has prepared on it.
const preparedKey = "livehooks.prepared"

// prepare prepares on conn those of sqls it has not prepared yet, one round
// trip each, counted as Write's. A statement prepared by name stays prepared
// whatever later fails on the connection, whereas pgx drops the statements
// it caches by itself after any failed batch, to prepare them again in a
// round trip of their own.
func (db *DB) prepare(ctx context.Context, conn *pgx.Conn, sqls ...string) error {
	return db.prepareCounted(ctx, conn, &db.roundTrips, sqls...)
}

// prepareCounted is prepare, counting its round trips in trips.
func (db *DB) prepareCounted(ctx context.Context, conn *pgx.Conn, trips *atomic.Int64, sqls ...string) error {
	data := conn.PgConn().CustomData()
	done, _ := data[preparedKey].(map[string]bool)
	if done == nil {
		done = make(map[string]bool)
		data[preparedKey] = done
	}
	for _, sql := range sqls {
		if done[sql] {
			continue
		}
		trips.Add(1)
		if _, err := conn.Prepare(ctx, sql, sql); err != nil {
			return fmt.Errorf("prepare: %w", err)
		}
		done[sql] = true
	}
	return nil
}

func pgCode(err error) string {
	var e *pgconn.PgError
	if errors.As(err, &e) {
		return e.Code
	}
	return ""
}

func retryable(err error) bool {
	c := pgCode(err)
	return c == codeDeadlockDetected || c == codeSerializationFailure || c == codeLockNotAvailable
}

// isConflict reports whether err is a check of Write's that failed (see
// flush.go).
func isConflict(err error) bool {
	var e *pgconn.PgError
	return errors.As(err, &e) && e.Code == codeSerializationFailure && e.Message == conflictMessage
}

func isUniqueViolation(err error) bool { return pgCode(err) == codeUniqueViolation }

// ts converts a time to what the store keeps: UTC, microseconds.
func ts(t time.Time) time.Time { return t.UTC().Truncate(time.Microsecond) }

// fromOpt reads a nullable timestamptz.
func fromOpt(t *time.Time) time.Time {
	if t == nil {
		return time.Time{}
	}
	return t.UTC()
}

// validText reports whether every s can be stored in a text column: valid
// UTF-8 without NUL. A lookup by a key that is not cannot match anything.
func validText(ss ...string) bool {
	for _, s := range ss {
		if !utf8.ValidString(s) || strings.IndexByte(s, 0) >= 0 {
			return false
		}
	}
	return true
}

// cleanText makes s storable in a text column, replacing NUL and invalid
// UTF-8 with U+FFFD. SQLite keeps such bytes; PostgreSQL refuses them, and
// one receiver's binary answer or a media server's stray byte must not fail
// a whole group commit.
func cleanText(s string) string {
	if validText(s) {
		return s
	}
	return strings.ReplaceAll(strings.ToValidUTF8(s, "\uFFFD"), "\x00", "\uFFFD")
}

// limitOrDefault applies the list default to a zero or negative limit.
func limitOrDefault(n int) int {
	if n <= 0 {
		return livehooks.DefaultLimit
	}
	return n
}

func truncate(s string, n int) string {
	if len(s) > n {
		s = s[:n] + "…"
	}
	return cleanText(s)
}
