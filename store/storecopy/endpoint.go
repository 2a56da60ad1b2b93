package storecopy

import (
	"context"
	"database/sql"
	"errors"
	"fmt"
	"strings"

	"github.com/jackc/pgx/v5"
	_ "modernc.org/sqlite" // the "sqlite" database/sql driver
)

const (
	engineSQLite   = "sqlite"
	enginePostgres = "postgres"
)

// Endpoint is one side of a copy: an SQLite file or a PostgreSQL database.
type Endpoint interface {
	// Close releases the endpoint's connection.
	Close() error

	engine() string
	schema(ctx context.Context) (Schema, error)
	beginRead(ctx context.Context) error
	beginWrite(ctx context.Context) error
	commit(ctx context.Context) error
	rollback(ctx context.Context)
	count(ctx context.Context, table string) (int64, error)
	clear(ctx context.Context, table string) error
	read(ctx context.Context, table string, cols []typedColumn) (rowSource, error)
	write(ctx context.Context, table string, cols []typedColumn, rows rowSource) (int64, error)
	lastID(ctx context.Context, table, col string) (int64, error)
	setLastID(ctx context.Context, table, col string, n int64) error
}

// ReadSchema returns the tables and columns of an endpoint's database.
func ReadSchema(ctx context.Context, e Endpoint) (Schema, error) { return e.schema(ctx) }

func quoteIdent(s string) string { return `"` + strings.ReplaceAll(s, `"`, `""`) + `"` }

func columnList(cols []typedColumn, pg bool) string {
	names := make([]string, len(cols))
	for i, c := range cols {
		switch {
		case c.skip:
			names[i] = "NULL"
		case pg && c.kind == kJSON:
			names[i] = quoteIdent(c.name) + "::text"
		default:
			names[i] = quoteIdent(c.name)
		}
	}
	return strings.Join(names, ", ")
}

// sqliteEndpoint is an SQLite store file, used through one connection.
type sqliteEndpoint struct {
	db   *sql.DB
	conn *sql.Conn
	tx   *sql.Tx
}

// SQLite opens the store file at path. Its foreign keys are not enforced
// during a copy: tables arrive one after the other.
func SQLite(ctx context.Context, path string) (Endpoint, error) {
	dsn := "file:" + strings.NewReplacer("%", "%25", "?", "%3f", "#", "%23").Replace(path) +
		"?_pragma=busy_timeout(10000)&_pragma=foreign_keys(0)&_pragma=synchronous(FULL)&_txlock=immediate"
	db, err := sql.Open("sqlite", dsn)
	if err != nil {
		return nil, err
	}
	conn, err := db.Conn(ctx)
	if err != nil {
		db.Close()
		return nil, err
	}
	return &sqliteEndpoint{db: db, conn: conn}, nil
}

func (e *sqliteEndpoint) Close() error {
	e.rollback(context.Background())
	return errors.Join(e.conn.Close(), e.db.Close())
}

func (e *sqliteEndpoint) engine() string { return engineSQLite }

func (e *sqliteEndpoint) schema(ctx context.Context) (Schema, error) {
	s := Schema{Engine: engineSQLite, Tables: map[string][]Column{}}
	// Views too: a table of the other engine may be a view here (Table.ViewIn).
	rows, err := e.conn.QueryContext(ctx, `SELECT name FROM sqlite_master WHERE type IN ('table', 'view')`)
	if err != nil {
		return s, err
	}
	var names []string
	for rows.Next() {
		var n string
		if err := rows.Scan(&n); err != nil {
			rows.Close()
			return s, err
		}
		names = append(names, n)
	}
	rows.Close()
	if err := rows.Err(); err != nil {
		return s, err
	}
	for _, n := range names {
		cols, err := e.conn.QueryContext(ctx, `SELECT name, "notnull", pk FROM pragma_table_info(?)`, n)
		if err != nil {
			return s, err
		}
		for cols.Next() {
			var c Column
			var notNull, pk int
			if err := cols.Scan(&c.Name, &notNull, &pk); err != nil {
				cols.Close()
				return s, err
			}
			c.Nullable = notNull == 0 && pk == 0
			s.Tables[n] = append(s.Tables[n], c)
		}
		cols.Close()
		if err := cols.Err(); err != nil {
			return s, err
		}
	}
	return s, nil
}

func (e *sqliteEndpoint) beginRead(ctx context.Context) error {
	// A deferred transaction: its first read takes the snapshot that every
	// later read of the copy sees.
	var err error
	if e.tx, err = e.conn.BeginTx(ctx, nil); err != nil {
		return err
	}
	_, err = e.tx.ExecContext(ctx, `SELECT COUNT(*) FROM sqlite_master`)
	return err
}

func (e *sqliteEndpoint) beginWrite(ctx context.Context) error {
	var err error
	e.tx, err = e.conn.BeginTx(ctx, nil)
	return err
}

func (e *sqliteEndpoint) commit(context.Context) error {
	err := e.tx.Commit()
	e.tx = nil
	return err
}

func (e *sqliteEndpoint) rollback(context.Context) {
	if e.tx != nil {
		_ = e.tx.Rollback()
		e.tx = nil
	}
}

func (e *sqliteEndpoint) count(ctx context.Context, table string) (int64, error) {
	var n int64
	err := e.tx.QueryRowContext(ctx, `SELECT COUNT(*) FROM `+quoteIdent(table)).Scan(&n)
	return n, err
}

func (e *sqliteEndpoint) clear(ctx context.Context, table string) error {
	_, err := e.tx.ExecContext(ctx, `DELETE FROM `+quoteIdent(table))
	return err
}

func (e *sqliteEndpoint) read(ctx context.Context, table string, cols []typedColumn) (rowSource, error) {
	rows, err := e.tx.QueryContext(ctx, `SELECT `+columnList(cols, false)+` FROM `+quoteIdent(table))
	if err != nil {
		return nil, err
	}
	return &sqliteRows{rows: rows, cols: cols, raw: make([]any, len(cols))}, nil
}

type sqliteRows struct {
	rows *sql.Rows
	cols []typedColumn
	raw  []any
	err  error
}

func (r *sqliteRows) Next() bool { return r.err == nil && r.rows.Next() }
func (r *sqliteRows) Close()     { r.rows.Close() }
func (r *sqliteRows) Err() error {
	if r.err != nil {
		return r.err
	}
	return r.rows.Err()
}

func (r *sqliteRows) Values() ([]any, error) {
	dest := make([]any, len(r.raw))
	for i := range r.raw {
		dest[i] = &r.raw[i]
	}
	if err := r.rows.Scan(dest...); err != nil {
		r.err = err
		return nil, err
	}
	out := make([]any, len(r.raw))
	for i, c := range r.cols {
		v, err := c.kind.fromSQLite(r.raw[i])
		if err != nil {
			r.err = fmt.Errorf("column %s: %w", c.name, err)
			return nil, r.err
		}
		out[i] = v
	}
	return out, nil
}

// sqliteBatch is how many rows one INSERT writes.
const sqliteBatch = 200

func (e *sqliteEndpoint) write(ctx context.Context, table string, cols []typedColumn, rows rowSource) (int64, error) {
	one := "(" + strings.TrimSuffix(strings.Repeat("?, ", len(cols)), ", ") + ")"
	head := `INSERT INTO ` + quoteIdent(table) + ` (` + columnList(cols, false) + `) VALUES `
	full, err := e.tx.PrepareContext(ctx, head+strings.TrimSuffix(strings.Repeat(one+", ", sqliteBatch), ", "))
	if err != nil {
		return 0, err
	}
	defer full.Close()
	var n int64
	args := make([]any, 0, sqliteBatch*len(cols))
	flush := func() error {
		if len(args) == 0 {
			return nil
		}
		var err error
		if len(args) == cap(args) {
			_, err = full.ExecContext(ctx, args...)
		} else {
			_, err = e.tx.ExecContext(ctx, head+strings.TrimSuffix(strings.Repeat(one+", ", len(args)/len(cols)), ", "), args...)
		}
		args = args[:0]
		return err
	}
	for rows.Next() {
		v, err := rows.Values()
		if err != nil {
			return n, err
		}
		for _, x := range v {
			args = append(args, toSQLite(x))
		}
		n++
		if len(args) == cap(args) {
			if err := flush(); err != nil {
				return n, err
			}
		}
	}
	if err := rows.Err(); err != nil {
		return n, err
	}
	return n, flush()
}

// lastID is the largest id the table ever drew: its largest row, or, for
// an AUTOINCREMENT table, sqlite_sequence's record when rows were purged.
func (e *sqliteEndpoint) lastID(ctx context.Context, table, col string) (int64, error) {
	var n int64
	err := e.tx.QueryRowContext(ctx, `SELECT MAX(COALESCE((SELECT MAX(`+quoteIdent(col)+`) FROM `+quoteIdent(table)+`), 0),
		COALESCE((SELECT MAX(seq) FROM sqlite_sequence WHERE name = ?), 0))`, table).Scan(&n)
	return n, err
}

// setLastID makes an AUTOINCREMENT table continue after n. A table whose
// ids follow its largest row (INTEGER PRIMARY KEY without AUTOINCREMENT)
// cannot remember ids of rows it no longer holds, and need not: the store
// reuses none that any row still refers to.
func (e *sqliteEndpoint) setLastID(ctx context.Context, table, _ string, n int64) error {
	var ddl string
	if err := e.tx.QueryRowContext(ctx, `SELECT sql FROM sqlite_master WHERE type = 'table' AND name = ?`, table).Scan(&ddl); err != nil {
		return err
	}
	if !strings.Contains(strings.ToUpper(ddl), "AUTOINCREMENT") || n == 0 {
		return nil
	}
	res, err := e.tx.ExecContext(ctx, `UPDATE sqlite_sequence SET seq = MAX(seq, ?) WHERE name = ?`, n, table)
	if err != nil {
		return err
	}
	if changed, _ := res.RowsAffected(); changed == 0 {
		_, err = e.tx.ExecContext(ctx, `INSERT INTO sqlite_sequence (name, seq) VALUES (?, ?)`, table, n)
	}
	return err
}

// postgresEndpoint is a PostgreSQL database, used through one connection.
type postgresEndpoint struct {
	conn *pgx.Conn
	tx   pgx.Tx
}

// Postgres connects to the database at url.
func Postgres(ctx context.Context, url string) (Endpoint, error) {
	conn, err := pgx.Connect(ctx, url)
	if err != nil {
		return nil, err
	}
	return &postgresEndpoint{conn: conn}, nil
}

func (e *postgresEndpoint) Close() error {
	e.rollback(context.Background())
	return e.conn.Close(context.Background())
}

func (e *postgresEndpoint) engine() string { return enginePostgres }

func (e *postgresEndpoint) schema(ctx context.Context) (Schema, error) {
	s := Schema{Engine: enginePostgres, Tables: map[string][]Column{}}
	rows, err := e.conn.Query(ctx, `SELECT c.table_name, c.column_name, c.data_type, c.is_nullable = 'YES'
		FROM information_schema.columns c JOIN information_schema.tables t USING (table_schema, table_name)
		WHERE c.table_schema = current_schema() AND t.table_type = 'BASE TABLE'
		ORDER BY c.table_name, c.ordinal_position`)
	if err != nil {
		return s, err
	}
	defer rows.Close()
	for rows.Next() {
		var table string
		var c Column
		if err := rows.Scan(&table, &c.Name, &c.Type, &c.Nullable); err != nil {
			return s, err
		}
		s.Tables[table] = append(s.Tables[table], c)
	}
	return s, rows.Err()
}

func (e *postgresEndpoint) beginRead(ctx context.Context) error {
	var err error
	e.tx, err = e.conn.BeginTx(ctx, pgx.TxOptions{IsoLevel: pgx.RepeatableRead, AccessMode: pgx.ReadOnly})
	return err
}

func (e *postgresEndpoint) beginWrite(ctx context.Context) error {
	var err error
	e.tx, err = e.conn.Begin(ctx)
	return err
}

func (e *postgresEndpoint) commit(ctx context.Context) error {
	err := e.tx.Commit(ctx)
	e.tx = nil
	return err
}

func (e *postgresEndpoint) rollback(ctx context.Context) {
	if e.tx != nil {
		_ = e.tx.Rollback(context.WithoutCancel(ctx))
		e.tx = nil
	}
}

func (e *postgresEndpoint) count(ctx context.Context, table string) (int64, error) {
	var n int64
	err := e.tx.QueryRow(ctx, `SELECT count(*) FROM `+quoteIdent(table)).Scan(&n)
	return n, err
}

func (e *postgresEndpoint) clear(ctx context.Context, table string) error {
	_, err := e.tx.Exec(ctx, `TRUNCATE `+quoteIdent(table))
	return err
}

func (e *postgresEndpoint) read(ctx context.Context, table string, cols []typedColumn) (rowSource, error) {
	rows, err := e.tx.Query(ctx, `SELECT `+columnList(cols, true)+` FROM `+quoteIdent(table))
	if err != nil {
		return nil, err
	}
	r := &pgRows{rows: rows, dest: make([]any, len(cols)), vals: make([]func() any, len(cols))}
	for i, c := range cols {
		r.dest[i], r.vals[i] = c.kind.pgScanTarget()
	}
	return r, nil
}

type pgRows struct {
	rows pgx.Rows
	dest []any
	vals []func() any
	err  error
}

func (r *pgRows) Next() bool { return r.err == nil && r.rows.Next() }
func (r *pgRows) Close()     { r.rows.Close() }
func (r *pgRows) Err() error {
	if r.err != nil {
		return r.err
	}
	return r.rows.Err()
}

func (r *pgRows) Values() ([]any, error) {
	if err := r.rows.Scan(r.dest...); err != nil {
		r.err = err
		return nil, err
	}
	out := make([]any, len(r.vals))
	for i, v := range r.vals {
		out[i] = v()
	}
	return out, nil
}

// write copies the rows with COPY, streaming them from the source.
func (e *postgresEndpoint) write(ctx context.Context, table string, cols []typedColumn, rows rowSource) (int64, error) {
	names := make([]string, len(cols))
	for i, c := range cols {
		names[i] = c.name
	}
	return e.tx.CopyFrom(ctx, pgx.Identifier{table}, names, rows)
}

func (e *postgresEndpoint) lastID(ctx context.Context, table, col string) (int64, error) {
	var n int64
	err := e.tx.QueryRow(ctx, `SELECT GREATEST(COALESCE((SELECT max(`+quoteIdent(col)+`) FROM `+quoteIdent(table)+`), 0),
		COALESCE(pg_sequence_last_value(pg_get_serial_sequence($1, $2)), 0))`, quoteIdent(table), col).Scan(&n)
	return n, err
}

func (e *postgresEndpoint) setLastID(ctx context.Context, table, col string, n int64) error {
	if n == 0 {
		return nil
	}
	_, err := e.tx.Exec(ctx, `SELECT setval(pg_get_serial_sequence($1, $2), $3)`, quoteIdent(table), col, n)
	return err
}
