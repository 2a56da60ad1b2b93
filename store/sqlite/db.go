package sqlite

import (
	"context"
	"database/sql"
	"errors"
	"fmt"
	"os"
	"path/filepath"
	"runtime"
	"strings"
	"sync"
	"time"

	msqlite "modernc.org/sqlite"
	sqlite3 "modernc.org/sqlite/lib"

	"github.com/livehooks/livehooks"
	"github.com/livehooks/livehooks/internal/durable"
)

// DefaultLease is how long a node owns a lane it creates at Enqueue before
// another node may take it over, unless Options.Lease says otherwise.
const DefaultLease = 30 * time.Second

// Options configure Open.
type Options struct {
	// Path of the database file; it is created when missing.
	Path string
	// Cipher encrypts callback keys at rest. Required.
	Cipher livehooks.Cipher
	// Synchronous is the SQLite synchronous mode: "FULL" (default: an
	// acknowledged event survives a power cut) or "NORMAL" (it survives a
	// process crash; faster).
	Synchronous string
	// Clock tells the time where the caller gives none (DisableCallback).
	// Default: the system clock.
	Clock livehooks.Clock
	// Lease is how long the lease of a lane created by Enqueue or Requeue
	// lasts. Default: DefaultLease.
	Lease time.Duration
	// BusyTimeout is how long a statement waits for another process that holds
	// the database lock. Default: 5 s.
	BusyTimeout time.Duration
	// ReadConns is the size of the read pool. Default: max(4, GOMAXPROCS).
	ReadConns int
}

// DB is a livehooks.Store on one SQLite file. All writes go through one
// connection (SQLite has a single writer anyway, and this way they queue in Go
// rather than spin on SQLITE_BUSY); reads use a separate pool that, in WAL
// mode, never blocks the writer nor is blocked by it.
type DB struct {
	write  *sql.DB
	read   *sql.DB
	cipher livehooks.Cipher
	clock  livehooks.Clock
	lease  time.Duration

	// stmts are prepared once on the write connection; a transaction binds
	// them with Tx.StmtContext, which reuses the connection's prepared
	// statement instead of preparing again.
	stmts [numStmts]*sql.Stmt
	multi multiStmts // multi-row statements of the write path (batch.go)

	// walPath is set when livehooks syncs the WAL itself (FULL); wal is
	// its open file, walMu serializes Sync and Close; walClosed: Close ran,
	// and Sync must not open the file again.
	walPath   string
	walMu     sync.Mutex
	wal       *os.File
	walClosed bool

	// The last event pk and delivery id drawn. Only a write transaction
	// touches them, and the single write connection runs one at a time.
	nextPK, nextID int64
	// cache spares the write path its reads (cache.go).
	cache caches
	// lanes are the delivery lanes, kept in memory (lanes.go); commitMu
	// holds a write transaction from its start until its lane changes are
	// applied.
	lanes    laneTable
	commitMu sync.Mutex
}

var _ livehooks.Store = (*DB)(nil)

// Open opens (creating if needed) the database at opts.Path, applies pending
// migrations and returns the store. It refuses a database whose schema is newer
// than this binary.
func Open(ctx context.Context, opts Options) (*DB, error) {
	if opts.Path == "" {
		return nil, errors.New("sqlite: open: Options.Path is required")
	}
	if opts.Cipher == nil {
		return nil, errors.New("sqlite: open: Options.Cipher is required (keys are never stored in plaintext)")
	}
	syncMode := strings.ToUpper(opts.Synchronous)
	switch syncMode {
	case "":
		syncMode = "FULL"
	case "FULL", "NORMAL", "EXTRA":
	default:
		return nil, fmt.Errorf("sqlite: open: synchronous must be FULL, NORMAL or EXTRA, got %q", opts.Synchronous)
	}
	db := &DB{cipher: opts.Cipher, clock: opts.Clock, lease: opts.Lease}
	if db.clock == nil {
		db.clock = livehooks.SystemClock{}
	}
	if db.lease <= 0 {
		db.lease = DefaultLease
	}
	busy := opts.BusyTimeout
	if busy <= 0 {
		busy = 5 * time.Second
	}
	readConns := opts.ReadConns
	if readConns <= 0 {
		readConns = max(4, runtime.GOMAXPROCS(0))
	}

	// FULL is kept by livehooks itself: SQLite commits as with NORMAL (WAL
	// frames written, not synced) and Sync fsyncs the WAL before anything
	// is acknowledged. The transaction is durable when it is acknowledged,
	// as with SQLite's FULL, but the fsync no longer holds the write lock:
	// the next group commit runs while the disk syncs the previous one.
	pragmaSync := syncMode
	if syncMode == "FULL" {
		pragmaSync, db.walPath = "NORMAL", opts.Path+"-wal"
	}

	// temp_store=MEMORY keeps statement journals (every upsert and
	// RETURNING statement in a transaction has one) off the disk;
	// journal_size_limit truncates the WAL after a checkpoint that emptied it
	// when a burst made it grow past 64 MiB.
	base := "file:" + escapePath(opts.Path) + "?" +
		fmt.Sprintf("_pragma=busy_timeout(%d)", busy.Milliseconds()) +
		"&_pragma=foreign_keys(1)" +
		"&_pragma=synchronous(" + pragmaSync + ")" +
		"&_pragma=temp_store(MEMORY)" +
		"&_pragma=journal_size_limit(67108864)"

	if err := createPrivate(opts.Path); err != nil {
		return nil, err
	}
	var err error
	// BEGIN IMMEDIATE: a write transaction takes the lock when it starts, so
	// it never fails half-way with SQLITE_BUSY upgrading a read lock.
	if db.write, err = sql.Open("sqlite", base+"&_txlock=immediate&_pragma=journal_mode(WAL)"); err != nil {
		return nil, fmt.Errorf("sqlite: open %s: %w", opts.Path, err)
	}
	db.write.SetMaxOpenConns(1)
	db.write.SetMaxIdleConns(1)
	db.write.SetConnMaxLifetime(0)
	db.write.SetConnMaxIdleTime(0)
	if err := db.init(ctx, opts.Path); err != nil {
		db.write.Close()
		return nil, err
	}

	// Readers open after the file is in WAL mode (a persistent setting) and
	// migrated; query_only guards against a write slipping into the pool.
	if db.read, err = sql.Open("sqlite", base+"&_pragma=query_only(1)"); err != nil {
		db.Close()
		return nil, fmt.Errorf("sqlite: open %s: %w", opts.Path, err)
	}
	db.read.SetMaxOpenConns(readConns)
	db.read.SetMaxIdleConns(readConns)
	if err := db.read.PingContext(ctx); err != nil {
		db.Close()
		return nil, fmt.Errorf("sqlite: open %s: %w", opts.Path, err)
	}
	return db, nil
}

func (db *DB) init(ctx context.Context, path string) error {
	var mode string
	if err := db.write.QueryRowContext(ctx, "PRAGMA journal_mode").Scan(&mode); err != nil {
		return fmt.Errorf("sqlite: open %s: %w", path, err)
	}
	if !strings.EqualFold(mode, "wal") {
		return fmt.Errorf("sqlite: open %s: journal_mode is %q, want wal", path, mode)
	}
	if err := migrate(ctx, db.write, db.cipher, db.clock.Now()); err != nil {
		return fmt.Errorf("sqlite: open %s: %w", path, err)
	}
	if err := db.loadIDs(ctx); err != nil {
		return fmt.Errorf("sqlite: open %s: %w", path, err)
	}
	if err := db.lanes.load(ctx, db); err != nil {
		return fmt.Errorf("sqlite: open %s: %w", path, err)
	}
	if err := db.multi.prepare(ctx, db.write); err != nil {
		return fmt.Errorf("sqlite: open %s: %w", path, err)
	}
	for i, q := range stmtSQL {
		s, err := db.write.PrepareContext(ctx, q)
		if err != nil {
			return fmt.Errorf("sqlite: prepare %q: %w", q, err)
		}
		db.stmts[i] = s
	}
	return nil
}

// createPrivate creates the database file readable by its owner only (it
// holds events, callback URLs and receivers' answers), whatever the umask and
// the directory's mode, and takes that mode back from files an earlier
// version left readable. SQLite creates the -wal and -shm files with the
// database file's mode, so they are private too.
func createPrivate(path string) error {
	f, err := os.OpenFile(path, os.O_RDWR|os.O_CREATE, 0o600)
	if err != nil {
		return fmt.Errorf("sqlite: open %s: %w", path, err)
	}
	f.Close()
	for _, p := range []string{path, path + "-wal", path + "-shm"} {
		if err := os.Chmod(p, 0o600); err != nil && !errors.Is(err, os.ErrNotExist) {
			return fmt.Errorf("sqlite: make %s private: %w", p, err)
		}
	}
	return nil
}

// escapePath makes a file name safe inside a SQLite URI.
func escapePath(p string) string {
	return strings.NewReplacer("%", "%25", "?", "%3f", "#", "%23").Replace(p)
}

// Ping checks that both the write connection and the read pool answer.
func (db *DB) Ping(ctx context.Context) error {
	if err := db.write.PingContext(ctx); err != nil {
		return fmt.Errorf("sqlite: ping: %w", err)
	}
	if err := db.read.PingContext(ctx); err != nil {
		return fmt.Errorf("sqlite: ping: %w", err)
	}
	return nil
}

// Close closes the store. Transactions still running fail.
func (db *DB) Close() error {
	var errs []error
	errs = append(errs, db.multi.close())
	for _, s := range db.stmts {
		if s != nil {
			errs = append(errs, s.Close())
		}
	}
	if db.read != nil {
		errs = append(errs, db.read.Close())
	}
	if db.write != nil {
		// Refresh planner statistics; closing the last connection then
		// checkpoints and removes the WAL.
		_, _ = db.write.Exec("PRAGMA optimize")
		errs = append(errs, db.write.Close())
	}
	db.walMu.Lock()
	if db.wal != nil {
		errs = append(errs, db.wal.Close())
		db.wal = nil
	}
	db.walClosed = true
	db.walMu.Unlock()
	return errors.Join(errs...)
}

// writeTx runs fn in a write transaction (BEGIN IMMEDIATE on the single write
// connection) and returns once it is durable. The transaction is rolled back
// if fn fails or panics, so the write connection is never left inside a
// transaction.
func (db *DB) writeTx(ctx context.Context, fn func(tx *sql.Tx) error) error {
	return db.writeTxThen(ctx, fn, nil)
}

// writeTxThen is writeTx that runs committed (if not nil) once the
// transaction has committed, before any other write transaction begins.
func (db *DB) writeTxThen(ctx context.Context, fn func(tx *sql.Tx) error, committed func()) error {
	if err := db.commitTx(ctx, fn, committed); err != nil {
		return err
	}
	return db.Sync()
}

// commitTx is writeTxThen without the wait for the disk (see Sync).
func (db *DB) commitTx(ctx context.Context, fn func(tx *sql.Tx) error, committed func()) error {
	// The lanes in memory change with the transactions that change the
	// deliveries, in their commit order (lanes.go).
	db.commitMu.Lock()
	defer db.commitMu.Unlock()
	tx, err := db.write.BeginTx(ctx, nil)
	if err != nil {
		return fmt.Errorf("sqlite: begin: %w", err)
	}
	defer tx.Rollback() // no-op after Commit
	if err := fn(tx); err != nil {
		return err
	}
	if err := tx.Commit(); err != nil {
		return fmt.Errorf("sqlite: commit: %w", err)
	}
	if committed != nil {
		committed()
	}
	return nil
}

// Sync makes every transaction committed so far durable: with FULL it
// fsyncs the WAL, which holds them (an fsync of the file covers what any
// connection wrote to it); with NORMAL or EXTRA SQLite already did what the
// mode promises at commit. Concurrent calls share the work of one fsync
// where they can.
func (db *DB) Sync() error {
	if db.walPath == "" {
		return nil
	}
	db.walMu.Lock()
	defer db.walMu.Unlock()
	if db.walClosed {
		return fmt.Errorf("sqlite: sync: the store is closed")
	}
	if db.wal == nil {
		f, err := os.OpenFile(db.walPath, os.O_RDWR, 0)
		if err != nil {
			return fmt.Errorf("sqlite: sync: %w", err)
		}
		// The WAL's directory entry must survive a power cut too.
		if err := durable.SyncDir(filepath.Dir(db.walPath)); err != nil {
			f.Close()
			return fmt.Errorf("sqlite: sync: %w", err)
		}
		db.wal = f
	}
	if err := db.wal.Sync(); err != nil {
		return fmt.Errorf("sqlite: sync: %w", err)
	}
	return nil
}

// micros and fromMicros convert times to and from the stored representation.
func micros(t time.Time) int64 { return t.UnixMicro() }

func fromMicros(v int64) time.Time { return time.UnixMicro(v).UTC() }

// optMicros stores a zero time as NULL.
func optMicros(t time.Time) any {
	if t.IsZero() {
		return nil
	}
	return t.UnixMicro()
}

func fromOptMicros(v sql.NullInt64) time.Time {
	if !v.Valid {
		return time.Time{}
	}
	return fromMicros(v.Int64)
}

// isUniqueViolation reports whether err is a UNIQUE or PRIMARY KEY failure.
func isUniqueViolation(err error) bool {
	var e *msqlite.Error
	if errors.As(err, &e) {
		switch e.Code() {
		case sqlite3.SQLITE_CONSTRAINT_UNIQUE, sqlite3.SQLITE_CONSTRAINT_PRIMARYKEY:
			return true
		}
	}
	return false
}

// limitOrDefault applies the list default to a zero or negative limit.
func limitOrDefault(n int) int {
	if n <= 0 {
		return livehooks.DefaultLimit
	}
	return n
}

// loadIDs sets the id counters that the write path draws from (batch.go):
// ids continue from the largest ever used (AUTOINCREMENT keeps the
// deliveries' in sqlite_sequence, even after their rows are purged). The
// store's process is the only writer of its file, so this is read once, when
// it opens.
func (db *DB) loadIDs(ctx context.Context) error {
	if err := db.write.QueryRowContext(ctx, `SELECT COALESCE(MAX(pk), 0) FROM events`).Scan(&db.nextPK); err != nil {
		return err
	}
	return db.write.QueryRowContext(ctx, `SELECT MAX(
		(SELECT COALESCE(MAX(id), 0) FROM deliveries),
		(SELECT COALESCE(MAX(seq), 0) FROM sqlite_sequence WHERE name = 'deliveries'))`).Scan(&db.nextID)
}
