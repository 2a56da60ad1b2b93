package fileserve

import (
	"bufio"
	"context"
	"encoding/json"
	"errors"
	"fmt"
	"io/fs"
	"log/slog"
	"os"
	"path/filepath"
	"sync"
	"time"

	"github.com/livehooks/livehooks"
)

// IndexFile lists, in the data directory, the files livehooks handed out
// links for, oldest first (one JSON object a line). It lives with the node,
// as the recordings do: nodes sharing a PostgreSQL database each cap their
// own record directories.
const IndexFile = "served-recordings.jsonl"

// IndexOptions configure an Index.
type IndexOptions struct {
	DataDir string
	// MaxBytes caps the space the linked files take together; 0: no cap
	// (the list is still kept, so that a cap set later covers older files).
	MaxBytes int64
	// MinAge keeps a file at least this long after its link went out, so
	// that the callback's receiver can fetch it (default 10 min): the cap may
	// be passed for that long.
	MinAge time.Duration
	// Resolve is checked again before a file is removed: only a file inside
	// its project's record directories is ever removed.
	Resolve Resolver
	// Busy, when set, reports files a pending job still uses; they are kept.
	Busy   func(realPath string) bool
	Logger *slog.Logger
	Clock  livehooks.Clock
}

// Index keeps the list of linked files and removes the oldest when they
// take more than the cap. It is safe for concurrent use.
type Index struct {
	o    IndexOptions
	path string
	wake chan struct{}

	mu    sync.Mutex
	f     *os.File // appends
	total int64    // bytes of the listed files, as of the last trim plus what was linked since
}

type indexEntry struct {
	Project string    `json:"project_id"`
	Path    string    `json:"path"`
	Linked  time.Time `json:"linked"`
	size    int64
}

// OpenIndex opens (or creates) the data directory's list of linked files.
func OpenIndex(o IndexOptions) (*Index, error) {
	if o.Resolve == nil {
		return nil, errors.New("fileserve: IndexOptions.Resolve is required")
	}
	if o.MinAge <= 0 {
		o.MinAge = 10 * time.Minute
	}
	if o.Logger == nil {
		o.Logger = slog.New(slog.DiscardHandler)
	}
	if o.Clock == nil {
		o.Clock = livehooks.SystemClock{}
	}
	x := &Index{o: o, path: filepath.Join(o.DataDir, IndexFile), wake: make(chan struct{}, 1)}
	f, err := os.OpenFile(x.path, os.O_CREATE|os.O_WRONLY|os.O_APPEND, 0o600)
	if err != nil {
		return nil, fmt.Errorf("served recordings list: %w", err)
	}
	x.f = f
	return x, nil
}

// Close closes the list.
func (x *Index) Close() error {
	x.mu.Lock()
	defer x.mu.Unlock()
	return x.f.Close()
}

// Add lists a linked file. A failure to write is logged, not returned: the
// link works all the same, the file is only not covered by the cap.
func (x *Index) Add(project, realPath string) {
	e := indexEntry{Project: project, Path: realPath, Linked: x.o.Clock.Now().UTC()}
	line, _ := json.Marshal(e)
	var size int64
	if fi, err := os.Stat(realPath); err == nil {
		size = fi.Size()
	}
	x.mu.Lock()
	_, err := x.f.Write(append(line, '\n'))
	x.total += size
	over := x.o.MaxBytes > 0 && x.total > x.o.MaxBytes
	x.mu.Unlock()
	if err != nil {
		x.o.Logger.Warn("served recording not listed: the space cap will not remove it", "path", realPath, "error", err)
	}
	if over {
		select {
		case x.wake <- struct{}{}:
		default:
		}
	}
}

// Run trims the list at start, every interval and whenever a new link takes
// it over the cap, until ctx ends. Without a cap it returns at once.
func (x *Index) Run(ctx context.Context, interval time.Duration) {
	if x.o.MaxBytes <= 0 {
		return
	}
	t := time.NewTicker(interval)
	defer t.Stop()
	for {
		if _, err := x.Trim(); err != nil {
			x.o.Logger.Warn("served recordings: trim", "error", err)
		}
		select {
		case <-ctx.Done():
			return
		case <-t.C:
		case <-x.wake:
		}
	}
}

// Trim forgets listed files that are gone and, while the rest take more
// than MaxBytes, removes the oldest (skipping those younger than MinAge or
// busy), logging each removal. It returns how many files it removed.
func (x *Index) Trim() (removed int, err error) {
	x.mu.Lock()
	defer x.mu.Unlock()
	entries, err := x.read()
	if err != nil {
		return 0, err
	}
	var total int64
	for _, e := range entries {
		total += e.size
	}
	now := x.o.Clock.Now()
	kept := entries[:0]
	for _, e := range entries {
		if x.o.MaxBytes <= 0 || total <= x.o.MaxBytes || now.Sub(e.Linked) < x.o.MinAge || (x.o.Busy != nil && x.o.Busy(e.Path)) {
			kept = append(kept, e)
			continue
		}
		if rerr := os.Remove(e.Path); rerr != nil && !errors.Is(rerr, fs.ErrNotExist) {
			x.o.Logger.Warn("served recording not removed", "project_id", e.Project, "path", e.Path, "error", rerr)
			kept = append(kept, e)
			continue
		}
		total -= e.size
		removed++
		x.o.Logger.Info("served recording removed: served recordings take more than --served-recordings-max-bytes",
			"project_id", e.Project, "path", e.Path, "size", e.size, "linked", e.Linked, "served_bytes", total, "max_bytes", x.o.MaxBytes)
	}
	if err := x.rewrite(kept); err != nil {
		return removed, err
	}
	x.total = total
	return removed, nil
}

// read returns the listed files that still exist inside their project's
// record directories, each once (at its latest
// link), oldest first, with their sizes.
func (x *Index) read() ([]indexEntry, error) {
	f, err := os.Open(x.path)
	if err != nil {
		return nil, fmt.Errorf("served recordings list: %w", err)
	}
	defer f.Close()
	var all []indexEntry
	last := map[string]int{}
	sc := bufio.NewScanner(f)
	sc.Buffer(make([]byte, 0, 64<<10), 1<<20)
	for sc.Scan() {
		var e indexEntry
		if json.Unmarshal(sc.Bytes(), &e) != nil || e.Path == "" {
			continue // a line cut short by a crash
		}
		last[e.Path] = len(all)
		all = append(all, e)
	}
	if err := sc.Err(); err != nil {
		return nil, fmt.Errorf("served recordings list: %w", err)
	}
	out := all[:0]
	for i, e := range all {
		if last[e.Path] != i {
			continue
		}
		fi, err := os.Lstat(e.Path)
		if err != nil || !fi.Mode().IsRegular() {
			continue
		}
		if real, err := x.o.Resolve(e.Project, e.Path); err != nil || real != e.Path {
			// Not a file of the record directories (any more): never ours to remove.
			x.o.Logger.Warn("served recording forgotten: outside the record directories", "project_id", e.Project, "path", e.Path)
			continue
		}
		e.size = fi.Size()
		out = append(out, e)
	}
	return out, nil
}

// rewrite replaces the list with entries (a new file renamed into place)
// and reopens it for appends.
func (x *Index) rewrite(entries []indexEntry) error {
	tmp, err := os.CreateTemp(filepath.Dir(x.path), "."+IndexFile+"-*")
	if err != nil {
		return fmt.Errorf("served recordings list: %w", err)
	}
	defer os.Remove(tmp.Name())
	w := bufio.NewWriter(tmp)
	for _, e := range entries {
		line, _ := json.Marshal(e)
		w.Write(append(line, '\n'))
	}
	if err := w.Flush(); err != nil {
		tmp.Close()
		return fmt.Errorf("served recordings list: %w", err)
	}
	if err := tmp.Chmod(0o600); err != nil {
		tmp.Close()
		return fmt.Errorf("served recordings list: %w", err)
	}
	if err := tmp.Sync(); err != nil {
		tmp.Close()
		return fmt.Errorf("served recordings list: %w", err)
	}
	if err := tmp.Close(); err != nil {
		return fmt.Errorf("served recordings list: %w", err)
	}
	if err := os.Rename(tmp.Name(), x.path); err != nil {
		return fmt.Errorf("served recordings list: %w", err)
	}
	f, err := os.OpenFile(x.path, os.O_WRONLY|os.O_APPEND, 0o600)
	if err != nil {
		return fmt.Errorf("served recordings list: %w", err)
	}
	x.f.Close()
	x.f = f
	return nil
}
