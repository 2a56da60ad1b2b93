package postgres

import (
	"context"
	"fmt"
	"sync"
	"time"

	"github.com/jackc/pgx/v5"
	"github.com/jackc/pgx/v5/pgconn"
	"github.com/jackc/pgx/v5/pgtype"
)

// A transaction's batch goes out through pgconn's pipeline rather than
// pgx's SendBatch, for one thing SendBatch cannot do: ask the server to send
// the link's result at once (a Flush after it), so that the transaction
// sent next on the other connection can tell that this one holds its
// writer's row before it is sent itself (pipe.send). Otherwise that one
// could reach the server first, find the row not yet advanced and fail.

// sent is a batch on its way: its pipeline and the results read so far.
// confirm may be called from any goroutine; outcome from one, after which
// confirm reads nothing more.
type sent struct {
	p     *pgconn.Pipeline
	res   pipeResults
	chain int   // the index of the link in the batch, -1 when none
	read  int   // results read so far
	err   error // the first error read
	done  bool

	sentAt time.Time

	mu        sync.Mutex // held while confirm reads
	confirmed bool
	linkErr   error     // what confirm found
	linkedAt  time.Time // when confirm read the link's result
}

// start sends f's batch on f.conn: a Bind and Execute per statement, a
// Flush after the link, one Sync.
func (f *flushing) start(ctx context.Context) error {
	pc := f.conn.PgConn()
	s := &sent{chain: -1}
	s.p = pc.StartPipeline(ctx)
	s.res = pipeResults{typeMap: f.conn.TypeMap(), p: s.p, b: &f.b}
	var eqb pgx.ExtendedQueryBuilder
	for i, q := range f.b.QueuedQueries {
		sd := prepared(f.conn, q.SQL)
		if sd == nil {
			s.p.Close()
			return fmt.Errorf("postgres: write: statement not prepared: %.40s", q.SQL)
		}
		if err := eqb.Build(f.conn.TypeMap(), sd, q.Arguments); err != nil {
			s.p.Close()
			return fmt.Errorf("postgres: write: %w", err)
		}
		// The pipeline keeps the result formats; the values are written
		// out at once.
		s.p.SendQueryStatement(sd, eqb.ParamValues, eqb.ParamFormats, append([]int16(nil), eqb.ResultFormats...))
		if q == f.chain {
			s.chain = i
			s.p.SendFlushRequest()
		}
	}
	if err := s.p.Sync(); err != nil {
		return fmt.Errorf("postgres: write: %w", err)
	}
	s.sentAt = time.Now()
	f.sent = s
	return nil
}

// confirm reads the results up to the link's: nil once the server ran it,
// the error that stopped the transaction before or at it otherwise.
func (s *sent) confirm() error {
	s.mu.Lock()
	defer s.mu.Unlock()
	if !s.confirmed {
		for s.err == nil && s.read <= s.chain {
			s.next()
		}
		s.confirmed, s.linkErr, s.linkedAt = true, s.err, time.Now()
	}
	return s.linkErr
}

// next reads the next statement's result, running its callback.
func (s *sent) next() {
	q := s.res.b.QueuedQueries[s.read]
	s.read++
	var err error
	if q.Fn != nil {
		err = q.Fn(&s.res)
	} else {
		_, err = s.res.Exec()
	}
	if err == nil {
		err = s.res.err
	}
	if err != nil && s.err == nil {
		s.err = err
	}
}

// outcome reads every result left and the Sync: nil once the transaction
// committed.
func (s *sent) outcome() error {
	// Past the link, confirm reads nothing more: this goroutine reads the
	// rest alone, without holding mu while the server works.
	s.confirm()
	for s.err == nil && !s.done && s.read < len(s.res.b.QueuedQueries) {
		s.next()
	}
	if !s.done {
		s.done = true
		s.res.closeRows()
		// Reads what is left up to the Sync's ReadyForQuery; the error of
		// a statement that failed is read there if it was not yet.
		if err := s.p.Close(); err != nil && s.err == nil {
			s.err = err
		}
	}
	return s.err
}

// pipeResults reads a pipeline's results one statement at a time, as
// pgx.BatchResults, for the callbacks that pgx.Batch's Query and QueryRow
// queue.
type pipeResults struct {
	typeMap *pgtype.Map
	p       *pgconn.Pipeline
	b       *pgx.Batch
	last    pgx.Rows // the rows of the last Query, closed before the next
	err     error
}

var _ pgx.BatchResults = (*pipeResults)(nil)

// closeRows closes the last Query's rows, keeping their error.
func (r *pipeResults) closeRows() {
	if r.last == nil {
		return
	}
	r.last.Close()
	if err := r.last.Err(); err != nil && r.err == nil {
		r.err = err
	}
	r.last = nil
}

// reader returns the result of the next statement.
func (r *pipeResults) reader() (*pgconn.ResultReader, error) {
	r.closeRows()
	if r.err != nil {
		return nil, r.err
	}
	res, err := r.p.GetResults()
	if err != nil {
		r.err = err
		return nil, err
	}
	rr, ok := res.(*pgconn.ResultReader)
	if !ok {
		r.err = fmt.Errorf("unexpected pipeline result %T", res)
		return nil, r.err
	}
	return rr, nil
}

func (r *pipeResults) Exec() (pgconn.CommandTag, error) {
	rr, err := r.reader()
	if err != nil {
		return pgconn.CommandTag{}, err
	}
	ct, err := rr.Close()
	if err != nil {
		r.err = err
	}
	return ct, err
}

func (r *pipeResults) Query() (pgx.Rows, error) {
	rr, err := r.reader()
	if err != nil {
		return errRows{err}, err
	}
	r.last = pgx.RowsFromResultReader(r.typeMap, rr)
	return r.last, nil
}

func (r *pipeResults) QueryRow() pgx.Row {
	rows, err := r.Query()
	return firstRow{rows, err}
}

// Close is sent.outcome's: the callbacks never call it.
func (r *pipeResults) Close() error { return r.err }

func (r *pipeResults) Tx() pgx.Tx { return nil }

// firstRow is QueryRow's row: the first of the rows, pgx.ErrNoRows when
// none.
type firstRow struct {
	rows pgx.Rows
	err  error
}

func (r firstRow) Scan(dest ...any) error {
	if r.err != nil {
		return r.err
	}
	defer r.rows.Close()
	if !r.rows.Next() {
		if err := r.rows.Err(); err != nil {
			return err
		}
		return pgx.ErrNoRows
	}
	if err := r.rows.Scan(dest...); err != nil {
		return err
	}
	r.rows.Close()
	return r.rows.Err()
}

// errRows are the rows of a statement whose result could not be read.
type errRows struct{ err error }

func (e errRows) Close()                                       {}
func (e errRows) Err() error                                   { return e.err }
func (e errRows) CommandTag() pgconn.CommandTag                { return pgconn.CommandTag{} }
func (e errRows) FieldDescriptions() []pgconn.FieldDescription { return nil }
func (e errRows) Next() bool                                   { return false }
func (e errRows) Scan(...any) error                            { return e.err }
func (e errRows) Values() ([]any, error)                       { return nil, e.err }
func (e errRows) RawValues() [][]byte                          { return nil }
func (e errRows) Conn() *pgx.Conn                              { return nil }
func (e errRows) TypeMap() *pgtype.Map                         { return nil }
