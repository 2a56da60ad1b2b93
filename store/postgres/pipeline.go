package postgres

import (
	"context"
	"errors"
	"fmt"
	"sync"
	"time"

	"github.com/google/uuid"

	"github.com/livehooks/livehooks"
)

// A group commit's transaction is one round trip (flush.go). With the
// database a few milliseconds away, that round trip, not the server's work,
// would bound how often a node commits: the group committer therefore sends
// the next transaction while the one before it is still in flight
// (WritePipelined), on Write's other connection. The server runs the second
// as soon as the first commits, with no round trip in between.
//
// Two rules keep that equivalent to one transaction after the other:
//
//   - The second commits after the first, and only if the first committed.
//     Its first statement advances this store's row of write_chains from the
//     value the first set (chainNextSQL): the row's lock makes it wait for
//     the first's commit, and a first that rolled back left the row at an
//     older value, so the second fails as a conflict. A transaction sent
//     with nothing in flight starts the chain again (chainStartSQL).
//   - What the second read from memory is what the first leaves. When a
//     transaction is sent, the stream states it wrote go into the cache
//     (speculate) for the transactions built after it; when it fails, they
//     are taken out again, with those of every transaction in flight (which
//     fail with it), and the transactions built meanwhile are built again
//     (epoch), so that none commits on a state that was never stored.
//
// A transaction that failed runs again when its outcome is read (the
// committer reads them in the order they were sent), on its own, before
// the ones sent after it run again and before any new one is sent.

// chainStartSQL starts this store's chain of transactions at $2.
const chainStartSQL = `INSERT INTO write_chains (writer, seq, started_at) VALUES ($1, $2, now())
	ON CONFLICT (writer) DO UPDATE SET seq = excluded.seq, started_at = excluded.started_at`

// chainNextSQL advances this store's chain from $3, which the transaction
// sent before this one set, to $2: it waits for that transaction, and
// conflicts when it did not commit. The row is found by its key alone, so
// that the update waits for the lock and then reads the row as the
// transaction before left it (a condition on seq would be checked against
// the row as it was when the statement started, and skip it).
const chainNextSQL = `WITH u AS (
	UPDATE write_chains SET seq = CASE WHEN seq = $3::bigint THEN $2::bigint ELSE seq END WHERE writer = $1 RETURNING seq
)
SELECT CASE WHEN (SELECT seq FROM u) = $2::bigint THEN true ELSE livehooks_conflict('chain') END`

// chainsLifetime is how long a store's write_chains row outlives its last
// chain start before another store deletes it. A store whose row was
// deleted under a chain loses one transaction to a conflict and starts
// again.
const chainsLifetime = 24 * time.Hour

// pipe is what orders the transactions of Write in flight.
type pipe struct {
	writer string // this store's row of write_chains

	mu       sync.Mutex
	cond     sync.Cond // signalled when inflight falls to 0
	seq      int64     // what the last transaction sent sets its row to
	inflight []*flushing
	broken   bool   // one failed: none is sent until inflight is empty
	epoch    uint64 // counts failures: a transaction built across one is built again

	// Moving averages of the round trip to the server (pings of Write's
	// connections) and of the server's time for a transaction, for Ready.
	rtt, exec time.Duration
}

// average moves the average *avg towards sample.
func average(avg *time.Duration, sample time.Duration) {
	if *avg == 0 {
		*avg = sample
		return
	}
	*avg += (sample - *avg) / 8
}

// Ready blocks until a transaction sent now would reach the server about
// when the one in flight ahead of it commits: sent sooner, it would wait
// there with fewer writers in it; later, the server would wait for it. With
// the database far away (a round trip longer than a transaction's work)
// that is as soon as the one ahead started. With the database near (a
// round trip under half a transaction's work) two in flight would only
// split the writers into smaller transactions: Ready then waits for the
// one ahead to be done (groupcommit.Pipeliner).
func (db *DB) Ready(ctx context.Context) {
	p := &db.pipe
	p.mu.Lock()
	if len(p.inflight) == 0 || p.broken {
		p.mu.Unlock()
		return
	}
	if 2*p.rtt < p.exec {
		for len(p.inflight) > 0 && ctx.Err() == nil {
			p.cond.Wait()
		}
		p.mu.Unlock()
		return
	}
	last := p.inflight[len(p.inflight)-1]
	lead := p.exec - p.rtt
	p.mu.Unlock()
	if last.sent.confirm() != nil || lead <= 0 {
		return
	}
	wait := time.NewTimer(time.Until(last.sent.linkedAt.Add(lead)))
	defer wait.Stop()
	select {
	case <-wait.C:
	case <-ctx.Done():
	}
}

// timed learns from a transaction that committed, sent with nothing ahead
// of it, how long the server worked on it: from its sending to its outcome,
// less a round trip. Its wait is the committer's only one then, so the
// outcome is read as soon as it arrives.
func (p *pipe) timed(f *flushing) {
	if !f.chainStart {
		return
	}
	took := time.Since(f.sent.sentAt)
	p.mu.Lock()
	defer p.mu.Unlock()
	average(&p.exec, max(took-p.rtt, 0))
}

// pinged learns the round trip to the server from a ping that took took.
func (p *pipe) pinged(took time.Duration) {
	p.mu.Lock()
	defer p.mu.Unlock()
	average(&p.rtt, took)
}

func (p *pipe) init() {
	p.writer = uuid.NewString()
	p.cond.L = &p.mu
}

// current returns the epoch a transaction is built in.
func (p *pipe) current() uint64 {
	p.mu.Lock()
	defer p.mu.Unlock()
	return p.epoch
}

// errRebuild says a transaction was built from memory that a failure since
// made out of date: fn runs again.
var errRebuild = errors.New("postgres: write: built across a failure")

// send sends f's batch on conn, in the chain when sequenced, and speculates.
// It returns errRebuild when a transaction failed since epoch.
func (p *pipe) send(ctx context.Context, f *flushing, epoch uint64, sequenced bool) error {
	p.mu.Lock()
	defer p.mu.Unlock()
	if sequenced {
		for {
			for p.broken && len(p.inflight) > 0 {
				p.cond.Wait()
			}
			if len(p.inflight) == 0 {
				p.broken = false
				break
			}
			// Linked to the last one sent, which must have taken its row
			// already: otherwise this one could reach the server first.
			if p.inflight[len(p.inflight)-1].sent.confirm() == nil {
				break
			}
			p.broken = true
		}
	}
	if p.epoch != epoch {
		return errRebuild
	}
	if sequenced {
		p.seq++
		f.chainStart = len(p.inflight) == 0
		if len(p.inflight) == 0 {
			f.chain.SQL, f.chain.Arguments = chainStartSQL, []any{p.writer, p.seq}
		} else {
			f.chain.SQL, f.chain.Arguments = chainNextSQL, []any{p.writer, p.seq, p.seq - 1}
		}
	}
	if err := f.start(ctx); err != nil {
		if sequenced {
			p.seq--
		}
		return err
	}
	if sequenced {
		p.inflight = append(p.inflight, f)
	}
	f.speculate()
	return nil
}

// fail takes the speculation of f out of the cache, with that of every
// transaction in flight when f was sequenced (they fail with it), and makes
// the transactions built meanwhile build again.
func (p *pipe) fail(f *flushing, sequenced bool) {
	p.mu.Lock()
	defer p.mu.Unlock()
	f.unspeculate()
	if sequenced {
		for _, g := range p.inflight {
			g.unspeculate()
		}
		p.broken = true
	}
	p.epoch++
}

// done takes f, whose outcome is final, out of the transactions in flight.
func (p *pipe) done(f *flushing) {
	p.mu.Lock()
	defer p.mu.Unlock()
	for i, g := range p.inflight {
		if g == f {
			p.inflight = append(p.inflight[:i], p.inflight[i+1:]...)
			break
		}
	}
	if len(p.inflight) == 0 {
		p.cond.Broadcast()
	}
}

// WritePipelined is Write without waiting for the commit: it runs fn, sends
// the transaction and returns. wait then blocks until it committed, or
// failed for good, and returns the round trips it took; only then is what
// Enqueue, Requeue and Record returned complete. A transaction sent while
// another is in flight commits after it, and only if it committed; one that
// failed runs again inside its wait. The group committer calls the waits in
// the order of the sends, so that a transaction that ran again commits
// before those sent after it (groupcommit.Pipeliner).
func (db *DB) WritePipelined(ctx context.Context, fn func(tx livehooks.OutboxTx) error) (wait func() (int, error), err error) {
	w := &pipelined{db: db, fn: fn, run: &writeRun{}}
	if err := db.retry(ctx, func() error { return w.send(ctx, true) }); err != nil {
		return nil, err
	}
	return func() (int, error) { return w.wait(ctx) }, nil
}

// pipelined is one Write: its runs, and what they learnt.
type pipelined struct {
	db    *DB
	fn    func(tx livehooks.OutboxTx) error
	run   *writeRun
	t     *outboxTx
	f     *flushing // nil when the transaction had nothing to write
	trips int
}

// send runs fn and sends its transaction (sequenced: in the chain).
func (w *pipelined) send(ctx context.Context, sequenced bool) error {
	for {
		t := &outboxTx{db: w.db, run: w.run, matches: make(map[matchKey]match)}
		epoch := w.db.pipe.current()
		f, err := t.build(ctx, w.fn, sequenced)
		if err == nil && f != nil {
			err = w.db.pipe.send(ctx, f, epoch, sequenced)
		}
		if err != nil {
			w.trips += t.trips
			t.release(ctx)
			if errors.Is(err, errRebuild) {
				continue
			}
			return err
		}
		w.t, w.f = t, f
		return nil
	}
}

// build runs fn, then queues what it wrote (nil when nothing).
func (t *outboxTx) build(ctx context.Context, fn func(tx livehooks.OutboxTx) error, sequenced bool) (*flushing, error) {
	if stale := t.run.stale; len(stale) > 0 {
		// What the last run found out of date, read again at once rather
		// than one stream at a time.
		t.run.stale = nil
		if _, err := t.readStreams(ctx, stale); err != nil {
			return nil, err
		}
	}
	if err := fn(t); err != nil {
		return nil, err
	}
	return t.flush(ctx, sequenced)
}

// wait reads the outcome of the transaction sent; one that failed runs
// again, unsequenced: nothing sent after it commits before it has.
func (w *pipelined) wait(ctx context.Context) (int, error) {
	first := w.f
	err := w.outcome(ctx, true)
	if err != nil && retryable(err) && ctx.Err() == nil {
		w.db.retries.Add(1)
		err = w.db.retry(ctx, func() error {
			if err := w.send(ctx, false); err != nil {
				return err
			}
			return w.outcome(ctx, false)
		})
	}
	if first != nil {
		w.db.pipe.done(first)
	}
	return w.trips, err
}

// outcome reads the outcome of the last transaction sent and gives its
// connection back.
func (w *pipelined) outcome(ctx context.Context, sequenced bool) error {
	t, f := w.t, w.f
	w.t, w.f = nil, nil
	defer func() {
		w.trips += t.trips
		t.release(ctx)
	}()
	if f == nil {
		return nil
	}
	if err := f.sent.outcome(); err != nil {
		w.db.pipe.fail(f, sequenced)
		f.failed(err)
		return fmt.Errorf("postgres: write: %w", err)
	}
	if sequenced {
		w.db.pipe.timed(f)
	}
	f.complete()
	return nil
}

// openChain deletes the write_chains rows of stores gone for a while and
// creates this store's. The row must be there before the first transaction
// is sent: one sent behind the transaction that inserts it would not see
// the row, and would conflict, instead of waiting for that commit.
func (db *DB) openChain(ctx context.Context) error {
	if _, err := db.pool.Exec(ctx, `DELETE FROM write_chains WHERE started_at < now() - $1::interval`, chainsLifetime); err != nil {
		return fmt.Errorf("write chain: %w", err)
	}
	if _, err := db.pool.Exec(ctx, chainStartSQL, db.pipe.writer, 0); err != nil {
		return fmt.Errorf("write chain: %w", err)
	}
	return nil
}

// dropChain deletes this store's write_chains row, when it closes.
func (db *DB) dropChain() {
	ctx, cancel := context.WithTimeout(context.Background(), time.Second)
	defer cancel()
	_, _ = db.pool.Exec(ctx, `DELETE FROM write_chains WHERE writer = $1`, db.pipe.writer)
}
