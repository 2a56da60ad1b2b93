package livefeed_test

import (
	"context"
	"strings"
	"sync"
	"testing"
	"time"

	"github.com/livehooks/livehooks"
	"github.com/livehooks/livehooks/groupcommit"
	"github.com/livehooks/livehooks/livefeed"
)

type clock struct {
	mu sync.Mutex
	t  time.Time
}

func (c *clock) Now() time.Time { c.mu.Lock(); defer c.mu.Unlock(); return c.t }
func (c *clock) set(t time.Time) {
	c.mu.Lock()
	defer c.mu.Unlock()
	c.t = t
}

type configs map[string]string // id → URL

func (c configs) FindCallbackByID(_ context.Context, project, id string) (*livehooks.CallbackConfig, error) {
	u, ok := c[id]
	if !ok {
		return nil, livehooks.Errorf(livehooks.ENOTFOUND, "no config")
	}
	return &livehooks.CallbackConfig{ID: id, ProjectID: project, NotifyCallbackURL: u}, nil
}

func attempt(project, config string, id int64, at time.Time, code int, outcome livehooks.Outcome) groupcommit.Effect {
	return groupcommit.Effect{Results: []livehooks.Result{{
		Delivery: &livehooks.Delivery{ID: id, ProjectID: project, ConfigID: config, EventType: livehooks.RecordStart, Stream: "s"},
		Attempt:  livehooks.Attempt{N: 1, At: at, StatusCode: code, Latency: 4 * time.Millisecond},
		Outcome:  outcome,
	}}}
}

func TestFeedAndDestinations(t *testing.T) {
	now := time.Date(2026, 5, 6, 7, 8, 30, 0, time.UTC)
	clk := &clock{t: now}
	f := livefeed.New(livefeed.Options{
		Configs:  configs{"c1": "https://hooks.example.com/a", "c2": "https://HOOKS.example.com:443/b", "c3": "http://other.example.com/"},
		Breakers: func() map[string]string { return map[string]string{"http://other.example.com:80": "open"} },
		Clock:    clk,
	})
	ctx, cancel := context.WithCancel(context.Background())
	defer cancel()
	go f.Run(ctx)
	items, lost, stop := f.Subscribe("p1")
	defer stop()

	f.OnCommit([]groupcommit.Effect{
		attempt("p1", "c1", 1, now.Add(-90*time.Minute), 200, livehooks.OutcomeSucceeded), // older than the hour
		attempt("p1", "c1", 2, now.Add(-2*time.Minute), 200, livehooks.OutcomeSucceeded),
		attempt("p1", "c2", 3, now, 503, livehooks.OutcomeRetry),
		attempt("p1", "c3", 4, now, 0, livehooks.OutcomeRetry),
		attempt("p2", "c1", 5, now, 200, livehooks.OutcomeSucceeded), // another project
	})
	var got []string
	for len(got) < 4 {
		select {
		case it := <-items:
			got = append(got, it.Delivery.DeliveryID+":"+it.Delivery.Status)
		case <-time.After(5 * time.Second):
			t.Fatalf("items so far %v", got)
		}
	}
	if want := "1:succeeded 2:succeeded 3:pending 4:pending"; strings.Join(got, " ") != want {
		t.Fatalf("items %q, want %q", strings.Join(got, " "), want)
	}
	if lost() {
		t.Error("lost items without falling behind")
	}

	var ds []livefeed.Destination
	deadline := time.Now().Add(5 * time.Second)
	for len(ds) < 2 && time.Now().Before(deadline) {
		ds = f.Destinations("p1")
		time.Sleep(10 * time.Millisecond)
	}
	if len(ds) != 2 {
		t.Fatalf("destinations %+v", ds)
	}
	a, b := ds[0], ds[1]
	if a.Destination != "http://other.example.com:80" || a.Breaker != "open" || a.Minutes[59].Failed != 1 {
		t.Errorf("other: %+v", a)
	}
	if b.Destination != "https://hooks.example.com:443" || b.Breaker != "closed" || len(b.CallbackIDs) != 2 ||
		b.Minutes[57].Succeeded != 1 || b.Minutes[59].Failed != 1 || b.Minutes[59].LatencyMSAvg != 4 {
		t.Errorf("hooks: %+v", b)
	}
	// An hour later, nothing is left.
	clk.set(now.Add(time.Hour))
	if ds := f.Destinations("p1"); len(ds) != 0 {
		t.Errorf("after an hour: %+v", ds)
	}

	// A watcher that does not read loses items and is told so.
	for i := range 300 {
		f.OnCommit([]groupcommit.Effect{attempt("p1", "c1", int64(10+i), now, 200, livehooks.OutcomeSucceeded)})
	}
	deadline = time.Now().Add(5 * time.Second)
	for !lost() {
		if time.Now().After(deadline) {
			t.Fatal("a watcher that fell behind was not told")
		}
		time.Sleep(10 * time.Millisecond)
	}
	// Close ends the watchers' channels (server shutdown).
	f.Close()
	for range items {
	}
}

// With nobody watching, a commit's events and queued deliveries are not
// built, but its attempts still reach the destination charts; a watcher
// sees events from its subscription on.
func TestUnwatchedFeedStillCharts(t *testing.T) {
	now := time.Date(2026, 5, 6, 7, 8, 30, 0, time.UTC)
	f := livefeed.New(livefeed.Options{Configs: configs{"c1": "https://hooks.example.com/a"}, Clock: &clock{t: now}})
	ctx, cancel := context.WithCancel(context.Background())
	defer cancel()
	go f.Run(ctx)

	ev := &livehooks.Event{ID: "e1", ProjectID: "p1", Type: livehooks.RecordStart, Stream: "s"}
	f.OnCommit([]groupcommit.Effect{attempt("p1", "c1", 1, now, 200, livehooks.OutcomeSucceeded), {Events: []*livehooks.Event{ev}}})
	deadline := time.Now().Add(5 * time.Second)
	for {
		if ds := f.Destinations("p1"); len(ds) == 1 && ds[0].Minutes[59].Succeeded == 1 {
			break
		}
		if time.Now().After(deadline) {
			t.Fatalf("unwatched attempt not charted: %+v", f.Destinations("p1"))
		}
		time.Sleep(10 * time.Millisecond)
	}

	items, _, stop := f.Subscribe("p1")
	defer stop()
	f.OnCommit([]groupcommit.Effect{{Events: []*livehooks.Event{{ID: "e2", ProjectID: "p1", Type: livehooks.RecordOver, Stream: "s"}}}})
	select {
	case it := <-items:
		if it.Event == nil || it.Event.EventID != "e2" {
			t.Fatalf("first item %+v, want event e2 (nothing from before the subscription)", it)
		}
	case <-time.After(5 * time.Second):
		t.Fatal("a watched event did not arrive")
	}
}
