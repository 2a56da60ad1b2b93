// Package storecopy copies a livehooks store between SQLite and PostgreSQL
// with everything in it. The copy is driven by the schemas the two databases
// report: a table or column that Tables does not account for stops the copy
// instead of being left behind.
package storecopy

import (
	"context"
	"errors"
	"fmt"
	"slices"
	"sort"
	"strings"
)

// Table says how one table of the stores' schemas is copied.
type Table struct {
	Name string
	// Identity is the column whose values the store draws itself (events.pk,
	// deliveries.id): the target continues after the largest value the
	// source ever drew, so ids are never reused.
	Identity string
	// Reset columns are written as the target's empty value (NULL, or 0
	// where NULL is not allowed) instead of the source's: state that belongs
	// to the source's processes, such as lane leases.
	Reset []string
	// OneSided are columns that exist in one engine's schema only: copied
	// into a target that has them from the column's default, dropped from a
	// source that has them. Values say why.
	OneSided map[string]string
	// ViewIn names the engine ("sqlite", "postgres") whose schema has this
	// table as a view of the others: it is read from there like a table,
	// and nothing is written into it there (it shows what was copied).
	ViewIn string
}

// Tables are the tables copied, in order (a table comes after those it
// refers to).
var Tables = []Table{
	{Name: "callbacks"},
	{Name: "domains"},
	{Name: "events", Identity: "pk"},
	{Name: "deliveries", Identity: "id"},
	{Name: "attempts"},
	// Leases belong to the source's nodes, which are stopped: the target's
	// nodes take the lanes at once instead of waiting for them to expire.
	// SQLite keeps its lanes in memory and derives them from the pending
	// deliveries (a view) when it opens.
	{Name: "lanes", Reset: []string{"owner", "lease_until"}, OneSided: map[string]string{
		"home": "PostgreSQL records the node that should claim a free lane; a copy has no live node yet, and its nodes claim the lanes by their keys",
	}, ViewIn: engineSQLite},
	{Name: "streams", OneSided: map[string]string{
		"version": "PostgreSQL counts the writes of a stream's row to detect other nodes' writes; a copy starts the count afresh",
	}},
	// Finished recording files on their way to their callbacks; as with
	// lanes, the target's nodes take them at once.
	{Name: "file_jobs", Identity: "id", Reset: []string{"owner", "lease_until"}},
}

// Skipped are the tables of either schema that are not copied, and why.
var Skipped = map[string]string{
	"schema_migrations": "each store records the migrations it applied when it opens",
	"nodes":             "the liveness of the source's nodes means nothing to the target's",
}

// skippedPrefix marks SQLite's own tables (sqlite_sequence is copied as the
// deliveries' identity; sqlite_stat1 holds planner statistics).
const skippedPrefix = "sqlite_"

// Options configure Copy.
type Options struct {
	// Force empties the target's tables first; without it a target that
	// holds data is refused.
	Force bool
	// Progress, if set, is told each table's row count once it is copied.
	Progress func(table string, rows int64)
}

// Report says what Copy copied: rows per table, in copy order.
type Report struct {
	Tables []TableCount
}

// TableCount is the number of rows copied into one table.
type TableCount struct {
	Table string
	Rows  int64
}

// ErrTargetNotEmpty is returned (wrapped) when the target holds data and
// Options.Force is not set.
var ErrTargetNotEmpty = errors.New("the target store is not empty")

// Copy copies every table of src into dst: src is read in one snapshot, dst
// written in one transaction, so a copy that fails leaves dst as it was.
// Both stores must be at the same schema version (open them with this
// binary's store packages first: that migrates them). One of them must be
// PostgreSQL: it knows the columns' types, which says how values convert.
func Copy(ctx context.Context, src, dst Endpoint, opts Options) (*Report, error) {
	if src.engine() == dst.engine() {
		return nil, fmt.Errorf("storecopy: both stores are %s: copy between SQLite and PostgreSQL only (backup or pg_dump copy one engine)", src.engine())
	}
	srcSchema, err := src.schema(ctx)
	if err != nil {
		return nil, fmt.Errorf("storecopy: read the %s schema: %w", src.engine(), err)
	}
	dstSchema, err := dst.schema(ctx)
	if err != nil {
		return nil, fmt.Errorf("storecopy: read the %s schema: %w", dst.engine(), err)
	}
	plan, err := Plan(srcSchema, dstSchema)
	if err != nil {
		return nil, err
	}
	if err := src.beginRead(ctx); err != nil {
		return nil, fmt.Errorf("storecopy: read %s: %w", src.engine(), err)
	}
	defer src.rollback(ctx)
	if err := dst.beginWrite(ctx); err != nil {
		return nil, fmt.Errorf("storecopy: write %s: %w", dst.engine(), err)
	}
	defer dst.rollback(ctx)

	var held []string
	for _, tp := range plan {
		if tp.table.ViewIn == dst.engine() {
			continue // it shows the tables it is a view of
		}
		n, err := dst.count(ctx, tp.table.Name)
		if err != nil {
			return nil, fmt.Errorf("storecopy: count %s: %w", tp.table.Name, err)
		}
		if n > 0 {
			held = append(held, fmt.Sprintf("%s: %d rows", tp.table.Name, n))
		}
	}
	if len(held) > 0 && !opts.Force {
		return nil, fmt.Errorf("storecopy: %w (%s)", ErrTargetNotEmpty, strings.Join(held, ", "))
	}
	if len(held) > 0 {
		for _, tp := range slices.Backward(plan) {
			if tp.table.ViewIn == dst.engine() {
				continue
			}
			if err := dst.clear(ctx, tp.table.Name); err != nil {
				return nil, fmt.Errorf("storecopy: empty %s: %w", tp.table.Name, err)
			}
		}
	}

	report := &Report{}
	for _, tp := range plan {
		if tp.table.ViewIn == dst.engine() {
			// The rows the view derives from what was copied before it.
			n, err := dst.count(ctx, tp.table.Name)
			if err != nil {
				return nil, fmt.Errorf("storecopy: count %s: %w", tp.table.Name, err)
			}
			report.Tables = append(report.Tables, TableCount{tp.table.Name, n})
			if opts.Progress != nil {
				opts.Progress(tp.table.Name, n)
			}
			continue
		}
		rows, err := src.read(ctx, tp.table.Name, tp.read)
		if err != nil {
			return nil, fmt.Errorf("storecopy: read %s: %w", tp.table.Name, err)
		}
		n, err := dst.write(ctx, tp.table.Name, tp.write, &resetRows{rows: rows, reset: tp.reset})
		rows.Close()
		if err == nil {
			err = rows.Err()
		}
		if err != nil {
			return nil, fmt.Errorf("storecopy: copy %s: %w", tp.table.Name, err)
		}
		if id := tp.table.Identity; id != "" {
			next, err := src.lastID(ctx, tp.table.Name, id)
			if err != nil {
				return nil, fmt.Errorf("storecopy: %s.%s: %w", tp.table.Name, id, err)
			}
			if err := dst.setLastID(ctx, tp.table.Name, id, next); err != nil {
				return nil, fmt.Errorf("storecopy: %s.%s: %w", tp.table.Name, id, err)
			}
		}
		report.Tables = append(report.Tables, TableCount{tp.table.Name, n})
		if opts.Progress != nil {
			opts.Progress(tp.table.Name, n)
		}
	}
	if err := dst.commit(ctx); err != nil {
		return nil, fmt.Errorf("storecopy: commit %s: %w", dst.engine(), err)
	}
	return report, nil
}

// Schema is the tables of one database and their columns in order.
type Schema struct {
	Engine string
	Tables map[string][]Column
}

// Column is one column of a table. Type is PostgreSQL's data type name
// (information_schema) and empty for SQLite, whose declared types do not say
// enough (times are INTEGER microseconds there).
type Column struct {
	Name     string
	Type     string
	Nullable bool
}

// tablePlan is how one table is copied: the columns read from the source
// and written to the target, with their kinds, and the reset columns.
type tablePlan struct {
	table       Table
	read, write []typedColumn
	reset       []resetValue
}

type typedColumn struct {
	name string
	kind kind
	// skip: read as NULL (a reset column: its source value, which may not
	// even convert, such as PostgreSQL's -infinity, is not wanted).
	skip bool
}

// resetValue is a column written as a constant (write[index] = value).
type resetValue struct {
	index int
	value any
}

// Plan checks that the two schemas hold exactly the tables and columns
// Tables and Skipped account for, and says how each table is copied.
func Plan(src, dst Schema) ([]tablePlan, error) {
	pg := src
	if dst.Engine == enginePostgres {
		pg = dst
	}
	known := map[string]bool{}
	for _, t := range Tables {
		known[t.Name] = true
	}
	var problems []string
	for _, s := range []Schema{src, dst} {
		names := make([]string, 0, len(s.Tables))
		for name := range s.Tables {
			names = append(names, name)
		}
		sort.Strings(names)
		for _, name := range names {
			if !known[name] && Skipped[name] == "" && !strings.HasPrefix(name, skippedPrefix) {
				problems = append(problems, fmt.Sprintf("table %s of the %s schema is not handled by the copier (storecopy.Tables)", name, s.Engine))
			}
		}
	}
	var plans []tablePlan
	for _, t := range Tables {
		sc, dc, pc := src.Tables[t.Name], dst.Tables[t.Name], pg.Tables[t.Name]
		if sc == nil || dc == nil {
			problems = append(problems, fmt.Sprintf("table %s is missing from the %s schema", t.Name, missingFrom(src, dst, t.Name)))
			continue
		}
		p := tablePlan{table: t}
		for _, c := range dc {
			if !hasColumn(sc, c.Name) {
				if t.OneSided[c.Name] == "" {
					problems = append(problems, fmt.Sprintf("column %s.%s exists in the %s schema only and the copier does not handle it", t.Name, c.Name, dst.Engine))
				}
				continue
			}
			k, err := kindOf(columnType(pc, c.Name))
			if err != nil {
				problems = append(problems, fmt.Sprintf("column %s.%s: %v", t.Name, c.Name, err))
				continue
			}
			reset := slices.Contains(t.Reset, c.Name)
			if reset {
				p.reset = append(p.reset, resetValue{index: len(p.write), value: k.empty(c.Nullable)})
			}
			p.read = append(p.read, typedColumn{c.Name, k, reset})
			p.write = append(p.write, typedColumn{c.Name, k, false})
		}
		for _, c := range sc {
			if !hasColumn(dc, c.Name) && t.OneSided[c.Name] == "" {
				problems = append(problems, fmt.Sprintf("column %s.%s exists in the %s schema only and the copier does not handle it", t.Name, c.Name, src.Engine))
			}
		}
		plans = append(plans, p)
	}
	if len(problems) > 0 {
		return nil, fmt.Errorf("storecopy: the schemas differ from what the copier knows (is each store at this livehooks' schema version?):\n  %s", strings.Join(problems, "\n  "))
	}
	return plans, nil
}

func missingFrom(src, dst Schema, table string) string {
	if src.Tables[table] == nil {
		return src.Engine
	}
	return dst.Engine
}

func hasColumn(cols []Column, name string) bool {
	return slices.ContainsFunc(cols, func(c Column) bool { return c.Name == name })
}

func columnType(cols []Column, name string) string {
	for _, c := range cols {
		if c.Name == name {
			return c.Type
		}
	}
	return ""
}

// rowSource is the rows of one table, as neutral values (string, int64,
// bool, []byte, time.Time or nil) in the plan's column order.
type rowSource interface {
	Next() bool
	Values() ([]any, error)
	Err() error
	Close()
}

// resetRows writes the reset columns' constants over the source's values.
type resetRows struct {
	rows  rowSource
	reset []resetValue
}

func (r *resetRows) Next() bool { return r.rows.Next() }
func (r *resetRows) Err() error { return r.rows.Err() }
func (r *resetRows) Close()     { r.rows.Close() }
func (r *resetRows) Values() ([]any, error) {
	v, err := r.rows.Values()
	if err != nil {
		return nil, err
	}
	for _, rv := range r.reset {
		v[rv.index] = rv.value
	}
	return v, nil
}
