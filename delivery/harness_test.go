package delivery_test

import (
	"context"
	"crypto/rand"
	"io"
	"log/slog"
	"net/http"
	"net/http/httptest"
	"net/netip"
	"os"
	"sync"
	"testing"
	"time"

	"github.com/livehooks/livehooks"
	"github.com/livehooks/livehooks/aesgcm"
	"github.com/livehooks/livehooks/delivery"
	"github.com/livehooks/livehooks/groupcommit"
	"github.com/livehooks/livehooks/store/sqlite"
)

// fakeClock is a settable clock shared by the store, the committer and the
// dispatcher, so that retries can be driven without sleeping.
type fakeClock struct {
	mu  sync.Mutex
	now time.Time
}

func (c *fakeClock) Now() time.Time {
	c.mu.Lock()
	defer c.mu.Unlock()
	return c.now
}

func (c *fakeClock) Advance(d time.Duration) {
	c.mu.Lock()
	c.now = c.now.Add(d)
	c.mu.Unlock()
}

type harness struct {
	t          *testing.T
	store      *sqlite.DB
	committer  *groupcommit.Committer
	dispatcher *delivery.Dispatcher
	clock      livehooks.Clock
	project    string
}

type harnessOptions struct {
	clock      livehooks.Clock
	allow      []netip.Prefix
	policy     delivery.Policy
	timeout    time.Duration
	perDest    int
	breakerMin time.Duration
	poll       time.Duration
	noAllow    bool
	// outbox, when set, wraps the store as the dispatcher's Outbox.
	outbox func(*sqlite.DB) livehooks.Outbox
}

func newHarness(t *testing.T, o harnessOptions) *harness {
	t.Helper()
	if o.clock == nil {
		o.clock = livehooks.SystemClock{}
	}
	if o.allow == nil && !o.noAllow {
		o.allow = []netip.Prefix{netip.MustParsePrefix("127.0.0.0/8")}
	}
	if o.poll == 0 {
		o.poll = 20 * time.Millisecond
	}
	key := make([]byte, 32)
	_, _ = rand.Read(key)
	c, _ := aesgcm.New(key)
	db, err := sqlite.Open(context.Background(), sqlite.Options{Path: t.TempDir() + "/lh.db", Cipher: c, Synchronous: "NORMAL", Clock: o.clock})
	if err != nil {
		t.Fatal(err)
	}
	logger := slog.New(slog.NewTextHandler(io.Discard, nil))
	if os.Getenv("LIVEHOOKS_TEST_LOG") != "" {
		logger = slog.New(slog.NewTextHandler(os.Stderr, &slog.HandlerOptions{Level: slog.LevelDebug}))
	}
	h := &harness{t: t, store: db, clock: o.clock, project: "proj"}
	sender := delivery.NewSender(delivery.SenderOptions{AllowCIDRs: o.allow, Clock: o.clock, RequestTimeout: o.timeout, ConnectTimeout: time.Second})
	h.committer = groupcommit.New(db, groupcommit.Options{Node: "n1", Clock: o.clock, Logger: logger,
		OnCommit: func(e []groupcommit.Effect) { h.dispatcher.OnCommit(e) }})
	var outbox livehooks.Outbox = db
	if o.outbox != nil {
		outbox = o.outbox(db)
	}
	h.dispatcher = delivery.New(delivery.Options{
		Outbox: outbox, Writer: h.committer, Configs: db, Sender: sender, Policy: o.policy, Node: "n1",
		Clock: o.clock, Logger: logger, PerDestination: o.perDest, PollInterval: o.poll,
		BreakerOpen: o.breakerMin, ConfigTTL: time.Millisecond,
	})
	ctx, cancel := context.WithCancel(context.Background())
	cctx, ccancel := context.WithCancel(context.Background())
	committerDone, dispatcherDone := make(chan struct{}), make(chan struct{})
	go func() { h.committer.Run(cctx); close(committerDone) }()
	go func() { _ = h.dispatcher.Run(ctx, 2*time.Second); close(dispatcherDone) }()
	t.Cleanup(func() {
		// Stop in the order serve does: the dispatcher records through the
		// committer while it stops.
		cancel()
		<-dispatcherDone
		ccancel()
		<-committerDone
		sender.Close()
		db.Close()
	})
	return h
}

func (h *harness) config(url string, mod func(*livehooks.CallbackConfig)) *livehooks.CallbackConfig {
	h.t.Helper()
	now := h.clock.Now()
	c := &livehooks.CallbackConfig{
		ID: randomHex(), ProjectID: h.project, PublishDomain: "push.example.com", App: "live",
		NotifyCallbackURL: url, NotifyEventSubscription: livehooks.EventTypes, CreateTime: now, UpdateTime: now,
	}
	if mod != nil {
		mod(c)
	}
	c.Normalize()
	if err := c.Validate(); err != nil {
		h.t.Fatal(err)
	}
	if err := h.store.CreateCallback(context.Background(), c); err != nil {
		h.t.Fatal(err)
	}
	return c
}

func (h *harness) ingest(events ...*livehooks.Event) {
	h.t.Helper()
	for _, e := range events {
		if e.ID == "" {
			e.ID = randomHex()
		}
		if e.ProjectID == "" {
			e.ProjectID = h.project
		}
		if e.OccurredAt.IsZero() {
			e.OccurredAt = h.clock.Now()
		}
	}
	if _, err := h.committer.Enqueue(context.Background(), events); err != nil {
		h.t.Fatal(err)
	}
}

func event(stream string, typ livehooks.EventType, task string) *livehooks.Event {
	return &livehooks.Event{Type: typ, PublishDomain: "push.example.com", App: "live", Stream: stream, TaskID: task, JobID: "job-" + task}
}

// deliveries returns the config's delivery log.
func (h *harness) deliveries(c *livehooks.CallbackConfig) []*livehooks.Delivery {
	h.t.Helper()
	ds, _, err := h.store.FindDeliveries(context.Background(), livehooks.DeliveryFilter{ProjectID: h.project, ConfigID: c.ID, Limit: 100})
	if err != nil {
		h.t.Fatal(err)
	}
	return ds
}

// waitFor polls cond until it holds or the deadline passes.
func waitFor(t *testing.T, what string, timeout time.Duration, cond func() bool) {
	t.Helper()
	deadline := time.Now().Add(timeout)
	for !cond() {
		if time.Now().After(deadline) {
			t.Fatalf("timed out waiting for %s", what)
		}
		time.Sleep(5 * time.Millisecond)
	}
}

func randomHex() string {
	b := make([]byte, 16)
	_, _ = rand.Read(b)
	const hexdigits = "0123456789abcdef"
	out := make([]byte, 32)
	for i, v := range b {
		out[2*i], out[2*i+1] = hexdigits[v>>4], hexdigits[v&15]
	}
	return string(out)
}

// receiver records every callback it gets and answers with respond.
type receiver struct {
	*httptest.Server
	mu       sync.Mutex
	requests []received
	respond  func(n int, r *http.Request) (int, http.Header)
}

type received struct {
	header http.Header
	body   []byte
	at     time.Time
}

func newReceiver(t *testing.T, respond func(n int, r *http.Request) (int, http.Header)) *receiver {
	rc := &receiver{respond: respond}
	rc.Server = httptest.NewServer(http.HandlerFunc(func(w http.ResponseWriter, r *http.Request) {
		body, _ := io.ReadAll(r.Body)
		rc.mu.Lock()
		rc.requests = append(rc.requests, received{r.Header.Clone(), body, time.Now()})
		n := len(rc.requests)
		rc.mu.Unlock()
		status := 200
		if rc.respond != nil {
			var h http.Header
			status, h = rc.respond(n, r)
			for k, v := range h {
				w.Header()[k] = v
			}
		}
		w.WriteHeader(status)
		_, _ = w.Write([]byte("answer"))
	}))
	t.Cleanup(rc.Close)
	return rc
}

func (rc *receiver) got() []received {
	rc.mu.Lock()
	defer rc.mu.Unlock()
	return append([]received(nil), rc.requests...)
}
