package main

import (
	"bytes"
	"math"
	"strings"
	"testing"
)

func TestParseStatements(t *testing.T) {
	out := "11\x1f10\x1f2.5\x1f30\x1f40\x1f4000\x1f50\x1fINSERT INTO events (uid) SELECT * FROM unnest($1::text[])\n" +
		"22\x1f4\x1f1\x1f4\x1f0\x1f0\x1f8\x1fSELECT $1\n" +
		"22\x1f1\x1f0.5\x1f1\x1f0\x1f0\x1f2\x1fSELECT $1\n" + // the same queryid nested: added
		"\n"
	m, err := parseStatements(out)
	if err != nil {
		t.Fatal(err)
	}
	want := map[string]statementCounters{
		"11": {calls: 10, execMS: 2.5, rows: 30, walRecords: 40, walBytes: 4000, blocks: 50, query: "INSERT INTO events (uid) SELECT * FROM unnest($1::text[])"},
		"22": {calls: 5, execMS: 1.5, rows: 5, blocks: 10, query: "SELECT $1"},
	}
	if len(m) != len(want) {
		t.Fatalf("got %d statements, want %d: %+v", len(m), len(want), m)
	}
	for id, w := range want {
		if m[id] != w {
			t.Errorf("statement %s: got %+v, want %+v", id, m[id], w)
		}
	}
	for _, bad := range []string{"1\x1f2\x1f3\n", "1\x1fx\x1f1\x1f1\x1f1\x1f1\x1f1\x1fq\n", "1\x1f1\x1f1\x1f1\x1f1\x1f1\x1fnan?\x1fq\n"} {
		if _, err := parseStatements(bad); err == nil {
			t.Errorf("parseStatements(%q): no error", bad)
		}
	}
}

func TestStatementsSince(t *testing.T) {
	before := map[string]statementCounters{
		"a": {calls: 10, execMS: 10, rows: 10, walRecords: 10, walBytes: 100, blocks: 10, query: "A"},
		"b": {calls: 5, execMS: 50, query: "B"},
		"c": {calls: 3, execMS: 3, query: "C"},
	}
	after := map[string]statementCounters{
		"a": {calls: 110, execMS: 210, rows: 210, walRecords: 510, walBytes: 50100, blocks: 1010, query: "A"},
		"b": {calls: 2, execMS: 4, walRecords: 100, query: "B"}, // reset in between: counts from zero
		"c": {calls: 3, execMS: 3, query: "C"},                  // not run: left out
		"d": {calls: 1, execMS: 1, query: "D"},                  // new
	}
	ds := statementsSince(before, after, 100)
	if len(ds.Statements) != 3 {
		t.Fatalf("got %d statements, want 3: %+v", len(ds.Statements), ds.Statements)
	}
	a, b, d := ds.Statements[0], ds.Statements[1], ds.Statements[2]
	if a.Query != "A" || b.Query != "B" || d.Query != "D" {
		t.Fatalf("order %q %q %q, want A B D (busiest first)", a.Query, b.Query, d.Query)
	}
	near := func(what string, got, want float64) {
		t.Helper()
		if math.Abs(got-want) > 1e-9 {
			t.Errorf("%s = %v, want %v", what, got, want)
		}
	}
	near("A calls", float64(a.Calls), 100)
	near("A µs per event", a.ExecMicrosPerEvent, 2000)
	near("A µs per call", a.ExecMicrosPerCall, 2000)
	near("A rows per event", a.RowsPerEvent, 2)
	near("A WAL records per event", a.WALRecordsPerEvent, 5)
	near("A WAL bytes per event", a.WALBytesPerEvent, 500)
	near("A buffers per event", a.BlocksPerEvent, 10)
	near("B calls", float64(b.Calls), 2)
	near("B µs per event", b.ExecMicrosPerEvent, 40)
	near("total µs per event", ds.ExecMicrosPerEvent, 2000+40+10)
	near("total WAL records per event", ds.WALRecordsPerEvent, 6)
	if statementsSince(before, after, 0) != nil {
		t.Error("no delivered event: want nil")
	}

	var buf bytes.Buffer
	writeStatements(&buf, ds)
	text := buf.String()
	for _, want := range []string{"2050 µs of execution", "6.0 WAL records", "2000.0 µs/event", "  A\n"} {
		if !strings.Contains(text, want) {
			t.Errorf("report lacks %q:\n%s", want, text)
		}
	}
}
