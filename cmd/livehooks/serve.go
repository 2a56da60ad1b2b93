package main

import (
	"context"
	"errors"
	"fmt"
	"io"
	"log/slog"
	"net"
	"net/http"
	"net/netip"
	"net/url"
	"os"
	"path/filepath"
	"runtime/debug"
	"strings"
	"sync/atomic"
	"syscall"
	"time"

	"github.com/spf13/cobra"

	"github.com/livehooks/livehooks"
	"github.com/livehooks/livehooks/aesgcm"
	"github.com/livehooks/livehooks/api"
	"github.com/livehooks/livehooks/auth"
	"github.com/livehooks/livehooks/console"
	"github.com/livehooks/livehooks/delivery"
	"github.com/livehooks/livehooks/fileserve"
	"github.com/livehooks/livehooks/groupcommit"
	"github.com/livehooks/livehooks/livefeed"
	"github.com/livehooks/livehooks/metrics"
	"github.com/livehooks/livehooks/recording"
	"github.com/livehooks/livehooks/store/postgres"
	"github.com/livehooks/livehooks/store/sqlite"
)

type serveOptions struct {
	listen            string
	dataDir           string
	accessKeys        []string
	tokens            []string
	requireSignedHost bool
	ingestSecrets     []string
	allowCIDRs        []string
	recordDirs        []string
	databaseURL       string
	dev               bool
	logFormat         string
	logLevel          string
	sqliteSynchronous string
	shutdownTimeout   time.Duration
	recordingConfig   string
	nginxControlURL   string
	tlsCert           string
	tlsKey            string
	publicURL         string
	servedMaxBytes    string

	nodeID         string
	advertiseURL   string
	nodeHeartbeat  time.Duration
	nodeTimeout    time.Duration
	retryWindow    time.Duration
	signValidity   time.Duration
	connectTimeout time.Duration
	requestTimeout time.Duration
	perDestination int
	retention      time.Duration
	pollInterval   time.Duration
	commitDelay    time.Duration
	concurrentTx   int

	uploadAttempts     int
	uploadBackoff      time.Duration
	uploadTimeout      time.Duration
	uploadStallTimeout time.Duration
}

func newServeCommand(e *env) *cobra.Command {
	o := &serveOptions{}
	cmd := &cobra.Command{
		Use:   "serve",
		Short: "Run the livehooks service (API, ingest, delivery)",
		Long: `Run the livehooks service.

With no flags it keeps its state in ./data (embedded SQLite), generates
credentials there on first start, and listens on 127.0.0.1:8080 (plain HTTP).

With --tls-cert and --tls-key it serves HTTPS (TLS 1.2 or newer, HTTP/2) and
re-reads the two PEM files when they change, so a renewed certificate is
served without a restart; a pair that does not load leaves the previous one
in service (and is logged).`,
		Args: cobra.NoArgs,
		RunE: func(cmd *cobra.Command, _ []string) error {
			return serve(cmd.Context(), e, o)
		},
	}
	fs := cmd.Flags()
	fs.StringVar(&o.listen, "listen", "127.0.0.1:8080", "address to listen on")
	fs.StringVar(&o.dataDir, "data-dir", "./data", "directory for the SQLite store, credentials and master key")
	fs.StringArrayVar(&o.accessKeys, "access-key", nil, "access key AK:SK:PROJECT[,PROJECT…] for SDK-HMAC-SHA256 signing; * as PROJECT means any (repeatable)")
	fs.StringArrayVar(&o.tokens, "token", nil, "static X-Auth-Token TOKEN:PROJECT[,PROJECT…] (repeatable)")
	fs.BoolVar(&o.requireSignedHost, "require-signed-host", false, "refuse SDK-HMAC-SHA256 signatures that do not cover the Host header (stops replay to another deployment; the official Go SDK does not sign Host unless the caller sets it)")
	fs.StringArrayVar(&o.ingestSecrets, "ingest-secret", nil, "media-server hook secret PROJECT:SECRET (repeatable)")
	fs.StringArrayVar(&o.allowCIDRs, "allow-callback-cidr", nil, "allow callbacks, on-demand requests and storage uploads to this otherwise forbidden network, e.g. 127.0.0.0/8 (repeatable)")
	fs.StringArrayVar(&o.recordDirs, "record-dir", nil, "directory whose recorder files livehooks may read, DIR or PROJECT:DIR (repeatable; must exist): PROJECT:DIR belongs to PROJECT; a plain DIR serves every project while the ingest secrets name one project, else holds each project's files under DIR/<project_id>/")
	fs.StringVar(&o.databaseURL, "database-url", "", "PostgreSQL URL (postgres://…); embedded SQLite when empty")
	fs.BoolVar(&o.dev, "dev", false, "disable authentication, for local trials only")
	fs.StringVar(&o.logFormat, "log-format", "text", "log format: text or json")
	fs.StringVar(&o.logLevel, "log-level", "info", "log level: debug, info, warn or error")
	fs.StringVar(&o.sqliteSynchronous, "sqlite-synchronous", "FULL", "SQLite synchronous mode: FULL (survives power loss) or NORMAL")
	fs.DurationVar(&o.shutdownTimeout, "shutdown-timeout", 15*time.Second, "how long a graceful shutdown may take")
	fs.StringVar(&o.recordingConfig, "recording-config", "", "YAML file of per-domain recording settings (format, URL templates, pause, object storage), applied at start")
	fs.StringVar(&o.nodeID, "node-id", "", "this node's id, the owner of its delivery leases (default hostname/listen address)")
	fs.StringVar(&o.advertiseURL, "advertise-url", "", "with PostgreSQL: the base URL at which the other nodes reach this node's API (e.g. http://10.0.0.11:8080); they then send it the ingests of the streams whose lanes it is home to")
	fs.DurationVar(&o.nodeHeartbeat, "node-heartbeat", time.Second, "with PostgreSQL: how often this node tells the others that it is alive")
	fs.DurationVar(&o.nodeTimeout, "node-timeout", 3*time.Second, "with PostgreSQL: how long after a node's last heartbeat the others take it for dead and take its lanes over")
	fs.DurationVar(&o.retryWindow, "retry-window", 24*time.Hour, "how long failed deliveries are retried before they are dead-lettered")
	fs.DurationVar(&o.signValidity, "sign-validity", 300*time.Second, "how long a callback signature stays valid (auth_timestamp = send time + this)")
	fs.DurationVar(&o.connectTimeout, "connect-timeout", 5*time.Second, "callback connect timeout")
	fs.DurationVar(&o.requestTimeout, "request-timeout", 10*time.Second, "callback whole-request timeout")
	fs.IntVar(&o.perDestination, "per-destination", 16, "concurrent requests to one destination (scheme://host:port)")
	fs.DurationVar(&o.retention, "retention", 7*24*time.Hour, "how long finished deliveries, their attempts and events are kept")
	fs.DurationVar(&o.pollInterval, "poll-interval", time.Second, "how often due retries are looked for (new events never wait for it)")
	fs.IntVar(&o.concurrentTx, "concurrent-commits", 0, "with --database-url: how many group commits may be in flight at once, each of writes to other streams (1–8; 0: one when the database answers a ping within 0.5 ms, else 4)")
	fs.DurationVar(&o.commitDelay, "commit-delay", 2*time.Millisecond, "how long a group commit of fewer than 8 writes waits for more before it starts: less CPU and database work per event at moderate rates, for up to this much latency; under load nothing waits (0: never wait)")
	for name, variable := range map[string]string{
		"listen": "LIVEHOOKS_LISTEN", "data-dir": "LIVEHOOKS_DATA_DIR", "access-key": "LIVEHOOKS_ACCESS_KEYS",
		"token": "LIVEHOOKS_TOKENS", "require-signed-host": "LIVEHOOKS_REQUIRE_SIGNED_HOST", "ingest-secret": "LIVEHOOKS_INGEST_SECRETS", "allow-callback-cidr": "LIVEHOOKS_ALLOW_CALLBACK_CIDRS",
		"record-dir": "LIVEHOOKS_RECORD_DIRS", "database-url": "LIVEHOOKS_DATABASE_URL", "dev": "LIVEHOOKS_DEV",
		"log-format": "LIVEHOOKS_LOG_FORMAT", "log-level": "LIVEHOOKS_LOG_LEVEL", "sqlite-synchronous": "LIVEHOOKS_SQLITE_SYNCHRONOUS",
		"shutdown-timeout": "LIVEHOOKS_SHUTDOWN_TIMEOUT", "node-id": "LIVEHOOKS_NODE_ID", "retry-window": "LIVEHOOKS_RETRY_WINDOW",
		"node-heartbeat": "LIVEHOOKS_NODE_HEARTBEAT", "node-timeout": "LIVEHOOKS_NODE_TIMEOUT", "advertise-url": "LIVEHOOKS_ADVERTISE_URL",
		"sign-validity": "LIVEHOOKS_SIGN_VALIDITY", "connect-timeout": "LIVEHOOKS_CONNECT_TIMEOUT", "request-timeout": "LIVEHOOKS_REQUEST_TIMEOUT",
		"per-destination": "LIVEHOOKS_PER_DESTINATION", "retention": "LIVEHOOKS_RETENTION", "poll-interval": "LIVEHOOKS_POLL_INTERVAL",
		"commit-delay": "LIVEHOOKS_COMMIT_DELAY", "concurrent-commits": "LIVEHOOKS_CONCURRENT_COMMITS",
	} {
		envFlag(fs, name, variable)
	}
	envFlag(fs, "recording-config", "LIVEHOOKS_RECORDING_CONFIG")
	fs.StringVar(&o.nginxControlURL, "nginx-control-url", "", "nginx rtmp_control URL (http://HOST:PORT/control[?rec=NAME]): livehooks starts nginx's recorder of each stream it records, for \"record all manual\" (on-demand recording)")
	envFlag(fs, "nginx-control-url", "LIVEHOOKS_NGINX_CONTROL_URL")
	fs.StringVar(&o.tlsCert, "tls-cert", "", "serve HTTPS with this PEM certificate chain (with --tls-key); re-read when it changes")
	fs.StringVar(&o.tlsKey, "tls-key", "", "PEM private key of --tls-cert; re-read when it changes")
	envFlag(fs, "tls-cert", "LIVEHOOKS_TLS_CERT")
	envFlag(fs, "tls-key", "LIVEHOOKS_TLS_KEY")
	fs.StringVar(&o.publicURL, "public-url", "", "URL receivers reach livehooks at (scheme://host[:port][/prefix]): the base of the signed download_url of recordings livehooks serves itself (domains without a URL template or object storage); default derived from --listen")
	envFlag(fs, "public-url", "LIVEHOOKS_PUBLIC_URL")
	fs.StringVar(&o.servedMaxBytes, "served-recordings-max-bytes", "0", "cap on the space of the recordings livehooks handed out links for, e.g. 50G: over it the oldest are removed (each at least 10 minutes after its link went out, none a pending job uses); 0: no cap")
	envFlag(fs, "served-recordings-max-bytes", "LIVEHOOKS_SERVED_RECORDINGS_MAX_BYTES")
	fs.IntVar(&o.uploadAttempts, "upload-attempts", 3, "attempts at uploading a finished file to object storage before it is reported as RECORD_FAILED")
	fs.DurationVar(&o.uploadBackoff, "upload-backoff", time.Second, "wait before the second upload attempt, doubling for each next one (up to 5m)")
	fs.DurationVar(&o.uploadTimeout, "upload-timeout", time.Minute, "how long an upload attempt may take, plus one second per MiB of the file")
	fs.DurationVar(&o.uploadStallTimeout, "upload-stall-timeout", 30*time.Second, "an upload attempt that sends nothing for this long (a storage endpoint that stops reading) is abandoned")
	envFlag(fs, "upload-attempts", "LIVEHOOKS_UPLOAD_ATTEMPTS")
	envFlag(fs, "upload-backoff", "LIVEHOOKS_UPLOAD_BACKOFF")
	envFlag(fs, "upload-timeout", "LIVEHOOKS_UPLOAD_TIMEOUT")
	envFlag(fs, "upload-stall-timeout", "LIVEHOOKS_UPLOAD_STALL_TIMEOUT")
	return cmd
}

func newLogger(w io.Writer, format, level string) (*slog.Logger, error) {
	var lvl slog.Level
	if err := lvl.UnmarshalText([]byte(level)); err != nil {
		return nil, fmt.Errorf("--log-level: %q is not debug, info, warn or error", level)
	}
	opts := &slog.HandlerOptions{Level: lvl}
	switch strings.ToLower(format) {
	case "text":
		return slog.New(slog.NewTextHandler(w, opts)), nil
	case "json":
		return slog.New(slog.NewJSONHandler(w, opts)), nil
	}
	return nil, fmt.Errorf("--log-format: %q is not text or json", format)
}

// lockDataDir takes an exclusive lock on the data directory, so that two
// processes never share one embedded store.
func lockDataDir(dir string) (*os.File, error) {
	f, err := os.OpenFile(filepath.Join(dir, "livehooks.lock"), os.O_CREATE|os.O_RDWR, 0o600)
	if err != nil {
		return nil, fmt.Errorf("lock data dir: %w", err)
	}
	if err := syscall.Flock(int(f.Fd()), syscall.LOCK_EX|syscall.LOCK_NB); err != nil {
		f.Close()
		return nil, fmt.Errorf("data dir %s is in use by another livehooks process", dir)
	}
	return f, nil
}

func serve(ctx context.Context, e *env, o *serveOptions) error {
	logger, err := newLogger(e.stderr, o.logFormat, o.logLevel)
	if err != nil {
		return err
	}
	tuneGC(e.getenv)
	certs, err := newCertReloader(o.tlsCert, o.tlsKey, logger)
	if err != nil {
		return err
	}
	if o.nodeTimeout < 2*o.nodeHeartbeat {
		return fmt.Errorf("--node-timeout (%v) must be at least twice --node-heartbeat (%v)", o.nodeTimeout, o.nodeHeartbeat)
	}
	if o.concurrentTx < 0 || o.concurrentTx > 8 {
		return fmt.Errorf("--concurrent-commits (%d) must be between 0 and 8", o.concurrentTx)
	}
	if o.concurrentTx > 1 && o.databaseURL == "" {
		return fmt.Errorf("--concurrent-commits needs --database-url: SQLite commits one transaction at a time")
	}
	if o.commitDelay < 0 || o.commitDelay > time.Second {
		return fmt.Errorf("--commit-delay (%v) must be between 0 and 1s", o.commitDelay)
	}
	if err := checkAdvertiseURL(o.advertiseURL, o.databaseURL != ""); err != nil {
		return err
	}
	if err := os.MkdirAll(o.dataDir, 0o700); err != nil {
		return fmt.Errorf("create data dir: %w", err)
	}
	if o.databaseURL == "" {
		// Nodes share a PostgreSQL database, never an embedded store.
		lock, err := lockDataDir(o.dataDir)
		if err != nil {
			return err
		}
		defer lock.Close()
	}

	verifier, err := credentials(e, o, logger)
	if err != nil {
		return err
	}

	masterKey, err := aesgcm.LoadKey(o.dataDir, e.getenv)
	if err != nil {
		return fmt.Errorf("master key: %w", err)
	}
	cipher, err := aesgcm.New(masterKey)
	if err != nil {
		return fmt.Errorf("master key: %w", err)
	}
	var (
		store livehooks.Store
		// listen wakes the dispatcher when another node leaves it work
		// (PostgreSQL: nodes share the database); nil with SQLite.
		listen func(ctx context.Context, wake func()) error
		// router says which node should ingest what (PostgreSQL); nil
		// with SQLite.
		router api.IngestRouter
	)
	if o.databaseURL != "" {
		db, err := postgres.Open(ctx, postgres.Options{URL: o.databaseURL, Cipher: cipher, Logger: logger, AdvertiseURL: o.advertiseURL})
		if err != nil {
			return fmt.Errorf("open store: %w", err)
		}
		store, listen, router = db, db.Listen, db
		if o.concurrentTx == 0 {
			rtt, err := db.RoundTripTime(ctx)
			if err != nil {
				db.Close()
				return fmt.Errorf("open store: %w", err)
			}
			o.concurrentTx = autoConcurrentCommits(rtt)
			logger.Info("database round trip", "rtt", rtt.Round(time.Microsecond).String(), "concurrent_commits", o.concurrentTx)
		}
		logger.Info("store opened", "backend", "postgres", "schema_version", postgres.SchemaVersion())
	} else {
		dbPath := filepath.Join(o.dataDir, "livehooks.db")
		db, err := sqlite.Open(ctx, sqlite.Options{Path: dbPath, Cipher: cipher, Synchronous: o.sqliteSynchronous})
		if err != nil {
			return fmt.Errorf("open store: %w", err)
		}
		store = db
		logger.Info("store opened", "backend", "sqlite", "path", dbPath, "synchronous", strings.ToUpper(o.sqliteSynchronous))
	}
	defer store.Close()
	if o.recordingConfig != "" {
		entries, err := loadRecordingConfig(o.recordingConfig, e.getenv)
		if err != nil {
			return err
		}
		warnPlaintextSecrets(o.recordingConfig, entries, logger)
		if err := applyRecordingConfig(ctx, store, o.recordingConfig, entries, time.Now(), logger); err != nil {
			return err
		}
	}

	hostname, _ := os.Hostname()
	allow, err := parseCIDRs(o.allowCIDRs)
	if err != nil {
		return err
	}
	node := o.nodeID
	if node == "" {
		node = hostname + "/" + o.listen
	}
	m := metrics.New(store.PendingCount)
	sender := delivery.NewSender(delivery.SenderOptions{
		AllowCIDRs: allow, ConnectTimeout: o.connectTimeout, RequestTimeout: o.requestTimeout,
		SignValidity: o.signValidity, UserAgent: "livehooks/" + version,
	})
	defer sender.Close()
	policy := delivery.DefaultPolicy()
	policy.Window = o.retryWindow
	var dispatcher *delivery.Dispatcher
	feed := livefeed.New(livefeed.Options{Configs: store, Breakers: breakerStates(m)})
	committer := groupcommit.New(store, groupcommit.Options{
		Node: node, Logger: logger, Metrics: m, Observe: true, CommitDelay: o.commitDelay,
		Concurrent: o.concurrentTx,
		OnCommit:   func(effects []groupcommit.Effect) { feed.OnCommit(effects); dispatcher.OnCommit(effects) },
	})
	dispatcher = delivery.New(delivery.Options{
		Outbox: store, Writer: committer, Configs: store, Sender: sender, Policy: policy, Node: node,
		Logger: logger, Metrics: m, PerDestination: o.perDestination, PollInterval: o.pollInterval,
		Heartbeat: o.nodeHeartbeat, NodeTimeout: o.nodeTimeout,
	})

	// Listen before the download links are made: their default base is the
	// address actually bound (--listen may ask for port 0).
	ln, err := net.Listen("tcp", o.listen)
	if err != nil {
		return fmt.Errorf("listen: %w", err)
	}
	defer ln.Close()

	machine := recording.New(recording.Options{Committer: committer, Domains: store, Logger: logger, Metrics: m})
	hookSecrets, singleTenant, err := ingestSecrets(o, logger)
	if err != nil {
		return err
	}
	var files *fileserve.Server
	hooks, src, err := sources(o, machine, store, store, node, allow, singleTenant, logger, linker(&files))
	if err != nil {
		return err
	}
	defer src.Close()
	files, served, err := recordingFiles(o, ln.Addr().String(), e.getenv, certs != nil, src.ResolveFile, store, m, logger)
	if err != nil {
		return err
	}
	defer served.Close()

	cfg := api.Config{
		Callbacks: store,
		Dev:       o.dev,
		Logger:    logger,
		Hostname:  hostname,
		Ready:     store.Ping,
		Metrics:   m.Handler(),
		Ingester:  machine,
		Outbox:    store,
		Requeuer:  committer,
		Sender:    sender,
		Domains:   store,
		// The console's live feed and recordings pages.
		Feed:         feed,
		RecordingLog: store,

		Hooks:         hooks,
		IngestSecrets: hookSecrets,
		Recordings:    files,
	}
	if router != nil {
		cfg.Forwarding = &api.Forwarding{Router: router, Node: node, Count: m.Forwarded}
	}
	cons, err := console.New(console.Options{Auth: verifier, Dev: o.dev, MasterKey: masterKey, Logger: logger})
	if err != nil {
		return err
	}
	if !o.dev {
		cfg.Auth = cons.Authenticator(verifier)
	}
	apiHandler, err := api.NewServer(cfg)
	if err != nil {
		return err
	}
	handler := withConsole(apiHandler, cons)

	srv := &http.Server{
		Handler:           handler,
		ReadHeaderTimeout: 10 * time.Second,
		ReadTimeout:       60 * time.Second,
		WriteTimeout:      60 * time.Second,
		IdleTimeout:       120 * time.Second,
		ErrorLog:          slog.NewLogLogger(logger.Handler(), slog.LevelWarn),
	}
	srv.RegisterOnShutdown(feed.Close) // live feeds must not hold the shutdown up
	scheme := "http"
	if certs != nil {
		srv.TLSConfig, scheme = certs.tlsConfig(), "https"
	} else if !isLoopback(ln.Addr()) {
		logger.Warn("serving plain HTTP on a non-loopback address: tokens and signatures cross the network in clear; use --tls-cert/--tls-key or a TLS-terminating proxy", "addr", ln.Addr().String())
	}

	// Shutdown runs in the reverse order of the data flow: stop taking
	// requests (in-flight ingests finish and commit), then let the dispatcher
	// finish or re-queue its attempts (recording them through the committer),
	// then stop the committer.
	commitCtx, stopCommitter := context.WithCancel(context.WithoutCancel(ctx))
	committerDone := goDone(func() { committer.Run(commitCtx) })
	dispatchCtx, stopDispatcher := context.WithCancel(context.WithoutCancel(ctx))
	dispatcherDone := make(chan error, 1)
	go func() { dispatcherDone <- dispatcher.Run(dispatchCtx, o.shutdownTimeout) }()
	purgeCtx, stopPurge := context.WithCancel(ctx)
	purgeDone := goDone(func() { purgeLoop(purgeCtx, store, o.retention, logger) })
	trimCtx, stopTrim := context.WithCancel(ctx)
	trimDone := goDone(func() { served.Run(trimCtx, 5*time.Minute) })
	defer func() { stopTrim(); <-trimDone }() // before served.Close
	if listen != nil {
		go func() {
			if err := listen(ctx, dispatcher.Wake); err != nil {
				logger.Error("listen for other nodes", "error", err)
			}
		}()
	}
	// Recording timers fire, and finished files are worked, only while the
	// committer runs.
	machineDone := goDone(func() { machine.Run(commitCtx) })
	jobsCtx, stopJobs := context.WithCancel(commitCtx)
	jobsDone := goDone(func() { src.RunFileJobs(jobsCtx) })
	feedDone := goDone(func() { feed.Run(commitCtx) })
	if file, ok := verifier.(*reloadingVerifier); ok {
		go file.watch(ctx, logger)
	}

	logger.Info("livehooks listening", "addr", ln.Addr().String(), "scheme", scheme, "data_dir", o.dataDir, "node", node, "version", version)
	errc := make(chan error, 1)
	go func() {
		if certs != nil {
			errc <- srv.ServeTLS(ln, "", "")
			return
		}
		errc <- srv.Serve(ln)
	}()
	var runErr error
	select {
	case err := <-errc:
		runErr = fmt.Errorf("serve: %w", err)
	case err := <-dispatcherDone:
		runErr = fmt.Errorf("dispatcher: %w", err)
		dispatcherDone <- nil
	case <-ctx.Done():
	}
	logger.Info("shutting down", "timeout", o.shutdownTimeout)
	sctx, cancel := context.WithTimeout(context.Background(), o.shutdownTimeout)
	defer cancel()
	if err := srv.Shutdown(sctx); err != nil {
		logger.Warn("http shutdown incomplete", "error", err)
	}
	stopPurge() // a batch cut short is purged again at the next start
	<-purgeDone
	// A file job cut short stays in the store and runs again at the next
	// start.
	stopJobs()
	<-jobsDone
	src.Close() // background work of the media-server hooks (starting recorders)
	stopDispatcher()
	<-dispatcherDone
	stopCommitter()
	<-committerDone
	// Nothing may use the store once it closes (deferred above).
	<-machineDone
	<-feedDone
	logger.Info("stopped")
	return runErr
}

func parseCIDRs(ss []string) ([]netip.Prefix, error) {
	var out []netip.Prefix
	for _, s := range ss {
		p, err := netip.ParsePrefix(strings.TrimSpace(s))
		if err != nil {
			return nil, fmt.Errorf("--allow-callback-cidr %q: want a CIDR such as 127.0.0.0/8", s)
		}
		out = append(out, p.Masked())
	}
	return out, nil
}

// purgeLoop deletes finished deliveries, attempts and events older than the
// retention, in small batches so that it never holds the writer for long.
func purgeLoop(ctx context.Context, store livehooks.Outbox, retention time.Duration, logger *slog.Logger) {
	t := time.NewTicker(10 * time.Minute)
	defer t.Stop()
	for {
		total := 0
		for {
			n, err := store.Purge(ctx, time.Now().Add(-retention), 1000)
			if err != nil {
				if ctx.Err() == nil {
					logger.Warn("purge delivery log", "error", err)
				}
				break
			}
			total += n
			if n < 1000 {
				break
			}
		}
		if total > 0 {
			logger.Info("delivery log purged", "deliveries", total, "retention", retention)
		}
		select {
		case <-ctx.Done():
			return
		case <-t.C:
		}
	}
}

// credentials builds the verifier: from --access-key/--token when given (for
// scripts and tests), else from the data directory's credentials file, which
// the first start generates and which is re-read when it changes (creds
// rotate). --dev turns authentication off, loudly.
func credentials(e *env, o *serveOptions, logger *slog.Logger) (api.Authenticator, error) {
	if o.dev {
		for range 3 {
			logger.Warn("DEV MODE: authentication is DISABLED; anyone who can reach this port can manage callbacks. Never use --dev in production.")
		}
		fmt.Fprintln(e.stderr, "WARNING: --dev disables authentication. Do not expose this port.")
		return nil, nil
	}
	var keys []auth.AccessKey
	var tokens []auth.Token
	for _, s := range o.accessKeys {
		k, err := auth.ParseAccessKey(s)
		if err != nil {
			return nil, fmt.Errorf("--access-key: %w", err)
		}
		keys = append(keys, k)
	}
	for _, s := range o.tokens {
		t, err := auth.ParseToken(s)
		if err != nil {
			return nil, fmt.Errorf("--token: %w", err)
		}
		tokens = append(tokens, t)
	}
	newVerifier := func(keys []auth.AccessKey, tokens []auth.Token) *auth.Verifier {
		v := auth.NewVerifier(keys, tokens, livehooks.SystemClock{})
		if o.requireSignedHost {
			v.RequireSignedHost()
		}
		return v
	}
	if len(keys) > 0 || len(tokens) > 0 {
		return newVerifier(keys, tokens), nil
	}
	file, created, err := auth.LoadOrCreate(o.dataDir)
	if err != nil {
		return nil, fmt.Errorf("credentials: %w", err)
	}
	path := filepath.Join(o.dataDir, auth.CredentialsFile)
	if created {
		fmt.Fprintf(e.stderr, "livehooks: generated an access key, a token and an ingest secret in %s (mode 0600).\nlivehooks: show them with: livehooks creds --data-dir %s\n", path, o.dataDir)
	}
	logger.Info("credentials loaded", "path", path, "access_keys", len(file.AccessKeys), "tokens", len(file.Tokens))
	rv := &reloadingVerifier{dataDir: o.dataDir, path: path, build: newVerifier}
	rv.mtime = modTime(path)
	rv.v.Store(newVerifier(file.AccessKeys, file.Tokens))
	return rv, nil
}

// reloadingVerifier verifies with the credentials file's current content: a
// rotation by "livehooks creds rotate" applies within seconds.
type reloadingVerifier struct {
	dataDir string
	path    string
	mtime   time.Time
	build   func([]auth.AccessKey, []auth.Token) *auth.Verifier
	v       atomic.Pointer[auth.Verifier]
}

func (r *reloadingVerifier) Authenticate(req *http.Request, body []byte) (livehooks.Principal, error) {
	return r.v.Load().Authenticate(req, body)
}

func (r *reloadingVerifier) watch(ctx context.Context, logger *slog.Logger) {
	t := time.NewTicker(2 * time.Second)
	defer t.Stop()
	for {
		select {
		case <-ctx.Done():
			return
		case <-t.C:
		}
		m := modTime(r.path)
		if m.Equal(r.mtime) {
			continue
		}
		file, _, err := auth.LoadOrCreate(r.dataDir)
		if err != nil {
			logger.Warn("reload credentials", "path", r.path, "error", err)
			continue
		}
		r.mtime = m
		r.v.Store(r.build(file.AccessKeys, file.Tokens))
		logger.Info("credentials reloaded", "path", r.path, "access_keys", len(file.AccessKeys), "tokens", len(file.Tokens))
	}
}

func modTime(path string) time.Time {
	fi, err := os.Stat(path)
	if err != nil {
		return time.Time{}
	}
	return fi.ModTime()
}

// gcPercent and memoryLimit are serve's garbage-collector settings unless
// GOGC or GOMEMLIMIT say otherwise. livehooks' live heap is small (tens of
// MB) and made of short-lived request and delivery garbage: collecting at
// five times the live heap instead of twice halves the collector's share of
// the CPU per event, and the soft limit makes it collect harder before the
// process would pass the memory it promises (SPEC §7: RSS < 150 MB). The
// limit covers Go's memory only: SQLite's page caches and the binary come on
// top (about 30 MB), so at 120 MiB a 1 M backlog peaked at 148–151 MB.
const (
	gcPercent   = 400
	memoryLimit = 100 << 20
)

func tuneGC(getenv func(string) string) {
	if getenv("GOGC") == "" {
		debug.SetGCPercent(gcPercent)
	}
	if getenv("GOMEMLIMIT") == "" {
		debug.SetMemoryLimit(memoryLimit)
	}
}

// checkAdvertiseURL accepts an empty --advertise-url, or the base URL of
// this node's API (http or https, a host, no query), with PostgreSQL.
func checkAdvertiseURL(raw string, postgres bool) error {
	if raw == "" {
		return nil
	}
	if !postgres {
		return errors.New("--advertise-url is for several nodes on PostgreSQL (--database-url)")
	}
	u, err := url.Parse(raw)
	if err != nil || u.Scheme != "http" && u.Scheme != "https" || u.Host == "" || u.RawQuery != "" || u.Fragment != "" || u.User != nil {
		return fmt.Errorf("--advertise-url %q: want the base URL of this node's API, such as http://10.0.0.11:8080", raw)
	}
	return nil
}

// goDone runs f in a goroutine of its own and returns a channel closed once f
// has returned.
func goDone(f func()) <-chan struct{} {
	done := make(chan struct{})
	go func() {
		defer close(done)
		f()
	}()
	return done
}

// autoConcurrentCommits is --concurrent-commits 0: with the database on this
// machine or next to it, one group commit at a time (the largest
// transactions, the least work per event for the server); farther away, four
// in flight, so that a writer waits for its own transaction's round trip
// only and not also for those ahead of it (bench: with the database 2 ms
// away, 32 clients got 2,431 events/s with one, 2,521 with two, 3,208 with
// four, 3,086 with eight).
func autoConcurrentCommits(rtt time.Duration) int {
	if rtt < 500*time.Microsecond {
		return 1
	}
	return 4
}
