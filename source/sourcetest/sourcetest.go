// Package sourcetest helps test the media-server adapters: a recording
// machine that records the signals it gets, a callback matcher over a list,
// a fake uploader, and recording files to point hooks at.
package sourcetest

import (
	"context"
	"encoding/json"
	"fmt"
	"os"
	"path/filepath"
	"slices"
	"strings"
	"sync"
	"testing"
	"time"

	"github.com/livehooks/livehooks"
	"github.com/livehooks/livehooks/recording"
	"github.com/livehooks/livehooks/source"
)

// Recorder is a source.Machine that records the signals it gets, and a
// livehooks.FileJobStore in memory: a FileQueued signal stores its job (and
// is not recorded), the FileDone or Failure of a job finishes it.
type Recorder struct {
	mu      sync.Mutex
	signals []recording.Signal
	domains map[string]*livehooks.DomainSettings
	jobs    []*memJob
	lastJob int64
	src     *source.Source // whose file jobs Drain works
	// Err, when set, fails every Signal (a store outage).
	Err error
}

type memJob struct {
	j          livehooks.FileJob
	owner      string
	leaseUntil time.Time
}

var (
	_ source.Machine         = (*Recorder)(nil)
	_ livehooks.FileJobStore = (*Recorder)(nil)
)

// Signal records sig.
func (r *Recorder) Signal(_ context.Context, sig recording.Signal) ([]*livehooks.Event, error) {
	r.mu.Lock()
	defer r.mu.Unlock()
	if r.Err != nil {
		return nil, r.Err
	}
	switch {
	case sig.Kind == recording.FileQueued:
		r.lastJob++
		j := *sig.Job
		j.ID, j.StreamKey = r.lastJob, sig.Stream
		r.jobs = append(r.jobs, &memJob{j: j})
		return nil, nil
	case sig.Job != nil:
		r.jobs = slices.DeleteFunc(r.jobs, func(m *memJob) bool { return m.j.ID == sig.Job.ID })
	}
	r.signals = append(r.signals, sig)
	return nil, nil
}

// PendingJobs returns the paths of the jobs not finished yet, in order.
func (r *Recorder) PendingJobs() []string {
	r.mu.Lock()
	defer r.mu.Unlock()
	var out []string
	for _, m := range r.jobs {
		out = append(out, m.j.Path)
	}
	return out
}

// ClaimFileJobs leases each stream's first job when it is due.
func (r *Recorder) ClaimFileJobs(_ context.Context, node string, now time.Time, lease time.Duration, max int) ([]*livehooks.FileJob, error) {
	r.mu.Lock()
	defer r.mu.Unlock()
	seen := map[livehooks.StreamKey]bool{}
	var out []*livehooks.FileJob
	for _, m := range r.jobs {
		if seen[m.j.StreamKey] {
			continue
		}
		seen[m.j.StreamKey] = true
		if len(out) < max && !m.j.NextAttempt.After(now) && (m.owner == "" || m.owner == node || !m.leaseUntil.After(now)) {
			m.owner, m.leaseUntil = node, now.Add(lease)
			j := m.j
			out = append(out, &j)
		}
	}
	return out, nil
}

// RenewFileJobs extends node's leases.
func (r *Recorder) RenewFileJobs(_ context.Context, node string, until time.Time) error {
	r.mu.Lock()
	defer r.mu.Unlock()
	for _, m := range r.jobs {
		if m.owner == node {
			m.leaseUntil = until
		}
	}
	return nil
}

// RetryFileJob puts a job back until next.
func (r *Recorder) RetryFileJob(_ context.Context, node string, id int64, attempts int, next time.Time, lastError string) error {
	r.mu.Lock()
	defer r.mu.Unlock()
	for _, m := range r.jobs {
		if m.j.ID == id && m.owner == node {
			m.j.Attempts, m.j.NextAttempt, m.j.LastError, m.owner = attempts, next, lastError, ""
			return nil
		}
	}
	return livehooks.Errorf(livehooks.ENOTFOUND, "no file job %d", id)
}

// ReleaseFileJobs frees node's jobs.
func (r *Recorder) ReleaseFileJobs(_ context.Context, node string) error {
	r.mu.Lock()
	defer r.mu.Unlock()
	for _, m := range r.jobs {
		if m.owner == node {
			m.owner = ""
		}
	}
	return nil
}

// FinishedFileJobs returns nothing: the Recorder delivers no event.
func (r *Recorder) FinishedFileJobs(context.Context, int) ([]*livehooks.FinishedFileJob, error) {
	return nil, nil
}

// DeleteFileJob does nothing (see FinishedFileJobs).
func (r *Recorder) DeleteFileJob(context.Context, int64) error { return nil }

// FileJobPending reports no job: the Recorder serves no files.
func (r *Recorder) FileJobPending(context.Context, string) (bool, error) { return false, nil }

// Settings returns the settings PutDomain stored.
func (r *Recorder) Settings(_ context.Context, project, domain string) (recording.Settings, *livehooks.DomainSettings) {
	r.mu.Lock()
	defer r.mu.Unlock()
	d := r.domains[project+"/"+domain]
	s := recording.Settings{MaxPause: livehooks.DefaultMaxPause, RecordFormat: livehooks.FormatFLV}
	if d != nil && d.MaxPause > 0 {
		s.MaxPause = d.MaxPause
	}
	return s, d
}

// PutDomain sets a domain's settings.
func (r *Recorder) PutDomain(d *livehooks.DomainSettings) {
	r.mu.Lock()
	defer r.mu.Unlock()
	if r.domains == nil {
		r.domains = map[string]*livehooks.DomainSettings{}
	}
	r.domains[d.ProjectID+"/"+d.PublishDomain] = d
}

// Signals returns the signals so far.
func (r *Recorder) Signals() []recording.Signal {
	r.mu.Lock()
	defer r.mu.Unlock()
	return append([]recording.Signal(nil), r.signals...)
}

// Lines renders the signals so far, one line each:
//
//	publish p/push.example.com/live/cam1
//	file_done p/push.example.com/live/cam1 a.flv FLV 1234B 6s 1280x720 [empty] [url=…]
//	failure p/push.example.com/live/cam1 "message"
func (r *Recorder) Lines() []string {
	var out []string
	for _, s := range r.Signals() {
		k := s.Stream
		line := fmt.Sprintf("%s %s/%s/%s/%s", s.Kind, k.ProjectID, k.PublishDomain, k.App, k.Stream)
		switch s.Kind {
		case recording.FileDone:
			f := s.File
			line += fmt.Sprintf(" %s %s %dB %s %dx%d", f.Name, f.Format, f.Size, f.Duration.Round(time.Millisecond), f.Width, f.Height)
			if f.Empty {
				line += " empty"
			}
			if f.DownloadURL != "" {
				line += " url=" + f.DownloadURL
			}
		case recording.Failure:
			line += fmt.Sprintf(" %q", s.Error)
		}
		out = append(out, line)
	}
	return out
}

// Drain works the Source's file jobs until none is left (retries
// included, within 10 s): their reports follow the signals so far.
func (r *Recorder) Drain(t testing.TB) {
	t.Helper()
	deadline := time.Now().Add(10 * time.Second)
	for {
		if _, err := r.src.WorkFileJobs(context.Background()); err != nil {
			t.Fatal(err)
		}
		if len(r.PendingJobs()) == 0 {
			return
		}
		if time.Now().After(deadline) {
			t.Fatalf("file jobs still pending: %q", r.PendingJobs())
		}
		time.Sleep(time.Millisecond) // a retry's backoff
	}
}

// Want drains the file jobs, then fails the test unless the signals render
// as lines.
func (r *Recorder) Want(t testing.TB, lines ...string) {
	t.Helper()
	r.Drain(t)
	if got, want := strings.Join(r.Lines(), "\n"), strings.Join(lines, "\n"); got != want {
		t.Fatalf("signals:\n%s\n\nwant:\n%s", got, want)
	}
}

// Callbacks is a source.CallbackMatcher over a list of configs, matching as
// the stores do (exact app first, then `*`).
type Callbacks []*livehooks.CallbackConfig

// MatchCallback returns the config of the exact app, else the `*` one.
func (cs Callbacks) MatchCallback(_ context.Context, project, domain, app string) (*livehooks.CallbackConfig, error) {
	var star *livehooks.CallbackConfig
	for _, c := range cs {
		switch {
		case c.ProjectID != project || c.PublishDomain != domain:
		case c.App == app:
			return c, nil
		case c.App == "*":
			star = c
		}
	}
	if star == nil {
		return nil, livehooks.Errorf(livehooks.ENOTFOUND, "no callback config")
	}
	return star, nil
}

// Uploader is a livehooks.Uploader that fails its first Fail calls, then
// returns URL + objectKey.
type Uploader struct {
	mu    sync.Mutex
	Fail  int
	URL   string
	Calls []string // "objectKey <- path"
}

// Upload records the call.
func (u *Uploader) Upload(_ context.Context, s *livehooks.StorageSettings, objectKey, path string) (string, error) {
	u.mu.Lock()
	defer u.mu.Unlock()
	u.Calls = append(u.Calls, s.Prefix+objectKey+" <- "+path)
	if len(u.Calls) <= u.Fail {
		return "", fmt.Errorf("bucket %s unreachable", s.Bucket)
	}
	return u.URL + s.Prefix + objectKey, nil
}

// New returns a Source over a Recorder with a fresh record directory (the
// third result), for adapter tests. Its file jobs are worked by
// Recorder.Drain (Want drains), or by a RunFileJobs the test starts.
func New(t testing.TB, mod ...func(*source.Options)) (*source.Source, *Recorder, string) {
	t.Helper()
	rec := &Recorder{}
	dir := t.TempDir()
	o := source.Options{Machine: rec, Jobs: rec, RecordDirs: []string{dir}, UploadBackoff: time.Millisecond, JobPoll: 5 * time.Millisecond}
	for _, m := range mod {
		m(&o)
	}
	s, err := source.New(o)
	if err != nil {
		t.Fatal(err)
	}
	rec.src = s
	t.Cleanup(s.Close)
	return s, rec, dir
}

// CopyFixture copies one of media/testdata's files into dir under name and
// returns its path.
func CopyFixture(t testing.TB, fixture, dir, name string) string {
	t.Helper()
	b, err := os.ReadFile(filepath.Join(moduleRoot(t), "media", "testdata", fixture))
	if err != nil {
		t.Fatal(err)
	}
	p := filepath.Join(dir, name)
	if err := os.WriteFile(p, b, 0o644); err != nil {
		t.Fatal(err)
	}
	return p
}

func moduleRoot(t testing.TB) string {
	dir, err := os.Getwd()
	if err != nil {
		t.Fatal(err)
	}
	for {
		if _, err := os.Stat(filepath.Join(dir, "go.mod")); err == nil {
			return dir
		}
		parent := filepath.Dir(dir)
		if parent == dir {
			t.Fatal("no go.mod above the test's directory")
		}
		dir = parent
	}
}

// JSONFixture returns the JSON object in testdata/name (of the calling
// test's package) with fields replaced; a nil value removes the field.
func JSONFixture(t testing.TB, name string, set map[string]any) string {
	t.Helper()
	b, err := os.ReadFile(filepath.Join("testdata", name))
	if err != nil {
		t.Fatal(err)
	}
	var m map[string]any
	if err := json.Unmarshal(b, &m); err != nil {
		t.Fatal(err)
	}
	for k, v := range set {
		if v == nil {
			delete(m, k)
		} else {
			m[k] = v
		}
	}
	out, _ := json.Marshal(m)
	return string(out)
}
