package postgres

import (
	"context"
	"encoding/json"
	"errors"
	"fmt"
	"io"
	"log/slog"
	"maps"
	"net/http"
	"net/http/httptest"
	"net/netip"
	"os"
	"slices"
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
	// mute fails the node's heartbeats only, as when they stall or its
	// connection to the database is cut while it still has the receivers.
	mute atomic.Bool
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

func (c *crashable) Heartbeat(ctx context.Context, node string, ttl time.Duration) ([]string, time.Duration, error) {
	if c.crashed.Load() || c.mute.Load() {
		return nil, 0, errCrashed
	}
	return c.DB.Heartbeat(ctx, node, ttl)
}

func (c *crashable) Leave(ctx context.Context, node string) error {
	if c.crashed.Load() {
		return errCrashed
	}
	return c.DB.Leave(ctx, node)
}

func (c *crashable) ClaimHomeLanes(ctx context.Context, node string, live []string, now time.Time, lease time.Duration, max int) ([]livehooks.Lane, error) {
	if c.crashed.Load() {
		return nil, errCrashed
	}
	return c.DB.ClaimHomeLanes(ctx, node, live, now, lease, max)
}

func (c *crashable) LaneDeliveries(ctx context.Context, lane string, afterID int64, limit int) ([]*livehooks.Delivery, error) {
	if c.crashed.Load() {
		return nil, errCrashed
	}
	return c.DB.LaneDeliveries(ctx, lane, afterID, limit)
}

var _ delivery.Placement = (*crashable)(nil)

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
	return startNodeWith(t, url, id, logger, nodeLease)
}

// startNodeWith starts a node whose leases last lease.
func startNodeWith(t *testing.T, url, id string, logger *slog.Logger, lease time.Duration) *node {
	t.Helper()
	db := openTest(t, url, Options{Lease: lease, MaxConns: 8})
	n := &node{id: id, store: &crashable{DB: db}}
	sender := delivery.NewSender(delivery.SenderOptions{
		AllowCIDRs: []netip.Prefix{netip.MustParsePrefix("127.0.0.0/8")}, UserAgent: id,
	})
	n.committer = groupcommit.New(n.store, groupcommit.Options{Node: id, Logger: logger,
		OnCommit: func(e []groupcommit.Effect) { n.dispatcher.OnCommit(e) }})
	n.dispatcher = delivery.New(delivery.Options{
		Outbox: n.store, Writer: n.committer, Configs: n.store, Sender: sender, Node: id,
		Logger: logger, PollInterval: nodePoll, Lease: lease,
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
	// others: the requests of other nodes in flight when this one arrived.
	others int
}

// gatedReceiver records every callback on arrival and, while its gate is
// shut, holds the requests that arrive until it is opened.
type gatedReceiver struct {
	*httptest.Server
	mu     sync.Mutex
	got    []callback
	gate   chan struct{} // nil: open
	held   map[string]int
	active map[string]int // requests in flight by node
}

func newGatedReceiver(t *testing.T) *gatedReceiver {
	r := &gatedReceiver{held: map[string]int{}, active: map[string]int{}}
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
		for n, k := range r.active {
			if n != cb.node {
				cb.others += k
			}
		}
		r.active[cb.node]++
		r.got = append(r.got, cb)
		gate := r.gate
		if gate != nil {
			r.held[cb.node]++
		}
		r.mu.Unlock()
		defer func() {
			r.mu.Lock()
			r.active[cb.node]--
			r.mu.Unlock()
		}()
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

// TestMultiNodeCrashLosesNothing runs two nodes on one database. Events of
// many streams are ingested through both, alternately. In a second round the
// receiver holds every request: each node has attempts in flight on the
// lanes it owns when node A is killed. Node B delivers everything once A's
// heartbeat (or its leases, whichever first) expires: every event, each
// stream in order, duplicates counted.
func TestMultiNodeCrashLosesNothing(t *testing.T) {
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
	// the lane stays with the node that holds it, and the rest queue up.
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
	// A's last heartbeat was at most a second before the crash and lasts 3 s.
	if lag := takeover.Sub(crashAt); lag < time.Second {
		t.Errorf("B took A's lanes over %v after the crash: before A could be taken for dead", lag)
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

// ingestLoad posts events of many streams through the nodes of a cluster,
// as a load balancer would: each stream's events in order (the next once the
// previous is acknowledged), each through the next node in turn, at a steady
// pace; an event a node fails to acknowledge goes to the next one.
type ingestLoad struct {
	t       *testing.T
	mu      sync.Mutex
	nodes   []*node
	acked   map[callback]time.Time // by stream and seq: when acknowledged
	perNode map[string]int         // events acknowledged by each node
}

func newIngestLoad(t *testing.T, nodes ...*node) *ingestLoad {
	return &ingestLoad{t: t, nodes: nodes, acked: map[callback]time.Time{}, perNode: map[string]int{}}
}

// join adds a node to those the load goes through.
func (l *ingestLoad) join(n *node) {
	l.mu.Lock()
	defer l.mu.Unlock()
	l.nodes = append(l.nodes, n)
}

// run posts one event of each of streams every interval until stop is
// closed, then returns. The events of each stream are numbered from from.
func (l *ingestLoad) run(streams, from int, interval time.Duration, stop <-chan struct{}) {
	var wg sync.WaitGroup
	for s := range streams {
		wg.Go(func() {
			tick := time.NewTicker(interval)
			defer tick.Stop()
			for i := from; ; i++ {
				select {
				case <-stop:
					return
				case <-tick.C:
				}
				e := &livehooks.Event{ID: storerow.NewEventID(), ProjectID: "p1", Type: livehooks.RecordFileComplete,
					PublishDomain: "push.example.com", App: "live", Stream: fmt.Sprintf("s%02d", s),
					TaskID: "task", JobID: fmt.Sprintf("job%d", i), OccurredAt: time.Now()}
				if !l.post(s+i, e) {
					return
				}
				l.mu.Lock()
				l.acked[callback{stream: e.Stream, seq: i}] = time.Now()
				l.mu.Unlock()
			}
		})
	}
	wg.Wait()
}

// start runs the load in the background until stop is called (or the test
// ends), which waits for it.
func (l *ingestLoad) start(streams, from int, interval time.Duration) (stop func()) {
	quit, done := make(chan struct{}), make(chan struct{})
	go func() { l.run(streams, from, interval, quit); close(done) }()
	var once sync.Once
	stop = func() {
		once.Do(func() { close(quit) })
		<-done
	}
	l.t.Cleanup(stop)
	return stop
}

// post sends e through the nodes, starting from the k-th, until one
// acknowledges it.
func (l *ingestLoad) post(k int, e *livehooks.Event) bool {
	deadline := time.Now().Add(10 * time.Second)
	for try := 0; time.Now().Before(deadline); try++ {
		l.mu.Lock()
		n := l.nodes[(k+try)%len(l.nodes)]
		l.mu.Unlock()
		if n.store.crashed.Load() {
			continue
		}
		if _, err := n.committer.Enqueue(ctx, []*livehooks.Event{e}); err == nil {
			l.mu.Lock()
			l.perNode[n.id]++
			l.mu.Unlock()
			return true
		}
	}
	l.t.Errorf("no node acknowledged event %s", e.JobID)
	return false
}

func (l *ingestLoad) total() int {
	l.mu.Lock()
	defer l.mu.Unlock()
	return len(l.acked)
}

// check waits until every acknowledged event reached the receiver, then
// checks the order of each stream and returns the slowest acknowledgement
// to first arrival.
func (l *ingestLoad) check(rcv *gatedReceiver, within time.Duration) (slowest time.Duration, slowestAt time.Time) {
	t := l.t
	t.Helper()
	total := l.total()
	waitUntil(t, "every acknowledged event delivered", within, func() bool { return distinct(rcv.callbacks()) >= total })
	got := rcv.callbacks()
	last := map[string]int{}
	first := map[callback]time.Time{}
	for _, cb := range got {
		if prev, ok := last[cb.stream]; ok && cb.seq < prev {
			t.Errorf("stream %s: event %d after %d", cb.stream, cb.seq, prev)
		}
		last[cb.stream] = cb.seq
		k := callback{stream: cb.stream, seq: cb.seq}
		if _, ok := first[k]; !ok {
			first[k] = cb.at
		}
	}
	l.mu.Lock()
	defer l.mu.Unlock()
	var worst callback
	for k, acked := range l.acked {
		at, ok := first[k]
		if !ok {
			t.Errorf("stream %s: event %d acknowledged, never delivered", k.stream, k.seq)
			continue
		}
		if lag := at.Sub(acked); lag > slowest {
			slowest, slowestAt, worst = lag, acked, k
		}
	}
	if slowest > 2*time.Second {
		var seq []string
		for _, cb := range got {
			if cb.stream == worst.stream && cb.seq >= worst.seq-3 && cb.seq <= worst.seq+3 {
				seq = append(seq, fmt.Sprintf("%d by %s at %s (acknowledged %s)", cb.seq, cb.node,
					cb.at.Format("15:04:05.000"), l.acked[callback{stream: cb.stream, seq: cb.seq}].Format("15:04:05.000")))
			}
		}
		t.Logf("slowest: stream %s event %d: %s", worst.stream, worst.seq, strings.Join(seq, "; "))
	}
	return slowest, slowestAt
}

// shares returns each node's share of the callbacks received after since.
func shares(cbs []callback, since time.Time, nodes ...string) map[string]float64 {
	by := map[string]int{}
	n := 0
	for _, cb := range cbs {
		if cb.at.After(since) {
			by[cb.node]++
			n++
		}
	}
	out := map[string]float64{}
	for _, id := range nodes {
		out[id] = float64(by[id]) / float64(max(n, 1))
	}
	return out
}

func newMultiNodeConfig(t *testing.T, n *node, rcv *gatedReceiver) {
	t.Helper()
	cfg := &livehooks.CallbackConfig{ID: storerow.NewEventID(), ProjectID: "p1", PublishDomain: "push.example.com", App: "live",
		NotifyCallbackURL: rcv.URL + "/hook", NotifyEventSubscription: livehooks.EventTypes, CreateTime: time.Now(), UpdateTime: time.Now()}
	cfg.Normalize()
	if err := n.store.CreateCallback(ctx, cfg); err != nil {
		t.Fatal(err)
	}
}

func testLogger() *slog.Logger {
	if os.Getenv("LIVEHOOKS_TEST_LOG") != "" {
		return slog.New(slog.NewTextHandler(os.Stderr, &slog.HandlerOptions{Level: slog.LevelDebug}))
	}
	return slog.New(slog.DiscardHandler)
}

func fmtShares(s map[string]float64) string {
	var parts []string
	for _, id := range slices.Sorted(maps.Keys(s)) {
		parts = append(parts, fmt.Sprintf("%s %.0f%%", id, 100*s[id]))
	}
	return strings.Join(parts, ", ")
}

// loadTests runs the tests that put several nodes under load one at a
// time: together they would compete for the machine's CPUs (their latency
// figures would measure that) and the database's connections.
var loadTests sync.Mutex

func oneLoadAtATime(t *testing.T) {
	loadTests.Lock()
	t.Cleanup(loadTests.Unlock)
}

const (
	loadStreams  = 180
	loadInterval = 160 * time.Millisecond // about 1,100 events/s over the streams
)

// maxWait is the longest acknowledged-to-delivered time the load tests
// accept (the target). Under the race detector a lane sends a few callbacks
// a second, while 1,100 events/s arrive: the backlog of a node's lanes left
// while it is taken for dead takes longer to catch up, though not as long as
// a lease.
func maxWait() time.Duration {
	if raceDetector {
		return 25 * time.Second
	}
	return 10 * time.Second
}

// startLoadedCluster starts a node of each id on a fresh database with the
// default lease, a receiver, its config, and a load posting through every
// node (not started yet).
func startLoadedCluster(t *testing.T, ids ...string) ([]*node, *gatedReceiver, *ingestLoad) {
	t.Helper()
	url := testDatabase(t)
	rcv := newGatedReceiver(t)
	var nodes []*node
	for _, id := range ids {
		nodes = append(nodes, startNodeWith(t, url, id, testLogger(), DefaultLease))
	}
	newMultiNodeConfig(t, nodes[0], rcv)
	return nodes, rcv, newIngestLoad(t, nodes...)
}

// TestMultiNodeSpreadsLanes runs three nodes on one database under load,
// each stream's consecutive events posted to different nodes: every node
// delivers a fair share (the lanes' homes spread over the nodes, whichever
// node a lane's events came through), each stream in order, nothing lost.
func TestMultiNodeSpreadsLanes(t *testing.T) {
	t.Parallel()
	oneLoadAtATime(t)
	ids := []string{"node-a", "node-b", "node-c"}
	nodes, rcv, load := startLoadedCluster(t, ids...)
	start := time.Now()
	stop := load.start(loadStreams, 0, loadInterval)
	<-time.After(5 * time.Second) // the load's duration
	stop()
	ingested := time.Since(start)
	slowest, _ := load.check(rcv, 60*time.Second)
	got := rcv.callbacks()
	sh := shares(got, start, ids...)
	for id, share := range sh {
		if share < 0.15 || share > 0.55 {
			t.Errorf("%s delivered %.0f%% of the callbacks, want 15-55%%", id, 100*share)
		}
	}
	if slowest > maxWait() {
		t.Errorf("slowest acknowledged-to-delivered: %v, want ≤ %v", slowest, maxWait())
	}
	t.Logf("%d events on %d streams in %v (%.0f/s) through 3 nodes (%v acknowledged each); %d callbacks, %d duplicates; delivered by %s; slowest acknowledged-to-delivered %v; %s",
		load.total(), loadStreams, ingested.Round(time.Millisecond), float64(load.total())/ingested.Seconds(), load.perNode,
		len(got), len(got)-load.total(), fmtShares(sh), slowest.Round(time.Millisecond), retries(nodes))
}

// TestMultiNodeCrashTakenOverInSeconds kills one of three nodes under load
// (its leases last 30 s): the others take its lanes over as soon as its
// heartbeat expires, so that every stream delivers again within seconds and
// no acknowledged event waits more than 10 s for its callback; nothing is
// lost and each stream stays in order.
func TestMultiNodeCrashTakenOverInSeconds(t *testing.T) {
	t.Parallel()
	oneLoadAtATime(t)
	ids := []string{"node-a", "node-b", "node-c"}
	nodes, rcv, load := startLoadedCluster(t, ids...)
	stop := load.start(loadStreams, 0, loadInterval)

	victim := nodes[2]
	waitUntil(t, "the load spread over every node", 20*time.Second, func() bool {
		cbs := rcv.callbacks()
		if len(cbs) < 1000 {
			return false
		}
		for _, share := range shares(cbs[len(cbs)-500:], time.Time{}, ids...) {
			if share < 0.15 {
				return false
			}
		}
		return true
	})
	crashAt := time.Now()
	victim.crash()
	// What the victim left: its lanes with deliveries pending.
	var owned int
	if err := nodes[0].store.pool.QueryRow(ctx, `SELECT count(*) FROM lanes WHERE owner = $1`, victim.id).Scan(&owned); err != nil {
		t.Fatal(err)
	}
	<-time.After(8 * time.Second) // the load's duration after the crash
	stop()
	slowest, slowestAt := load.check(rcv, 60*time.Second)

	// Every stream, the victim's included, delivers again: when did each
	// first deliver an event acknowledged after the crash?
	got := rcv.callbacks()
	resumedAt := map[string]time.Time{}
	load.mu.Lock()
	for _, cb := range got {
		acked, ok := load.acked[callback{stream: cb.stream, seq: cb.seq}]
		if _, done := resumedAt[cb.stream]; ok && !done && acked.After(crashAt) {
			resumedAt[cb.stream] = cb.at
		}
	}
	load.mu.Unlock()
	var resumed time.Duration
	for s := range loadStreams {
		at, ok := resumedAt[fmt.Sprintf("s%02d", s)]
		if !ok {
			t.Errorf("stream s%02d delivered nothing acknowledged after the crash", s)
			continue
		}
		resumed = max(resumed, at.Sub(crashAt))
	}
	if resumed > maxWait()-2*time.Second {
		t.Errorf("the last stream delivered again %v after the crash, want within seconds (leases last %v)", resumed, DefaultLease)
	}
	if slowest > maxWait() {
		t.Errorf("slowest acknowledged-to-delivered: %v (acknowledged %v after the crash), want ≤ %v",
			slowest, slowestAt.Sub(crashAt).Round(time.Millisecond), maxWait())
	}
	t.Logf("%d events on %d streams through 3 nodes, one killed owning %d lanes with deliveries pending: every stream delivering again %v after the crash (lease %v); "+
		"slowest acknowledged-to-delivered %v (acknowledged %v after the crash); %d callbacks, %d duplicates; delivered by %s before the crash, %s after",
		load.total(), loadStreams, owned, resumed.Round(time.Millisecond), DefaultLease,
		slowest.Round(time.Millisecond), slowestAt.Sub(crashAt).Round(time.Millisecond), len(got), len(got)-load.total(),
		fmtShares(sharesBetween(got, time.Time{}, crashAt, ids...)), fmtShares(shares(got, crashAt, ids...)))
}

// retries reports the transactions each node ran again after a lock conflict.
func retries(nodes []*node) string {
	var parts []string
	for _, n := range nodes {
		parts = append(parts, fmt.Sprintf("%s %d", n.id, n.store.retries.Load()))
	}
	return "transactions run again after a lock conflict: " + strings.Join(parts, ", ")
}

// sharesBetween is shares of the callbacks received in [from, to).
func sharesBetween(cbs []callback, from, to time.Time, nodes ...string) map[string]float64 {
	var in []callback
	for _, cb := range cbs {
		if !cb.at.Before(from) && cb.at.Before(to) {
			in = append(in, cb)
		}
	}
	return shares(in, time.Time{}, nodes...)
}

// TestMultiNodeJoinGetsLanes starts a third node while two deliver under
// load: lanes are handed over to it between two attempts, so that it
// delivers its share, each stream staying in order.
func TestMultiNodeJoinGetsLanes(t *testing.T) {
	t.Parallel()
	oneLoadAtATime(t)
	url := testDatabase(t)
	rcv := newGatedReceiver(t)
	a := startNodeWith(t, url, "node-a", testLogger(), DefaultLease)
	b := startNodeWith(t, url, "node-b", testLogger(), DefaultLease)
	newMultiNodeConfig(t, a, rcv)
	load := newIngestLoad(t, a, b)
	stop := load.start(loadStreams, 0, loadInterval)
	waitUntil(t, "load on both nodes", 10*time.Second, func() bool { return len(rcv.callbacks()) > 500 })

	c := startNodeWith(t, url, "node-c", testLogger(), DefaultLease)
	joinedAt := time.Now()
	load.join(c)
	<-time.After(5 * time.Second) // the load's duration after node-c joined
	stop()
	slowest, _ := load.check(rcv, 60*time.Second)
	got := rcv.callbacks()
	before := sharesBetween(got, time.Time{}, joinedAt, "node-a", "node-b", "node-c")
	after := shares(got, joinedAt.Add(2*time.Second), "node-a", "node-b", "node-c")
	if before["node-c"] != 0 {
		t.Errorf("node-c delivered before it started: %s", fmtShares(before))
	}
	for id, share := range after {
		if share < 0.15 || share > 0.55 {
			t.Errorf("%s delivered %.0f%% of the callbacks from 2 s after node-c joined, want 15-55%%", id, 100*share)
		}
	}
	if slowest > maxWait() {
		t.Errorf("slowest acknowledged-to-delivered: %v, want ≤ %v", slowest, maxWait())
	}
	t.Logf("%d events on %d streams; %d callbacks, %d duplicates; delivered by %s before node-c joined, %s from 2 s after; slowest acknowledged-to-delivered %v",
		load.total(), loadStreams, len(got), len(got)-load.total(), fmtShares(before), fmtShares(after), slowest.Round(time.Millisecond))
}

// TestMultiNodeHeartbeatLapse cuts node A's heartbeats while it has attempts
// in flight (the receiver holds them): A abandons them before node B may
// take A for dead, so that B, taking A's lanes over, never sends while A
// still does. Once A's heartbeats go through again it hands back what it
// held and gets its share of the lanes again; every event is delivered, each
// stream in order.
func TestMultiNodeHeartbeatLapse(t *testing.T) {
	t.Parallel()
	oneLoadAtATime(t)
	const streams = 20
	url := testDatabase(t)
	rcv := newGatedReceiver(t)
	a := startNodeWith(t, url, "node-a", testLogger(), DefaultLease)
	b := startNodeWith(t, url, "node-b", testLogger(), DefaultLease)
	newMultiNodeConfig(t, a, rcv)
	load := newIngestLoad(t, a, b)
	round := func(seq int) {
		t.Helper()
		var wg sync.WaitGroup
		for s := range streams {
			wg.Go(func() {
				e := &livehooks.Event{ID: storerow.NewEventID(), ProjectID: "p1", Type: livehooks.RecordFileComplete,
					PublishDomain: "push.example.com", App: "live", Stream: fmt.Sprintf("s%02d", s),
					TaskID: "task", JobID: fmt.Sprintf("job%d", seq), OccurredAt: time.Now()}
				if load.post(s+seq, e) {
					load.mu.Lock()
					load.acked[callback{stream: e.Stream, seq: seq}] = time.Now()
					load.mu.Unlock()
				}
			})
		}
		wg.Wait()
	}
	rcv.shut()
	for seq := range 3 {
		round(seq)
	}
	// Every lane's first attempt must be held before A is muted: one that
	// is still on its way would reach the receiver after the mute, and B's
	// attempts on its own lanes are not a takeover. Each lane has one
	// attempt in flight, so the count stops at a lane per stream (fewer only
	// if a node's per-destination limit caps it: then it stops growing).
	var held, heldSince = 0, time.Now()
	waitUntil(t, "the first attempt of every lane in flight", 20*time.Second, func() bool {
		a, b := rcv.heldBy("node-a"), rcv.heldBy("node-b")
		if a+b != held {
			held, heldSince = a+b, time.Now()
		}
		return a > 0 && b > 0 && (held == streams || time.Since(heldSince) > time.Second)
	})
	mutedAt := time.Now()
	a.store.mute.Store(true)
	waitUntil(t, "B sending on A's lanes", 20*time.Second, func() bool {
		for _, cb := range rcv.callbacks() {
			if cb.node == "node-b" && cb.at.After(mutedAt) && cb.seq == 0 {
				return true
			}
		}
		return false
	})
	var takeover time.Duration
	for _, cb := range rcv.callbacks() {
		if !cb.at.After(mutedAt) {
			continue
		}
		// A may start attempts until a quarter of the node timeout (3 s)
		// before its last heartbeat expires; they reach the receiver a
		// moment later.
		late := 2500 * time.Millisecond
		if raceDetector {
			late += time.Second
		}
		if cb.node == "node-a" && cb.at.Sub(mutedAt) > late {
			t.Errorf("A started an attempt %v after its heartbeats stopped", cb.at.Sub(mutedAt))
		}
		if cb.node == "node-b" && cb.others > 0 {
			t.Errorf("B sent stream %s while A still had %d attempts in flight", cb.stream, cb.others)
		}
		if cb.node == "node-b" && takeover == 0 {
			takeover = cb.at.Sub(mutedAt)
		}
	}
	a.store.mute.Store(false)
	rcv.open()
	unmutedAt := time.Now()
	stop := load.start(streams, 3, 50*time.Millisecond)
	<-time.After(4 * time.Second) // the load's duration
	stop()
	load.check(rcv, 60*time.Second)
	got := rcv.callbacks()
	after := shares(got, unmutedAt.Add(2*time.Second), "node-a", "node-b")
	if after["node-a"] == 0 {
		t.Errorf("A delivered nothing once its heartbeats went through again: %s", fmtShares(after))
	}
	t.Logf("%d events on %d streams; A's heartbeats stopped: B took over after %v; %d callbacks, %d duplicates; delivered by %s from 2 s after A's heartbeats resumed",
		load.total(), streams, takeover.Round(time.Millisecond), len(got), len(got)-load.total(), fmtShares(after))
}
