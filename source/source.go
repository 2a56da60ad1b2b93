package source

import (
	"context"
	"errors"
	"fmt"
	"log/slog"
	"net/http"
	"sync"
	"time"

	"github.com/livehooks/livehooks"
	"github.com/livehooks/livehooks/media"
	"github.com/livehooks/livehooks/recording"
)

// Machine is the recording state machine (a *recording.Machine).
type Machine interface {
	Signal(ctx context.Context, sig recording.Signal) ([]*livehooks.Event, error)
	Settings(ctx context.Context, projectID, domain string) (recording.Settings, *livehooks.DomainSettings)
}

// CallbackMatcher finds the callback config that a stream's events go to (a
// livehooks.CallbackStore).
type CallbackMatcher interface {
	MatchCallback(ctx context.Context, projectID, domain, app string) (*livehooks.CallbackConfig, error)
}

// Options configure a Source.
type Options struct {
	Machine Machine
	// Callbacks decide RejectUnknownStreams and on-demand recording; nil
	// means no stream has a config.
	Callbacks CallbackMatcher
	// Uploader puts finished files into a domain's object storage; nil makes
	// every file of a domain with storage a RECORD_FAILED.
	Uploader livehooks.Uploader
	// Link makes the download URL of a file livehooks serves itself, for a
	// domain with neither a download URL template nor object storage:
	// realPath is the file's real path, expiry the link's lifetime (0:
	// forever). Nil leaves download_url to the template (empty without one).
	Link func(key livehooks.StreamKey, realPath string, expiry time.Duration) string
	// RecordDirs are the only directories whose files are read
	// (--record-dir: DIR or PROJECT:DIR, see RecordDirs). Each must exist.
	// With none, every file is refused.
	RecordDirs []string
	// SingleTenant reports whether one tenant holds every ingest secret, so
	// that a plain record directory's files belong to every project; nil
	// means it does (see RecordDirs).
	SingleTenant func() bool
	Logger       *slog.Logger
	Clock        livehooks.Clock
	// HTTPClient asks on-demand callback URLs. They are user input: give it
	// the SSRF guard of callback deliveries. Nil: on-demand streams are not
	// recorded (and the log says why).
	HTTPClient *http.Client
	// OnDemandTimeout bounds the on-demand question (default 3 s); no answer
	// in time means "do not record".
	OnDemandTimeout time.Duration
	// Jobs is the store's queue of finished files, which RunFileJobs works.
	Jobs livehooks.FileJobStore
	// Node is this node's id, the owner of the file jobs it works (default
	// "local").
	Node string
	// FileWorkers bounds the jobs worked at once (default 4); JobPoll is how
	// often jobs are looked for besides the wake-ups of FileDone (default
	// 1 s); JobLease is how long a job stays claimed without a renewal
	// (default 10 s).
	FileWorkers int
	JobPoll     time.Duration
	JobLease    time.Duration
	// UploadAttempts (default 3), UploadBackoff (default 1 s, doubling up to
	// MaxUploadBackoff, default 5 min) shape upload retries.
	UploadAttempts   int
	UploadBackoff    time.Duration
	MaxUploadBackoff time.Duration
	// An upload attempt may take UploadTimeout (default 1 min) plus the
	// time its file takes at UploadMinRate bytes a second (default 1 MiB/s).
	UploadTimeout time.Duration
	UploadMinRate int64
	// Probe reads a recording; media.Probe when nil.
	Probe func(path string) (media.Info, error)
}

// Source is what the adapters share. It is safe for concurrent use.
type Source struct {
	o    Options
	dirs *RecordDirs

	// ctx lives until Close: file work and background tasks are detached
	// from the hook request (nginx stops waiting after a few seconds) but
	// not from the process.
	ctx    context.Context
	cancel context.CancelFunc
	wg     sync.WaitGroup

	wake chan struct{} // a file job was stored

	mu       sync.Mutex
	declined map[livehooks.StreamKey]time.Time
}

// New returns a Source. Call Close when done.
func New(o Options) (*Source, error) {
	if o.Machine == nil {
		return nil, errors.New("source: Options.Machine is required")
	}
	if o.Jobs == nil {
		return nil, errors.New("source: Options.Jobs is required")
	}
	if o.Node == "" {
		o.Node = "local"
	}
	if o.FileWorkers <= 0 {
		o.FileWorkers = 4
	}
	if o.JobPoll <= 0 {
		o.JobPoll = time.Second
	}
	if o.JobLease <= 0 {
		o.JobLease = 10 * time.Second
	}
	if o.MaxUploadBackoff <= 0 {
		o.MaxUploadBackoff = 5 * time.Minute
	}
	if o.UploadTimeout <= 0 {
		o.UploadTimeout = time.Minute
	}
	if o.UploadMinRate <= 0 {
		o.UploadMinRate = 1 << 20
	}
	if o.Logger == nil {
		o.Logger = slog.New(slog.DiscardHandler)
	}
	if o.Clock == nil {
		o.Clock = livehooks.SystemClock{}
	}
	if o.OnDemandTimeout <= 0 {
		o.OnDemandTimeout = 3 * time.Second
	}
	if o.UploadAttempts <= 0 {
		o.UploadAttempts = 3
	}
	if o.UploadBackoff <= 0 {
		o.UploadBackoff = time.Second
	}
	if o.Probe == nil {
		o.Probe = media.Probe
	}
	dirs, err := ParseRecordDirs(o.RecordDirs, o.SingleTenant)
	if err != nil {
		return nil, fmt.Errorf("source: %w", err)
	}
	ctx, cancel := context.WithCancel(context.Background())
	return &Source{o: o, dirs: dirs, ctx: ctx, cancel: cancel, wake: make(chan struct{}, 1), declined: map[livehooks.StreamKey]time.Time{}}, nil
}

// Close cancels background work (such as starting a recorder) and waits for
// it to end.
func (s *Source) Close() {
	s.cancel()
	s.wg.Wait()
}

// Go runs fn in the background until it returns or Close is called.
func (s *Source) Go(fn func(ctx context.Context)) {
	s.wg.Add(1)
	go func() {
		defer s.wg.Done()
		fn(s.ctx)
	}()
}

// Logger returns the logger adapters log with.
func (s *Source) Logger() *slog.Logger { return s.o.Logger }

// detach returns a context that keeps ctx's values but ends with the Source,
// not with the hook request.
func (s *Source) detach(ctx context.Context) (context.Context, context.CancelFunc) {
	ctx, cancel := context.WithCancel(context.WithoutCancel(ctx))
	stop := context.AfterFunc(s.ctx, cancel)
	return ctx, func() { stop(); cancel() }
}

// Admission is what Publish decided about a stream.
type Admission int

const (
	// Recorded: RECORD_* events follow for this publish.
	Recorded Admission = iota
	// NotRecorded: the on-demand service said no (or did not answer); the
	// stream may publish, but it gets no events and its files are ignored.
	NotRecorded
	// Refused: the domain rejects streams of apps without a callback config;
	// the media server should refuse the publish.
	Refused
)

func (a Admission) String() string {
	return [...]string{"recorded", "not recorded", "refused"}[a]
}

// Publish reports that a publisher started. It refuses the stream when its
// domain has RejectUnknownStreams and no callback config matches, asks the
// on-demand URL when the config has one, and otherwise signals Publish.
// format is what the recorder writes (livehooks.FormatFLV, FormatMP4,
// FormatHLS) when the adapter knows it, else "": the stream's events then
// say the domain's record_format until a file shows the format. The error is
// EINVALID for bad names, or the store's.
func (s *Source) Publish(ctx context.Context, key livehooks.StreamKey, format string) (Admission, error) {
	if err := key.Validate(); err != nil {
		return Refused, err
	}
	ctx, cancel := s.detach(ctx)
	defer cancel()
	cfg, err := s.match(ctx, key)
	if err != nil {
		return Refused, err
	}
	if cfg == nil {
		if _, d := s.o.Machine.Settings(ctx, key.ProjectID, key.PublishDomain); d != nil && d.RejectUnknownStreams {
			s.o.Logger.Info("publish refused: no callback config for the app and the domain rejects unknown streams", streamAttrs(key)...)
			return Refused, nil
		}
	}
	if cfg != nil && cfg.OnDemandCallbackURL != "" && !s.askOnDemand(ctx, cfg, key) {
		s.setDeclined(key, true)
		return NotRecorded, nil
	}
	s.setDeclined(key, false)
	if _, err := s.o.Machine.Signal(ctx, recording.Signal{Kind: recording.Publish, Stream: key, Format: format}); err != nil {
		return Refused, err
	}
	return Recorded, nil
}

// Unpublish reports that a publisher stopped. Repeats are harmless: the
// machine ignores an unpublish of a stream that is not live.
func (s *Source) Unpublish(ctx context.Context, key livehooks.StreamKey) error {
	if err := key.Validate(); err != nil {
		return err
	}
	ctx, cancel := s.detach(ctx)
	defer cancel()
	_, err := s.o.Machine.Signal(ctx, recording.Signal{Kind: recording.Unpublish, Stream: key})
	return err
}

// Failure reports that the recorder failed (RECORD_FAILED with msg).
func (s *Source) Failure(ctx context.Context, key livehooks.StreamKey, msg string) error {
	if err := key.Validate(); err != nil {
		return err
	}
	ctx, cancel := s.detach(ctx)
	defer cancel()
	_, err := s.o.Machine.Signal(ctx, recording.Signal{Kind: recording.Failure, Stream: key, Error: msg})
	return err
}

func (s *Source) match(ctx context.Context, key livehooks.StreamKey) (*livehooks.CallbackConfig, error) {
	if s.o.Callbacks == nil {
		return nil, nil
	}
	cfg, err := s.o.Callbacks.MatchCallback(ctx, key.ProjectID, key.PublishDomain, key.App)
	if livehooks.ErrorCode(err) == livehooks.ENOTFOUND {
		return nil, nil
	}
	return cfg, err
}

// setDeclined remembers (or forgets) that the on-demand service declined a
// stream, until its next publish. The memory is bounded and not kept across
// restarts: see docs/media-servers.md.
func (s *Source) setDeclined(key livehooks.StreamKey, declined bool) {
	s.mu.Lock()
	defer s.mu.Unlock()
	if !declined {
		delete(s.declined, key)
		return
	}
	if len(s.declined) >= 100_000 {
		old := s.o.Clock.Now().Add(-24 * time.Hour)
		for k, t := range s.declined {
			if t.Before(old) {
				delete(s.declined, k)
			}
		}
		if len(s.declined) >= 100_000 {
			clear(s.declined)
		}
	}
	s.declined[key] = s.o.Clock.Now()
}

func (s *Source) isDeclined(key livehooks.StreamKey) bool {
	s.mu.Lock()
	defer s.mu.Unlock()
	_, ok := s.declined[key]
	return ok
}

func streamAttrs(k livehooks.StreamKey, more ...any) []any {
	return append([]any{"project_id", k.ProjectID, "publish_domain", k.PublishDomain, "app", k.App, "stream", k.Stream}, more...)
}

func clip(s string, n int) string {
	if len(s) > n {
		return s[:n] + "…"
	}
	return s
}
