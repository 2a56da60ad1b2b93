// Package groupcommit puts group commit in front of a livehooks.Outbox:
// concurrent writers (ingest requests, delivery results) share one transaction,
// and each is answered when that transaction commits. Durable acknowledgement
// then costs one fsync per batch instead of one per event.
package groupcommit

import (
	"context"
	"errors"
	"log/slog"
	"runtime"
	"strings"
	"sync"
	"time"

	"github.com/livehooks/livehooks"
	"github.com/livehooks/livehooks/metrics"
)

// Effect is what one committed operation means for the dispatcher, delivered in
// commit order: deliveries it should send now, or lanes whose state changed.
type Effect struct {
	Enqueued []*livehooks.Delivery // owned, due deliveries (Enqueue, Requeue)
	Results  []livehooks.Result    // recorded attempts (Record)
	Lanes    []livehooks.LaneState // lane states after Record or Defer
	// With Options.Observe: the events the operation stored and every
	// delivery it created, due or not (the live feed shows them).
	Events  []*livehooks.Event
	Created []*livehooks.Delivery
}

// Options tune a Committer.
type Options struct {
	Node  string // this node's id, the lane owner
	Clock livehooks.Clock
	// MaxBatch caps the operations of one transaction.
	MaxBatch int
	// OnCommit receives the effects of each committed transaction, in commit
	// order, from one goroutine of the committer's (the one that syncs, with
	// a DeferredSyncer store), once the transaction is durable. It must not
	// block for long. With Concurrent > 1 the transactions in flight
	// together touch different streams: their effects come one transaction
	// at a time, as each finishes.
	OnCommit func([]Effect)
	// Observe fills Effect.Events and Effect.Created.
	Observe bool
	// LazyDelay is how long a lazy write (RecordLazily) may wait for
	// another write to share its transaction (default 5 ms).
	LazyDelay time.Duration
	// CommitDelay is how long a transaction that would start with fewer
	// than CommitFill writes waits for more (0: it starts at once). Under
	// load the writes that queue while a transaction commits fill the next
	// one and nothing waits; at a moderate rate each transaction would hold
	// one or two writes, and a transaction's cost is mostly fixed (its WAL
	// frames or round trip and fsync, the server's work per statement).
	CommitDelay time.Duration
	// CommitFill is the batch size that ends the CommitDelay wait
	// (default 8 writes, at most MaxBatch).
	CommitFill int
	// Concurrent is how many transactions may be in flight at once
	// (default 1). With more, a batch starts while others are still
	// committing, made of writes that touch none of their streams; a write
	// of a stream in flight waits for that transaction, and the writes of a
	// stream keep their order. It is for a store far from its database (a
	// server across a network), where a transaction's round trip is most of
	// its time: a writer then waits for its own transaction only, not also
	// for the one ahead of it. A DeferredSyncer store runs one.
	Concurrent int
	Logger     *slog.Logger
	Metrics    *metrics.Metrics
}

type opKind int

const (
	opEnqueue opKind = iota
	opRequeue
	opRecord
	opDefer
	opApply
)

type op struct {
	kind opKind
	lazy bool // may wait LazyDelay for a transaction to join
	// streams are the stream names the write touches (its lanes are
	// (config, stream)); any: it may touch every stream (an Apply that
	// names none).
	streams    []string
	any        bool
	events     []*livehooks.Event
	deliveries []*livehooks.Delivery
	results    []livehooks.Result
	lane       string
	until      time.Time
	apply      ApplyFunc
	done       chan opResult
}

// ApplyFunc runs inside a batch's transaction and returns the deliveries its
// enqueues produced (to dispatch after the commit). It must not do slow I/O:
// every other writer of the batch waits for it.
type ApplyFunc func(ctx context.Context, tx livehooks.OutboxTx, now time.Time) ([]*livehooks.Delivery, error)

type opResult struct {
	effect Effect
	err    error
}

// Committer batches writes. Run must be running for calls to complete.
type Committer struct {
	outbox  livehooks.Outbox
	opts    Options
	ops     chan *op
	lazy    chan *op // lazy writes: they wait for an eager one, or LazyDelay
	stopped chan struct{}
	// finished is closed when Run has answered every write it took.
	finished chan struct{}
	once     sync.Once
	// syncs carries committed transactions to syncLoop when the store
	// leaves the fsync to the committer; nil otherwise.
	syncs chan committed
	// unsynced holds a token per transaction written and not yet synced.
	unsynced chan struct{}

	// With Options.Concurrent > 1: the transactions in flight, and their
	// answers one at a time (OnCommit is never called concurrently).
	flight   inFlight
	landed   chan struct{} // a transaction in flight finished (capacity 1)
	running  sync.WaitGroup
	finishMu sync.Mutex
	trips    int // round trips counted up to the last finish (concurrent: see finish)
}

// inFlight is what the transactions in flight touch.
type inFlight struct {
	mu      sync.Mutex
	n       int            // transactions in flight
	any     int            // of them, those that may touch any stream
	streams map[string]int // the streams they touch, with how many touch each
}

// DeferredSyncer is implemented by stores that can commit a transaction
// without waiting for the disk (SQLite with livehooks' own WAL fsync): the
// committer then acknowledges a batch after Sync, while the next batch is
// already being written, so the fsync no longer bounds the rate of commits.
type DeferredSyncer interface {
	WriteDeferSync(ctx context.Context, fn func(tx livehooks.OutboxTx) error) error
	// Sync makes every transaction committed so far durable.
	Sync() error
}

// New returns a Committer writing to outbox.
func New(outbox livehooks.Outbox, opts Options) *Committer {
	if opts.Clock == nil {
		opts.Clock = livehooks.SystemClock{}
	}
	if opts.MaxBatch <= 0 {
		opts.MaxBatch = 512
	}
	if opts.Logger == nil {
		opts.Logger = slog.New(slog.DiscardHandler)
	}
	if opts.OnCommit == nil {
		opts.OnCommit = func([]Effect) {}
	}
	if opts.LazyDelay <= 0 {
		opts.LazyDelay = 5 * time.Millisecond
	}
	if opts.CommitFill <= 0 {
		opts.CommitFill = 8
	}
	opts.CommitFill = min(opts.CommitFill, opts.MaxBatch)
	if _, ok := outbox.(DeferredSyncer); ok || opts.Concurrent < 1 {
		opts.Concurrent = 1
	}
	opts.Metrics.ConcurrentCommits(opts.Concurrent)
	c := &Committer{outbox: outbox, opts: opts, ops: make(chan *op, 4096), lazy: make(chan *op, 4096),
		stopped: make(chan struct{}), finished: make(chan struct{})}
	if opts.Concurrent > 1 {
		c.landed = make(chan struct{}, 1)
		c.flight.streams = map[string]int{}
	}
	return c
}

// ErrClosed is returned for writes submitted after Run returned.
var ErrClosed = livehooks.Errorf(livehooks.EUNAVAILABLE, "shutting down")

func (c *Committer) submit(ctx context.Context, o *op) (Effect, error) {
	o.done = make(chan opResult, 1)
	q := c.ops
	if o.lazy {
		q = c.lazy
	}
	select {
	case q <- o:
	case <-ctx.Done():
		return Effect{}, ctx.Err()
	case <-c.stopped:
		return Effect{}, ErrClosed
	}
	// Once submitted, the write may commit whatever the caller's context does:
	// wait for its fate so that an acknowledgement is never given for a write
	// that did not commit, nor withheld for one that did.
	select {
	case r := <-o.done:
		return r.effect, r.err
	case <-c.stopped:
		// Run answers every write it took, those still waiting for their
		// fsync included, before it returns.
		<-c.finished
		select {
		case r := <-o.done:
			return r.effect, r.err
		default:
			return Effect{}, ErrClosed // queued after the final drain: never written
		}
	}
}

// Enqueue stores events and their deliveries durably and returns the
// deliveries this node should dispatch now.
func (c *Committer) Enqueue(ctx context.Context, events []*livehooks.Event) ([]*livehooks.Delivery, error) {
	eff, err := c.submit(ctx, &op{kind: opEnqueue, events: events, streams: EventStreams(events)})
	return eff.Enqueued, err
}

// Requeue adds new deliveries copying ds (manual retry, replay).
func (c *Committer) Requeue(ctx context.Context, ds []*livehooks.Delivery) ([]*livehooks.Delivery, error) {
	eff, err := c.submit(ctx, &op{kind: opRequeue, deliveries: ds, streams: deliveryStreams(ds)})
	return eff.Enqueued, err
}

// Record stores attempt results.
func (c *Committer) Record(ctx context.Context, results []livehooks.Result) ([]livehooks.LaneState, error) {
	eff, err := c.submit(ctx, &op{kind: opRecord, results: results, streams: resultStreams(results)})
	return eff.Lanes, err
}

// RecordLazily stores attempt results like Record, in a transaction that
// may start up to Options.LazyDelay later: the results wait for another
// write to share its transaction rather than commit on their own. At a low
// rate, where each event would otherwise commit once for its ingest and once
// for its result, this halves the transactions; under load there is always
// another write waiting and nothing waits. For results that nothing waits
// for (the dispatcher's successes with nothing else queued in their lane).
func (c *Committer) RecordLazily(ctx context.Context, results []livehooks.Result) ([]livehooks.LaneState, error) {
	eff, err := c.submit(ctx, &op{kind: opRecord, results: results, lazy: true, streams: resultStreams(results)})
	return eff.Lanes, err
}

// Defer releases a lane until t without an attempt.
func (c *Committer) Defer(ctx context.Context, lane string, until time.Time) error {
	_, stream, _ := strings.Cut(lane, "/") // livehooks.LaneKey
	_, err := c.submit(ctx, &op{kind: opDefer, lane: lane, until: until, streams: []string{stream}})
	return err
}

// EventStreams returns the streams of events, as Apply takes them.
func EventStreams(events []*livehooks.Event) []string {
	streams := make([]string, len(events))
	for i, e := range events {
		streams[i] = e.Stream
	}
	return streams
}

func deliveryStreams(ds []*livehooks.Delivery) []string {
	streams := make([]string, len(ds))
	for i, d := range ds {
		streams[i] = d.Stream
	}
	return streams
}

func resultStreams(results []livehooks.Result) []string {
	streams := make([]string, len(results))
	for i, r := range results {
		streams[i] = r.Delivery.Stream
	}
	return streams
}

// Node returns the node id the committer writes as.
func (c *Committer) Node() string { return c.opts.Node }

// Apply runs fn in a batched transaction: a state change and the events it
// produces commit together (the recording state machine uses it). streams
// are the names of the streams fn touches; with none, fn may touch any, and
// its transaction runs alone.
func (c *Committer) Apply(ctx context.Context, streams []string, fn ApplyFunc) error {
	_, err := c.submit(ctx, &op{kind: opApply, apply: fn, streams: streams, any: len(streams) == 0})
	return err
}

// Run commits batches until ctx is done and the queue is drained; writes
// submitted after that fail with ErrClosed.
func (c *Committer) Run(ctx context.Context) {
	defer close(c.finished) // after the fsyncs below
	if ds, ok := c.outbox.(DeferredSyncer); ok {
		c.syncs = make(chan committed, maxUnsynced)
		c.unsynced = make(chan struct{}, maxUnsynced)
		synced := make(chan struct{})
		go c.syncLoop(ds, synced)
		defer func() {
			close(c.syncs)
			<-synced
		}()
	}
	c.trips = c.roundTrips()
	batch := make([]*op, 0, c.opts.MaxBatch)
	// held are writes taken from the queues that wait for a transaction in
	// flight (Options.Concurrent): one of their streams is in it, or in a
	// write held before them.
	var held []*op
	wait := time.NewTimer(c.opts.LazyDelay)
	wait.Stop()
	for {
		if !c.awaitSlot(ctx) {
			c.stop(held)
			return
		}
		batch, held = c.admitHeld(batch[:0], held)
		var first *op
		if len(batch) > 0 {
			first = batch[0]
		} else {
			select {
			case first = <-c.ops:
			case first = <-c.lazy:
			case <-c.landed:
				continue // held writes may go now
			case <-ctx.Done():
				c.stop(held)
				return
			}
			if !c.admit(first, held) {
				held = append(held, first)
				continue
			}
			batch = append(batch, first)
		}
		if first.lazy && len(batch) == 1 {
			// Nothing eager is waiting: give one a little time to come and
			// carry this write.
			wait.Reset(c.opts.LazyDelay)
			select {
			case o := <-c.ops:
				batch, held = c.take(batch, held, o)
			case <-wait.C:
			case <-ctx.Done(): // commit what was taken; the next turn stops
			}
			wait.Stop()
		}
		if c.unsynced != nil {
			// With two transactions not yet synced, wait for one before
			// taking in the batch: the writers that come meanwhile join it.
			c.unsynced <- struct{}{}
		}
		// Let the goroutines that are ready to run go first, again while
		// that brings writes (at most three times): on a busy machine
		// some of them are writers about to submit (an ingest handler that
		// has parsed its request, the dispatcher with a result), and a
		// transaction costs about the same however few writes it holds.
		// With nothing else ready this returns at once. (Saturation bench,
		// interleaved 20 s runs: one yield took 21 operations per
		// transaction instead of 15.5 and livehooks ÷ relay from 0.47 to
		// 0.50 on average over five pairs; yielding again while writes
		// come, 22 and 0.53 against 0.49 over three more, each with less
		// CPU per event; p99 no higher.)
		for range 3 {
			queued := len(c.ops)
			runtime.Gosched()
			if len(c.ops) == queued {
				break
			}
		}
		// Take whatever else is already waiting: while one transaction
		// commits, the next batch builds up by itself.
	fill:
		for len(batch) < c.opts.MaxBatch {
			select {
			case o := <-c.ops:
				batch, held = c.take(batch, held, o)
			case o := <-c.lazy:
				batch, held = c.take(batch, held, o)
			default:
				break fill
			}
		}
		if c.opts.CommitDelay > 0 && !first.lazy && len(batch) < c.opts.CommitFill {
			// Few writers: wait a little for more to share the
			// transaction. (A lazy first write has waited already.)
			wait.Reset(c.opts.CommitDelay)
		gather:
			for len(batch) < c.opts.CommitFill {
				select {
				case o := <-c.ops:
					batch, held = c.take(batch, held, o)
				case o := <-c.lazy:
					batch, held = c.take(batch, held, o)
				case <-wait.C:
					break gather
				case <-ctx.Done(): // commit what was taken; the next turn stops
					break gather
				}
			}
			wait.Stop()
		}
		c.launch(batch)
	}
}

// awaitSlot waits until fewer than Options.Concurrent transactions are in
// flight; false when ctx ended first.
func (c *Committer) awaitSlot(ctx context.Context) bool {
	for c.opts.Concurrent > 1 {
		c.flight.mu.Lock()
		n := c.flight.n
		c.flight.mu.Unlock()
		if n < c.opts.Concurrent {
			return true
		}
		select {
		case <-c.landed:
		case <-ctx.Done():
			return false
		}
	}
	return true
}

// admit reports whether o may join the batch being built: with one
// transaction at a time, always; else when no transaction in flight
// touches its streams and no write held before it does.
func (c *Committer) admit(o *op, held []*op) bool {
	if c.opts.Concurrent <= 1 {
		return true
	}
	if o.any {
		return len(held) == 0 && c.idle()
	}
	for _, h := range held {
		if h.any || overlap(h.streams, o.streams) {
			return false
		}
	}
	c.flight.mu.Lock()
	defer c.flight.mu.Unlock()
	if c.flight.any > 0 {
		return false
	}
	for _, s := range o.streams {
		if c.flight.streams[s] > 0 {
			return false
		}
	}
	return true
}

// take adds o to the batch if it may join it, else holds it.
func (c *Committer) take(batch, held []*op, o *op) ([]*op, []*op) {
	if c.admit(o, held) {
		return append(batch, o), held
	}
	return batch, append(held, o)
}

// admitHeld moves the held writes that may go now to batch, in order.
func (c *Committer) admitHeld(batch, held []*op) ([]*op, []*op) {
	if len(held) == 0 {
		return batch, held
	}
	var still []*op
	for _, o := range held {
		if c.admit(o, still) {
			batch = append(batch, o)
		} else {
			still = append(still, o)
		}
	}
	return batch, still
}

func (c *Committer) idle() bool {
	c.flight.mu.Lock()
	defer c.flight.mu.Unlock()
	return c.flight.n == 0
}

func overlap(a, b []string) bool {
	for _, x := range a {
		for _, y := range b {
			if x == y {
				return true
			}
		}
	}
	return false
}

// launch commits batch: in this goroutine with one transaction at a time,
// else in its own, its streams marked in flight until its writers have
// their answers.
func (c *Committer) launch(batch []*op) {
	if c.opts.Concurrent <= 1 {
		c.commit(batch)
		return
	}
	ops := append([]*op(nil), batch...)
	c.mark(ops, 1)
	c.running.Add(1)
	go func() {
		defer c.running.Done()
		c.commit(ops)
		c.mark(ops, -1)
		select {
		case c.landed <- struct{}{}:
		default:
		}
	}()
}

// mark adds (d = 1) or removes (d = -1) a transaction's streams in flight.
func (c *Committer) mark(ops []*op, d int) {
	c.flight.mu.Lock()
	defer c.flight.mu.Unlock()
	c.flight.n += d
	for _, o := range ops {
		if o.any {
			c.flight.any += d
		}
		for _, s := range o.streams {
			if c.flight.streams[s] += d; c.flight.streams[s] == 0 {
				delete(c.flight.streams, s)
			}
		}
	}
}

// stop ends Run: the transactions in flight finish, the writes held for
// them commit, and what is still queued fails with ErrClosed.
func (c *Committer) stop(held []*op) {
	c.once.Do(func() { close(c.stopped) })
	c.running.Wait()
	for len(held) > 0 {
		n := min(len(held), c.opts.MaxBatch)
		c.commit(held[:n])
		held = held[n:]
	}
	drain(c.ops)
	drain(c.lazy)
}

// dueOnly keeps the deliveries this node should dispatch now, in place.
func dueOnly(ds []*livehooks.Delivery) []*livehooks.Delivery {
	out := ds[:0]
	for _, d := range ds {
		if d.Due {
			out = append(out, d)
		}
	}
	clear(ds[len(out):])
	return out
}

// RoundTripCounter is implemented by stores that talk to a database server
// (PostgreSQL): the round trips their Write transactions made so far.
type RoundTripCounter interface {
	WriteRoundTrips() int64
}

func (c *Committer) roundTrips() int {
	if rt, ok := c.outbox.(RoundTripCounter); ok {
		return int(rt.WriteRoundTrips())
	}
	return 0
}

// drain fails what is still queued at shutdown.
func drain(q chan *op) {
	for {
		select {
		case o := <-q:
			o.done <- opResult{err: ErrClosed}
		default:
			return
		}
	}
}

func (c *Committer) commit(batch []*op) {
	start := time.Now() // the metric's: real time, whatever Options.Clock says
	effects := make([]Effect, len(batch))
	now := c.opts.Clock.Now()
	// A fresh context: the batch belongs to many callers, none of whom may
	// cancel the others' writes.
	ctx, cancel := context.WithTimeout(context.Background(), 30*time.Second)
	defer cancel()
	failed := make([]error, len(batch))
	trips := c.roundTrips()
	write := c.outbox.Write
	if ds, ok := c.outbox.(DeferredSyncer); ok {
		write = ds.WriteDeferSync // Run took its c.unsynced token
	}
	err := write(ctx, func(tx livehooks.OutboxTx) error {
		// A store may run fn again after a conflict (PostgreSQL): only the
		// last run's outcome counts.
		clear(failed)
		clear(effects)
		for i, o := range batch {
			var err error
			tx := tx
			var seen *observedTx
			if c.opts.Observe {
				seen = &observedTx{OutboxTx: tx}
				tx = seen
			}
			switch o.kind {
			case opEnqueue:
				effects[i].Enqueued, err = tx.Enqueue(ctx, c.opts.Node, now, o.events)
			case opRequeue:
				effects[i].Enqueued, err = tx.Requeue(ctx, c.opts.Node, now, o.deliveries)
			case opRecord:
				effects[i].Results = o.results
				effects[i].Lanes, err = tx.Record(ctx, c.opts.Node, now, o.results)
			case opApply:
				effects[i].Enqueued, err = o.apply(ctx, tx, now)
			case opDefer:
				var st livehooks.LaneState
				st, err = tx.Defer(ctx, c.opts.Node, o.lane, o.until)
				effects[i].Lanes = []livehooks.LaneState{st}
			}
			if seen != nil {
				effects[i].Events, effects[i].Created = seen.events, seen.created
			}
			if err != nil {
				// A store method that fails with a domain error wrote
				// nothing: that caller gets its error, the others commit.
				// An Apply may have written before failing: it fails all.
				if code := livehooks.ErrorCode(err); o.kind != opApply && (code == livehooks.EINVALID || code == livehooks.ENOTFOUND) {
					failed[i], effects[i] = err, Effect{}
					continue
				}
				return err
			}
		}
		return nil
	})
	if err != nil {
		c.opts.Logger.Error("store write failed", "ops", len(batch), "error", err)
		if livehooks.ErrorCode(err) == livehooks.EINTERNAL || errors.Is(err, context.DeadlineExceeded) {
			err = livehooks.Errorf(livehooks.EUNAVAILABLE, "the store cannot accept writes")
		}
		for _, o := range batch {
			o.done <- opResult{err: err}
		}
		if c.unsynced != nil {
			<-c.unsynced // nothing of it to sync
		}
		return
	}
	done := committed{ops: batch, effects: effects, failed: failed, trips: c.roundTrips() - trips, start: start}
	if c.syncs == nil {
		c.finish(done, nil)
		return
	}
	// The next batch runs while the disk syncs this one.
	done.ops = append([]*op(nil), batch...)
	c.syncs <- done
}

// maxUnsynced is how many committed transactions may wait for their fsync:
// one syncing and one committed behind it. A third would start as soon as
// the second committed, with only the few writers that arrived meanwhile;
// waiting for the fsync lets the batch grow instead.
const maxUnsynced = 2

// committed is a transaction that committed, waiting to be acknowledged.
type committed struct {
	ops     []*op
	effects []Effect
	failed  []error
	trips   int
	start   time.Time // when the transaction began
}

// finish acknowledges a committed transaction: its effects go to OnCommit,
// its callers get their answers. syncErr says the disk did not confirm it.
func (c *Committer) finish(t committed, syncErr error) {
	if c.opts.Concurrent > 1 {
		// One transaction's answers at a time. The round trips of
		// transactions in flight together cannot be told apart: each is
		// charged those made since the last one finished, so that their
		// sum is exact.
		c.finishMu.Lock()
		defer c.finishMu.Unlock()
		now := c.roundTrips()
		t.trips, c.trips = now-c.trips, now
	}
	c.opts.Metrics.Commit(len(t.ops), t.trips, time.Since(t.start))
	// The store completes deliveries when the transaction is flushed: only
	// now is it known which of them this node dispatches.
	for i := range t.effects {
		t.effects[i].Enqueued = dueOnly(t.effects[i].Enqueued)
	}
	// Committed and visible to every reader, even when its fsync failed:
	// the dispatcher may send it (at least once); its writers are not told
	// it is durable.
	c.opts.OnCommit(t.effects)
	for i, o := range t.ops {
		err := t.failed[i]
		if syncErr != nil && err == nil {
			err = livehooks.Errorf(livehooks.EUNAVAILABLE, "the store could not make the write durable")
		}
		o.done <- opResult{effect: t.effects[i], err: err}
	}
}

// syncLoop makes committed transactions durable in commit order, one fsync
// for all that committed since the last one, and acknowledges them.
func (c *Committer) syncLoop(store DeferredSyncer, done chan<- struct{}) {
	defer close(done)
	var pending []committed
	for t := range c.syncs {
		pending = append(pending[:0], t)
	more:
		for {
			select {
			case t, ok := <-c.syncs:
				if !ok {
					break more
				}
				pending = append(pending, t)
			default:
				break more
			}
		}
		err := store.Sync()
		if err != nil {
			c.opts.Logger.Error("store sync failed", "transactions", len(pending), "error", err)
		}
		for _, t := range pending {
			c.finish(t, err)
			<-c.unsynced
		}
	}
}

// observedTx notes what an operation stored, for Effect.Events and
// Effect.Created.
type observedTx struct {
	livehooks.OutboxTx
	events  []*livehooks.Event
	created []*livehooks.Delivery
}

func (t *observedTx) Enqueue(ctx context.Context, node string, now time.Time, events []*livehooks.Event) ([]*livehooks.Delivery, error) {
	ds, err := t.OutboxTx.Enqueue(ctx, node, now, events)
	if err == nil {
		t.events = append(t.events, events...)
		t.created = append(t.created, ds...)
	}
	return ds, err
}

func (t *observedTx) Requeue(ctx context.Context, node string, now time.Time, ds []*livehooks.Delivery) ([]*livehooks.Delivery, error) {
	out, err := t.OutboxTx.Requeue(ctx, node, now, ds)
	if err == nil {
		t.created = append(t.created, out...)
	}
	return out, err
}
