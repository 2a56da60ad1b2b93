package postgres

import (
	"context"
	"encoding/json"
	"errors"
	"fmt"
	"io"
	"log/slog"
	"net/http"
	"net/http/httptest"
	"net/netip"
	"os"
	"strings"
	"sync"
	"sync/atomic"
	"testing"
	"time"

	"github.com/livehooks/livehooks"
	"github.com/livehooks/livehooks/delivery"
	"github.com/livehooks/livehooks/groupcommit"
	"github.com/livehooks/livehooks/store/storerow"
)

// crashable is a node's view of the store that a crash cuts off: from then
// on the node writes nothing, renews no lease and releases no lane, as if
// its process had died.
type crashable struct {
	*DB
	crashed atomic.Bool
}

var errCrashed = errors.New("node crashed")

func (c *crashable) Write(ctx context.Context, fn func(tx livehooks.OutboxTx) error) error {
	if c.crashed.Load() {
		return errCrashed
	}
	return c.DB.Write(ctx, fn)
}

func (c *crashable) ClaimLanes(ctx context.Context, node string, now time.Time, lease time.Duration, max int) ([]livehooks.Lane, error) {
	if c.crashed.Load() {
		return nil, errCrashed
	}
	return c.DB.ClaimLanes(ctx, node, now, lease, max)
}

func (c *crashable) RenewLeases(ctx context.Context, node string, until time.Time) error {
	if c.crashed.Load() {
		return errCrashed
	}
	return c.DB.RenewLeases(ctx, node, until)
}

func (c *crashable) ReleaseLanes(ctx context.Context, node string) error {
	if c.crashed.Load() {
		return errCrashed
	}
	return c.DB.ReleaseLanes(ctx, node)
}

func (c *crashable) LaneDeliveries(ctx context.Context, lane string, afterID int64, limit int) ([]*livehooks.Delivery, error) {
	if c.crashed.Load() {
		return nil, errCrashed
	}
	return c.DB.LaneDeliveries(ctx, lane, afterID, limit)
}

// node is one livehooks node's delivery stack, wired as serve wires it, on
// its own connection pool.
type node struct {
	id         string
	store      *crashable
	committer  *groupcommit.Committer
	dispatcher *delivery.Dispatcher
	stop       func() // stops the dispatcher, then the committer and Listen
}

const (
	nodeLease = 2 * time.Second
	nodePoll  = 50 * time.Millisecond
)

func startNode(t *testing.T, url, id string, logger *slog.Logger) *node {
	t.Helper()
	db := openTest(t, url, Options{Lease: nodeLease, MaxConns: 8})
	n := &node{id: id, store: &crashable{DB: db}}
	sender := delivery.NewSender(delivery.SenderOptions{
		AllowCIDRs: []netip.Prefix{netip.MustParsePrefix("127.0.0.0/8")}, UserAgent: id,
	})
	n.committer = groupcommit.New(n.store, groupcommit.Options{Node: id, Logger: logger,
		OnCommit: func(e []groupcommit.Effect) { n.dispatcher.OnCommit(e) }})
	n.dispatcher = delivery.New(delivery.Options{
		Outbox: n.store, Writer: n.committer, Configs: n.store, Sender: sender, Node: id,
		Logger: logger, PollInterval: nodePoll, Lease: nodeLease,
	})
	cctx, stopCommit := context.WithCancel(context.Background())
	dctx, stopDispatch := context.WithCancel(context.Background())
	lctx, stopListen := context.WithCancel(context.Background())
	commitDone, dispatchDone, listenDone := make(chan struct{}), make(chan struct{}), make(chan struct{})
	go func() { n.committer.Run(cctx); close(commitDone) }()
	go func() {
		if err := n.dispatcher.Run(dctx, 0); err != nil {
			t.Errorf("%s: dispatcher: %v", id, err)
		}
		close(dispatchDone)
	}()
	go func() {
		if err := db.Listen(lctx, n.dispatcher.Wake); err != nil {
			t.Errorf("%s: listen: %v", id, err)
		}
		close(listenDone)
	}()
	var once sync.Once
	n.stop = func() {
		once.Do(func() {
			stopListen()
			<-listenDone
			stopDispatch()
			<-dispatchDone
			stopCommit()
			<-commitDone
			sender.Close()
		})
	}
	t.Cleanup(n.stop)
	return n
}

// crash cuts the node off the store, then stops it: in-flight attempts are
// abandoned unrecorded, its leases are neither renewed nor released.
func (n *node) crash() {
	n.store.crashed.Store(true)
	n.stop()
}

type callback struct {
	node   string
	stream string
	seq    int
	at     time.Time
}

// gatedReceiver records every callback on arrival and, while its gate is
// shut, holds the requests that arrive until it is opened.
type gatedReceiver struct {
	*httptest.Server
	mu   sync.Mutex
	got  []callback
	gate chan struct{} // nil: open
	held map[string]int
}

func newGatedReceiver(t *testing.T) *gatedReceiver {
	r := &gatedReceiver{held: map[string]int{}}
	r.Server = httptest.NewServer(http.HandlerFunc(func(w http.ResponseWriter, req *http.Request) {
		var body struct {
			Stream string `json:"stream"`
			JobID  string `json:"job_id"`
		}
		b, _ := io.ReadAll(req.Body)
		if err := json.Unmarshal(b, &body); err != nil {
			http.Error(w, err.Error(), http.StatusBadRequest)
			return
		}
		var seq int
		if _, err := fmt.Sscanf(body.JobID, "job%d", &seq); err != nil {
			http.Error(w, "bad job_id", http.StatusBadRequest)
			return
		}
		cb := callback{node: req.Header.Get("User-Agent"), stream: body.Stream, seq: seq, at: time.Now()}
		r.mu.Lock()
		r.got = append(r.got, cb)
		gate := r.gate
		if gate != nil {
			r.held[cb.node]++
		}
		r.mu.Unlock()
		if gate != nil {
			select {
			case <-gate:
			case <-req.Context().Done():
			}
		}
		w.WriteHeader(http.StatusOK)
	}))
	t.Cleanup(func() {
		r.open()
		r.Close()
	})
	return r
}

// shut makes the receiver hold the requests that arrive from now on.
func (r *gatedReceiver) shut() {
	r.mu.Lock()
	defer r.mu.Unlock()
	if r.gate == nil {
		r.gate = make(chan struct{})
	}
}

// open answers the requests held and those to come.
func (r *gatedReceiver) open() {
	r.mu.Lock()
	defer r.mu.Unlock()
	if r.gate != nil {
		close(r.gate)
		r.gate = nil
	}
}

func (r *gatedReceiver) heldBy(node string) int {
	r.mu.Lock()
	defer r.mu.Unlock()
	return r.held[node]
}

func (r *gatedReceiver) callbacks() []callback {
	r.mu.Lock()
	defer r.mu.Unlock()
	return append([]callback(nil), r.got...)
}

// distinct counts the events received at least once.
func distinct(cbs []callback) int {
	seen := map[callback]bool{}
	for _, cb := range cbs {
		seen[callback{stream: cb.stream, seq: cb.seq}] = true
	}
	return len(seen)
}

func waitUntil(t *testing.T, what string, timeout time.Duration, cond func() bool) {
	t.Helper()
	deadline := time.Now().Add(timeout)
	for !cond() {
		if time.Now().After(deadline) {
			t.Fatalf("timed out waiting for %s", what)
		}
		time.Sleep(10 * time.Millisecond)
	}
}

// TestNodeCrashLosesNothing runs two nodes on one database. Events of many
// streams are ingested through both, alternately. In a second round the
// receiver holds every request: each node has attempts in flight on the
// lanes it owns when node A is killed. Node B delivers everything once A's
// leases expire: every event, each stream in order, duplicates counted.
func TestNodeCrashLosesNothing(t *testing.T) {
	t.Parallel()
	const (
		streams   = 30
		perStream = 12 // half before the gate shuts, half after
		total     = streams * perStream
	)
	logger := slog.New(slog.DiscardHandler)
	if os.Getenv("LIVEHOOKS_TEST_LOG") != "" {
		logger = slog.New(slog.NewTextHandler(os.Stderr, &slog.HandlerOptions{Level: slog.LevelDebug}))
	}
	url := testDatabase(t)
	rcv := newGatedReceiver(t)
	a, b := startNode(t, url, "node-a", logger), startNode(t, url, "node-b", logger)
	cfg := &livehooks.CallbackConfig{ID: storerow.NewEventID(), ProjectID: "p1", PublishDomain: "push.example.com", App: "live",
		NotifyCallbackURL: rcv.URL + "/hook", NotifyEventSubscription: livehooks.EventTypes, CreateTime: time.Now(), UpdateTime: time.Now()}
	cfg.Normalize()
	if err := a.store.CreateCallback(ctx, cfg); err != nil {
		t.Fatal(err)
	}

	// Each stream's events in order (the next once the previous is
	// acknowledged), through A and B in turn; the streams concurrently.
	nodes := []*node{a, b}
	ingest := func(from, to int) {
		t.Helper()
		var wg sync.WaitGroup
		for s := range streams {
			wg.Go(func() {
				for i := from; i < to; i++ {
					e := &livehooks.Event{ID: storerow.NewEventID(), ProjectID: "p1", Type: livehooks.RecordFileComplete,
						PublishDomain: "push.example.com", App: "live", Stream: fmt.Sprintf("s%02d", s),
						TaskID: "task", JobID: fmt.Sprintf("job%d", i), OccurredAt: time.Now()}
					if _, err := nodes[(s+i)%2].committer.Enqueue(ctx, []*livehooks.Event{e}); err != nil {
						t.Errorf("ingest: %v", err)
						return
					}
				}
			})
		}
		wg.Wait()
		if t.Failed() {
			t.FailNow()
		}
	}
	start := time.Now()
	ingest(0, perStream/2)
	waitUntil(t, "the first round delivered", 30*time.Second, func() bool { return distinct(rcv.callbacks()) == total/2 })
	round1 := time.Since(start)

	// The second round: the first attempt on each stream's lane is held, so
	// the lane stays with the node that created it, and the rest queue up.
	rcv.shut()
	ingest(perStream/2, perStream)
	waitUntil(t, "attempts of both nodes in flight", 20*time.Second, func() bool {
		return rcv.heldBy("node-a") > 0 && rcv.heldBy("node-b") > 0
	})
	var owned []string
	rows, err := b.store.pool.Query(ctx, `SELECT lane FROM lanes WHERE owner = 'node-a'`)
	if err != nil {
		t.Fatal(err)
	}
	for rows.Next() {
		var lane string
		if err := rows.Scan(&lane); err != nil {
			t.Fatal(err)
		}
		owned = append(owned, strings.TrimPrefix(lane, cfg.ID+"/"))
	}
	rows.Close()
	if err := rows.Err(); err != nil {
		t.Fatal(err)
	}
	crashAt := time.Now()
	a.crash()
	inFlight := rcv.heldBy("node-a")
	rcv.open()
	if len(owned) == 0 {
		t.Fatal("node A owned no lane when it crashed")
	}

	// B delivers everything.
	waitUntil(t, "every event delivered", 60*time.Second, func() bool { return distinct(rcv.callbacks()) == total })
	waitUntil(t, "every delivery recorded", 30*time.Second, func() bool {
		n, err := b.store.PendingCount(ctx)
		return err == nil && n == 0
	})
	doneAt := time.Now()

	got := rcv.callbacks()
	last := map[string]int{}
	seen := map[callback]int{}
	wasA := map[string]bool{}
	for _, s := range owned {
		wasA[s] = true
	}
	var takeover time.Time
	for _, cb := range got {
		if prev, ok := last[cb.stream]; ok && cb.seq < prev {
			var seq []string
			for _, c := range got {
				if c.stream == cb.stream {
					seq = append(seq, fmt.Sprintf("%d(%s %s)", c.seq, c.node, c.at.Sub(crashAt).Round(time.Millisecond)))
				}
			}
			t.Errorf("stream %s: event %d after %d: %s", cb.stream, cb.seq, prev, strings.Join(seq, " "))
		}
		last[cb.stream] = cb.seq
		seen[callback{stream: cb.stream, seq: cb.seq}]++
		if cb.node == "node-b" && wasA[cb.stream] && cb.at.After(crashAt) && takeover.IsZero() {
			takeover = cb.at
		}
	}
	for s := range streams {
		for i := range perStream {
			if seen[callback{stream: fmt.Sprintf("s%02d", s), seq: i}] == 0 {
				t.Errorf("stream s%02d: event %d never delivered", s, i)
			}
		}
	}
	if takeover.IsZero() {
		t.Fatal("node B never delivered on a lane node A owned")
	}
	if lag := takeover.Sub(crashAt); lag < nodeLease/2 {
		t.Errorf("B took A's lanes over %v after the crash: before A's leases expired", lag)
	}
	ds, n, err := b.store.FindDeliveries(ctx, livehooks.DeliveryFilter{ProjectID: "p1", Status: livehooks.DeliverySucceeded, Limit: 1})
	if err != nil || n != total || len(ds) != 1 {
		t.Fatalf("succeeded deliveries in the log: %d (%v), want %d", n, err, total)
	}
	byNode := map[string]int{}
	for _, cb := range got {
		byNode[cb.node]++
	}
	t.Logf("%d events on %d streams through 2 nodes (first half delivered in %v): %d callbacks received (%d by A, %d by B), %d duplicates; "+
		"A crashed owning %d lanes with %d attempts in flight; B took over after %v (lease %v), all delivered %v after the crash; "+
		"transactions run again after a lock conflict: %d on A, %d on B",
		total, streams, round1.Round(time.Millisecond), len(got), byNode["node-a"], byNode["node-b"], len(got)-total,
		len(owned), inFlight, takeover.Sub(crashAt).Round(time.Millisecond), nodeLease, doneAt.Sub(crashAt).Round(time.Millisecond),
		a.store.retries.Load(), b.store.retries.Load())
}
