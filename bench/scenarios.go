package main

import (
	"context"
	"fmt"
	"os"
	"path/filepath"
	"strconv"
	"time"
)

// env is what a scenario runs with.
type env struct {
	o    *options
	bin  string
	work string
	root string
	name string
}

var scenarios = map[string]func(context.Context, *env) (*Result, error){
	"steady":     runSteady,
	"saturation": runSaturation,
	"dead10":     runDead10,
	"streams":    runStreams,
	"backlog":    runBacklog,
}

// params are a scenario's knobs after defaults and flags.
type params struct {
	rate      int
	duration  time.Duration
	clients   int
	batch     int
	receivers int
	streams   int
}

func (e *env) params(rate, clients, batch, streams int) params {
	o := e.o
	p := params{rate: rate, duration: 30 * time.Second, clients: clients, batch: batch, receivers: o.receivers, streams: streams}
	if o.set["rate"] {
		p.rate = o.rate
	}
	if o.set["duration"] {
		p.duration = o.duration
	}
	if o.set["clients"] {
		p.clients = o.clients
	}
	if o.set["batch"] {
		p.batch = o.batch
	}
	if o.set["streams"] {
		p.streams = o.streams
	}
	p.receivers = max(1, p.receivers)
	p.clients = max(1, p.clients)
	p.batch = max(1, min(p.batch, 1000))
	p.streams = max(p.streams, p.clients)
	return p
}

func (p params) asMap(e *env) map[string]any {
	m := map[string]any{
		"rate": p.rate, "duration": p.duration.String(), "clients": p.clients, "batch": p.batch,
		"receivers": p.receivers, "streams": p.streams, "db": e.o.db, "sqlite_synchronous": e.o.synchronous,
		"signed": e.o.sign,
	}
	if len(e.o.extraArgs) > 0 {
		m["serve_args"] = e.o.extraArgs.String()
	}
	if len(e.o.serveEnv) > 0 {
		m["serve_env"] = e.o.serveEnv.String()
	}
	if e.o.profileDir != "" {
		m["profiling_harness"] = true
	}
	return m
}

// scenarioRun is one scenario in progress: receivers, the livehooks
// subprocess and its sampler.
type scenarioRun struct {
	e       *env
	p       params
	rcv     []*receiver
	srv     *server
	smp     *sampler
	configs []string
	samples []procSample
	probe   *fsyncProbe
	fsync   []fsyncSample
}

// since returns the offset of t from the fsync probe's start.
func (r *scenarioRun) since(t time.Time) time.Duration { return t.Sub(r.probe.start) }

func (e *env) start(p params) (*scenarioRun, error) {
	r := &scenarioRun{e: e, p: p}
	var err error
	if r.rcv, err = startReceivers(p.receivers); err != nil {
		return nil, err
	}
	return r, nil
}

// startLivehooks starts the subprocess on a fresh data directory and creates
// one config per receiver (app r<i>).
func (r *scenarioRun) startLivehooks(ctx context.Context, serveArgs ...string) error {
	dataDir := filepath.Join(r.e.work, r.e.name+"-data")
	_ = os.RemoveAll(dataDir)
	srv, err := startServer(ctx, r.e, serverConfig{dataDir: dataDir, args: serveArgs})
	if err != nil {
		return err
	}
	r.srv = srv
	r.smp = startSampler(srv.pid, r.e.o.sampleEvery)
	r.probe = startFsyncProbe(r.e.work)
	r.smp.setPhase("setup")
	for i, rc := range r.rcv {
		id, err := srv.createConfig(ctx, "r"+strconv.Itoa(i), rc.url, r.e.o.sign)
		if err != nil {
			return err
		}
		r.configs = append(r.configs, id)
	}
	return nil
}

// close stops everything the run started; it returns livehooks' exit error.
func (r *scenarioRun) close() error {
	var err error
	if r.srv != nil {
		if r.smp != nil {
			r.samples = r.smp.finish()
		}
		if r.probe != nil {
			r.fsync = r.probe.finish()
		}
		err = r.srv.stop()
	}
	stopReceivers(r.rcv)
	return err
}

// baseline runs the same load straight at the receivers listed in dests.
func (r *scenarioRun) baseline(ctx context.Context, dests []int) *Phase {
	p := r.p
	dur := min(r.e.o.baselineDur, p.duration)
	logf("baseline: plain Go client → %d receivers, %d clients, rate %s, %s", len(dests), p.clients, rateName(p.rate), dur)
	tr := newTracker(p.streams)
	setTracker(r.rcv, tr)
	urls := make([]string, len(r.rcv))
	for i, rc := range r.rcv {
		urls[i] = rc.url
	}
	dp := &directPoster{client: newClient(p.clients, 30*time.Second), urls: urls}
	defer dp.client.CloseIdleConnections()
	start := tr.now()
	st := runLoad(ctx, tr, dp, loadSpec{
		rate: p.rate, duration: dur, clients: p.clients, batch: p.batch, streams: p.streams,
		dest: func(s int) int { return dests[s%len(dests)] },
	})
	end := tr.now()
	setTracker(r.rcv, nil)
	return analyze(tr, st, nil, start, end)
}

// load runs the ingest load against livehooks; dest maps streams to
// receivers.
func (r *scenarioRun) load(ctx context.Context, tr *tracker, spec loadSpec) (st *loadStats, start, end int64) {
	ip := newIngestPoster(r.srv.base, r.configs, spec.clients)
	defer ip.client.CloseIdleConnections()
	setTracker(r.rcv, tr)
	start = tr.now()
	st = runLoad(ctx, tr, ip, spec)
	end = tr.now()
	return st, start, end
}

// drain waits until every acknowledged event of the wanted receivers was
// delivered, or timeout.
func (r *scenarioRun) drain(ctx context.Context, tr *tracker, want func(int) bool, timeout time.Duration) {
	deadline := time.Now().Add(timeout)
	lastLog := time.Now()
	for {
		acked, delivered := tr.progress(want)
		if delivered >= acked {
			return
		}
		if time.Now().After(deadline) || ctx.Err() != nil || !r.srv.alive() {
			logf("drain: gave up with %d of %d acknowledged events undelivered", acked-delivered, acked)
			return
		}
		if time.Since(lastLog) >= 5*time.Second {
			s := r.smp.now()
			logf("drain: %d of %d delivered; livehooks RSS %.1f MB", delivered, acked, float64(s.RSSKB)/1024)
			lastLog = time.Now()
		}
		time.Sleep(100 * time.Millisecond)
	}
}

func (r *scenarioRun) scrapeMetrics(ctx context.Context) map[string]float64 {
	m := r.srv.metrics(ctx, "livehooks_store_commit_ops_sum", "livehooks_store_commit_ops_count", "livehooks_delivery_attempts_total", "livehooks_deliveries_pending")
	out := map[string]float64{
		"commits":          m["livehooks_store_commit_ops_count"],
		"attempts":         m["livehooks_delivery_attempts_total"],
		"pending_at_end":   m["livehooks_deliveries_pending"],
		"commit_ops_total": m["livehooks_store_commit_ops_sum"],
	}
	if c := m["livehooks_store_commit_ops_count"]; c > 0 {
		out["commit_ops_mean"] = m["livehooks_store_commit_ops_sum"] / c
	}
	return out
}

func rateName(rate int) string {
	if rate <= 0 {
		return "max"
	}
	return strconv.Itoa(rate) + "/s"
}

func progressLogger(label string) func(int64, time.Duration) {
	var last int64
	return func(sent int64, el time.Duration) {
		if el.Round(time.Second)%(5*time.Second) == 0 {
			logf("%s: %s, %d events sent (%d in the last second)", label, el.Round(time.Second), sent, sent-last)
		}
		last = sent
	}
}

// steadyLike is steady, saturation, dead10 and streams: baseline, then
// livehooks under the same load, dead receivers hanging.
func steadyLike(ctx context.Context, e *env, p params, dead int, cycleTypes bool, serveArgs ...string) (*Result, error) {
	res := &Result{Scenario: e.name, Params: p.asMap(e)}
	if dead > 0 {
		res.Params["dead_receivers"] = dead
	}
	r, err := e.start(p)
	if err != nil {
		return nil, err
	}
	defer func() {
		if r != nil {
			_ = r.close()
		}
	}()
	healthy := func(d int) bool { return d >= dead }
	var healthyDests []int
	for i := dead; i < p.receivers; i++ {
		healthyDests = append(healthyDests, i)
	}
	res.Baseline = r.baseline(ctx, healthyDests)
	logf("baseline: %.0f ev/s, p99 %.2f ms", res.Baseline.DeliveryRate, res.Baseline.Latency.P99)

	if err := r.startLivehooks(ctx, serveArgs...); err != nil {
		return nil, err
	}
	for i := range dead {
		r.rcv[i].mode.Store(modeHang)
	}
	logf("livehooks: %d clients, rate %s, batch %d, %d streams, %d receivers (%d hanging), %s", p.clients, rateName(p.rate), p.batch, p.streams, p.receivers, dead, p.duration)
	tr := newTracker(p.streams)
	r.smp.setPhase("load")
	loadWall := time.Now()
	st, start, end := r.load(ctx, tr, loadSpec{
		rate: p.rate, duration: p.duration, clients: p.clients, batch: p.batch, streams: p.streams,
		dest: func(s int) int { return s % p.receivers }, cycleTypes: cycleTypes,
		progress: progressLogger("load"),
	})
	loadEndWall := time.Now()
	r.smp.setPhase("drain")
	r.drain(ctx, tr, healthy, e.o.drainTimeout)
	res.Metrics = r.scrapeMetrics(ctx)
	cerr := r.close()
	r0 := r
	r = nil
	res.Livehooks = analyze(tr, st, nil, start, end)
	if dead > 0 {
		res.Healthy = analyze(tr, st, healthy, start, end)
		res.Notes = append(res.Notes, fmt.Sprintf("'lost' in the livehooks column counts the %d events for the %d hanging receivers, still pending (retrying) when the run ended: expected", res.Livehooks.Lost-res.Healthy.Lost, dead))
	}
	res.Process = map[string]phaseStats{"load": summarize(r0.samples, "load"), "drain": summarize(r0.samples, "drain")}
	res.Samples = r0.samples
	res.Fsync = map[string]fsyncStats{"load": summarizeFsync(r0.fsync, r0.since(loadWall), r0.since(loadEndWall))}
	perSecond := maxFsyncPerSecond(r0.fsync, r0.since(loadWall))
	for _, ph := range []*Phase{res.Livehooks, res.Healthy} {
		if ph == nil {
			continue
		}
		for i := range ph.Timeline {
			ph.Timeline[i].FsyncMaxMS = perSecond[ph.Timeline[i].Second]
		}
	}
	if d := res.Livehooks.Delivered; d > 0 {
		// CPU per event is less sensitive than throughput to what else runs
		// on the machine: compare it between runs.
		res.Metrics["cpu_us_per_event"] = (res.Process["load"].CPUSec + res.Process["drain"].CPUSec) / float64(d) * 1e6
	}
	main := res.Livehooks
	if res.Healthy != nil {
		main = res.Healthy
	}
	res.Ratios = ratios(main, res.Baseline)
	if cerr != nil {
		res.Notes = append(res.Notes, "livehooks did not stop cleanly: "+cerr.Error())
	}
	return res, nil
}

func runSteady(ctx context.Context, e *env) (*Result, error) {
	p := e.params(1000, 32, 1, 1000)
	res, err := steadyLike(ctx, e, p, 0, false)
	if err != nil {
		return nil, err
	}
	lh := res.Livehooks
	res.Targets = append(res.Targets,
		target("ingest-to-receiver p99 at 1,000 ev/s", "< 50", lh.Latency.P99, "ms", lh.Latency.P99 < 50),
		target("RSS at 1,000 ev/s", "< 150", res.Process["load"].RSSMaxMB, "MB", res.Process["load"].RSSMaxMB < 150),
		target("lost acknowledged events", "= 0", float64(lh.Lost), "events", lh.Lost == 0),
	)
	if p.rate != 1000 {
		res.Notes = append(res.Notes, "the p99 target is defined at 1,000 events/s; this run used "+rateName(p.rate))
	}
	return res, nil
}

func runSaturation(ctx context.Context, e *env) (*Result, error) {
	p := e.params(0, 32, 1, 1000)
	res, err := steadyLike(ctx, e, p, 0, false)
	if err != nil {
		return nil, err
	}
	lh := res.Livehooks
	res.Targets = append(res.Targets,
		target("sustained durable events/s (ingested and delivered)", ">= 5000", lh.Sustained, "ev/s", lh.Sustained >= 5000),
		target("throughput / baseline", ">= 0.25", res.Ratios["sustained"], "x", res.Ratios["sustained"] >= 0.25),
		target("RSS at saturation", "< 150", res.Process["load"].RSSMaxMB, "MB", res.Process["load"].RSSMaxMB < 150),
		target("lost acknowledged events", "= 0", float64(lh.Lost), "events", lh.Lost == 0),
	)
	return res, nil
}

func runDead10(ctx context.Context, e *env) (*Result, error) {
	p := e.params(1000, 32, 1, 1000)
	dead := max(1, p.receivers/10)
	if p.receivers < 2 {
		return nil, fmt.Errorf("dead10 needs at least 2 receivers")
	}
	res, err := steadyLike(ctx, e, p, dead, false, "--request-timeout", "2s")
	if err != nil {
		return nil, err
	}
	h := res.Healthy
	res.Params["request_timeout"] = "2s"
	res.Targets = append(res.Targets,
		target("healthy destinations' p99 with 10% hanging", "< 100", h.Latency.P99, "ms", h.Latency.P99 < 100),
		target("lost events of healthy destinations", "= 0", float64(h.Lost), "events", h.Lost == 0),
		target("RSS with 10% hanging", "< 150", res.Process["load"].RSSMaxMB, "MB", res.Process["load"].RSSMaxMB < 150),
	)
	return res, nil
}

func runStreams(ctx context.Context, e *env) (*Result, error) {
	p := e.params(2000, 64, 1, 20000)
	res, err := steadyLike(ctx, e, p, 0, true)
	if err != nil {
		return nil, err
	}
	lh := res.Livehooks
	res.Targets = append(res.Targets,
		target("per-stream order violations", "= 0", float64(lh.OrderViolations), "events", lh.OrderViolations == 0),
		target("lost acknowledged events", "= 0", float64(lh.Lost), "events", lh.Lost == 0),
		target("RSS with many streams", "< 150", res.Process["load"].RSSMaxMB, "MB", res.Process["load"].RSSMaxMB < 150),
	)
	res.Notes = append(res.Notes, "each stream belongs to one client, which sends its events one after another, so commit order is send order; event types cycle RECORD_START, NEW_FILE_START, FILE_COMPLETE, OVER per stream")
	return res, nil
}

func target(name, want string, got float64, unit string, pass bool) Target {
	return Target{Name: name, Want: want, Got: got, Unit: unit, Pass: pass}
}
