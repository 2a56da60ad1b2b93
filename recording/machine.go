package recording

import (
	"context"
	"crypto/rand"
	"encoding/hex"
	"log/slog"
	"sync"
	"time"

	"github.com/google/uuid"

	"github.com/livehooks/livehooks"
	"github.com/livehooks/livehooks/groupcommit"
	"github.com/livehooks/livehooks/metrics"
)

// Committer runs a function in a batched write transaction (a
// groupcommit.Committer).
type Committer interface {
	Apply(ctx context.Context, streams []string, fn groupcommit.ApplyFunc) error
	Node() string
}

// Options configure a Machine.
type Options struct {
	Committer Committer
	Domains   livehooks.DomainStore
	Clock     livehooks.Clock
	Logger    *slog.Logger
	Metrics   *metrics.Metrics
	// NextFileDelay is how long after a file completes the next file's
	// RECORD_NEW_FILE_START waits for a possible end of stream (default 1 s).
	NextFileDelay time.Duration
	// TimerInterval is how often due timers are looked for (default 250 ms).
	TimerInterval time.Duration
	// SettingsTTL is how long domain settings are cached (default 2 s).
	SettingsTTL time.Duration
	// LateFileGrace is how long past a stream's pause its task waits before
	// RECORD_OVER for a file the recorder reports after the stream's end
	// (default 2 s): MediaMTX runs runOnUnavailable before it closes the
	// last segment, SRS sends the last on_dvr after on_unpublish.
	LateFileGrace time.Duration
	// JobLease is how long a file job stays with the node that stored it
	// before another node may take it (default 10 s).
	JobLease time.Duration
}

// Machine is the recording state machine. It is safe for concurrent use.
type Machine struct {
	o   Options
	ids ids

	mu       sync.Mutex
	settings map[string]cachedSettings
}

type cachedSettings struct {
	s       Settings
	fetched time.Time
}

// New returns a Machine.
func New(o Options) *Machine {
	if o.Clock == nil {
		o.Clock = livehooks.SystemClock{}
	}
	if o.Logger == nil {
		o.Logger = slog.New(slog.DiscardHandler)
	}
	if o.NextFileDelay <= 0 {
		o.NextFileDelay = time.Second
	}
	if o.TimerInterval <= 0 {
		o.TimerInterval = 250 * time.Millisecond
	}
	if o.SettingsTTL <= 0 {
		o.SettingsTTL = 2 * time.Second
	}
	if o.LateFileGrace <= 0 {
		o.LateFileGrace = 2 * time.Second
	}
	if o.JobLease <= 0 {
		o.JobLease = 10 * time.Second
	}
	return &Machine{o: o, ids: randomIDs{}, settings: map[string]cachedSettings{}}
}

type randomIDs struct{}

func (randomIDs) task() string  { return hex32() }
func (randomIDs) job() string   { return uuid.NewString() }
func (randomIDs) event() string { return livehooks.NewEventID() }

func hex32() string {
	var b [16]byte
	_, _ = rand.Read(b[:])
	return hex.EncodeToString(b[:])
}

// Settings returns the recording settings of a domain (cached briefly).
func (m *Machine) Settings(ctx context.Context, projectID, domain string) (Settings, *livehooks.DomainSettings) {
	d, err := m.o.Domains.FindDomain(ctx, projectID, domain)
	if err != nil {
		if livehooks.ErrorCode(err) != livehooks.ENOTFOUND {
			m.o.Logger.Warn("load domain settings", "project_id", projectID, "publish_domain", domain, "error", err)
		}
		d = nil
	}
	return settingsOf(d), d
}

func (m *Machine) cachedSettings(ctx context.Context, projectID, domain string) Settings {
	key := projectID + "\x00" + domain
	now := time.Now()
	m.mu.Lock()
	c, ok := m.settings[key]
	m.mu.Unlock()
	if ok && now.Sub(c.fetched) < m.o.SettingsTTL {
		return c.s
	}
	s, _ := m.Settings(ctx, projectID, domain)
	m.mu.Lock()
	if len(m.settings) > 10000 {
		clear(m.settings)
	}
	m.settings[key] = cachedSettings{s, now}
	m.mu.Unlock()
	return s
}

// transact loads a stream's state, lets fn change it, and commits the new
// state with the events fn emitted, in one transaction.
func (m *Machine) transact(ctx context.Context, key livehooks.StreamKey, fn func(s *step)) ([]*livehooks.Event, error) {
	set := m.cachedSettings(ctx, key.ProjectID, key.PublishDomain)
	var out []*livehooks.Event
	err := m.o.Committer.Apply(ctx, []string{key.Stream}, func(ctx context.Context, tx livehooks.OutboxTx, now time.Time) ([]*livehooks.Delivery, error) {
		st, err := tx.Stream(ctx, key)
		if err != nil {
			return nil, err
		}
		if st == nil {
			st = &livehooks.StreamState{StreamKey: key}
		}
		s := &step{st: st, now: now, set: set, delay: m.o.NextFileDelay, grace: m.o.LateFileGrace, ids: m.ids}
		fn(s)
		st.UpdatedAt = now
		if err := tx.PutStream(ctx, st); err != nil {
			return nil, err
		}
		if s.addJob != nil {
			if err := tx.AddFileJob(ctx, m.o.Committer.Node(), now, m.o.JobLease, s.addJob); err != nil {
				return nil, err
			}
		}
		if s.doneJob != 0 {
			if err := tx.FinishFileJob(ctx, s.doneJob, s.doneEvent); err != nil {
				return nil, err
			}
		}
		out = s.events
		if len(s.events) == 0 {
			return nil, nil
		}
		return tx.Enqueue(ctx, m.o.Committer.Node(), now, s.events)
	})
	if err != nil {
		return nil, err
	}
	return out, nil
}

// Signal applies a source's report and returns the events it produced, once
// they are committed. A FileQueued signal stores its job with the stream's
// state; a FileDone or Failure with a job finishes that job in the same
// transaction.
func (m *Machine) Signal(ctx context.Context, sig Signal) ([]*livehooks.Event, error) {
	if err := sig.Stream.Validate(); err != nil {
		return nil, err
	}
	events, err := m.transact(ctx, sig.Stream, func(s *step) { s.apply(sig) })
	if err != nil {
		return nil, err
	}
	m.o.Metrics.Ingested("signal:"+sig.Kind.String(), len(events))
	for _, e := range events {
		m.o.Logger.Info("recording event", "project_id", e.ProjectID, "event_type", e.Type, "publish_domain", e.PublishDomain,
			"app", e.App, "stream", e.Stream, "task_id", e.TaskID, "job_id", e.JobID)
	}
	return events, nil
}

// Ingest records generic API events (livehooks.Ingester). Events of one
// stream are applied in order; ids left empty are assigned from the stream's
// state. All events commit together or not at all.
func (m *Machine) Ingest(ctx context.Context, events []*livehooks.Event) error {
	if len(events) == 0 {
		return nil
	}
	sets := map[string]Settings{}
	for _, e := range events {
		k := e.ProjectID + "\x00" + e.PublishDomain
		if _, ok := sets[k]; !ok {
			sets[k] = m.cachedSettings(ctx, e.ProjectID, e.PublishDomain)
		}
	}
	node := m.o.Committer.Node()
	err := m.o.Committer.Apply(ctx, groupcommit.EventStreams(events), func(ctx context.Context, tx livehooks.OutboxTx, now time.Time) ([]*livehooks.Delivery, error) {
		states := map[livehooks.StreamKey]*livehooks.StreamState{}
		for _, e := range events {
			key := livehooks.StreamKey{ProjectID: e.ProjectID, PublishDomain: e.PublishDomain, App: e.App, Stream: e.Stream}
			st := states[key]
			if st == nil {
				var err error
				if st, err = tx.Stream(ctx, key); err != nil {
					return nil, err
				}
				if st == nil {
					st = &livehooks.StreamState{StreamKey: key}
				}
				states[key] = st
			}
			s := &step{st: st, now: now, set: sets[e.ProjectID+"\x00"+e.PublishDomain], ids: m.ids}
			s.ingest(e)
		}
		for _, st := range states {
			st.UpdatedAt = now
			if err := tx.PutStream(ctx, st); err != nil {
				return nil, err
			}
		}
		return tx.Enqueue(ctx, node, now, events)
	})
	if err != nil {
		return err
	}
	m.o.Metrics.Ingested("api", len(events))
	return nil
}

// Run fires due timers (RECORD_OVER after the maximum pause, delayed
// RECORD_NEW_FILE_START) until ctx is done. Timers are in the store: after a
// restart, those that fell due meanwhile fire at once.
func (m *Machine) Run(ctx context.Context) {
	t := time.NewTicker(m.o.TimerInterval)
	defer t.Stop()
	for {
		m.fireDue(ctx)
		select {
		case <-ctx.Done():
			return
		case <-t.C:
		}
	}
}

func (m *Machine) fireDue(ctx context.Context) {
	for {
		keys, err := m.o.Domains.DueStreams(ctx, m.o.Clock.Now(), 256)
		if err != nil {
			if ctx.Err() == nil {
				m.o.Logger.Warn("load due recording timers", "error", err)
			}
			return
		}
		for _, k := range keys {
			events, err := m.transact(ctx, k, func(s *step) { s.fireDue() })
			if err != nil {
				if ctx.Err() == nil {
					m.o.Logger.Warn("fire recording timer", "stream", k.Stream, "error", err)
				}
				return
			}
			for _, e := range events {
				m.o.Logger.Info("recording event", "project_id", e.ProjectID, "event_type", e.Type, "publish_domain", e.PublishDomain,
					"app", e.App, "stream", e.Stream, "task_id", e.TaskID, "job_id", e.JobID)
			}
		}
		if len(keys) < 256 {
			return
		}
	}
}
