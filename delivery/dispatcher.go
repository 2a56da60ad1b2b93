package delivery

import (
	"context"
	"log/slog"
	"sync"
	"time"

	"github.com/livehooks/livehooks"
	"github.com/livehooks/livehooks/groupcommit"
	"github.com/livehooks/livehooks/metrics"
)

// Writer is the transactional side the dispatcher records through (a
// groupcommit.Committer), so that its writes share commits with ingest and
// their effects come back in commit order through Dispatcher.OnCommit.
type Writer interface {
	Record(ctx context.Context, results []livehooks.Result) ([]livehooks.LaneState, error)
	// RecordLazily is Record for results that nothing waits for: they may
	// wait a few milliseconds to share another write's transaction.
	RecordLazily(ctx context.Context, results []livehooks.Result) ([]livehooks.LaneState, error)
	Defer(ctx context.Context, lane string, until time.Time) error
}

// ConfigFinder loads callback configs (a livehooks.CallbackStore).
type ConfigFinder interface {
	FindCallbackByID(ctx context.Context, projectID, id string) (*livehooks.CallbackConfig, error)
}

// Options configure a Dispatcher.
type Options struct {
	Outbox  livehooks.Outbox
	Writer  Writer
	Configs ConfigFinder
	Sender  livehooks.Sender
	Policy  Policy
	Node    string
	Clock   livehooks.Clock
	Logger  *slog.Logger
	Metrics *metrics.Metrics

	// PerDestination caps concurrent requests to one destination (default 16).
	PerDestination int
	// MaxLanes caps the lanes held in memory (default 4096); the rest wait
	// in the store. With LaneBuffer it bounds memory whatever the backlog.
	MaxLanes int
	// LaneBuffer caps the deliveries of one lane held in memory (default 8):
	// a lane sends one at a time, so more would only save store reads.
	LaneBuffer int
	// PollInterval is how often due lanes (retries, expired leases of other
	// nodes) are claimed from the store (default 1 s). New events do not wait
	// for it: they are dispatched when their transaction commits.
	PollInterval time.Duration
	// Lease is how long a claimed lane stays this node's without renewal
	// (default 30 s).
	Lease time.Duration
	// ConfigTTL is how long a loaded config is reused (default 2 s).
	ConfigTTL time.Duration
	// BreakerThreshold consecutive failures open a destination's breaker
	// (default 5) for BreakerOpen (default 10 s, doubling up to 1 min: a
	// receiver that comes back is found within a minute).
	BreakerThreshold int
	BreakerOpen      time.Duration
	// Heartbeat is how often the node tells a shared Outbox (one that
	// implements Placement) that it is alive (default 1 s); NodeTimeout is
	// how long after its last heartbeat the other nodes take it for dead and
	// take its lanes over (default 3 s).
	Heartbeat   time.Duration
	NodeTimeout time.Duration
}

// Dispatcher delivers pending deliveries. Create it with New, feed it commit
// effects with OnCommit, and run it with Run.
type Dispatcher struct {
	o Options

	box mailbox

	// Loop state: touched only by the Run goroutine.
	lanes      map[string]*lane
	dests      map[string]*destination
	configs    map[string]*cachedConfig
	inflight   sync.WaitGroup
	sendCtx    context.Context
	stopping   bool
	claiming   bool
	claimAgain bool
	claimDue   bool // a claim is scheduled claimPause after the last one

	// With a shared Outbox (Placement; nil otherwise): the live nodes of
	// the last heartbeat, numbered by viewGen; until when this node may start
	// attempts (liveUntil), and whether it is past that (lapsed), which
	// cancels fenceCtx, the context of the attempts in flight.
	place       Placement
	view        []string
	viewGen     uint64
	liveUntil   time.Time
	lapsed      bool
	lapseTimer  *time.Timer // posts a lapseMsg at liveUntil
	hbFailing   bool
	fenceCtx    context.Context
	fenceCancel context.CancelFunc
}

type lane struct {
	key       string
	configID  string
	projectID string
	queue     []*livehooks.Delivery // queue[0] is next (or in flight)
	more      bool                  // the store may hold pending deliveries not in queue
	loading   bool
	// touched is set when effects arrived while loading: load again.
	touched  bool
	inflight bool
	ready    bool // waiting in its destination's ready list
	waiting  bool // waiting for a Defer to commit, or for a retry of a failed Record
	dropped  bool
	lastID   int64 // last delivery recorded
	// With a shared Outbox: whether the lane's home is another node, as of
	// view homeGen; leaving hands the lane over whatever its home is.
	homeGen   uint64
	elsewhere bool
	leaving   bool
	// reclaimed: a claim returned the lane while this node still held it,
	// its release (a retry, a hand-over) committed but not yet seen here.
	reclaimed bool
}

type destination struct {
	key      string
	ready    []*lane
	inflight int
	breaker  breaker
}

type cachedConfig struct {
	cfg     *livehooks.CallbackConfig // nil: deleted
	fetched time.Time
}

// New returns a Dispatcher.
func New(o Options) *Dispatcher {
	if o.Clock == nil {
		o.Clock = livehooks.SystemClock{}
	}
	if o.Logger == nil {
		o.Logger = slog.New(slog.DiscardHandler)
	}
	if o.Policy.Base <= 0 {
		rnd := o.Policy.Rand
		o.Policy = DefaultPolicy()
		o.Policy.Rand = rnd
	}
	if o.PerDestination <= 0 {
		o.PerDestination = 16
	}
	if o.MaxLanes <= 0 {
		o.MaxLanes = 4096
	}
	if o.LaneBuffer <= 0 {
		o.LaneBuffer = 8
	}
	if o.PollInterval <= 0 {
		o.PollInterval = time.Second
	}
	if o.Lease <= 0 {
		o.Lease = 30 * time.Second
	}
	if o.ConfigTTL <= 0 {
		o.ConfigTTL = 2 * time.Second
	}
	if o.BreakerThreshold <= 0 {
		o.BreakerThreshold = 5
	}
	if o.BreakerOpen <= 0 {
		o.BreakerOpen = 10 * time.Second
	}
	if o.Heartbeat <= 0 {
		o.Heartbeat = time.Second
	}
	if o.NodeTimeout <= 0 {
		o.NodeTimeout = 3 * time.Second
	}
	d := &Dispatcher{
		o:       o,
		lanes:   map[string]*lane{},
		dests:   map[string]*destination{},
		configs: map[string]*cachedConfig{},
	}
	d.box.signal = make(chan struct{}, 1)
	return d
}

// OnCommit takes the effects of a committed transaction, in commit order. It
// is the groupcommit.Options.OnCommit hook and never blocks.
func (d *Dispatcher) OnCommit(effects []groupcommit.Effect) {
	for _, e := range effects {
		if len(e.Enqueued) > 0 || len(e.Lanes) > 0 {
			d.box.post(effectMsg{e})
		}
	}
}

// Wake makes the dispatcher claim due lanes now (another node enqueued, or a
// retry was requested).
func (d *Dispatcher) Wake() { d.box.post(wakeMsg{}) }

// Messages of the loop's mailbox.
type (
	effectMsg  struct{ e groupcommit.Effect }
	wakeMsg    struct{}
	claimedMsg struct {
		lanes []livehooks.Lane
		asked int
		err   error
	}
	loadedMsg struct {
		l   *lane
		ds  []*livehooks.Delivery
		err error
	}
	sentMsg struct {
		dest      *destination
		l         *lane
		healthy   bool
		recorded  bool
		abandoned bool // canceled (shutdown, lapse) before its result was known: left pending
	}
	retryMsg    struct{ l *lane }
	claimDueMsg struct{}
)

// claimPause is how long the dispatcher gathers wakes that came while it
// claimed before it claims again, when the last claim took every due lane
// there was. With several nodes, nearly every commit of another node wakes
// this one (it filled or freed lanes): claiming once per wake, back to back,
// made lane claims half of the database server's work at saturation. A lane
// handed over waits at most this much longer; a claim that found more due
// lanes than it asked for is followed at once.
const claimPause = 20 * time.Millisecond

// mailbox is an unbounded queue into the loop: producers never block, so the
// committer's goroutine and senders cannot deadlock with the loop.
type mailbox struct {
	mu     sync.Mutex
	items  []any
	signal chan struct{}
}

func (m *mailbox) post(v any) {
	m.mu.Lock()
	m.items = append(m.items, v)
	m.mu.Unlock()
	select {
	case m.signal <- struct{}{}:
	default:
	}
}

func (m *mailbox) take(buf []any) []any {
	m.mu.Lock()
	defer m.mu.Unlock()
	buf = append(buf[:0], m.items...)
	clear(m.items)
	m.items = m.items[:0]
	return buf
}

// Run dispatches until ctx is done, then stops starting attempts, waits up to
// grace for attempts in flight to finish and be recorded, and releases its
// lanes so that another node (or the next start) takes them at once.
func (d *Dispatcher) Run(ctx context.Context, grace time.Duration) error {
	// A restart of this node: whatever it owned before is free again.
	if err := d.o.Outbox.ReleaseLanes(context.WithoutCancel(ctx), d.o.Node); err != nil {
		return err
	}
	sendCtx, cancelSends := context.WithCancel(context.WithoutCancel(ctx))
	defer cancelSends()
	d.sendCtx = sendCtx
	d.newFence()

	// With a shared store the node heartbeats until its lanes are released
	// (after the attempts in flight at shutdown), so that no other node takes
	// them over meanwhile. The first heartbeat, which may take as long as the
	// release above, tells the first claim which nodes are live.
	hbCtx, stopHeartbeats := context.WithCancel(context.WithoutCancel(ctx))
	defer stopHeartbeats()
	hbDone := make(chan struct{})
	if p, ok := d.o.Outbox.(Placement); ok {
		d.place = p
		m := d.heartbeatWithin(hbCtx)
		if m.err != nil {
			return m.err
		}
		d.setView(m)
		go d.heartbeats(hbCtx, m, hbDone)
	} else {
		close(hbDone)
	}
	stopHB := func() {
		stopHeartbeats()
		<-hbDone
	}

	renewDone := make(chan struct{})
	go d.renewLeases(ctx, renewDone)

	poll := time.NewTicker(d.o.PollInterval)
	defer poll.Stop()
	d.claim()
	var buf []any
	for {
		select {
		case <-ctx.Done():
			d.shutdown(grace, cancelSends, stopHB, &buf)
			<-renewDone
			if d.lapseTimer != nil {
				d.lapseTimer.Stop()
			}
			return nil
		case <-poll.C:
			d.claim()
			d.tickBreakers()
		case <-d.box.signal:
			buf = d.box.take(buf)
			for _, m := range buf {
				d.handle(m)
			}
		}
	}
}

// shutdown lets the attempts in flight finish within grace, then stops the
// heartbeats (stopHeartbeats returns once they have) and releases the lanes.
func (d *Dispatcher) shutdown(grace time.Duration, cancelSends context.CancelFunc, stopHeartbeats func(), buf *[]any) {
	d.stopping = true
	done := make(chan struct{})
	go func() { d.inflight.Wait(); close(done) }()
	timer := time.NewTimer(grace)
	defer timer.Stop()
wait:
	for {
		select {
		case <-done:
			break wait
		case <-timer.C:
			// Attempts still running are abandoned unrecorded: their
			// deliveries stay pending and go out again after the restart.
			cancelSends()
			<-done
			break wait
		case <-d.box.signal:
			*buf = d.box.take(*buf)
			for _, m := range *buf {
				d.handle(m)
			}
		}
	}
	stopHeartbeats()
	ctx, cancel := context.WithTimeout(context.Background(), 5*time.Second)
	defer cancel()
	if err := d.o.Outbox.ReleaseLanes(ctx, d.o.Node); err != nil {
		d.o.Logger.Warn("release lanes at shutdown", "error", err)
	}
	if d.place != nil {
		if err := d.place.Leave(ctx, d.o.Node); err != nil {
			d.o.Logger.Warn("leave the live nodes", "error", err)
		}
	}
	d.o.Logger.Info("dispatcher stopped", "lanes_released", len(d.lanes))
}

func (d *Dispatcher) renewLeases(ctx context.Context, done chan<- struct{}) {
	defer close(done)
	t := time.NewTicker(d.o.Lease / 3)
	defer t.Stop()
	for {
		select {
		case <-ctx.Done():
			return
		case <-t.C:
			rctx, cancel := context.WithTimeout(ctx, d.o.Lease/3)
			if err := d.o.Outbox.RenewLeases(rctx, d.o.Node, d.o.Clock.Now().Add(d.o.Lease)); err != nil {
				d.o.Logger.Warn("renew leases", "error", err)
			}
			cancel()
		}
	}
}

func (d *Dispatcher) handle(m any) {
	switch m := m.(type) {
	case effectMsg:
		d.applyEffect(m.e)
	case wakeMsg:
		d.claim()
	case viewMsg:
		d.setView(m)
	case lapseMsg:
		d.live()
	case claimedMsg:
		d.claiming = false
		if m.err != nil {
			d.o.Logger.Warn("claim lanes", "error", m.err)
			return
		}
		for _, cl := range m.lanes {
			if l, ok := d.lanes[cl.Key]; ok {
				// This node released the lane (a retry due at once, a
				// hand-over) and claimed it again before the release's
				// effect came back: that effect must not just drop it.
				l.reclaimed = true
				continue
			}
			l := &lane{key: cl.Key, configID: cl.ConfigID, more: true}
			d.lanes[cl.Key] = l
			d.schedule(l)
		}
		switch {
		case len(m.lanes) == m.asked: // more may be due
			d.claimAgain = false
			d.claim()
		case d.claimAgain:
			d.claimAgain = false
			d.claimDue = true
			time.AfterFunc(claimPause, func() { d.box.post(claimDueMsg{}) })
		}
	case loadedMsg:
		d.loaded(m)
	case sentMsg:
		if m.dest != nil {
			m.dest.inflight--
			if !m.abandoned {
				m.dest.breaker.result(m.healthy, d.o.Clock.Now())
			}
		}
		if m.abandoned {
			m.l.inflight = false
			d.schedule(m.l)
		} else if !m.recorded {
			// The result could not be stored: try the delivery again shortly.
			m.l.inflight = false
			m.l.waiting = true
			time.AfterFunc(time.Second, func() { d.box.post(retryMsg{m.l}) })
		}
		if m.dest != nil {
			d.pump(m.dest)
		}
	case retryMsg:
		m.l.waiting = false
		d.schedule(m.l)
	case claimDueMsg:
		d.claimDue = false
		d.claim()
	}
}

// claim asks the store for due lanes (one claim at a time); with a shared
// store, for those whose home is this node or whose owner is dead.
func (d *Dispatcher) claim() {
	if d.stopping || !d.live() {
		return
	}
	if d.claiming {
		d.claimAgain = true
		return
	}
	if d.claimDue {
		return // the scheduled claim will take what this one would
	}
	room := d.o.MaxLanes - len(d.lanes)
	if room <= 0 {
		return
	}
	d.claiming = true
	n := min(room, 256)
	now := d.o.Clock.Now()
	view := d.view
	go func() {
		ctx, cancel := context.WithTimeout(context.Background(), 10*time.Second)
		defer cancel()
		var (
			lanes []livehooks.Lane
			err   error
		)
		if d.place != nil {
			lanes, err = d.place.ClaimHomeLanes(ctx, d.o.Node, view, now, d.o.Lease, n)
		} else {
			lanes, err = d.o.Outbox.ClaimLanes(ctx, d.o.Node, now, d.o.Lease, n)
		}
		d.box.post(claimedMsg{lanes, n, err})
	}()
}

func (d *Dispatcher) applyEffect(e groupcommit.Effect) {
	for _, del := range e.Enqueued {
		d.enqueued(del)
	}
	for i, st := range e.Lanes {
		l := d.lanes[st.Lane]
		if i < len(e.Results) {
			r := e.Results[i]
			if r.Outcome == livehooks.OutcomeGone {
				d.dropConfig(r.Delivery.ConfigID)
			}
			if l != nil && len(l.queue) > 0 && l.queue[0].ID == r.Delivery.ID {
				l.queue[0] = nil
				l.queue = l.queue[1:]
				l.inflight = false
				l.lastID = r.Delivery.ID
			}
		}
		if l == nil {
			continue
		}
		if !st.Open {
			if l.reclaimed {
				d.revive(l)
			} else {
				d.drop(l)
			}
			continue
		}
		l.reclaimed = false
		if l.loading {
			l.touched = true
		}
		if len(l.queue) == 0 {
			l.more = true // the store says deliveries remain
		}
		l.waiting = false
		d.schedule(l)
	}
}

// enqueued adds a committed delivery of a lane this node owns.
func (d *Dispatcher) enqueued(del *livehooks.Delivery) {
	l := d.lanes[del.Lane]
	if l == nil {
		if d.stopping || len(d.lanes) >= d.o.MaxLanes {
			// Owned but no room: hand the lane back to the store, due now.
			l = &lane{key: del.Lane, configID: del.ConfigID, projectID: del.ProjectID, waiting: true}
			d.lanes[del.Lane] = l
			d.deferLane(l, d.o.Clock.Now())
			return
		}
		l = &lane{key: del.Lane, configID: del.ConfigID, projectID: del.ProjectID}
		d.lanes[del.Lane] = l
	}
	if l.projectID == "" {
		l.projectID = del.ProjectID
	}
	switch {
	case l.loading:
		l.touched, l.more = true, true
	case !l.more && del.LanePending == len(l.queue)+1 && len(l.queue) < d.o.LaneBuffer:
		l.queue = append(l.queue, del)
	default:
		l.more = true
	}
	d.schedule(l)
}

// schedule moves a lane toward its next attempt: load, queue at its
// destination, or nothing when it is busy.
func (d *Dispatcher) schedule(l *lane) {
	if l.dropped || l.inflight || l.ready || l.loading || l.waiting || d.stopping {
		return
	}
	if l.leaving || d.elsewhere(l) {
		// Between two attempts: the home node takes the lane from here.
		d.release(l, d.o.Clock.Now())
		return
	}
	if len(l.queue) == 0 {
		if l.more {
			d.load(l)
		}
		return
	}
	if l.projectID == "" {
		l.projectID = l.queue[0].ProjectID
	}
	cfg, ok := d.config(l.projectID, l.configID)
	if !ok {
		// The store could not say: hand the lane back, due shortly.
		d.release(l, d.o.Clock.Now().Add(time.Second))
		return
	}
	if cfg == nil || cfg.DisabledReason != "" || cfg.NotifyCallbackURL == "" {
		// Deleted, disabled or URL removed: the store already settled (or
		// will settle) its deliveries; stop holding the lane.
		d.failUnroutable(l, cfg)
		return
	}
	dest := d.dest(destinationOf(cfg.NotifyCallbackURL))
	l.ready = true
	dest.ready = append(dest.ready, l)
	d.pump(dest)
}

// failUnroutable ends a lane whose config cannot take deliveries.
func (d *Dispatcher) failUnroutable(l *lane, cfg *livehooks.CallbackConfig) {
	if cfg == nil || cfg.DisabledReason != "" {
		d.drop(l)
		return
	}
	// A config without a callback URL: its deliveries fail with a reason.
	del := l.queue[0]
	l.inflight = true
	d.inflight.Add(1)
	go func() {
		defer d.inflight.Done()
		_, err := d.o.Writer.Record(d.sendCtx, []livehooks.Result{{
			Delivery: del, Outcome: livehooks.OutcomeFailed,
			Attempt: livehooks.Attempt{N: del.Attempts + 1, At: d.o.Clock.Now(), Error: "the config has no notify_callback_url"},
		}})
		if err != nil {
			d.box.post(sentMsg{l: l, recorded: false})
		}
	}()
}

func (d *Dispatcher) dest(key string) *destination {
	ds := d.dests[key]
	if ds == nil {
		ds = &destination{key: key, breaker: breaker{threshold: d.o.BreakerThreshold, minOpen: d.o.BreakerOpen, maxOpen: time.Minute}}
		d.dests[key] = ds
	}
	return ds
}

// pump starts attempts at a destination while it has room and its breaker
// lets them through. With the breaker open, its waiting lanes go back to the
// store until the breaker may close, so they cost no memory meanwhile.
func (d *Dispatcher) pump(ds *destination) {
	now := d.o.Clock.Now()
	for len(ds.ready) > 0 && ds.inflight < d.o.PerDestination && !d.stopping && d.live() {
		l := ds.ready[0]
		if l.dropped || !l.ready {
			ds.ready[0] = nil
			ds.ready = ds.ready[1:]
			continue
		}
		if !ds.breaker.allow(now) {
			if ds.breaker.state == BreakerOpen {
				for _, l := range ds.ready {
					if !l.dropped {
						l.ready = false
						l.waiting = true
						d.deferLane(l, ds.breaker.openUntil)
					}
				}
				clear(ds.ready)
				ds.ready = ds.ready[:0]
			}
			break
		}
		ds.ready[0] = nil
		ds.ready = ds.ready[1:]
		l.ready = false
		if l.leaving || d.elsewhere(l) {
			d.release(l, now)
			continue
		}
		d.start(ds, l)
	}
	if len(ds.ready) == 0 && ds.inflight == 0 && ds.breaker.state == BreakerClosed && ds.breaker.failures == 0 {
		delete(d.dests, ds.key)
		d.o.Metrics.ForgetDestination(ds.key)
		return
	}
	d.o.Metrics.BreakerState(ds.key, int(ds.breaker.state))
}

// tickBreakers lets half-open probes start once an open period is over, for
// destinations that still have lanes waiting.
func (d *Dispatcher) tickBreakers() {
	for _, ds := range d.dests {
		if len(ds.ready) > 0 {
			d.pump(ds)
		}
	}
}

func (d *Dispatcher) deferLane(l *lane, until time.Time) {
	go func() {
		if err := d.o.Writer.Defer(context.Background(), l.key, until); err != nil {
			d.o.Logger.Warn("defer lane", "lane", l.key, "error", err)
			time.AfterFunc(time.Second, func() { d.box.post(retryMsg{l}) })
		}
	}()
}

// start sends the lane's head in a goroutine.
func (d *Dispatcher) start(ds *destination, l *lane) {
	del := l.queue[0]
	cfg, ok := d.config(l.projectID, l.configID)
	if !ok || cfg == nil {
		d.release(l, d.o.Clock.Now())
		return
	}
	l.inflight = true
	ds.inflight++
	d.inflight.Add(1)
	ctx := d.fenceCtx
	// Nothing else known in the lane: a success may be recorded lazily.
	last := len(l.queue) == 1 && !l.more
	go func() {
		defer d.inflight.Done()
		healthy, recorded := d.attempt(ctx, cfg, del, last)
		d.box.post(sentMsg{dest: ds, l: l, healthy: healthy, recorded: recorded, abandoned: ctx.Err() != nil && !recorded})
	}()
}

// attempt sends one delivery and records the result. When ctx ends during
// the send (shutdown, lapse), the delivery is left pending, unrecorded. The
// success of the last delivery known in its lane is recorded lazily: its
// transaction may wait a few milliseconds for another write to share
// (groupcommit's RecordLazily), as no attempt waits for it. A new delivery
// of the lane committed meanwhile waits for it too, at most that long.
func (d *Dispatcher) attempt(ctx context.Context, cfg *livehooks.CallbackConfig, del *livehooks.Delivery, last bool) (healthy, recorded bool) {
	ans := d.o.Sender.Send(ctx, livehooks.SendRequest{
		URL: cfg.NotifyCallbackURL, Key: cfg.Key, SignType: cfg.SignType,
		WebhookID: del.WebhookID, Event: del.Event, N: del.Attempts + 1,
	})
	if ctx.Err() != nil {
		return true, false
	}
	now := d.o.Clock.Now()
	outcome, next, reason := d.o.Policy.Decide(del, ans.Attempt, ans.RetryAfter, now)
	d.o.Metrics.Attempt(outcomeName(outcome), ans.Attempt.Latency)
	if outcome == livehooks.OutcomeSucceeded {
		d.o.Metrics.Delivered(now.Sub(del.CreatedAt))
	}
	switch outcome {
	case livehooks.OutcomeGone:
		d.o.Logger.Warn("receiver answered 410 Gone: config disabled", "project_id", del.ProjectID, "config_id", del.ConfigID, "delivery_id", del.ID)
	case livehooks.OutcomeDead:
		d.o.Logger.Warn("delivery dead-lettered", "project_id", del.ProjectID, "config_id", del.ConfigID, "delivery_id", del.ID, "attempts", del.Attempts+1)
	case livehooks.OutcomeFailed:
		d.o.Logger.Info("delivery failed", "project_id", del.ProjectID, "config_id", del.ConfigID, "delivery_id", del.ID, "status", ans.Attempt.StatusCode, "reason", reason)
	}
	record := d.o.Writer.Record
	if last && outcome == livehooks.OutcomeSucceeded {
		record = d.o.Writer.RecordLazily
	}
	_, err := record(context.WithoutCancel(d.sendCtx), []livehooks.Result{{
		Delivery: del, Attempt: ans.Attempt, Outcome: outcome, NextAttempt: next, Reason: reason,
	}})
	if err != nil {
		d.o.Logger.Error("record delivery attempt", "delivery_id", del.ID, "error", err)
	}
	code := ans.Attempt.StatusCode
	healthy = code != 0 && code != 408 && code != 429 && code < 500
	return healthy, err == nil
}

func outcomeName(o livehooks.Outcome) string {
	return [...]string{"succeeded", "retry", "failed", "dead", "gone"}[o]
}

func (d *Dispatcher) load(l *lane) {
	l.loading, l.touched = true, false
	after := l.lastID
	limit := d.o.LaneBuffer
	go func() {
		ctx, cancel := context.WithTimeout(context.Background(), 10*time.Second)
		defer cancel()
		ds, err := d.o.Outbox.LaneDeliveries(ctx, l.key, after, limit)
		d.box.post(loadedMsg{l: l, ds: ds, err: err})
	}()
}

func (d *Dispatcher) loaded(m loadedMsg) {
	l := m.l
	l.loading = false
	if l.dropped {
		return
	}
	if m.err != nil {
		d.o.Logger.Warn("load lane", "lane", l.key, "error", m.err)
		l.waiting = true
		time.AfterFunc(time.Second, func() { d.box.post(retryMsg{l}) })
		return
	}
	// The store's view replaces what was queued beyond the head in flight.
	keep := 0
	if l.inflight && len(l.queue) > 0 {
		keep = 1
	}
	l.queue = l.queue[:keep]
	for _, del := range m.ds {
		if del.ID > l.lastID && (keep == 0 || del.ID > l.queue[0].ID) {
			l.queue = append(l.queue, del)
		}
	}
	l.more = len(m.ds) >= d.o.LaneBuffer || l.touched
	l.touched = false
	if len(l.queue) == 0 && !l.more {
		// Nothing pending after all (settled elsewhere). If the store still
		// holds the lane, releasing it makes it claimable again rather than
		// leaving it leased to this node with nobody sending it.
		d.release(l, d.o.Clock.Now())
		return
	}
	d.schedule(l)
}

// release hands a lane this node may still own back to the store, due at t;
// the lane leaves memory when the release commits (its effect).
func (d *Dispatcher) release(l *lane, t time.Time) {
	l.ready, l.waiting = false, true
	d.deferLane(l, t)
}

// revive handles the release of a lane that a claim returned since: the
// claim leased it to this node, which holds no state for it any more.
// Releasing it again, due now, lets its home claim it afresh; should the
// claim have come from something else, the release changes nothing (a lane
// is released only by its owner). Should the release fail, the lane is
// this node's to send.
func (d *Dispatcher) revive(old *lane) {
	d.drop(old)
	l := &lane{key: old.key, configID: old.configID, projectID: old.projectID, more: true}
	d.lanes[l.key] = l
	d.release(l, d.o.Clock.Now())
}

func (d *Dispatcher) drop(l *lane) {
	if l.dropped {
		return
	}
	l.dropped = true
	if d.lanes[l.key] == l {
		delete(d.lanes, l.key)
	}
}

func (d *Dispatcher) dropConfig(configID string) {
	for _, l := range d.lanes {
		if l.configID == configID && !l.inflight {
			d.drop(l)
		}
	}
	delete(d.configs, configID)
}

// config returns the config of a lane, cached for ConfigTTL: nil when it was
// deleted, ok false when the store could not be asked.
func (d *Dispatcher) config(projectID, id string) (cfg *livehooks.CallbackConfig, ok bool) {
	now := d.o.Clock.Now()
	if c := d.configs[id]; c != nil && now.Sub(c.fetched) < d.o.ConfigTTL && now.Sub(c.fetched) >= 0 {
		return c.cfg, true
	}
	ctx, cancel := context.WithTimeout(context.Background(), 5*time.Second)
	defer cancel()
	cfg, err := d.o.Configs.FindCallbackByID(ctx, projectID, id)
	if err != nil && livehooks.ErrorCode(err) != livehooks.ENOTFOUND {
		d.o.Logger.Warn("load config", "config_id", id, "error", err)
		if c := d.configs[id]; c != nil {
			return c.cfg, true
		}
		return nil, false
	}
	if len(d.configs) > 4*d.o.MaxLanes {
		clear(d.configs)
	}
	d.configs[id] = &cachedConfig{cfg: cfg, fetched: now}
	return cfg, true
}
