// Command bench measures livehooks end to end on one machine: it builds and
// starts livehooks as a subprocess, starts loopback receivers, drives ingest
// and reports ingest rate, delivery throughput, ingest-to-receiver latency,
// duplicates, losses, per-stream order, and livehooks' RSS and CPU, each next
// to a baseline of the same receivers hit directly by a plain Go client and to
// a no-storage relay (bench/relay). With -db postgres it can put the database
// a round trip away (-db-rtt) and run several nodes on it (-nodes, -kill-node).
//
//	go run ./bench -scenario steady
//	go run ./bench -scenario all -out bench/out/all.json
//
// See bench/README.md for the scenarios and the latest figures.
package main

import (
	"context"
	"flag"
	"fmt"
	"os"
	"os/signal"
	"path/filepath"
	"strings"
	"syscall"
	"time"
)

// options are the command line. Zero values of the scenario knobs mean "the
// scenario's default" (see scenarioDefaults).
type options struct {
	scenario     string
	db           string
	databaseURL  string // admin URL of the PostgreSQL server (a fresh database is created per run)
	duration     time.Duration
	rate         int
	clients      int
	batch        int
	receivers    int
	streams      int
	backlog      int
	baselineDur  time.Duration
	drainTimeout time.Duration
	out          string
	binary       string
	rev          string
	profileDir   string
	workDir      string
	keep         bool
	synchronous  string
	extraArgs    multiFlag
	sign         bool
	sampleEvery  time.Duration
	serveEnv     multiFlag
	verbose      bool
	relay        bool
	relayDur     time.Duration
	relayTwice   bool
	dbRTT        time.Duration
	nodes        int
	killNode     time.Duration
	affinity     bool
	forward      bool

	set map[string]bool // flags given on the command line
}

type multiFlag []string

func (m *multiFlag) String() string     { return strings.Join(*m, " ") }
func (m *multiFlag) Set(v string) error { *m = append(*m, v); return nil }

func main() {
	o := &options{}
	fs := flag.NewFlagSet("bench", flag.ExitOnError)
	fs.StringVar(&o.scenario, "scenario", "steady", "steady, saturation, dead10, backlog, streams or all")
	fs.StringVar(&o.db, "db", "sqlite", "store: sqlite or postgres")
	fs.StringVar(&o.databaseURL, "pg-admin-url", "postgres://postgres@127.0.0.1:5432/postgres?sslmode=disable", "with -db postgres: server where a fresh database is created for each run")
	fs.DurationVar(&o.duration, "duration", 0, "load duration (default per scenario: 30s)")
	fs.IntVar(&o.rate, "rate", -1, "events/s; 0 = as fast as possible (default per scenario)")
	fs.IntVar(&o.clients, "clients", 0, "concurrent ingest clients (default per scenario: 32)")
	fs.IntVar(&o.batch, "batch", 0, "events per ingest request (default 1; backlog build-up 100)")
	fs.IntVar(&o.receivers, "receivers", 10, "loopback receivers, one callback config each")
	fs.IntVar(&o.streams, "streams", 0, "distinct streams (default per scenario: 1000; streams: 20000)")
	fs.IntVar(&o.backlog, "backlog", 1_000_000, "backlog scenario: events to pile up while receivers are down")
	fs.DurationVar(&o.baselineDur, "baseline-duration", 10*time.Second, "baseline run length (capped at -duration)")
	fs.DurationVar(&o.drainTimeout, "drain-timeout", 60*time.Second, "how long to wait for deliveries after the load stops (backlog: 20x)")
	fs.StringVar(&o.out, "out", "", "JSON result file (default bench/out/<scenario>-<time>.json)")
	fs.StringVar(&o.binary, "binary", "", "use this livehooks binary instead of building ./cmd/livehooks")
	fs.StringVar(&o.rev, "rev", "", "build livehooks from this git revision (e.g. HEAD) instead of the working tree")
	fs.StringVar(&o.profileDir, "profile", "", "run the profiling harness (bench/profserve) instead of the product binary and write CPU, heap and allocation profiles to this directory")
	fs.StringVar(&o.workDir, "workdir", "", "where data directories go (default $TMPDIR); must be a real disk for honest fsync figures")
	fs.BoolVar(&o.keep, "keep", false, "keep data directories and logs")
	fs.StringVar(&o.synchronous, "sqlite-synchronous", "FULL", "passed to livehooks --sqlite-synchronous")
	fs.Var(&o.extraArgs, "serve-arg", "extra argument for livehooks serve (repeatable), e.g. -serve-arg=--per-destination=32")
	fs.Var(&o.serveEnv, "serve-env", "extra environment variable for livehooks (repeatable), e.g. -serve-env GOGC=200")
	fs.BoolVar(&o.sign, "sign", true, "give configs a key (callbacks signed, as in production)")
	fs.DurationVar(&o.sampleEvery, "sample", 500*time.Millisecond, "RSS/CPU sampling interval")
	fs.BoolVar(&o.relay, "relay", true, "also run the load through bench/relay (ingest → forward, no storage) and report livehooks ÷ relay")
	fs.DurationVar(&o.relayDur, "relay-duration", 0, "relay run length (default: as long as the baseline; capped at -duration)")
	fs.BoolVar(&o.relayTwice, "relay-twice", true, "run the relay again after livehooks and report the mean of the two runs, so that the machine's drift during the run weighs on both sides of livehooks ÷ relay")
	fs.DurationVar(&o.dbRTT, "db-rtt", 0, "with -db postgres: put a proxy adding this round-trip time (e.g. 2ms) between livehooks and PostgreSQL")
	fs.IntVar(&o.nodes, "nodes", 1, "with -db postgres: livehooks nodes on the one database; the load goes round-robin per stream over them")
	fs.BoolVar(&o.forward, "forward", true, "with -nodes >= 2: give each node --advertise-url, so that a node sends an ingest on to the node that is home to its streams' lanes (false: each node ingests what it gets, as revisions before the flag do)")
	fs.BoolVar(&o.affinity, "affinity", false, "with -nodes >= 2: post each stream's requests to the node that is home to its lane, instead of round-robin (what a load balancer routing streams to their home would do)")
	fs.DurationVar(&o.killNode, "kill-node", 0, "with -nodes >= 2: at mid-load SIGKILL the node with the most deliveries so far, restart it after this long")
	fs.BoolVar(&o.verbose, "v", false, "progress lines and livehooks' warnings on stderr")
	_ = fs.Parse(os.Args[1:])
	verbose = o.verbose
	o.set = map[string]bool{}
	fs.Visit(func(f *flag.Flag) { o.set[f.Name] = true })

	ctx, stop := signal.NotifyContext(context.Background(), os.Interrupt, syscall.SIGTERM)
	defer stop()
	if err := run(ctx, o); err != nil {
		fmt.Fprintln(os.Stderr, "bench:", err)
		os.Exit(1)
	}
}

func run(ctx context.Context, o *options) error {
	var names []string
	if o.scenario == "all" {
		names = []string{"steady", "saturation", "dead10", "streams", "backlog"}
	} else {
		for _, s := range strings.Split(o.scenario, ",") {
			if _, ok := scenarios[s]; !ok {
				return fmt.Errorf("unknown scenario %q (want steady, saturation, dead10, backlog, streams or all)", s)
			}
			names = append(names, s)
		}
	}
	if o.db != "sqlite" && o.db != "postgres" {
		return fmt.Errorf("-db %q: want sqlite or postgres", o.db)
	}
	if o.dbRTT < 0 || o.dbRTT > 0 && o.db != "postgres" {
		return fmt.Errorf("-db-rtt needs -db postgres")
	}
	if o.nodes < 1 || o.nodes > 1 && o.db != "postgres" {
		return fmt.Errorf("-nodes %d: several nodes need -db postgres (they share its database)", o.nodes)
	}
	if o.nodes > 1 && o.profileDir != "" {
		return fmt.Errorf("-profile runs one node (the harness wires SQLite only)")
	}
	if o.affinity && o.nodes < 2 {
		return fmt.Errorf("-affinity needs -nodes 2 or more")
	}
	if o.killNode > 0 && o.nodes < 2 {
		return fmt.Errorf("-kill-node needs -nodes 2 or more")
	}
	root, err := repoRoot()
	if err != nil {
		return err
	}
	if o.workDir == "" {
		o.workDir = os.TempDir()
	}
	work, err := os.MkdirTemp(o.workDir, "livehooks-bench-")
	if err != nil {
		return err
	}
	if !o.keep {
		defer os.RemoveAll(work)
	}
	bin, err := buildBinary(ctx, root, work, o)
	if err != nil {
		return err
	}
	var relayBin string
	if o.relay {
		if relayBin, err = buildRelay(ctx, root, work); err != nil {
			return err
		}
	}
	report := &Report{Machine: describeMachine(), Started: time.Now().UTC(), DB: o.db, Args: os.Args[1:]}
	for _, name := range names {
		if ctx.Err() != nil {
			break
		}
		logf("=== scenario %s", name)
		res, err := scenarios[name](ctx, &env{o: o, bin: bin, relayBin: relayBin, work: work, root: root, name: name})
		if err != nil {
			res = &Result{Scenario: name, Error: err.Error()}
			fmt.Fprintf(os.Stderr, "bench: scenario %s: %v\n", name, err)
		}
		report.Results = append(report.Results, res)
		printResult(os.Stdout, res)
	}
	out := o.out
	if out == "" {
		out = filepath.Join(root, "bench", "out", fmt.Sprintf("%s-%s-%s.json", strings.ReplaceAll(o.scenario, ",", "+"), o.db, time.Now().Format("20060102-150405")))
	}
	if err := writeJSON(out, report); err != nil {
		return err
	}
	fmt.Printf("\nresults written to %s\n", out)
	for _, r := range report.Results {
		if r.Error != "" {
			return fmt.Errorf("scenario %s failed: %s", r.Scenario, r.Error)
		}
	}
	return nil
}

// repoRoot finds the module root (the directory holding go.mod) from the
// working directory up.
func repoRoot() (string, error) {
	dir, err := os.Getwd()
	if err != nil {
		return "", err
	}
	for {
		if b, err := os.ReadFile(filepath.Join(dir, "go.mod")); err == nil && strings.Contains(string(b), "module github.com/livehooks/livehooks\n") {
			return dir, nil
		}
		parent := filepath.Dir(dir)
		if parent == dir {
			return "", fmt.Errorf("run bench from inside the livehooks repository (no go.mod of github.com/livehooks/livehooks above %s)", dir)
		}
		dir = parent
	}
}

var verbose bool

func logf(format string, args ...any) {
	fmt.Fprintf(os.Stderr, "%s "+format+"\n", append([]any{time.Now().Format("15:04:05")}, args...)...)
}

func vlogf(format string, args ...any) {
	if verbose {
		logf(format, args...)
	}
}
