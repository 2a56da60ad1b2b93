// Command profserve is livehooks serve for profiling, used by the benchmark
// (go run ./bench -profile DIR): it wires the same packages as
// cmd/livehooks/serve.go (SQLite store, group commit, dispatcher, sender, API,
// metrics) with the flags the benchmark passes, and adds what the product
// binary must not have:
//
//   - LIVEHOOKS_BENCH_PROFILE_DIR=DIR: a CPU profile of the whole run and heap,
//     allocation, mutex and block profiles at exit, written to DIR;
//   - LIVEHOOKS_BENCH_PPROF=ADDR: net/http/pprof on ADDR (loopback only);
//   - LIVEHOOKS_BENCH_SLOW_COMMIT=DURATION: time the group commit's store
//     writes, log those slower than DURATION and a summary at exit.
//
// Keep the wiring in step with serve.go when that changes (purge loop and
// credential reloading are left out: they do nothing during a bench run).
package main

import (
	"context"
	"errors"
	"flag"
	"fmt"
	"log/slog"
	"net"
	"net/http"
	"net/http/pprof"
	"net/netip"
	"os"
	"os/signal"
	"path/filepath"
	"runtime"
	"runtime/debug"
	rpprof "runtime/pprof"
	"strings"
	"sync"
	"syscall"
	"time"

	"github.com/livehooks/livehooks"
	"github.com/livehooks/livehooks/aesgcm"
	"github.com/livehooks/livehooks/api"
	"github.com/livehooks/livehooks/auth"
	"github.com/livehooks/livehooks/delivery"
	"github.com/livehooks/livehooks/groupcommit"
	"github.com/livehooks/livehooks/livefeed"
	"github.com/livehooks/livehooks/metrics"
	"github.com/livehooks/livehooks/recording"
	"github.com/livehooks/livehooks/store/sqlite"
)

type stringList []string

func (s *stringList) String() string     { return strings.Join(*s, ",") }
func (s *stringList) Set(v string) error { *s = append(*s, v); return nil }

func main() {
	if len(os.Args) > 1 && os.Args[1] == "serve" {
		os.Args = append(os.Args[:1], os.Args[2:]...)
	}
	// As serve's tuneGC does.
	if os.Getenv("GOGC") == "" {
		debug.SetGCPercent(400)
	}
	if os.Getenv("GOMEMLIMIT") == "" {
		debug.SetMemoryLimit(100 << 20)
	}
	ctx, stop := signal.NotifyContext(context.Background(), os.Interrupt, syscall.SIGTERM)
	defer stop()
	if err := run(ctx); err != nil {
		fmt.Fprintln(os.Stderr, "profserve:", err)
		os.Exit(1)
	}
}

func run(ctx context.Context) error {
	var (
		listen, dataDir, logLevel, synchronous, databaseURL string
		tokens, cidrs                                       stringList
		requestTimeout, connectTimeout, pollInterval        time.Duration
		commitDelay                                         time.Duration
		retryWindow                                         time.Duration
		perDestination                                      int
	)
	fs := flag.NewFlagSet("profserve", flag.ContinueOnError)
	fs.StringVar(&listen, "listen", "127.0.0.1:8080", "")
	fs.StringVar(&dataDir, "data-dir", "./data", "")
	fs.StringVar(&logLevel, "log-level", "info", "")
	fs.StringVar(&synchronous, "sqlite-synchronous", "FULL", "")
	fs.StringVar(&databaseURL, "database-url", "", "")
	fs.Var(&tokens, "token", "")
	fs.Var(&cidrs, "allow-callback-cidr", "")
	fs.DurationVar(&requestTimeout, "request-timeout", 10*time.Second, "")
	fs.DurationVar(&connectTimeout, "connect-timeout", 5*time.Second, "")
	fs.DurationVar(&pollInterval, "poll-interval", time.Second, "")
	fs.DurationVar(&commitDelay, "commit-delay", 2*time.Millisecond, "")
	fs.DurationVar(&retryWindow, "retry-window", 24*time.Hour, "")
	fs.IntVar(&perDestination, "per-destination", 16, "")
	if err := fs.Parse(os.Args[1:]); err != nil {
		return err
	}
	if databaseURL != "" {
		return errors.New("--database-url: the profiling harness wires SQLite only")
	}
	var lvl slog.Level
	if err := lvl.UnmarshalText([]byte(logLevel)); err != nil {
		return err
	}
	logger := slog.New(slog.NewTextHandler(os.Stderr, &slog.HandlerOptions{Level: lvl}))

	if dir := os.Getenv("LIVEHOOKS_BENCH_PROFILE_DIR"); dir != "" {
		stopProfiles, err := startProfiles(dir)
		if err != nil {
			return err
		}
		defer stopProfiles()
	}
	if addr := os.Getenv("LIVEHOOKS_BENCH_PPROF"); addr != "" {
		mux := http.NewServeMux()
		mux.HandleFunc("/debug/pprof/", pprof.Index)
		mux.HandleFunc("/debug/pprof/profile", pprof.Profile)
		mux.HandleFunc("/debug/pprof/trace", pprof.Trace)
		mux.HandleFunc("/debug/pprof/symbol", pprof.Symbol)
		ln, err := net.Listen("tcp", addr)
		if err != nil {
			return fmt.Errorf("pprof listener: %w", err)
		}
		if !ln.Addr().(*net.TCPAddr).IP.IsLoopback() {
			ln.Close()
			return errors.New("LIVEHOOKS_BENCH_PPROF must be a loopback address")
		}
		go func() { _ = http.Serve(ln, mux) }()
	}

	if err := os.MkdirAll(dataDir, 0o700); err != nil {
		return err
	}
	var toks []auth.Token
	for _, s := range tokens {
		t, err := auth.ParseToken(s)
		if err != nil {
			return err
		}
		toks = append(toks, t)
	}
	verifier := auth.NewVerifier(nil, toks, livehooks.SystemClock{})
	masterKey, err := aesgcm.LoadKey(dataDir, os.Getenv)
	if err != nil {
		return err
	}
	cipher, err := aesgcm.New(masterKey)
	if err != nil {
		return err
	}
	store, err := sqlite.Open(ctx, sqlite.Options{Path: filepath.Join(dataDir, "livehooks.db"), Cipher: cipher, Synchronous: synchronous})
	if err != nil {
		return err
	}
	defer store.Close()
	var allow []netip.Prefix
	for _, c := range cidrs {
		p, err := netip.ParsePrefix(c)
		if err != nil {
			return err
		}
		allow = append(allow, p.Masked())
	}
	node := "profserve/" + listen
	m := metrics.New(store.PendingCount)
	sender := delivery.NewSender(delivery.SenderOptions{
		AllowCIDRs: allow, ConnectTimeout: connectTimeout, RequestTimeout: requestTimeout,
		SignValidity: 300 * time.Second, UserAgent: "livehooks/profserve",
	})
	defer sender.Close()
	policy := delivery.DefaultPolicy()
	policy.Window = retryWindow
	var dispatcher *delivery.Dispatcher
	var outbox livehooks.Outbox = store
	if v := os.Getenv("LIVEHOOKS_BENCH_SLOW_COMMIT"); v != "" {
		threshold, err := time.ParseDuration(v)
		if err != nil {
			return fmt.Errorf("LIVEHOOKS_BENCH_SLOW_COMMIT: %w", err)
		}
		ts := &timedStore{DB: store, threshold: threshold, logger: logger}
		defer ts.report()
		outbox = ts
	}
	feed := livefeed.New(livefeed.Options{Configs: store})
	committer := groupcommit.New(outbox, groupcommit.Options{
		Node: node, Logger: logger, Metrics: m, Observe: true, CommitDelay: commitDelay,
		OnCommit: func(effects []groupcommit.Effect) { feed.OnCommit(effects); dispatcher.OnCommit(effects) },
	})
	dispatcher = delivery.New(delivery.Options{
		Outbox: store, Writer: committer, Configs: store, Sender: sender, Policy: policy, Node: node,
		Logger: logger, Metrics: m, PerDestination: perDestination, PollInterval: pollInterval,
	})
	machine := recording.New(recording.Options{Committer: committer, Domains: store, Logger: logger, Metrics: m})
	handler, err := api.NewServer(api.Config{
		Callbacks: store, Auth: verifier, Logger: logger, Hostname: "profserve", Ready: store.Ping,
		Metrics: m.Handler(), Ingester: machine,
		Outbox: store, Requeuer: committer, Sender: sender, Feed: feed,
	})
	if err != nil {
		return err
	}
	ln, err := net.Listen("tcp", listen)
	if err != nil {
		return err
	}
	srv := &http.Server{Handler: handler, ReadHeaderTimeout: 10 * time.Second, IdleTimeout: 120 * time.Second}

	commitCtx, stopCommitter := context.WithCancel(context.WithoutCancel(ctx))
	committerDone := make(chan struct{})
	go func() { committer.Run(commitCtx); close(committerDone) }()
	dispatchCtx, stopDispatcher := context.WithCancel(context.WithoutCancel(ctx))
	dispatcherDone := make(chan error, 1)
	go func() { dispatcherDone <- dispatcher.Run(dispatchCtx, 15*time.Second) }()
	go machine.Run(commitCtx)
	go feed.Run(commitCtx)
	errc := make(chan error, 1)
	go func() { errc <- srv.Serve(ln) }()
	var serveErr error
	select {
	case serveErr = <-errc:
	case <-ctx.Done():
	}
	sctx, cancel := context.WithTimeout(context.Background(), 15*time.Second)
	defer cancel()
	_ = srv.Shutdown(sctx)
	stopDispatcher()
	<-dispatcherDone
	stopCommitter()
	<-committerDone
	return serveErr
}

// startProfiles starts the CPU profile and returns a function that stops it
// and writes the other profiles.
func startProfiles(dir string) (func(), error) {
	if err := os.MkdirAll(dir, 0o755); err != nil {
		return nil, err
	}
	runtime.SetMutexProfileFraction(100)
	runtime.SetBlockProfileRate(int(time.Millisecond))
	cpu, err := os.Create(filepath.Join(dir, "cpu.prof"))
	if err != nil {
		return nil, err
	}
	if err := rpprof.StartCPUProfile(cpu); err != nil {
		cpu.Close()
		return nil, err
	}
	return func() {
		rpprof.StopCPUProfile()
		cpu.Close()
		runtime.GC()
		for _, name := range []string{"heap", "allocs", "mutex", "block", "goroutine"} {
			f, err := os.Create(filepath.Join(dir, name+".prof"))
			if err != nil {
				continue
			}
			_ = rpprof.Lookup(name).WriteTo(f, 0)
			f.Close()
		}
	}, nil
}

// timedStore times every Write of the committer, split into the statements
// (fn) and the rest (BEGIN and COMMIT, where the WAL is written and synced and
// where SQLite runs its automatic checkpoints), and logs the slow ones.
type timedStore struct {
	*sqlite.DB
	threshold time.Duration
	logger    *slog.Logger

	mu                    sync.Mutex
	n, slow               int
	total, stmts, commits time.Duration
	worstTotal, worstFn   time.Duration
}

func (s *timedStore) Write(ctx context.Context, fn func(tx livehooks.OutboxTx) error) error {
	var inFn time.Duration
	start := time.Now()
	err := s.DB.Write(ctx, func(tx livehooks.OutboxTx) error {
		t := time.Now()
		defer func() { inFn = time.Since(t) }()
		return fn(tx)
	})
	total := time.Since(start)
	s.mu.Lock()
	s.n++
	s.total += total
	s.stmts += inFn
	s.commits += total - inFn
	if total > s.worstTotal {
		s.worstTotal, s.worstFn = total, inFn
	}
	if total >= s.threshold {
		s.slow++
	}
	s.mu.Unlock()
	if total >= s.threshold {
		s.logger.Warn("slow store write", "total", total, "statements", inFn, "begin_commit", total-inFn)
	}
	return err
}

func (s *timedStore) report() {
	s.mu.Lock()
	defer s.mu.Unlock()
	if s.n == 0 {
		return
	}
	s.logger.Warn("store writes", "n", s.n, "slow", s.slow, "threshold", s.threshold,
		"mean_total", s.total/time.Duration(s.n), "mean_statements", s.stmts/time.Duration(s.n),
		"mean_begin_commit", s.commits/time.Duration(s.n), "worst", s.worstTotal, "worst_statements", s.worstFn)
}
