package main

import (
	"context"
	"fmt"
	"io"
	"net/url"
	"os/exec"
	"sort"
	"strconv"
	"strings"
)

// What the PostgreSQL server spends its time on, statement by statement:
// when the server has pg_stat_statements (loaded by shared_preload_libraries
// and created in the -pg-admin-url database), the bench reads the bench
// database's statements before the load and after the drain, and reports the
// difference per delivered event. Without the extension the run says so in a
// note and goes on. It is what shows which of livehooks' statements the
// server's CPU per event goes to, and how much of it a transaction costs
// whatever it holds.

// statementsSQL reads the counters of every statement of one database. The
// fields are separated by the ASCII unit separator, which no statement text
// holds once its whitespace is collapsed.
const statementsSQL = `SELECT s.queryid, s.calls, s.total_exec_time, s.rows, s.wal_records, s.wal_bytes,
	s.shared_blks_hit + s.shared_blks_read, left(regexp_replace(s.query, '\s+', ' ', 'g'), 200)
	FROM pg_stat_statements s JOIN pg_database d ON d.oid = s.dbid WHERE d.datname = '%s'`

// statementCounters are pg_stat_statements' cumulative counters of one
// statement.
type statementCounters struct {
	calls      int64
	execMS     float64
	rows       int64
	walRecords int64
	walBytes   int64
	blocks     int64
	query      string
}

// plus is c and o added up, with c's text.
func (c statementCounters) plus(o statementCounters) statementCounters {
	c.calls += o.calls
	c.execMS += o.execMS
	c.rows += o.rows
	c.walRecords += o.walRecords
	c.walBytes += o.walBytes
	c.blocks += o.blocks
	return c
}

// StatementFigures are one statement's share of the server's work over a
// phase.
type StatementFigures struct {
	Query  string  `json:"query"` // normalized text, whitespace collapsed, first 200 characters
	Calls  int64   `json:"calls"`
	ExecMS float64 `json:"exec_ms"` // execution time, the server's wall time in the statement
	// Per delivered event.
	ExecMicrosPerEvent float64 `json:"exec_us_per_event"`
	RowsPerEvent       float64 `json:"rows_per_event"`
	WALRecordsPerEvent float64 `json:"wal_records_per_event"`
	WALBytesPerEvent   float64 `json:"wal_bytes_per_event"`
	BlocksPerEvent     float64 `json:"buffers_per_event"` // shared buffers hit or read
	// ExecMicrosPerCall is the mean execution time of one call.
	ExecMicrosPerCall float64 `json:"exec_us_per_call"`
}

// DatabaseStatements are the bench database's statements over a load phase
// and its drain, busiest first.
type DatabaseStatements struct {
	Statements []StatementFigures `json:"statements"`
	// Totals over every statement of the database.
	ExecMicrosPerEvent float64 `json:"exec_us_per_event"`
	WALRecordsPerEvent float64 `json:"wal_records_per_event"`
	WALBytesPerEvent   float64 `json:"wal_bytes_per_event"`
}

// readStatements returns the counters of the statements of the database that
// dbURL names, read through adminURL's database, by queryid; an error when
// the server has no pg_stat_statements there.
func readStatements(ctx context.Context, adminURL, dbURL string) (map[string]statementCounters, error) {
	u, err := url.Parse(dbURL)
	if err != nil {
		return nil, err
	}
	name := strings.TrimPrefix(u.Path, "/")
	if name == "" || strings.ContainsAny(name, `'\`) {
		return nil, fmt.Errorf("database name %q", name)
	}
	out, err := exec.CommandContext(ctx, "psql", "-X", "-q", "-A", "-t", "-F", "\x1f", "-v", "ON_ERROR_STOP=1",
		"-d", adminURL, "-c", fmt.Sprintf(statementsSQL, name)).CombinedOutput()
	if err != nil {
		return nil, fmt.Errorf("%v: %s", err, strings.TrimSpace(string(out)))
	}
	return parseStatements(string(out))
}

// parseStatements parses statementsSQL's rows as psql prints them unaligned.
func parseStatements(out string) (map[string]statementCounters, error) {
	m := map[string]statementCounters{}
	for line := range strings.SplitSeq(out, "\n") {
		if line == "" {
			continue
		}
		f := strings.Split(line, "\x1f")
		if len(f) != 8 {
			return nil, fmt.Errorf("pg_stat_statements row of %d fields: %.80q", len(f), line)
		}
		var c statementCounters
		var errs [6]error
		c.calls, errs[0] = strconv.ParseInt(f[1], 10, 64)
		c.execMS, errs[1] = strconv.ParseFloat(f[2], 64)
		c.rows, errs[2] = strconv.ParseInt(f[3], 10, 64)
		c.walRecords, errs[3] = strconv.ParseInt(f[4], 10, 64)
		c.walBytes, errs[4] = strconv.ParseInt(f[5], 10, 64)
		c.blocks, errs[5] = strconv.ParseInt(f[6], 10, 64)
		for _, err := range errs {
			if err != nil {
				return nil, fmt.Errorf("pg_stat_statements row %.80q: %w", line, err)
			}
		}
		c.query = f[7]
		// A statement run both at top level and nested has two rows of
		// one queryid: they add up.
		m[f[0]] = c.plus(m[f[0]])
	}
	return m, nil
}

// statementsSince returns what each statement did from before to after, per
// delivered event, busiest first; statements not run in between are left
// out. A statement whose counters went back (the server's statistics were
// reset in between) counts from zero.
func statementsSince(before, after map[string]statementCounters, delivered int64) *DatabaseStatements {
	if delivered <= 0 {
		return nil
	}
	ev := float64(delivered)
	ds := &DatabaseStatements{Statements: []StatementFigures{}}
	for id, a := range after {
		b := before[id]
		if a.calls < b.calls {
			b = statementCounters{}
		}
		calls := a.calls - b.calls
		if calls == 0 {
			continue
		}
		s := StatementFigures{
			Query:              a.query,
			Calls:              calls,
			ExecMS:             a.execMS - b.execMS,
			RowsPerEvent:       float64(a.rows-b.rows) / ev,
			WALRecordsPerEvent: float64(a.walRecords-b.walRecords) / ev,
			WALBytesPerEvent:   float64(a.walBytes-b.walBytes) / ev,
			BlocksPerEvent:     float64(a.blocks-b.blocks) / ev,
		}
		s.ExecMicrosPerEvent = s.ExecMS * 1000 / ev
		s.ExecMicrosPerCall = s.ExecMS * 1000 / float64(calls)
		ds.Statements = append(ds.Statements, s)
		ds.ExecMicrosPerEvent += s.ExecMicrosPerEvent
		ds.WALRecordsPerEvent += s.WALRecordsPerEvent
		ds.WALBytesPerEvent += s.WALBytesPerEvent
	}
	sort.Slice(ds.Statements, func(i, j int) bool {
		si, sj := ds.Statements[i], ds.Statements[j]
		if si.ExecMS != sj.ExecMS {
			return si.ExecMS > sj.ExecMS
		}
		return si.Query < sj.Query
	})
	return ds
}

// redactURL is a database URL without its password, for a message.
func redactURL(s string) string {
	u, err := url.Parse(s)
	if err != nil {
		return "the -pg-admin-url server"
	}
	return u.Redacted()
}

// firstLine is the first line of a message.
func firstLine(s string) string {
	line, _, _ := strings.Cut(s, "\n")
	return line
}

// reportStatements is how many statements the text report lists.
const reportStatements = 8

// writeStatements prints the busiest statements of the phase.
func writeStatements(w io.Writer, ds *DatabaseStatements) {
	fmt.Fprintf(w, "PostgreSQL statements [load+drain] (pg_stat_statements): %.0f µs of execution, %.1f WAL records and %.0f WAL bytes per delivered event; busiest:\n",
		ds.ExecMicrosPerEvent, ds.WALRecordsPerEvent, ds.WALBytesPerEvent)
	for _, s := range ds.Statements[:min(reportStatements, len(ds.Statements))] {
		q := s.Query
		if r := []rune(q); len(r) > 72 {
			q = string(r[:72]) + "…"
		}
		fmt.Fprintf(w, "  %6.1f µs/event %7d calls %6.0f µs/call %5.2f rows/event %5.1f WAL records/event  %s\n",
			s.ExecMicrosPerEvent, s.Calls, s.ExecMicrosPerCall, s.RowsPerEvent, s.WALRecordsPerEvent, q)
	}
}
