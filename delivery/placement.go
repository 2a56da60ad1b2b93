package delivery

import (
	"context"
	"slices"
	"time"

	"github.com/livehooks/livehooks"
)

// Placement is implemented by an Outbox that several nodes share
// (PostgreSQL). Their dispatchers spread the lanes over the live nodes: each
// lane has a home among them, which claims it and delivers it; a node that
// holds a lane whose home is another node hands it over between two
// attempts; a node that stops heartbeating is dead, and the others take its
// lanes over at once rather than when their leases expire. A lane is sent by
// one node at a time, in id order from the store, across every hand-over.
//
// With an Outbox without Placement (SQLite, one node) the dispatcher
// delivers every lane it claims.
type Placement interface {
	// Heartbeat marks node alive for ttl and returns the live nodes, node
	// included, and how long until the first of the others stops being
	// live unless it heartbeats again (0 when there is none).
	Heartbeat(ctx context.Context, node string, ttl time.Duration) (live []string, next time.Duration, err error)
	// Leave marks node stopped: whatever lane it still owns is taken over at
	// once.
	Leave(ctx context.Context, node string) error
	// Home returns the node among live that should deliver lane.
	Home(lane string, live []string) string
	// ClaimHomeLanes is Outbox.ClaimLanes restricted to the lanes whose Home
	// among live is node, also taking those whose owner stopped
	// heartbeating.
	ClaimHomeLanes(ctx context.Context, node string, live []string, now time.Time, lease time.Duration, max int) ([]livehooks.Lane, error)
}

// viewMsg is the outcome of a heartbeat started at at.
type viewMsg struct {
	live []string
	next time.Duration // until the first of the others expires
	at   time.Time
	err  error
}

// lapseMsg comes when liveUntil passes.
type lapseMsg struct{}

// heartbeats heartbeats every Options.Heartbeat until ctx is done, and
// also just after another node would expire, so that a dead node's lanes are
// taken over as soon as it is known dead. A heartbeat that takes longer than
// NodeTimeout is given up: by then the other nodes take this one for dead
// anyway.
func (d *Dispatcher) heartbeats(ctx context.Context, first viewMsg, done chan<- struct{}) {
	defer close(done)
	m := first
	t := time.NewTimer(d.nextHeartbeat(m))
	defer t.Stop()
	for {
		select {
		case <-ctx.Done():
			return
		case <-t.C:
		}
		m = d.heartbeat(ctx)
		d.box.post(m)
		t.Reset(d.nextHeartbeat(m))
	}
}

// nextHeartbeat is the wait, just after heartbeat m returned, for the next
// one. The time left to the first expiry counts from when the database read
// its clock, a little before m returned: waiting that long from now, and a
// little more, finds the node expired.
func (d *Dispatcher) nextHeartbeat(m viewMsg) time.Duration {
	wait := d.o.Heartbeat - time.Since(m.at)
	if m.err == nil && m.next > 0 {
		wait = min(wait, m.next+10*time.Millisecond)
	}
	return max(wait, 0)
}

func (d *Dispatcher) heartbeat(ctx context.Context) viewMsg {
	hctx, cancel := context.WithTimeout(ctx, d.o.NodeTimeout)
	defer cancel()
	return d.heartbeatWithin(hctx)
}

func (d *Dispatcher) heartbeatWithin(ctx context.Context) viewMsg {
	at := time.Now()
	live, next, err := d.place.Heartbeat(ctx, d.o.Node, d.o.NodeTimeout)
	return viewMsg{live: live, next: next, at: at, err: err}
}

// setView takes the outcome of a heartbeat. The node may start attempts
// until a quarter of NodeTimeout before the other nodes would take it for
// dead (by the database's clock, which reads no earlier than at).
func (d *Dispatcher) setView(m viewMsg) {
	if m.err != nil {
		if !d.hbFailing {
			d.o.Logger.Warn("heartbeat", "error", m.err)
		}
		d.hbFailing = true
		return
	}
	if d.hbFailing {
		d.o.Logger.Info("heartbeat recorded again")
		d.hbFailing = false
	}
	d.liveUntil = m.at.Add(d.o.NodeTimeout - d.o.NodeTimeout/4)
	if d.lapseTimer == nil {
		d.lapseTimer = time.AfterFunc(time.Until(d.liveUntil), func() { d.box.post(lapseMsg{}) })
	} else {
		d.lapseTimer.Reset(time.Until(d.liveUntil))
	}
	if d.lapsed {
		// The other nodes may have taken some of this node's lanes: hand
		// every lane back (a lane taken meanwhile is left alone), and
		// claim again what is still this node's.
		d.lapsed = false
		d.newFence()
		d.o.Logger.Warn("heartbeat recorded again after a lapse: lanes handed back to be claimed afresh", "lanes", len(d.lanes))
		for _, l := range d.lanes {
			l.leaving = true
		}
		d.handOver()
	}
	if !slices.Equal(m.live, d.view) {
		d.o.Logger.Info("live nodes", "nodes", m.live, "was", d.view)
		d.view = m.live
		d.viewGen++
		d.handOver()
		d.claim()
	}
}

// live reports whether this node may start attempts: with a shared store,
// only while the other nodes cannot have taken it for dead. When it may
// not any more, attempts in flight are abandoned (their deliveries stay
// pending), so that the node that takes a lane over never sends while this
// one still does; nothing starts until a heartbeat is recorded again.
func (d *Dispatcher) live() bool {
	switch {
	case d.place == nil:
		return true
	case d.lapsed:
		return false
	case time.Now().Before(d.liveUntil):
		return true
	}
	d.lapsed = true
	d.fenceCancel()
	d.o.Logger.Error("no heartbeat recorded in time: stopped delivering until one is; the other nodes may take this node's lanes over",
		"node_timeout", d.o.NodeTimeout)
	return false
}

// newFence gives the attempts to come a context that a lapse cancels.
func (d *Dispatcher) newFence() {
	d.fenceCtx, d.fenceCancel = context.WithCancel(d.sendCtx)
}

// elsewhere reports whether a lane's home is another live node.
func (d *Dispatcher) elsewhere(l *lane) bool {
	if d.place == nil || len(d.view) == 0 {
		return false
	}
	if l.homeGen != d.viewGen {
		l.homeGen = d.viewGen
		l.elsewhere = d.place.Home(l.key, d.view) != d.o.Node
	}
	return l.elsewhere
}

// handOver releases, due now, the lanes whose home is elsewhere or that
// are leaving, as soon as no attempt of theirs is in flight: those waiting
// for their destination at once, the others when they next reach schedule.
func (d *Dispatcher) handOver() {
	now := d.o.Clock.Now()
	for _, ds := range d.dests {
		keep := ds.ready[:0]
		for _, l := range ds.ready {
			if l.dropped {
				continue
			}
			if l.leaving || d.elsewhere(l) {
				d.release(l, now)
				continue
			}
			keep = append(keep, l)
		}
		clear(ds.ready[len(keep):])
		ds.ready = keep
	}
	for _, l := range d.lanes {
		d.schedule(l)
	}
}
