package main

import (
	"context"
	"fmt"
	"time"
)

// runBacklog piles up -backlog events while every receiver answers 503, then
// brings the receivers back and measures the drain. RSS is sampled through
// both phases: it must stay flat (the backlog streams from the store).
func runBacklog(ctx context.Context, e *env) (*Result, error) {
	p := e.params(0, 16, 100, 1000)
	p.duration = 24 * time.Hour // bounded by -backlog, not by time
	total := int64(e.o.backlog)
	res := &Result{Scenario: e.name, Params: p.asMap(e)}
	res.Params["backlog"] = total
	delete(res.Params, "duration")
	r, err := e.start(p)
	if err != nil {
		return nil, err
	}
	defer func() {
		if r != nil {
			_ = r.close()
		}
	}()
	all := make([]int, p.receivers)
	for i := range all {
		all[i] = i
	}
	bp := p
	bp.duration = min(e.o.baselineDur, 10*time.Second)
	bp.rate = 0
	bp.batch = 1
	r.p = bp
	res.Baseline = r.baseline(ctx, all)
	r.p = p
	logf("baseline: %.0f ev/s", res.Baseline.DeliveryRate)

	for _, rc := range r.rcv {
		rc.mode.Store(modeDown)
	}
	if err := r.startLivehooks(ctx); err != nil {
		return nil, err
	}
	res.DBRTT = r.db.rttCheck()
	b := &BacklogFigures{}
	b.RSSStartMB = float64(r.smp.now().RSSKB) / 1024
	var before int64 // the baseline's requests
	for _, rc := range r.rcv {
		before += rc.requests.Load()
	}
	tr := newTracker(p.streams)
	logf("backlog: building %d events (%d clients, batch %d, %d streams) while the receivers answer 503", total, p.clients, p.batch, p.streams)
	r.markCounters(ctx)
	r.smp.setPhase("build")
	buildWall := time.Now()
	st, start, end := r.load(ctx, tr, loadSpec{
		rate: 0, duration: p.duration, total: total, clients: p.clients, batch: p.batch, streams: p.streams,
		dest: func(s int) int { return s % p.receivers },
		progress: func(sent int64, el time.Duration) {
			if el.Round(time.Second)%(10*time.Second) == 0 {
				logf("backlog: %s, %d events sent, livehooks RSS %.1f MB", el.Round(time.Second), sent, float64(r.smp.now().RSSKB)/1024)
			}
		},
	})
	if ctx.Err() != nil {
		return nil, ctx.Err()
	}
	b.Events = st.Acked
	b.BuildSec = float64(end-start) / 1e9
	b.BuildRate = float64(st.Acked) / b.BuildSec
	// livehooks refreshes the pending gauge at most once a second.
	time.Sleep(1100 * time.Millisecond)
	b.PendingPeak = r.srv.pending(ctx)
	down := -before
	for _, rc := range r.rcv {
		down += rc.requests.Load()
	}
	b.DownRequests = down
	logf("backlog: built %d events in %.1fs (%.0f ev/s); %.0f pending; receivers refused %d requests meanwhile; receivers up", b.Events, b.BuildSec, b.BuildRate, b.PendingPeak, down)

	r.smp.setPhase("drain")
	upWall := time.Now()
	up := tr.now()
	for _, rc := range r.rcv {
		rc.mode.Store(modeOK)
	}
	r.drain(ctx, tr, nil, 20*e.o.drainTimeout)
	drainedWall := time.Now()
	res.StoreRoundTrips, res.Nodes = r.phaseFigures(r.allCounters(ctx), r.posterPerNode())
	res.Metrics = r.scrapeMetrics(ctx)
	cerr := r.close()
	r0 := r
	r = nil

	lh := analyze(tr, st, nil, start, end)
	res.Livehooks = lh
	var first int64
	tr.forEach(func(_ int64, s *slot) {
		if f := s.first.Load(); f > 0 && (first == 0 || f < first) {
			first = f
		}
	})
	last := tr.lastRecv.Load()
	if first > 0 {
		b.ResumeSec = float64(first-up) / 1e9
		b.DrainSec = float64(last-first) / 1e9
		if b.DrainSec > 0 {
			b.DrainRate = float64(lh.Delivered) / b.DrainSec
		}
	}
	b.Delivered, b.Lost, b.Duplicates = lh.Delivered, lh.Lost, lh.Duplicates
	res.Process = map[string]phaseStats{"build": summarize(r0.samples, "build"), "drain": summarize(r0.samples, "drain")}
	res.Fsync = map[string]fsyncStats{
		"build": summarizeFsync(r0.fsync, r0.since(buildWall), r0.since(upWall)),
		"drain": summarizeFsync(r0.fsync, r0.since(upWall), r0.since(drainedWall)),
	}
	b.RSSBuildMB = res.Process["build"].RSSMaxMB
	b.RSSDrainMB = res.Process["drain"].RSSMaxMB
	res.Backlog = b
	res.Samples = r0.samples
	res.Ratios = map[string]float64{}
	if res.Baseline.DeliveryRate > 0 {
		res.Ratios["drain_rate"] = b.DrainRate / res.Baseline.DeliveryRate
	}
	peak := max(b.RSSBuildMB, b.RSSDrainMB)
	res.Targets = append(res.Targets,
		target("RSS under the backlog (build-up and drain)", "< 150", peak, "MB", peak < 150),
		target("lost acknowledged events", "= 0", float64(lh.Lost), "events", lh.Lost == 0),
		target("drain rate / baseline", ">= 0.25", res.Ratios["drain_rate"], "x", res.Ratios["drain_rate"] >= 0.25),
	)
	res.Notes = append(res.Notes,
		fmt.Sprintf("resume time is set by the destinations' circuit breakers (open 10 s, doubling while probes fail, up to 5 min) and the retry backoff: the breakers opened during the %.0f s build-up", b.BuildSec),
		"latency figures of this scenario include the time the receivers were down: see the backlog line instead")
	if cerr != nil {
		res.Notes = append(res.Notes, "livehooks did not stop cleanly: "+cerr.Error())
	}
	res.Targets = append(res.Targets, commonTargets(e, res)...)
	if e.o.killNode > 0 {
		res.Notes = append(res.Notes, "-kill-node applies to the load scenarios (steady, saturation, dead10, streams), not to the backlog")
	}
	return res, nil
}
