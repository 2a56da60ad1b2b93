package groupcommit_test

import (
	"context"
	"crypto/rand"
	"encoding/hex"
	"errors"
	"fmt"
	"sync"
	"sync/atomic"
	"testing"
	"time"

	"github.com/livehooks/livehooks"
	"github.com/livehooks/livehooks/aesgcm"
	"github.com/livehooks/livehooks/groupcommit"
	"github.com/livehooks/livehooks/store/sqlite"
)

// countingStore counts transactions and can be made to fail them, or
// their fsync.
type countingStore struct {
	*sqlite.DB
	writes   atomic.Int64
	fail     atomic.Bool
	failSync atomic.Bool
	// syncGate, when set, holds every Sync until it is closed.
	syncGate chan struct{}
}

func (s *countingStore) Write(ctx context.Context, fn func(tx livehooks.OutboxTx) error) error {
	if err := s.WriteDeferSync(ctx, fn); err != nil {
		return err
	}
	return s.Sync()
}

func (s *countingStore) WriteDeferSync(ctx context.Context, fn func(tx livehooks.OutboxTx) error) error {
	s.writes.Add(1)
	if s.fail.Load() {
		return errors.New("disk I/O error")
	}
	return s.DB.WriteDeferSync(ctx, fn)
}

func (s *countingStore) Sync() error {
	if s.syncGate != nil {
		<-s.syncGate
	}
	if s.failSync.Load() {
		return errors.New("fsync: input/output error")
	}
	return s.DB.Sync()
}

func hexID() string {
	b := make([]byte, 16)
	_, _ = rand.Read(b)
	return hex.EncodeToString(b)
}

// openStore opens a countingStore on a fresh SQLite file, closed when the
// test ends.
func openStore(t *testing.T) *countingStore {
	t.Helper()
	key := make([]byte, 32)
	_, _ = rand.Read(key)
	c, _ := aesgcm.New(key)
	db, err := sqlite.Open(context.Background(), sqlite.Options{Path: t.TempDir() + "/gc.db", Cipher: c})
	if err != nil {
		t.Fatal(err)
	}
	t.Cleanup(func() { db.Close() })
	return &countingStore{DB: db}
}

func setup(t *testing.T, onCommit func([]groupcommit.Effect), tune ...func(*groupcommit.Options)) (*countingStore, *groupcommit.Committer, *livehooks.CallbackConfig) {
	t.Helper()
	store := openStore(t)
	db := store.DB
	cfg := &livehooks.CallbackConfig{ID: hexID(), ProjectID: "p", PublishDomain: "push.example.com", App: "live",
		NotifyCallbackURL: "http://127.0.0.1:1/cb", NotifyEventSubscription: livehooks.EventTypes, SignType: "HMACSHA256",
		CreateTime: time.Now(), UpdateTime: time.Now()}
	if err := db.CreateCallback(context.Background(), cfg); err != nil {
		t.Fatal(err)
	}
	opts := groupcommit.Options{Node: "n1", OnCommit: onCommit}
	for _, f := range tune {
		f(&opts)
	}
	gc := groupcommit.New(store, opts)
	ctx, cancel := context.WithCancel(context.Background())
	done := make(chan struct{})
	go func() { gc.Run(ctx); close(done) }()
	t.Cleanup(func() { cancel(); <-done })
	return store, gc, cfg
}

func ev(stream string) *livehooks.Event {
	return &livehooks.Event{ID: hexID(), ProjectID: "p", Type: livehooks.RecordStart, PublishDomain: "push.example.com",
		App: "live", Stream: stream, TaskID: "t", OccurredAt: time.Now()}
}

// TestConcurrentWritersShareTransactions: many concurrent enqueues commit in
// far fewer transactions, each caller answered with its own deliveries.
func TestConcurrentWritersShareTransactions(t *testing.T) {
	store, gc, _ := setup(t, nil)
	const n = 300
	var wg sync.WaitGroup
	errs := make(chan error, n)
	for i := range n {
		wg.Add(1)
		go func() {
			defer wg.Done()
			ds, err := gc.Enqueue(context.Background(), []*livehooks.Event{ev(fmt.Sprintf("s%d", i))})
			if err == nil && (len(ds) != 1 || ds[0].Stream != fmt.Sprintf("s%d", i)) {
				err = fmt.Errorf("caller %d got %d deliveries", i, len(ds))
			}
			errs <- err
		}()
	}
	wg.Wait()
	close(errs)
	for err := range errs {
		if err != nil {
			t.Fatal(err)
		}
	}
	if w := store.writes.Load(); w >= n {
		t.Fatalf("%d transactions for %d writers: no grouping", w, n)
	} else {
		t.Logf("%d writers committed in %d transactions", n, w)
	}
	if pending, _ := store.PendingCount(context.Background()); pending != n {
		t.Fatalf("pending %d, want %d", pending, n)
	}
}

// TestEffectsInCommitOrder: effects reach OnCommit in the order the
// operations ran, after their transaction committed.
func TestEffectsInCommitOrder(t *testing.T) {
	var mu sync.Mutex
	var seen []string
	var store *countingStore
	store, gc, _ := setup(t, func(effects []groupcommit.Effect) {
		mu.Lock()
		defer mu.Unlock()
		for _, e := range effects {
			for _, d := range e.Enqueued {
				// Committed already: the delivery is readable.
				if _, err := store.FindDelivery(context.Background(), "p", d.ID); err != nil {
					panic(err)
				}
				seen = append(seen, d.Stream)
			}
		}
	})
	for i := range 20 {
		if _, err := gc.Enqueue(context.Background(), []*livehooks.Event{ev(fmt.Sprintf("s%02d", i))}); err != nil {
			t.Fatal(err)
		}
	}
	mu.Lock()
	defer mu.Unlock()
	for i, s := range seen {
		if s != fmt.Sprintf("s%02d", i) {
			t.Fatalf("effects out of order: %v", seen)
		}
	}
	if len(seen) != 20 {
		t.Fatalf("%d effects", len(seen))
	}
}

// TestFailingOperationFailsAlone: a domain error of one operation (retrying a
// delivery of an unknown event) reaches its caller only.
func TestFailingOperationFailsAlone(t *testing.T) {
	_, gc, cfg := setup(t, nil)
	var (
		wg              sync.WaitGroup
		mu              sync.Mutex
		badErr, goodErr error
	)
	for range 20 {
		wg.Add(2)
		go func() {
			defer wg.Done()
			_, err := gc.Requeue(context.Background(), []*livehooks.Delivery{{ProjectID: "p", ConfigID: cfg.ID, EventID: hexID(), Lane: livehooks.LaneKey(cfg.ID, "x")}})
			mu.Lock()
			defer mu.Unlock()
			if err != nil {
				badErr = err
			}
		}()
		go func() {
			defer wg.Done()
			_, err := gc.Enqueue(context.Background(), []*livehooks.Event{ev("ok")})
			mu.Lock()
			defer mu.Unlock()
			if err != nil {
				goodErr = err
			}
		}()
	}
	wg.Wait()
	if livehooks.ErrorCode(badErr) != livehooks.ENOTFOUND {
		t.Fatalf("bad requeue: %v", badErr)
	}
	if goodErr != nil {
		t.Fatalf("an enqueue in the same batch failed: %v", goodErr)
	}
}

// TestSyncFailureIsUnavailable: a transaction that committed but whose fsync
// failed is not acknowledged as durable.
func TestSyncFailureIsUnavailable(t *testing.T) {
	store, gc, _ := setup(t, nil)
	store.failSync.Store(true)
	_, err := gc.Enqueue(context.Background(), []*livehooks.Event{ev("s")})
	if livehooks.ErrorCode(err) != livehooks.EUNAVAILABLE {
		t.Fatalf("error %v", err)
	}
	store.failSync.Store(false)
	if _, err := gc.Enqueue(context.Background(), []*livehooks.Event{ev("s")}); err != nil {
		t.Fatalf("after recovery: %v", err)
	}
}

// TestShutdownAnswersWritesWaitingForSync: a write that committed and waits
// for its fsync when the committer stops gets its real outcome once the
// fsync is done, not ErrClosed (which would have its caller send it again).
func TestShutdownAnswersWritesWaitingForSync(t *testing.T) {
	store := openStore(t)
	store.syncGate = make(chan struct{})
	gc := groupcommit.New(store, groupcommit.Options{Node: "n1"})
	ctx, cancel := context.WithCancel(context.Background())
	ran := make(chan struct{})
	go func() { gc.Run(ctx); close(ran) }()
	answer := make(chan error, 1)
	go func() {
		_, err := gc.Enqueue(context.Background(), []*livehooks.Event{ev("s")})
		answer <- err
	}()
	for deadline := time.Now().Add(5 * time.Second); store.writes.Load() == 0; {
		if time.Now().After(deadline) {
			t.Fatal("the write never reached the store")
		}
		time.Sleep(time.Millisecond)
	}
	cancel() // the committer stops while the write waits for its fsync
	select {
	case err := <-answer:
		t.Fatalf("answered before its fsync: %v", err)
	case <-time.After(50 * time.Millisecond):
	}
	close(store.syncGate)
	if err := <-answer; err != nil {
		t.Fatalf("a write committed and synced at shutdown: %v, want success", err)
	}
	<-ran
}

// TestStoreFailureIsUnavailable: when the store cannot write, every caller
// gets EUNAVAILABLE (ingest answers 503) and nothing is acknowledged.
func TestStoreFailureIsUnavailable(t *testing.T) {
	store, gc, _ := setup(t, nil)
	store.fail.Store(true)
	_, err := gc.Enqueue(context.Background(), []*livehooks.Event{ev("s")})
	if livehooks.ErrorCode(err) != livehooks.EUNAVAILABLE {
		t.Fatalf("error %v", err)
	}
	store.fail.Store(false)
	if _, err := gc.Enqueue(context.Background(), []*livehooks.Event{ev("s")}); err != nil {
		t.Fatalf("after recovery: %v", err)
	}
	if n, _ := store.PendingCount(context.Background()); n != 1 {
		t.Fatalf("pending %d", n)
	}
}

func TestClosedAfterRun(t *testing.T) {
	key := make([]byte, 32)
	c, _ := aesgcm.New(key)
	db, err := sqlite.Open(context.Background(), sqlite.Options{Path: t.TempDir() + "/gc.db", Cipher: c})
	if err != nil {
		t.Fatal(err)
	}
	defer db.Close()
	gc := groupcommit.New(db, groupcommit.Options{Node: "n1"})
	ctx, cancel := context.WithCancel(context.Background())
	cancel()
	gc.Run(ctx)
	if _, err := gc.Enqueue(context.Background(), []*livehooks.Event{ev("s")}); !errors.Is(err, groupcommit.ErrClosed) {
		t.Fatalf("after Run: %v", err)
	}
}

// rerunStore runs fn twice, as PostgreSQL does after a lock conflict: in the
// first, rolled-back run every Enqueue fails with a domain error; the second
// run is the one that commits. It holds the SQLite store as an Outbox, so
// that the committer does not see WriteDeferSync and calls Write.
type rerunStore struct{ livehooks.Outbox }

type failingTx struct{ livehooks.OutboxTx }

func (failingTx) Enqueue(context.Context, string, time.Time, []*livehooks.Event) ([]*livehooks.Delivery, error) {
	return nil, livehooks.Errorf(livehooks.ENOTFOUND, "transient")
}

var errRollback = errors.New("roll back the first run")

func (s rerunStore) Write(ctx context.Context, fn func(tx livehooks.OutboxTx) error) error {
	_ = s.Outbox.Write(ctx, func(tx livehooks.OutboxTx) error {
		_ = fn(failingTx{tx})
		return errRollback
	})
	return s.Outbox.Write(ctx, fn)
}

// TestRerunKeepsOnlyTheLastOutcome: a caller whose operation failed in a
// rolled-back run and succeeded in the committed one gets success.
func TestRerunKeepsOnlyTheLastOutcome(t *testing.T) {
	key := make([]byte, 32)
	c, _ := aesgcm.New(key)
	db, err := sqlite.Open(context.Background(), sqlite.Options{Path: t.TempDir() + "/gc.db", Cipher: c})
	if err != nil {
		t.Fatal(err)
	}
	defer db.Close()
	gc := groupcommit.New(rerunStore{db}, groupcommit.Options{Node: "n1"})
	ctx, cancel := context.WithCancel(context.Background())
	done := make(chan struct{})
	go func() { gc.Run(ctx); close(done) }()
	defer func() { cancel(); <-done }()
	if _, err := gc.Enqueue(context.Background(), []*livehooks.Event{ev("s")}); err != nil {
		t.Fatalf("the committed run succeeded, the caller got %v", err)
	}
}

// TestLazyRecordJoinsTheNextWrite: a lazy result commits in the transaction
// of an eager write that comes within the delay, and on its own when none
// comes; either way it is recorded and its caller answered.
func TestLazyRecordJoinsTheNextWrite(t *testing.T) {
	const delay = time.Second // far above any scheduling delay
	store, gc, _ := setup(t, nil, func(o *groupcommit.Options) { o.LazyDelay = delay })
	ctx := context.Background()
	ds, err := gc.Enqueue(ctx, []*livehooks.Event{ev("a"), ev("b")})
	if err != nil || len(ds) != 2 {
		t.Fatalf("enqueue: %d deliveries, %v", len(ds), err)
	}
	result := func(d *livehooks.Delivery) []livehooks.Result {
		return []livehooks.Result{{Delivery: d, Outcome: livehooks.OutcomeSucceeded,
			Attempt: livehooks.Attempt{N: 1, At: time.Now(), StatusCode: 200}}}
	}

	// Alone: committed after the delay, in a transaction of its own.
	before := store.writes.Load()
	start := time.Now()
	if _, err := gc.RecordLazily(ctx, result(ds[0])); err != nil {
		t.Fatal(err)
	}
	if waited := time.Since(start); waited < delay || waited > 10*delay {
		t.Errorf("a lazy result with nothing else to write committed after %v, want the %v delay", waited, delay)
	}
	if n := store.writes.Load() - before; n != 1 {
		t.Errorf("%d transactions for one lazy result", n)
	}

	// With an eager write within the delay: one transaction for both.
	before = store.writes.Load()
	lazyDone := make(chan error, 1)
	go func() {
		_, err := gc.RecordLazily(ctx, result(ds[1]))
		lazyDone <- err
	}()
	time.Sleep(delay / 3)
	if _, err := gc.Enqueue(ctx, []*livehooks.Event{ev("c")}); err != nil {
		t.Fatal(err)
	}
	if err := <-lazyDone; err != nil {
		t.Fatal(err)
	}
	if n := store.writes.Load() - before; n != 1 {
		t.Errorf("a lazy result and the write after it took %d transactions, want 1", n)
	}
	if pending, _ := store.PendingCount(ctx); pending != 1 {
		t.Errorf("pending %d, want 1 (c): both results recorded", pending)
	}
}

// TestBatchGrowsWhileTheDiskSyncs: with two transactions waiting for their
// fsync, the committer waits for one before it takes in the next batch, so
// that writers arriving meanwhile share that batch instead of following in
// another transaction.
func TestBatchGrowsWhileTheDiskSyncs(t *testing.T) {
	store, gc, _ := setup(t, nil)
	gate := make(chan struct{})
	store.syncGate = gate
	answers := make(chan error, 5)
	enqueue := func(stream string) {
		go func() {
			_, err := gc.Enqueue(context.Background(), []*livehooks.Event{ev(stream)})
			answers <- err
		}()
	}
	waitWrites := func(n int64) {
		t.Helper()
		for deadline := time.Now().Add(5 * time.Second); store.writes.Load() < n; {
			if time.Now().After(deadline) {
				t.Fatalf("%d transactions, want %d", store.writes.Load(), n)
			}
			time.Sleep(time.Millisecond)
		}
	}
	enqueue("a") // syncing
	waitWrites(1)
	enqueue("b") // committed behind it
	waitWrites(2)
	enqueue("c") // taken, waiting for a sync
	time.Sleep(50 * time.Millisecond)
	enqueue("d")
	enqueue("e")
	time.Sleep(50 * time.Millisecond)
	close(gate)
	for range 5 {
		if err := <-answers; err != nil {
			t.Fatal(err)
		}
	}
	if n := store.writes.Load(); n != 3 {
		t.Fatalf("%d transactions for a, b and then c, d, e: want 3", n)
	}
}

// TestFewWritersWaitForMore: with CommitDelay, a transaction that would
// start with fewer than CommitFill writes waits for more, up to the delay,
// and starts as soon as it has CommitFill.
func TestFewWritersWaitForMore(t *testing.T) {
	const delay = time.Second // far above any scheduling delay
	store, gc, _ := setup(t, nil, func(o *groupcommit.Options) { o.CommitDelay, o.CommitFill = delay, 3 })
	ctx := context.Background()

	// Alone: it waits the whole delay, then commits by itself.
	start := time.Now()
	if _, err := gc.Enqueue(ctx, []*livehooks.Event{ev("a")}); err != nil {
		t.Fatal(err)
	}
	if waited := time.Since(start); waited < delay || waited > 10*delay {
		t.Errorf("a lone write committed after %v, want the %v delay", waited, delay)
	}
	if n := store.writes.Load(); n != 1 {
		t.Errorf("%d transactions for one write", n)
	}

	// Three writers within the delay: one transaction, started by the
	// third rather than by the end of the delay.
	before := store.writes.Load()
	start = time.Now()
	answers := make(chan error, 3)
	for i, s := range []string{"b", "c", "d"} {
		if i > 0 {
			time.Sleep(delay / 10)
		}
		go func() {
			_, err := gc.Enqueue(ctx, []*livehooks.Event{ev(s)})
			answers <- err
		}()
	}
	for range 3 {
		if err := <-answers; err != nil {
			t.Fatal(err)
		}
	}
	if waited := time.Since(start); waited >= delay {
		t.Errorf("three writers with CommitFill 3 waited %v: the batch did not start when full", waited)
	}
	if n := store.writes.Load() - before; n != 1 {
		t.Errorf("three writers within the delay took %d transactions, want 1", n)
	}
	if pending, _ := store.PendingCount(ctx); pending != 4 {
		t.Errorf("pending %d, want 4", pending)
	}
}
