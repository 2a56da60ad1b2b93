package main

import (
	"bufio"
	"bytes"
	"context"
	"encoding/json"
	"errors"
	"fmt"
	"io"
	"net"
	"net/http"
	"net/url"
	"os"
	"os/exec"
	"path/filepath"
	"strconv"
	"strings"
	"sync"
	"syscall"
	"time"
)

const (
	benchProject = "bench"
	benchToken   = "bench-token-0123456789"
	benchDomain  = "bench.example.com"
	benchKey     = "benchKey0123456789abcdefghijklmnop"
)

// buildBinary builds the product binary (or, with -profile, the profiling
// harness) into work, from the working tree or, with -rev, from a git
// revision exported with git archive (so that edits in progress in the tree
// do not get in the way).
func buildBinary(ctx context.Context, root, work string, o *options) (string, error) {
	if o.binary != "" && o.profileDir == "" {
		return o.binary, nil
	}
	pkg, name := "./cmd/livehooks", "livehooks"
	if o.profileDir != "" {
		pkg, name = "./bench/profserve", "profserve"
	}
	src := root
	if o.rev != "" {
		src = filepath.Join(work, "src")
		if err := os.MkdirAll(src, 0o755); err != nil {
			return "", err
		}
		logf("exporting revision %s", o.rev)
		archive := exec.CommandContext(ctx, "sh", "-c", `git -C "$1" archive "$2" | tar -x -C "$3"`, "sh", root, o.rev, src)
		archive.Stderr = os.Stderr
		if err := archive.Run(); err != nil {
			return "", fmt.Errorf("git archive %s: %w", o.rev, err)
		}
		if o.profileDir != "" {
			// The harness is bench tooling: take it from the working tree.
			if err := copyDir(filepath.Join(root, "bench", "profserve"), filepath.Join(src, "bench", "profserve")); err != nil {
				return "", err
			}
		}
	}
	bin := filepath.Join(work, name)
	logf("building %s", pkg)
	cmd := exec.CommandContext(ctx, "go", "build", "-o", bin, pkg)
	cmd.Dir = src
	cmd.Stdout, cmd.Stderr = os.Stderr, os.Stderr
	if err := cmd.Run(); err != nil {
		return "", fmt.Errorf("go build %s: %w", pkg, err)
	}
	return bin, nil
}

func copyDir(from, to string) error {
	if err := os.MkdirAll(to, 0o755); err != nil {
		return err
	}
	entries, err := os.ReadDir(from)
	if err != nil {
		return err
	}
	for _, e := range entries {
		if e.IsDir() {
			continue
		}
		b, err := os.ReadFile(filepath.Join(from, e.Name()))
		if err != nil {
			return err
		}
		if err := os.WriteFile(filepath.Join(to, e.Name()), b, 0o644); err != nil {
			return err
		}
	}
	return nil
}

// server is a running livehooks subprocess.
type server struct {
	cmd     *exec.Cmd
	base    string // http://127.0.0.1:port
	dataDir string
	pid     int
	logPath string
	pprof   string // profiling harness only: its pprof address
	exited  chan struct{}
	exitErr error
	stderr  *tailBuffer
	cfg     serverConfig
	// cpuAtExit is the process's user+system CPU seconds, set when it exited.
	cpuAtExit float64
}

type serverConfig struct {
	dataDir string
	args    []string // extra serve flags of the scenario
	// port is the port to listen on; 0 picks a free one (and the config
	// keeps it, so that a restart listens on the same port).
	port int
	// databaseURL is passed as --database-url when set (PostgreSQL).
	databaseURL string
	// nodeID is passed as --node-id when set (multi-node mode).
	nodeID string
	// env is added to livehooks' environment (before -serve-env).
	env []string
}

// startServer starts livehooks serve and waits until /readyz answers.
func startServer(ctx context.Context, e *env, sc serverConfig) (*server, error) {
	if sc.port == 0 {
		port, err := freePort()
		if err != nil {
			return nil, err
		}
		sc.port = port
	}
	port := sc.port
	s := &server{base: "http://127.0.0.1:" + strconv.Itoa(port), dataDir: sc.dataDir, exited: make(chan struct{}), stderr: &tailBuffer{max: 64 << 10}, cfg: sc}
	args := []string{"serve",
		"--listen", "127.0.0.1:" + strconv.Itoa(port),
		"--data-dir", sc.dataDir,
		"--token", benchToken + ":" + benchProject,
		"--allow-callback-cidr", "127.0.0.0/8",
		"--log-level", "warn",
		"--sqlite-synchronous", e.o.synchronous,
	}
	if sc.databaseURL != "" {
		args = append(args, "--database-url", sc.databaseURL)
	}
	if sc.nodeID != "" {
		args = append(args, "--node-id", sc.nodeID)
		if e.o.forward {
			args = append(args, "--advertise-url", s.base)
		}
	}
	args = append(args, sc.args...)
	args = append(args, e.o.extraArgs...)
	cmd := exec.Command(e.bin, args...)
	cmd.Env = append(append(os.Environ(), sc.env...), e.o.serveEnv...)
	if e.o.profileDir != "" {
		pp, err := freePort()
		if err != nil {
			return nil, err
		}
		s.pprof = "127.0.0.1:" + strconv.Itoa(pp)
		dir, err := filepath.Abs(filepath.Join(e.o.profileDir, e.name))
		if err != nil {
			return nil, err
		}
		cmd.Env = append(cmd.Env, "LIVEHOOKS_BENCH_PPROF="+s.pprof, "LIVEHOOKS_BENCH_PROFILE_DIR="+dir)
		logf("profiling harness: profiles go to %s, pprof on http://%s/debug/pprof/", dir, s.pprof)
	}
	if err := os.MkdirAll(sc.dataDir, 0o700); err != nil {
		return nil, err
	}
	s.logPath = filepath.Join(sc.dataDir, "..", filepath.Base(sc.dataDir)+".log")
	// Appended to: a node restarted after a kill keeps its first life's log.
	logFile, err := os.OpenFile(s.logPath, os.O_CREATE|os.O_WRONLY|os.O_APPEND, 0o644)
	if err != nil {
		return nil, err
	}
	var w io.Writer = io.MultiWriter(logFile, s.stderr)
	if e.o.verbose {
		w = io.MultiWriter(w, os.Stderr)
	}
	cmd.Stdout, cmd.Stderr = w, w
	vlogf("starting %s %s", e.bin, strings.Join(args, " "))
	if err := cmd.Start(); err != nil {
		logFile.Close()
		return nil, fmt.Errorf("start livehooks: %w", err)
	}
	s.cmd, s.pid = cmd, cmd.Process.Pid
	go func() {
		s.exitErr = cmd.Wait()
		if ps := cmd.ProcessState; ps != nil {
			s.cpuAtExit = (ps.UserTime() + ps.SystemTime()).Seconds()
		}
		logFile.Close()
		close(s.exited)
	}()
	switch err := waitReady(ctx, s.base, s.exited, 60*time.Second, 50*time.Millisecond); {
	case errors.Is(err, errExited):
		return nil, fmt.Errorf("livehooks exited before it was ready (%v):\n%s", s.exitErr, s.stderr.String())
	case err != nil:
		s.kill()
		return nil, fmt.Errorf("livehooks: %w:\n%s", err, s.stderr.String())
	}
	return s, nil
}

var errExited = errors.New("exited before it was ready")

// waitReady polls base+"/readyz" every interval until it answers 200, the
// process exits (errExited), ctx ends or timeout passes.
func waitReady(ctx context.Context, base string, exited <-chan struct{}, timeout, interval time.Duration) error {
	deadline := time.Now().Add(timeout)
	for {
		select {
		case <-exited:
			return errExited
		case <-ctx.Done():
			return ctx.Err()
		case <-time.After(interval):
		}
		if resp, err := http.Get(base + "/readyz"); err == nil {
			_, _ = io.Copy(io.Discard, resp.Body)
			resp.Body.Close()
			if resp.StatusCode == http.StatusOK {
				return nil
			}
		}
		if time.Now().After(deadline) {
			return fmt.Errorf("not ready after %v", timeout)
		}
	}
}

// stop ends livehooks gracefully (SIGTERM), killing it after a grace period.
func (s *server) stop() error {
	if s == nil || s.cmd == nil {
		return nil
	}
	_ = s.cmd.Process.Signal(syscall.SIGTERM)
	select {
	case <-s.exited:
	case <-time.After(30 * time.Second):
		_ = s.cmd.Process.Kill()
		<-s.exited
	}
	var ee *exec.ExitError
	if s.exitErr != nil && !errors.As(s.exitErr, &ee) {
		return s.exitErr
	}
	if ee != nil && ee.ExitCode() != 0 {
		return fmt.Errorf("livehooks exited with %v:\n%s", s.exitErr, s.stderr.String())
	}
	return nil
}

// kill ends livehooks with SIGKILL and waits for it.
func (s *server) kill() {
	if s.cmd != nil && s.cmd.Process != nil {
		_ = s.cmd.Process.Kill()
		<-s.exited
	}
}

// alive reports whether the subprocess still runs.
func (s *server) alive() bool {
	select {
	case <-s.exited:
		return false
	default:
		return true
	}
}

// createConfig creates the callback config of one receiver and returns its id.
func (s *server) createConfig(ctx context.Context, app, url string, sign bool) (string, error) {
	body := map[string]any{
		"publish_domain":            benchDomain,
		"app":                       app,
		"notify_callback_url":       url,
		"notify_event_subscription": []string{"RECORD_START", "RECORD_NEW_FILE_START", "RECORD_FILE_COMPLETE", "RECORD_OVER", "RECORD_FAILED"},
	}
	if sign {
		body["key"] = benchKey
	}
	b, _ := json.Marshal(body)
	req, _ := http.NewRequestWithContext(ctx, http.MethodPost, s.base+"/v1/"+benchProject+"/record/callbacks", bytes.NewReader(b))
	req.Header.Set("Content-Type", "application/json")
	req.Header.Set("X-Auth-Token", benchToken)
	resp, err := http.DefaultClient.Do(req)
	if err != nil {
		return "", fmt.Errorf("create config: %w", err)
	}
	defer resp.Body.Close()
	rb, _ := io.ReadAll(resp.Body)
	if resp.StatusCode != http.StatusCreated {
		return "", fmt.Errorf("create config: %s: %s", resp.Status, rb)
	}
	var c struct {
		ID string `json:"id"`
	}
	if err := json.Unmarshal(rb, &c); err != nil || c.ID == "" {
		return "", fmt.Errorf("create config: no id in %s", rb)
	}
	return c.ID, nil
}

// metrics reads the named metrics from /metrics, summing the samples of each
// over their labels; absent metrics are missing from the map. A name may
// select labels, e.g. livehooks_delivery_attempts_total{outcome="succeeded"}:
// then only the samples carrying those labels count.
func (s *server) metrics(ctx context.Context, names ...string) map[string]float64 {
	out := map[string]float64{}
	ctx, cancel := context.WithTimeout(ctx, 10*time.Second)
	defer cancel()
	req, _ := http.NewRequestWithContext(ctx, http.MethodGet, s.base+"/metrics", nil)
	resp, err := http.DefaultClient.Do(req)
	if err != nil {
		return out
	}
	defer resp.Body.Close()
	type selector struct{ key, name, labels string }
	sels := make([]selector, len(names))
	for i, n := range names {
		name, labels, _ := strings.Cut(n, "{")
		sels[i] = selector{n, name, strings.TrimSuffix(labels, "}")}
	}
	sc := bufio.NewScanner(resp.Body)
	sc.Buffer(make([]byte, 64<<10), 1<<20)
	for sc.Scan() {
		line := sc.Text()
		if line == "" || line[0] == '#' {
			continue
		}
		name, rest, _ := strings.Cut(line, " ")
		labels := ""
		if i := strings.IndexByte(name, '{'); i >= 0 {
			name = name[:i]
			if j := strings.LastIndexByte(line, '}'); j >= 0 {
				labels = line[i+1 : j]
				rest = strings.TrimSpace(line[j+1:])
			}
		}
		for _, sel := range sels {
			if sel.name != name {
				continue
			}
			if sel.labels != "" && !hasLabels(labels, sel.labels) {
				continue
			}
			if f := strings.Fields(rest); len(f) > 0 {
				v, _ := strconv.ParseFloat(f[0], 64)
				out[sel.key] += v
			}
		}
	}
	return out
}

// hasLabels reports whether every k="v" pair of want is among have's.
func hasLabels(have, want string) bool {
	for _, w := range strings.Split(want, ",") {
		found := false
		for _, h := range strings.Split(have, ",") {
			if strings.TrimSpace(h) == strings.TrimSpace(w) {
				found = true
				break
			}
		}
		if !found {
			return false
		}
	}
	return true
}

// pending reads livehooks_deliveries_pending (the store's count, refreshed at
// most once a second by livehooks).
func (s *server) pending(ctx context.Context) float64 {
	return s.metrics(ctx, "livehooks_deliveries_pending")["livehooks_deliveries_pending"]
}

func freePort() (int, error) {
	ln, err := net.Listen("tcp", "127.0.0.1:0")
	if err != nil {
		return 0, err
	}
	defer ln.Close()
	return ln.Addr().(*net.TCPAddr).Port, nil
}

// createPostgresDB creates a fresh database on the server of adminURL with
// psql (the client that comes with the server; the bench adds no driver
// dependency) and returns its URL and a function that drops it.
func createPostgresDB(ctx context.Context, adminURL string) (string, func(), error) {
	u, err := url.Parse(adminURL)
	if err != nil || u.Scheme != "postgres" && u.Scheme != "postgresql" {
		return "", nil, fmt.Errorf("-pg-admin-url %q: want postgres://user@host:port/db", adminURL)
	}
	if _, err := exec.LookPath("psql"); err != nil {
		return "", nil, errors.New("-db postgres needs psql (the PostgreSQL client) in PATH to create a fresh database")
	}
	psql := func(ctx context.Context, sql string) error {
		out, err := exec.CommandContext(ctx, "psql", "-X", "-q", "-v", "ON_ERROR_STOP=1", "-d", adminURL, "-c", sql).CombinedOutput()
		if err != nil {
			return fmt.Errorf("psql %q: %v: %s", sql, err, strings.TrimSpace(string(out)))
		}
		return nil
	}
	name := fmt.Sprintf("livehooks_bench_%d_%d", os.Getpid(), time.Now().UnixNano())
	if err := psql(ctx, "CREATE DATABASE "+name); err != nil {
		return "", nil, fmt.Errorf("create a fresh database on %s: %w", u.Host, err)
	}
	dbURL := *u
	dbURL.Path = "/" + name
	drop := func() {
		ctx, cancel := context.WithTimeout(context.Background(), 30*time.Second)
		defer cancel()
		if err := psql(ctx, "DROP DATABASE IF EXISTS "+name+" WITH (FORCE)"); err != nil {
			logf("drop database %s: %v", name, err)
		}
	}
	return dbURL.String(), drop, nil
}

// tailBuffer keeps the last max bytes written to it.
type tailBuffer struct {
	mu  sync.Mutex
	buf []byte
	max int
}

func (t *tailBuffer) Write(p []byte) (int, error) {
	t.mu.Lock()
	defer t.mu.Unlock()
	t.buf = append(t.buf, p...)
	if len(t.buf) > t.max {
		t.buf = append(t.buf[:0], t.buf[len(t.buf)-t.max:]...)
	}
	return len(p), nil
}

func (t *tailBuffer) String() string {
	t.mu.Lock()
	defer t.mu.Unlock()
	return string(t.buf)
}
