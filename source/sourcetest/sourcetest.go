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
	"strings"
	"sync"
	"testing"
	"time"

	"github.com/livehooks/livehooks"
	"github.com/livehooks/livehooks/recording"
	"github.com/livehooks/livehooks/source"
)

// Recorder is a source.Machine that records the signals it gets.
type Recorder struct {
	mu      sync.Mutex
	signals []recording.Signal
	domains map[string]*livehooks.DomainSettings
	// Err, when set, fails every Signal (a store outage).
	Err error
}

var _ source.Machine = (*Recorder)(nil)

// Signal records sig.
func (r *Recorder) Signal(_ context.Context, sig recording.Signal) ([]*livehooks.Event, error) {
	r.mu.Lock()
	defer r.mu.Unlock()
	if r.Err != nil {
		return nil, r.Err
	}
	r.signals = append(r.signals, sig)
	return nil, nil
}

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

// Want fails the test unless the signals so far render as lines.
func (r *Recorder) Want(t testing.TB, lines ...string) {
	t.Helper()
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
// third result), for adapter tests.
func New(t testing.TB, mod ...func(*source.Options)) (*source.Source, *Recorder, string) {
	t.Helper()
	rec := &Recorder{}
	dir := t.TempDir()
	o := source.Options{Machine: rec, RecordDirs: []string{dir}, UploadBackoff: time.Millisecond}
	for _, m := range mod {
		m(&o)
	}
	s, err := source.New(o)
	if err != nil {
		t.Fatal(err)
	}
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
