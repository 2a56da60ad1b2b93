package groupcommit_test

import (
	"context"
	"net/http/httptest"
	"strings"
	"sync"
	"sync/atomic"
	"testing"
	"time"

	"github.com/livehooks/livehooks"
	"github.com/livehooks/livehooks/groupcommit"
	"github.com/livehooks/livehooks/metrics"
)

// gatedStore lets each transaction start only when the test says, and counts
// those in flight. It is an Outbox only, not a DeferredSyncer, as the
// PostgreSQL store is: the committer may then run several transactions.
type gatedStore struct {
	livehooks.Outbox
	gate     chan struct{} // a transaction proceeds per token, all once closed
	open     sync.Once
	started  chan []string // the streams of each transaction, as it starts
	inFlight atomic.Int64
	most     atomic.Int64 // the most transactions in flight at once
}

func (s *gatedStore) Write(ctx context.Context, fn func(tx livehooks.OutboxTx) error) error {
	n := s.inFlight.Add(1)
	defer s.inFlight.Add(-1)
	for m := s.most.Load(); n > m && !s.most.CompareAndSwap(m, n); m = s.most.Load() {
	}
	// Learn the transaction's streams from a dry run of fn: an Enqueue
	// names its events'.
	var streams []string
	_ = fn(streamsTx{&streams})
	select {
	case s.started <- streams:
	default: // nobody looks
	}
	<-s.gate
	return s.Outbox.Write(ctx, fn)
}

// streamsTx notes the streams of the events enqueued in it and stores
// nothing; the committer keeps only the outcome of fn's last run, the real
// one.
type streamsTx struct{ streams *[]string }

func (t streamsTx) Enqueue(_ context.Context, _ string, _ time.Time, events []*livehooks.Event) ([]*livehooks.Delivery, error) {
	for _, e := range events {
		*t.streams = append(*t.streams, e.Stream)
	}
	return nil, nil
}

func (streamsTx) Requeue(context.Context, string, time.Time, []*livehooks.Delivery) ([]*livehooks.Delivery, error) {
	return nil, nil
}

func (streamsTx) Record(context.Context, string, time.Time, []livehooks.Result) ([]livehooks.LaneState, error) {
	return nil, nil
}

func (streamsTx) Defer(context.Context, string, string, time.Time) (livehooks.LaneState, error) {
	return livehooks.LaneState{}, nil
}

func (streamsTx) Stream(context.Context, livehooks.StreamKey) (*livehooks.StreamState, error) {
	return nil, nil
}
func (streamsTx) PutStream(context.Context, *livehooks.StreamState) error { return nil }
func (streamsTx) AddFileJob(context.Context, string, time.Time, time.Duration, *livehooks.FileJob) error {
	return nil
}
func (streamsTx) FinishFileJob(context.Context, int64, string) error { return nil }

// setupConcurrent runs a committer of up to n transactions in flight on a
// gated SQLite store; stop ends Run and waits for it.
func setupConcurrent(t *testing.T, n int, onCommit func([]groupcommit.Effect)) (gs *gatedStore, gc *groupcommit.Committer, stop func()) {
	t.Helper()
	base, _, _ := setup(t, nil)
	gs = &gatedStore{Outbox: base.DB, gate: make(chan struct{}, 100), started: make(chan []string, 100)}
	gc = groupcommit.New(gs, groupcommit.Options{Node: "n1", Concurrent: n, OnCommit: onCommit})
	ctx, cancel := context.WithCancel(context.Background())
	done := make(chan struct{})
	go func() { gc.Run(ctx); close(done) }()
	var once sync.Once
	stop = func() { once.Do(func() { cancel(); <-done }) }
	t.Cleanup(func() { gs.release(); stop() })
	return gs, gc, stop
}

// release lets every transaction through from now on.
func (s *gatedStore) release() { s.open.Do(func() { close(s.gate) }) }

// enqueueAsync enqueues one event of stream and returns where its answer
// comes.
func enqueueAsync(gc *groupcommit.Committer, stream string) <-chan enqueued {
	out := make(chan enqueued, 1)
	go func() {
		ds, err := gc.Enqueue(context.Background(), []*livehooks.Event{ev(stream)})
		out <- enqueued{ds, err}
	}()
	return out
}

// answer waits for an enqueue's answer.
func answer(t *testing.T, ch <-chan enqueued) enqueued {
	t.Helper()
	select {
	case e := <-ch:
		return e
	case <-time.After(10 * time.Second):
		t.Fatal("no answer")
		return enqueued{}
	}
}

type enqueued struct {
	ds  []*livehooks.Delivery
	err error
}

func (e enqueued) id(t *testing.T) int64 {
	t.Helper()
	if e.err != nil || len(e.ds) != 1 {
		t.Fatalf("enqueue: %v, %d deliveries", e.err, len(e.ds))
	}
	return e.ds[0].ID
}

func mustStart(t *testing.T, gs *gatedStore, want ...string) {
	t.Helper()
	select {
	case got := <-gs.started:
		if len(got) != len(want) {
			t.Fatalf("a transaction of %v started, want %v", got, want)
		}
		for i := range got {
			if got[i] != want[i] {
				t.Fatalf("a transaction of %v started, want %v", got, want)
			}
		}
	case <-time.After(5 * time.Second):
		t.Fatalf("no transaction of %v started", want)
	}
}

func mustNotStart(t *testing.T, gs *gatedStore) {
	t.Helper()
	select {
	case got := <-gs.started:
		t.Fatalf("a transaction of %v started while its stream was in flight", got)
	case <-time.After(100 * time.Millisecond):
	}
}

// TestTransactionsOfOtherStreamsRunTogether: with Concurrent 2, a write to
// another stream starts its transaction while the first one is in flight;
// a write to a stream in flight waits for it, and does not hold back writes
// of other streams queued after it.
func TestTransactionsOfOtherStreamsRunTogether(t *testing.T) {
	gs, gc, _ := setupConcurrent(t, 2, nil)
	a1 := enqueueAsync(gc, "a")
	mustStart(t, gs, "a")
	a2 := enqueueAsync(gc, "a")
	mustNotStart(t, gs) // "a" is in flight: the second write waits
	b := enqueueAsync(gc, "b")
	mustStart(t, gs, "b") // queued after a2, but another stream
	if n := gs.inFlight.Load(); n != 2 {
		t.Fatalf("%d transactions in flight, want 2", n)
	}
	gs.gate <- struct{}{} // one of the two proceeds
	gs.gate <- struct{}{}
	first, second := answer(t, a1), answer(t, b)
	mustStart(t, gs, "a") // a2, once a1 is answered
	gs.gate <- struct{}{}
	third := answer(t, a2)
	if first.id(t) >= third.id(t) {
		t.Fatalf("the stream's writes committed out of order: %d then %d", first.id(t), third.id(t))
	}
	second.id(t)
}

// TestConcurrentLimit: never more transactions in flight than Concurrent,
// however many streams wait.
func TestConcurrentLimit(t *testing.T) {
	gs, gc, _ := setupConcurrent(t, 3, nil)
	var answers []<-chan enqueued
	for _, s := range []string{"a", "b", "c", "d", "e"} {
		answers = append(answers, enqueueAsync(gc, s))
		time.Sleep(20 * time.Millisecond) // one transaction each
	}
	for deadline := time.Now().Add(5 * time.Second); gs.inFlight.Load() < 3; time.Sleep(time.Millisecond) {
		if time.Now().After(deadline) {
			t.Fatalf("%d transactions in flight, want 3", gs.inFlight.Load())
		}
	}
	time.Sleep(100 * time.Millisecond) // a fourth would start now
	if n := gs.inFlight.Load(); n != 3 {
		t.Fatalf("%d transactions in flight, want 3", n)
	}
	for range 5 {
		gs.gate <- struct{}{}
	}
	for _, a := range answers {
		answer(t, a).id(t)
	}
	if m := gs.most.Load(); m > 3 {
		t.Fatalf("%d transactions in flight at once, want at most 3", m)
	}
}

// TestApplyWithoutStreamsRunsAlone: an Apply that names no stream waits for
// every transaction in flight, and the writes queued after it wait for it.
func TestApplyWithoutStreamsRunsAlone(t *testing.T) {
	gs, gc, _ := setupConcurrent(t, 4, nil)
	a := enqueueAsync(gc, "a")
	mustStart(t, gs, "a")
	applied := make(chan error, 1)
	go func() {
		applied <- gc.Apply(context.Background(), nil, func(ctx context.Context, tx livehooks.OutboxTx, now time.Time) ([]*livehooks.Delivery, error) {
			return tx.Enqueue(ctx, "n1", now, []*livehooks.Event{ev("x")})
		})
	}()
	mustNotStart(t, gs)
	b := enqueueAsync(gc, "b")
	mustNotStart(t, gs) // behind the Apply
	gs.gate <- struct{}{}
	answer(t, a).id(t)
	// The Apply's transaction, which the write queued after it may share;
	// nothing else runs beside it.
	var got []string
	select {
	case got = <-gs.started:
	case <-time.After(5 * time.Second):
		t.Fatal("the Apply did not start")
	}
	if got[0] != "x" || len(got) > 2 {
		t.Fatalf("a transaction of %v started, want the Apply's", got)
	}
	mustNotStart(t, gs)
	gs.gate <- struct{}{}
	if err := <-applied; err != nil {
		t.Fatal(err)
	}
	if len(got) == 1 {
		mustStart(t, gs, "b")
		gs.gate <- struct{}{}
	}
	answer(t, b).id(t)
}

// TestConcurrentOnCommitOneAtATime: with transactions committing together,
// OnCommit is still called by one goroutine at a time, and every writer
// gets its answer.
func TestConcurrentOnCommitOneAtATime(t *testing.T) {
	var in, most atomic.Int64
	var effects atomic.Int64
	gs, gc, _ := setupConcurrent(t, 4, func(e []groupcommit.Effect) {
		n := in.Add(1)
		if n > most.Load() {
			most.Store(n)
		}
		time.Sleep(time.Millisecond)
		effects.Add(int64(len(e)))
		in.Add(-1)
	})
	gs.release() // as fast as they go
	var wg sync.WaitGroup
	for i := range 200 {
		wg.Add(1)
		go func() {
			defer wg.Done()
			if _, err := gc.Enqueue(context.Background(), []*livehooks.Event{ev(string(rune('a' + i%20)))}); err != nil {
				t.Error(err)
			}
		}()
	}
	wg.Wait()
	if most.Load() != 1 {
		t.Fatalf("OnCommit ran %d at once", most.Load())
	}
	if effects.Load() != 200 {
		t.Fatalf("%d effects, want 200", effects.Load())
	}
}

// TestShutdownCommitsHeldWrites: a write held for a transaction in flight
// when Run stops is committed, not failed.
func TestShutdownCommitsHeldWrites(t *testing.T) {
	gs, gc, stop := setupConcurrent(t, 2, nil)
	a1 := enqueueAsync(gc, "a")
	mustStart(t, gs, "a")
	a2 := enqueueAsync(gc, "a")
	mustNotStart(t, gs)
	stopped := make(chan struct{})
	go func() { stop(); close(stopped) }()
	// The writers are answered once Run has returned, after both commits.
	gs.gate <- struct{}{}
	mustStart(t, gs, "a")
	gs.gate <- struct{}{}
	first, second := answer(t, a1), answer(t, a2)
	if first.id(t) >= second.id(t) {
		t.Fatalf("out of order: %d then %d", first.id(t), second.id(t))
	}
	<-stopped
}

// TestConcurrentCommitsExposed: the metrics say how many transactions may be
// in flight: what was asked on a store that allows several, one on SQLite
// (a DeferredSyncer), whatever was asked.
func TestConcurrentCommitsExposed(t *testing.T) {
	base := openStore(t)
	for _, c := range []struct {
		name  string
		store livehooks.Outbox
		asked int
		want  string
	}{
		{"several allowed", &gatedStore{Outbox: base.DB}, 4, "livehooks_store_concurrent_commits 4"},
		{"default", &gatedStore{Outbox: base.DB}, 0, "livehooks_store_concurrent_commits 1"},
		{"sqlite", base, 4, "livehooks_store_concurrent_commits 1"},
	} {
		m := metrics.New(nil)
		groupcommit.New(c.store, groupcommit.Options{Node: "n1", Concurrent: c.asked, Metrics: m})
		rec := httptest.NewRecorder()
		m.Handler().ServeHTTP(rec, httptest.NewRequest("GET", "/metrics", nil))
		if body := rec.Body.String(); !strings.Contains(body, c.want+"\n") {
			t.Errorf("%s: no %q in /metrics", c.name, c.want)
		}
	}
}
