package main

import (
	"context"
	"database/sql"
	"fmt"
	"os"
	"path/filepath"
	"strings"
	"sync"
	"sync/atomic"
	"time"

	_ "modernc.org/sqlite" // the driver the store uses
)

// floor measures the least a durable queue costs on this machine with the
// store's SQLite (modernc, WAL; synchronous=FULL here fsyncs the WAL in each
// commit, where the store fsyncs it itself off the write lock: the same
// work for the CPU, which is what this measures): each event is one row
// inserted and, once its attempt is done, that row deleted, both through a
// group commit of the same shape as livehooks' (one writer, whatever is
// waiting goes into one transaction of one multi-row statement per kind),
// with the same producers, recorders and attempt time as the store run. No
// indexes, no stream state, no lanes, no attempts: what livehooks' write path
// costs above this figure is its own.
func floor(events, producers, recorders int, dir string, attempt time.Duration) error {
	ctx := context.Background()
	tmp, err := os.MkdirTemp(dir, "livehooks-floor-")
	if err != nil {
		return err
	}
	defer os.RemoveAll(tmp)
	path := filepath.Join(tmp, "floor.db")
	db, err := sql.Open("sqlite", "file:"+path+"?_pragma=journal_mode(WAL)&_pragma=synchronous(FULL)&_txlock=immediate")
	if err != nil {
		return err
	}
	defer db.Close()
	db.SetMaxOpenConns(1)
	if _, err := db.ExecContext(ctx, `CREATE TABLE q (id INTEGER PRIMARY KEY, body BLOB NOT NULL)`); err != nil {
		return err
	}
	c := &floorCommitter{db: db, ops: make(chan *floorOp, 4096), stmts: map[floorStmt]*sql.Stmt{}}
	go c.run(ctx)
	defer close(c.ops)

	// An ingest request's body, about the size of the bench's.
	body := []byte(`{"event_type":"RECORD_FILE_COMPLETE","publish_domain":"bench.example.com","app":"r1","stream":"s1",` +
		`"task_id":"t1","record_format":"FLV","download_url":"https://cdn.bench.example.com/r1/s1/t1.flv",` +
		`"file_size":10485760,"record_duration":60,"width":1280,"height":720}`)
	cpu0 := cpuSeconds()
	start := time.Now()
	var (
		next, errs atomic.Int64
		wg, rwg    sync.WaitGroup
	)
	ids := make(chan int64, events)
	for range recorders {
		rwg.Go(func() {
			for id := range ids {
				if attempt > 0 {
					time.Sleep(attempt)
				}
				if _, err := c.submit(&floorOp{del: id}); err != nil {
					errs.Add(1)
				}
			}
		})
	}
	for range producers {
		wg.Go(func() {
			for next.Add(1) <= int64(events) {
				id, err := c.submit(&floorOp{body: body})
				if err != nil {
					errs.Add(1)
					continue
				}
				ids <- id
			}
		})
	}
	wg.Wait()
	close(ids)
	rwg.Wait()
	elapsed := time.Since(start)
	cpu1 := cpuSeconds()
	var left int
	if err := db.QueryRowContext(ctx, `SELECT count(*) FROM q`).Scan(&left); err != nil {
		return err
	}
	if left != 0 || errs.Load() != 0 {
		return fmt.Errorf("floor: %d rows left, %d errors", left, errs.Load())
	}
	cpu := cpu1 - cpu0
	fmt.Printf("floor: events %d, producers %d, recorders %d: one row in and out per event, durable\n", events, producers, recorders)
	fmt.Printf("floor: %.0f events/s (%.2fs), %.1f operations per transaction\n",
		float64(events)/elapsed.Seconds(), elapsed.Seconds(), float64(2*events)/float64(c.txs))
	fmt.Printf("floor: CPU %.2fs = %.0f µs per event (%.2f cores)\n", cpu, cpu/float64(events)*1e6, cpu/elapsed.Seconds())
	return nil
}

type floorOp struct {
	body []byte // an insert; else a delete of del
	del  int64
	id   int64
	err  error
	done chan struct{}
}

type floorCommitter struct {
	db    *sql.DB
	ops   chan *floorOp
	stmts map[floorStmt]*sql.Stmt
	next  int64
	txs   int
}

func (c *floorCommitter) submit(o *floorOp) (int64, error) {
	o.done = make(chan struct{})
	c.ops <- o
	<-o.done
	return o.id, o.err
}

func (c *floorCommitter) run(ctx context.Context) {
	var batch []*floorOp
	for first := range c.ops {
		batch = append(batch[:0], first)
	fill:
		for len(batch) < 256 {
			select {
			case o, ok := <-c.ops:
				if !ok {
					break fill
				}
				batch = append(batch, o)
			default:
				break fill
			}
		}
		err := c.commit(ctx, batch)
		c.txs++
		for _, o := range batch {
			o.err = err
			close(o.done)
		}
	}
}

func (c *floorCommitter) commit(ctx context.Context, batch []*floorOp) error {
	var ins, del []any
	for _, o := range batch {
		if o.body != nil {
			c.next++
			o.id = c.next
			ins = append(ins, o.id, o.body)
		} else {
			del = append(del, o.del)
		}
	}
	// Statements are prepared outside the transaction: the one connection
	// is the transaction's until it ends.
	insert, err := c.stmt(ctx, "INSERT INTO q (id, body) VALUES ", "(?, ?)", "", len(ins)/2)
	if err != nil {
		return err
	}
	remove, err := c.stmt(ctx, "DELETE FROM q WHERE id IN (", "?", ")", len(del))
	if err != nil {
		return err
	}
	tx, err := c.db.BeginTx(ctx, nil)
	if err != nil {
		return err
	}
	defer tx.Rollback()
	if insert != nil {
		if _, err := tx.StmtContext(ctx, insert).ExecContext(ctx, ins...); err != nil {
			return err
		}
	}
	if remove != nil {
		if _, err := tx.StmtContext(ctx, remove).ExecContext(ctx, del...); err != nil {
			return err
		}
	}
	return tx.Commit()
}

// stmt returns the statement head, n rows and tail, prepared the first
// time a size is asked for: a commit then builds no statement text.
func (c *floorCommitter) stmt(ctx context.Context, head, row, tail string, n int) (*sql.Stmt, error) {
	if n == 0 {
		return nil, nil
	}
	k := floorStmt{head, n}
	if s := c.stmts[k]; s != nil {
		return s, nil
	}
	s, err := c.db.PrepareContext(ctx, head+strings.TrimSuffix(strings.Repeat(row+", ", n), ", ")+tail)
	if err != nil {
		return nil, err
	}
	c.stmts[k] = s
	return s, nil
}

type floorStmt struct {
	head string
	rows int
}
