package storecopy

import (
	"context"
	"crypto/rand"
	"errors"
	"fmt"
	"path/filepath"
	"reflect"
	"slices"
	"sort"
	"strings"
	"testing"
	"time"

	"github.com/livehooks/livehooks/aesgcm"
	"github.com/livehooks/livehooks/store/postgres"
	"github.com/livehooks/livehooks/store/postgres/pgtest"
	"github.com/livehooks/livehooks/store/sqlite"
)

var ctx = context.Background()

// newStores creates an empty SQLite store file and an empty PostgreSQL
// database, both migrated to this binary's schema by the store packages.
func newStores(t *testing.T) (sqlitePath, pgURL string) {
	t.Helper()
	key := make([]byte, aesgcm.KeySize)
	_, _ = rand.Read(key)
	cipher, err := aesgcm.New(key)
	if err != nil {
		t.Fatal(err)
	}
	sqlitePath = filepath.Join(t.TempDir(), "livehooks.db")
	s, err := sqlite.Open(ctx, sqlite.Options{Path: sqlitePath, Cipher: cipher})
	if err != nil {
		t.Fatal(err)
	}
	s.Close()
	pgURL = pgtest.Database(t)
	p, err := postgres.Open(ctx, postgres.Options{URL: pgURL, Cipher: cipher})
	if err != nil {
		t.Fatal(err)
	}
	p.Close()
	return sqlitePath, pgURL
}

func openSQLite(t *testing.T, path string) Endpoint {
	t.Helper()
	e, err := SQLite(ctx, path)
	if err != nil {
		t.Fatal(err)
	}
	t.Cleanup(func() { e.Close() })
	return e
}

func openPostgres(t *testing.T, url string) Endpoint {
	t.Helper()
	e, err := Postgres(ctx, url)
	if err != nil {
		t.Fatal(err)
	}
	t.Cleanup(func() { e.Close() })
	return e
}

// TestCopierHandlesEveryTable fails when a migration adds a table or column
// to either store's schema that storecopy.Tables does not account for:
// migrate-store would otherwise refuse to run (or, worse, leave it behind).
func TestCopierHandlesEveryTable(t *testing.T) {
	sqlitePath, pgURL := newStores(t)
	s, err := ReadSchema(ctx, openSQLite(t, sqlitePath))
	if err != nil {
		t.Fatal(err)
	}
	p, err := ReadSchema(ctx, openPostgres(t, pgURL))
	if err != nil {
		t.Fatal(err)
	}
	for _, dir := range [][2]Schema{{s, p}, {p, s}} {
		if _, err := Plan(dir[0], dir[1]); err != nil {
			t.Errorf("%s → %s: %v", dir[0].Engine, dir[1].Engine, err)
		}
	}
	// Every table named in Tables or Skipped still exists somewhere.
	for _, tb := range Tables {
		if s.Tables[tb.Name] == nil || p.Tables[tb.Name] == nil {
			t.Errorf("storecopy.Tables names %s, which is not in both schemas", tb.Name)
		}
	}
	for name := range Skipped {
		if s.Tables[name] == nil && p.Tables[name] == nil {
			t.Errorf("storecopy.Skipped names %s, which is in neither schema", name)
		}
	}
}

// TestUnknownTableOrColumnRefused: a table or column the copier does not
// know stops the copy with a message that names it.
func TestUnknownTableOrColumnRefused(t *testing.T) {
	sqlitePath, pgURL := newStores(t)
	src := openSQLite(t, sqlitePath).(*sqliteEndpoint)
	for _, ddl := range []string{`CREATE TABLE mystery (x INTEGER)`, `ALTER TABLE events ADD COLUMN color TEXT`} {
		if _, err := src.conn.ExecContext(ctx, ddl); err != nil {
			t.Fatal(err)
		}
	}
	_, err := Copy(ctx, src, openPostgres(t, pgURL), Options{})
	if err == nil || !strings.Contains(err.Error(), "table mystery of the sqlite schema") || !strings.Contains(err.Error(), "column events.color") {
		t.Fatalf("copy with an unknown table and column: %v", err)
	}
}

// fill writes n rows into every table Tables names, with a distinct value in
// every column derived from the column's kind, so that a column copied
// wrong, dropped or swapped shows up. The deliveries are pending, so that
// SQLite's lanes view shows a lane for each.
func fill(t *testing.T, e *sqliteEndpoint, pg Schema, n int) {
	t.Helper()
	s, err := e.schema(ctx)
	if err != nil {
		t.Fatal(err)
	}
	if err := e.beginWrite(ctx); err != nil {
		t.Fatal(err)
	}
	base := time.Date(2026, 11, 23, 11, 43, 14, 123456000, time.UTC)
	for ti, tb := range Tables {
		if tb.ViewIn == engineSQLite {
			continue
		}
		var cols []typedColumn
		for _, c := range s.Tables[tb.Name] {
			k, err := kindOf(columnType(pg.Tables[tb.Name], c.Name))
			if err != nil {
				t.Fatalf("%s.%s: %v", tb.Name, c.Name, err)
			}
			cols = append(cols, typedColumn{c.Name, k, false})
		}
		var rows [][]any
		for i := 1; i <= n; i++ {
			var row []any
			for ci, c := range cols {
				seed := ti*1000 + ci*10 + i
				switch {
				case tb.Name == "deliveries" && c.name == "status":
					row = append(row, "pending")
				case i == n && c.name != tb.Identity && columnNullable(s.Tables[tb.Name], c.name):
					row = append(row, nil) // the last row tries NULL wherever allowed
				case c.kind == kInt:
					row = append(row, int64(seed))
				case c.kind == kBool:
					row = append(row, i%2 == 0)
				case c.kind == kBytes:
					row = append(row, []byte{byte(seed), 0, byte(seed >> 8), 0xff})
				case c.kind == kTime:
					row = append(row, base.Add(time.Duration(seed)*time.Second+time.Duration(i)*time.Microsecond))
				case c.kind == kJSON:
					row = append(row, fmt.Sprintf(`{"n": %d, "s": "é\u2028"}`, seed))
				default:
					row = append(row, fmt.Sprintf("%s-%s-%d-ü", tb.Name, c.name, i))
				}
			}
			rows = append(rows, row)
		}
		if _, err := e.write(ctx, tb.Name, cols, &sliceRows{rows: rows}); err != nil {
			t.Fatalf("fill %s: %v", tb.Name, err)
		}
	}
	// Deliveries were purged up to id 5000: the ids drawn go further than
	// the rows left.
	if _, err := e.tx.ExecContext(ctx, `UPDATE sqlite_sequence SET seq = 5000 WHERE name = 'deliveries'`); err != nil {
		t.Fatal(err)
	}
	if err := e.commit(ctx); err != nil {
		t.Fatal(err)
	}
}

func columnNullable(cols []Column, name string) bool {
	for _, c := range cols {
		if c.Name == name {
			return c.Nullable
		}
	}
	return false
}

type sliceRows struct {
	rows [][]any
	i    int
}

func (r *sliceRows) Next() bool             { r.i++; return r.i <= len(r.rows) }
func (r *sliceRows) Values() ([]any, error) { return r.rows[r.i-1], nil }
func (r *sliceRows) Err() error             { return nil }
func (r *sliceRows) Close()                 {}

// dump reads every copied table of e as sorted lines of neutral values, in
// the columns the plan copies; reset columns are left out.
func dump(t *testing.T, e Endpoint, plans []tablePlan) map[string][]string {
	t.Helper()
	if err := e.beginRead(ctx); err != nil {
		t.Fatal(err)
	}
	defer e.rollback(ctx)
	out := map[string][]string{}
	for _, p := range plans {
		rows, err := e.read(ctx, p.table.Name, p.read)
		if err != nil {
			t.Fatal(err)
		}
		for rows.Next() {
			v, err := rows.Values()
			if err != nil {
				t.Fatal(err)
			}
			var b strings.Builder
			for i, x := range v {
				if slices.Contains(p.table.Reset, p.read[i].name) {
					continue
				}
				if tm, ok := x.(time.Time); ok {
					x = tm.UTC().Format(time.RFC3339Nano)
				}
				fmt.Fprintf(&b, "%s=%#v ", p.read[i].name, x)
			}
			out[p.table.Name] = append(out[p.table.Name], b.String())
		}
		rows.Close()
		if err := rows.Err(); err != nil {
			t.Fatal(err)
		}
		sort.Strings(out[p.table.Name])
	}
	return out
}

// TestRoundTrip copies a store holding rows in every table from SQLite to
// PostgreSQL and back to a new SQLite file: PostgreSQL holds the same values
// as the source, the file that comes back equals the source, ids continue
// after the largest drawn, leases are cleared, and a target that holds data
// is refused unless forced.
func TestRoundTrip(t *testing.T) {
	srcPath, pgURL := newStores(t)
	backPath, _ := newStores(t)
	src := openSQLite(t, srcPath).(*sqliteEndpoint)
	pg := openPostgres(t, pgURL)
	pgSchema, err := pg.schema(ctx)
	if err != nil {
		t.Fatal(err)
	}
	fill(t, src, pgSchema, 3)
	srcSchema, err := src.schema(ctx)
	if err != nil {
		t.Fatal(err)
	}
	plans, err := Plan(srcSchema, pgSchema)
	if err != nil {
		t.Fatal(err)
	}

	report, err := Copy(ctx, src, pg, Options{})
	if err != nil {
		t.Fatal(err)
	}
	for _, tc := range report.Tables {
		if tc.Rows != 3 {
			t.Errorf("%s: copied %d rows, want 3", tc.Table, tc.Rows)
		}
	}
	want := dump(t, src, plans)
	if got := dump(t, pg, plans); !reflect.DeepEqual(got, want) {
		t.Fatalf("PostgreSQL after the copy:\n%v\nwant\n%v", got, want)
	}
	pgConn := pg.(*postgresEndpoint).conn
	var owners, leases, version int
	if err := pgConn.QueryRow(ctx, `SELECT count(owner), count(lease_until), (SELECT min(version) FROM streams) FROM lanes`).Scan(&owners, &leases, &version); err != nil {
		t.Fatal(err)
	}
	if owners != 0 || leases != 0 || version != 1 {
		t.Errorf("lanes after the copy: %d owners, %d leases (want none); stream version %d (want 1)", owners, leases, version)
	}
	var nextDelivery int64
	if err := pgConn.QueryRow(ctx, `INSERT INTO deliveries (webhook_id, project_id, config_id, lane, event_pk, event_type, stream, status, next_attempt, created_at, updated_at)
		VALUES ('w', 'p', 'c', 'c/s', 1, 'RECORD_OVER', 's', 'pending', now(), now(), now()) RETURNING id`).Scan(&nextDelivery); err != nil {
		t.Fatal(err)
	}
	if nextDelivery != 5001 {
		t.Errorf("the next delivery id in PostgreSQL is %d, want 5001 (after the largest SQLite drew)", nextDelivery)
	}
	if _, err := pgConn.Exec(ctx, `DELETE FROM deliveries WHERE id = $1`, nextDelivery); err != nil {
		t.Fatal(err)
	}

	// A second copy into the same database is refused, unless forced.
	if _, err := Copy(ctx, src, pg, Options{}); !errors.Is(err, ErrTargetNotEmpty) || !strings.Contains(err.Error(), "callbacks: 3 rows") {
		t.Fatalf("copy into a database that holds data: %v", err)
	}
	if _, err := Copy(ctx, src, pg, Options{Force: true}); err != nil {
		t.Fatalf("forced copy: %v", err)
	}
	if got := dump(t, pg, plans); !reflect.DeepEqual(got, want) {
		t.Fatalf("PostgreSQL after a forced copy:\n%v\nwant\n%v", got, want)
	}

	// And back.
	back := openSQLite(t, backPath)
	if _, err := Copy(ctx, pg, back, Options{}); err != nil {
		t.Fatal(err)
	}
	if got := dump(t, back, plans); !reflect.DeepEqual(got, want) {
		t.Fatalf("SQLite after the round trip:\n%v\nwant\n%v", got, want)
	}
	var seq int64
	var leaseSum int64
	b := back.(*sqliteEndpoint)
	if err := b.conn.QueryRowContext(ctx, `SELECT (SELECT seq FROM sqlite_sequence WHERE name = 'deliveries'), (SELECT COALESCE(SUM(lease_until), 0) + COUNT(owner) FROM lanes)`).Scan(&seq, &leaseSum); err != nil {
		t.Fatal(err)
	}
	if seq < 5000 || leaseSum != 0 {
		t.Errorf("SQLite after the round trip: deliveries sequence %d (want ≥ 5000), leases %d (want none)", seq, leaseSum)
	}
}
