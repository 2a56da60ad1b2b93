// Package livefeed tells watchers what happens as it happens: events stored,
// deliveries queued and their attempts, read from the group committer's
// effects. It also keeps per destination the last hour of attempt outcomes
// and latencies. The console's live page reads both through the API.
package livefeed

import (
	"context"
	"sort"
	"strconv"
	"sync"
	"sync/atomic"
	"time"

	"github.com/livehooks/livehooks"
	"github.com/livehooks/livehooks/delivery"
	"github.com/livehooks/livehooks/groupcommit"
)

// EventItem is an event that was stored.
type EventItem struct {
	Time          string `json:"time"`
	EventID       string `json:"event_id"`
	EventType     string `json:"event_type"`
	PublishDomain string `json:"publish_domain"`
	App           string `json:"app"`
	Stream        string `json:"stream"`
	TaskID        string `json:"task_id,omitempty"`
	JobID         string `json:"job_id,omitempty"`
	// Deliveries counts the deliveries the event got: 0 when no config
	// matches it or none subscribes to its type.
	Deliveries int `json:"deliveries"`
}

// DeliveryItem is a delivery that was queued, or an attempt at one.
type DeliveryItem struct {
	Time       string  `json:"time"`
	Kind       string  `json:"kind"` // "queued" or "attempt"
	DeliveryID string  `json:"delivery_id"`
	CallbackID string  `json:"callback_id"`
	EventType  string  `json:"event_type"`
	Stream     string  `json:"stream"`
	Status     string  `json:"status"` // the delivery's status after it
	Attempt    int     `json:"attempt,omitempty"`
	StatusCode int     `json:"status_code,omitempty"`
	LatencyMS  float64 `json:"latency_ms,omitempty"`
	Error      string  `json:"error,omitempty"`
	Reason     string  `json:"reason,omitempty"`
}

// Item is one thing that happened in a project: an Event or a Delivery.
type Item struct {
	ProjectID string
	Event     *EventItem
	Delivery  *DeliveryItem
}

// Minute is one minute of a destination's attempts.
type Minute struct {
	Start        string  `json:"start"`
	Succeeded    int     `json:"succeeded"`
	Failed       int     `json:"failed"`
	LatencyMSAvg float64 `json:"latency_ms_avg"`
	LatencyMSMax float64 `json:"latency_ms_max"`
}

// Destination is the last hour of one destination (scheme://host:port).
type Destination struct {
	Destination string   `json:"destination"`
	Breaker     string   `json:"breaker"` // closed, half-open or open
	CallbackIDs []string `json:"callback_ids"`
	Minutes     []Minute `json:"minutes"` // 60, oldest first, the last is the current minute
}

// ConfigFinder loads callback configs (a livehooks.CallbackStore).
type ConfigFinder interface {
	FindCallbackByID(ctx context.Context, projectID, id string) (*livehooks.CallbackConfig, error)
}

// Options configure a Feed.
type Options struct {
	Configs ConfigFinder
	// Breakers returns the state of the breakers that are not closed, by
	// destination; nil for none.
	Breakers func() map[string]string
	Clock    livehooks.Clock
}

const (
	window      = 60 // minutes of history
	subBuffer   = 256
	inBuffer    = 1024
	configTTL   = 10 * time.Second
	maxPerBatch = 4096 // items of one commit sent to watchers; the rest are dropped
)

// Feed fans committed effects out to watchers. OnCommit never blocks: when
// the feed falls behind, items are dropped (watchers are told), never the
// committer slowed down.
type Feed struct {
	o  Options
	in chan []Item

	// watched counts subscriptions: with none, OnCommit builds only the
	// attempts the destination charts count.
	watched atomic.Int32

	mu      sync.Mutex
	subs    map[*sub]struct{}
	stats   map[destKey]*destStats
	configs map[string]cachedConfig // project/id → destination
	closed  bool
}

type sub struct {
	project string
	ch      chan Item
	lost    bool // items were dropped since the watcher last read
}

type destKey struct{ project, destination string }

type destStats struct {
	configs map[string]bool
	minutes [window]bucket // by minute number modulo window
}

type bucket struct {
	minute     int64 // Unix minute the bucket holds; stale when older
	ok, bad    int
	latencySum float64
	latencyMax float64
}

type cachedConfig struct {
	destination string
	fetched     time.Time
}

// New returns a Feed; run it with Run.
func New(o Options) *Feed {
	if o.Clock == nil {
		o.Clock = livehooks.SystemClock{}
	}
	return &Feed{o: o, in: make(chan []Item, inBuffer), subs: map[*sub]struct{}{}, stats: map[destKey]*destStats{}, configs: map[string]cachedConfig{}}
}

// OnCommit reads the effects of a committed transaction (a
// groupcommit.Options.OnCommit with Observe set). It copies what it needs
// at once: the dispatcher owns the deliveries after it.
func (f *Feed) OnCommit(effects []groupcommit.Effect) {
	watched := f.watched.Load() > 0
	var items []Item
	// Attempts first: when a huge commit is cut at maxPerBatch, the charts
	// still count every attempt that fits.
	for _, e := range effects {
		for _, r := range e.Results {
			d := r.Delivery
			items = append(items, Item{ProjectID: d.ProjectID, Delivery: &DeliveryItem{
				Time: livehooks.FormatTime(r.Attempt.At), Kind: "attempt", DeliveryID: strconv.FormatInt(d.ID, 10), CallbackID: d.ConfigID,
				EventType: string(d.EventType), Stream: d.Stream, Status: string(statusAfter(r.Outcome)), Attempt: r.Attempt.N,
				StatusCode: r.Attempt.StatusCode, LatencyMS: float64(r.Attempt.Latency.Microseconds()) / 1000,
				Error: r.Attempt.Error, Reason: r.Reason,
			}})
		}
	}
	if !watched {
		f.send(items)
		return
	}
	now := livehooks.FormatTime(f.o.Clock.Now())
	for _, e := range effects {
		counts := map[string]int{}
		for _, d := range e.Created {
			counts[d.EventID]++
			items = append(items, Item{ProjectID: d.ProjectID, Delivery: &DeliveryItem{
				Time: now, Kind: "queued", DeliveryID: strconv.FormatInt(d.ID, 10), CallbackID: d.ConfigID, EventType: string(d.EventType),
				Stream: d.Stream, Status: string(livehooks.DeliveryPending),
			}})
		}
		for _, ev := range e.Events {
			items = append(items, Item{ProjectID: ev.ProjectID, Event: &EventItem{
				Time: now, EventID: ev.ID, EventType: string(ev.Type), PublishDomain: ev.PublishDomain, App: ev.App,
				Stream: ev.Stream, TaskID: ev.TaskID, JobID: ev.JobID, Deliveries: counts[ev.ID],
			}})
		}
	}
	f.send(items)
}

// send hands a commit's items to Run without blocking the committer.
func (f *Feed) send(items []Item) {
	if len(items) == 0 {
		return
	}
	if len(items) > maxPerBatch {
		items = items[:maxPerBatch]
	}
	select {
	case f.in <- items:
	default:
		f.markLost()
	}
}

func statusAfter(o livehooks.Outcome) livehooks.DeliveryStatus {
	switch o {
	case livehooks.OutcomeSucceeded:
		return livehooks.DeliverySucceeded
	case livehooks.OutcomeRetry:
		return livehooks.DeliveryPending
	case livehooks.OutcomeDead:
		return livehooks.DeliveryDead
	}
	return livehooks.DeliveryFailed
}

// Run fans items out until ctx ends.
func (f *Feed) Run(ctx context.Context) {
	for {
		select {
		case <-ctx.Done():
			f.Close()
			return
		case items := <-f.in:
			for _, it := range items {
				if it.Delivery != nil && it.Delivery.Kind == "attempt" {
					f.count(ctx, it)
				}
				f.publish(it)
			}
		}
	}
}

// count adds an attempt to its destination's minute.
func (f *Feed) count(ctx context.Context, it Item) {
	d := it.Delivery
	dest := f.destination(ctx, it.ProjectID, d.CallbackID)
	if dest == "" {
		return
	}
	at, err := livehooks.ParseTime(d.Time)
	if err != nil {
		return
	}
	minute := at.Unix() / 60
	f.mu.Lock()
	defer f.mu.Unlock()
	k := destKey{it.ProjectID, dest}
	s := f.stats[k]
	if s == nil {
		s = &destStats{configs: map[string]bool{}}
		f.stats[k] = s
	}
	s.configs[d.CallbackID] = true
	b := &s.minutes[minute%window]
	if b.minute != minute {
		*b = bucket{minute: minute}
	}
	if d.Status == string(livehooks.DeliverySucceeded) {
		b.ok++
	} else {
		b.bad++
	}
	b.latencySum += d.LatencyMS
	b.latencyMax = max(b.latencyMax, d.LatencyMS)
}

// destination returns the destination of a config's callback URL, from a
// short-lived cache: a config's URL rarely changes.
func (f *Feed) destination(ctx context.Context, project, id string) string {
	key := project + "/" + id
	now := f.o.Clock.Now()
	f.mu.Lock()
	c, ok := f.configs[key]
	f.mu.Unlock()
	if ok && now.Sub(c.fetched) < configTTL {
		return c.destination
	}
	cfg, err := f.o.Configs.FindCallbackByID(ctx, project, id)
	if err != nil {
		return c.destination // deleted, or the store is busy: what we knew
	}
	c = cachedConfig{destination: delivery.Destination(cfg.NotifyCallbackURL), fetched: now}
	f.mu.Lock()
	if len(f.configs) > 100_000 {
		clear(f.configs)
	}
	f.configs[key] = c
	f.mu.Unlock()
	return c.destination
}

func (f *Feed) publish(it Item) {
	f.mu.Lock()
	defer f.mu.Unlock()
	for s := range f.subs {
		if s.project != it.ProjectID {
			continue
		}
		select {
		case s.ch <- it:
		default:
			s.lost = true
		}
	}
}

func (f *Feed) markLost() {
	f.mu.Lock()
	defer f.mu.Unlock()
	for s := range f.subs {
		s.lost = true
	}
}

// Subscribe returns the items of a project from now on, and a function that
// ends the subscription. The channel is closed when the feed closes.
// lost reports (and resets) whether items were dropped because the watcher
// or the feed fell behind.
func (f *Feed) Subscribe(project string) (items <-chan Item, lost func() bool, cancel func()) {
	s := &sub{project: project, ch: make(chan Item, subBuffer)}
	f.mu.Lock()
	defer f.mu.Unlock()
	if f.closed {
		close(s.ch)
		return s.ch, func() bool { return false }, func() {}
	}
	f.subs[s] = struct{}{}
	f.watched.Add(1)
	lost = func() bool {
		f.mu.Lock()
		defer f.mu.Unlock()
		l := s.lost
		s.lost = false
		return l
	}
	cancel = func() {
		f.mu.Lock()
		defer f.mu.Unlock()
		if _, ok := f.subs[s]; ok {
			delete(f.subs, s)
			f.watched.Add(-1)
			close(s.ch)
		}
	}
	return s.ch, lost, cancel
}

// Close ends every subscription (server shutdown: watchers' connections
// must not hold it up).
func (f *Feed) Close() {
	f.mu.Lock()
	defer f.mu.Unlock()
	f.closed = true
	for s := range f.subs {
		delete(f.subs, s)
		f.watched.Add(-1)
		close(s.ch)
	}
}

// Destinations returns the project's destinations that had attempts in the
// last hour, by name, with their breaker state.
func (f *Feed) Destinations(project string) []Destination {
	now := f.o.Clock.Now().Unix() / 60
	var breakers map[string]string
	if f.o.Breakers != nil {
		breakers = f.o.Breakers()
	}
	f.mu.Lock()
	defer f.mu.Unlock()
	out := []Destination{}
	for k, s := range f.stats {
		active := false
		d := Destination{Destination: k.destination, Breaker: "closed", Minutes: make([]Minute, window)}
		for i := range window {
			minute := now - window + 1 + int64(i)
			m := Minute{Start: livehooks.FormatTime(time.Unix(minute*60, 0))}
			if b := s.minutes[minute%window]; b.minute == minute {
				m.Succeeded, m.Failed, m.LatencyMSMax = b.ok, b.bad, b.latencyMax
				if n := b.ok + b.bad; n > 0 {
					m.LatencyMSAvg = b.latencySum / float64(n)
					active = true
				}
			}
			d.Minutes[i] = m
		}
		if !active {
			delete(f.stats, k) // nothing in the last hour: forget it
			continue
		}
		if k.project != project {
			continue
		}
		if st, ok := breakers[k.destination]; ok {
			d.Breaker = st
		}
		for id := range s.configs {
			d.CallbackIDs = append(d.CallbackIDs, id)
		}
		sort.Strings(d.CallbackIDs)
		out = append(out, d)
	}
	sort.Slice(out, func(i, j int) bool { return out[i].Destination < out[j].Destination })
	return out
}
