package main

import (
	"cmp"
	"encoding/json"
	"fmt"
	"io"
	"math"
	"os"
	"path/filepath"
	"runtime"
	"slices"
	"strconv"
	"strings"
	"text/tabwriter"
	"time"
)

// Report is the JSON output of a bench run.
type Report struct {
	Machine Machine   `json:"machine"`
	Started time.Time `json:"started"`
	DB      string    `json:"db"`
	Args    []string  `json:"args"`
	Results []*Result `json:"results"`
}

// Machine describes where the figures were measured.
type Machine struct {
	CPUs      int    `json:"nproc"`
	CPUModel  string `json:"cpu_model"`
	MemoryMB  int64  `json:"memory_mb"`
	GoVersion string `json:"go_version"`
	Kernel    string `json:"kernel"`
}

// Result is one scenario.
type Result struct {
	Scenario string         `json:"scenario"`
	Params   map[string]any `json:"params"`
	Error    string         `json:"error,omitempty"`

	Livehooks *Phase `json:"livehooks,omitempty"`
	// Healthy restricts the livehooks figures to the healthy destinations
	// (dead10).
	Healthy  *Phase `json:"healthy,omitempty"`
	Baseline *Phase `json:"baseline,omitempty"`
	// Backlog figures (backlog scenario).
	Backlog *BacklogFigures `json:"backlog,omitempty"`

	// Relay is the same load through bench/relay (ingest → forward, no
	// storage), a subprocess like livehooks; RelayProcess its CPU and RSS
	// during that load. With -relay-twice the relay runs before and after
	// livehooks: Relay and RelayProcess merge the two (mergePhases), and
	// RelayRuns keeps each.
	Relay            *Phase      `json:"relay,omitempty"`
	RelayProcess     *phaseStats `json:"relay_process,omitempty"`
	RelayCPUPerEvent float64     `json:"relay_cpu_us_per_event,omitempty"`
	RelayRuns        []*Phase    `json:"relay_runs,omitempty"`

	Ratios map[string]float64 `json:"ratios_to_baseline,omitempty"`
	// RelayRatios are livehooks ÷ relay, as Ratios are livehooks ÷ baseline.
	RelayRatios map[string]float64 `json:"ratios_to_relay,omitempty"`
	// StoreRoundTrips are the phase's group-commit transactions and their
	// database round trips, summed over the nodes.
	StoreRoundTrips *StoreRoundTrips `json:"store_round_trips,omitempty"`
	// Database is the local PostgreSQL server's CPU (-db postgres).
	Database *DatabaseCPU `json:"database_cpu,omitempty"`
	// DatabaseStatements is the server's time and WAL per statement of the
	// bench database (-db postgres, with pg_stat_statements).
	DatabaseStatements *DatabaseStatements `json:"database_statements,omitempty"`
	// CPUBudget splits the machine's CPU per event of the load phase
	// between livehooks, the database server and the bench.
	CPUBudget *CPUBudget `json:"cpu_budget,omitempty"`
	// DBRTT is the -db-rtt proxy's configuration and self-check.
	DBRTT *RTTCheck `json:"db_rtt,omitempty"`
	// Nodes are each node's share of the phase (multi-node mode).
	Nodes []NodeFigures `json:"nodes,omitempty"`
	// Kill describes -kill-node.
	Kill *KillFigures `json:"kill,omitempty"`

	Process map[string]phaseStats `json:"process,omitempty"` // livehooks RSS/CPU by phase
	// Fsync is the disk probe (4 KiB write + fsync every 100 ms next to the
	// data directory) by phase: the disk's own latency at the time.
	Fsync   map[string]fsyncStats `json:"disk_fsync_probe,omitempty"`
	Samples []procSample          `json:"samples,omitempty"`
	Metrics map[string]float64    `json:"livehooks_metrics,omitempty"`
	Targets []Target              `json:"targets,omitempty"`
	Notes   []string              `json:"notes,omitempty"`
}

// Phase is the figures of one load run against livehooks or the baseline.
type Phase struct {
	Sent     int64            `json:"sent"`
	Acked    int64            `json:"acked"`
	Requests int64            `json:"requests"`
	Errors   map[string]int64 `json:"errors,omitempty"`
	Behind   int64            `json:"sent_late"`
	LoadSec  float64          `json:"load_s"`

	IngestRate          float64 `json:"ingest_rate"`           // acknowledged events/s over the load
	DeliveryRate        float64 `json:"delivery_rate"`         // first deliveries/s during the load
	DeliveryRateOverall float64 `json:"delivery_rate_overall"` // first deliveries/s from start to the last delivery
	Sustained           float64 `json:"sustained"`             // min(ingest, delivery during load)
	Delivered           int64   `json:"delivered"`             // acknowledged events delivered at least once
	Lost                int64   `json:"lost"`                  // acknowledged, never delivered after the drain wait
	Duplicates          int64   `json:"duplicates"`            // extra receipts of a delivered event
	OrderViolations     int64   `json:"order_violations"`      // first receipt of an event after a later one of its stream
	WebhookIDMismatch   int64   `json:"webhook_id_mismatch"`   // webhook-id differs from msg_+sha256(event/config)
	Unknown             int64   `json:"unknown_receipts"`
	DrainSec            float64 `json:"drain_s"` // load end to the last delivery

	Latency    Latency `json:"latency_ms"`     // intended send to first receipt
	AckLatency Latency `json:"ack_latency_ms"` // intended send to 202

	// Timeline has one point per second of intended send time.
	Timeline []TimePoint `json:"timeline,omitempty"`
}

// TimePoint is one second of a run: events due in it and their latency.
type TimePoint struct {
	Second    int     `json:"s"`
	Sent      int     `json:"sent"`
	Delivered int     `json:"delivered"`
	P50       float64 `json:"p50_ms"`
	P99       float64 `json:"p99_ms"`
	Max       float64 `json:"max_ms"`
	// FsyncMaxMS is the slowest fsync of the disk probe in that second.
	FsyncMaxMS float64 `json:"disk_fsync_max_ms"`
}

// Latency percentiles in milliseconds.
type Latency struct {
	N    int     `json:"n"`
	Mean float64 `json:"mean"`
	P50  float64 `json:"p50"`
	P95  float64 `json:"p95"`
	P99  float64 `json:"p99"`
	Max  float64 `json:"max"`
}

// BacklogFigures describe the backlog scenario.
type BacklogFigures struct {
	Events       int64   `json:"events"`
	BuildSec     float64 `json:"build_s"`
	BuildRate    float64 `json:"build_rate"`
	PendingPeak  float64 `json:"pending_peak"` // livehooks_deliveries_pending at the end of build-up
	ResumeSec    float64 `json:"resume_s"`     // receivers up to the first delivery
	DrainSec     float64 `json:"drain_s"`      // first to last delivery
	DrainRate    float64 `json:"drain_rate"`   // deliveries/s while draining
	Delivered    int64   `json:"delivered"`
	Lost         int64   `json:"lost"`
	Duplicates   int64   `json:"duplicates"`
	RSSBuildMB   float64 `json:"rss_build_max_mb"`
	RSSDrainMB   float64 `json:"rss_drain_max_mb"`
	RSSStartMB   float64 `json:"rss_start_mb"`
	DownRequests int64   `json:"requests_while_down"` // requests the receivers refused while down
}

// Target is one SPEC §7 check.
type Target struct {
	Name string  `json:"name"`
	Want string  `json:"want"`
	Got  float64 `json:"got"`
	Unit string  `json:"unit"`
	Pass bool    `json:"pass"`
}

// analyze computes a phase's figures from the tracker. want selects the
// receivers counted (nil: all); loadStart and loadEnd bound the load in
// tracker time.
func analyze(tr *tracker, st *loadStats, want func(dest int) bool, loadStart, loadEnd int64) *Phase {
	p := &Phase{Sent: st.Sent, Acked: st.Acked, Requests: st.Requests, Errors: st.Errors, Behind: st.Behind, LoadSec: float64(loadEnd-loadStart) / 1e9}
	var e2e, ack []int64
	var acked, during int64
	var lastFirst int64
	perSecond := map[int][]int64{}
	sentPerSecond := map[int]int{}
	tr.forEach(func(_ int64, s *slot) {
		sched := s.sched.Load()
		if sched == 0 && s.dest.Load() == 0 {
			return // claimed, never sent
		}
		if want != nil && !want(int(s.dest.Load())-1) {
			return
		}
		first := s.first.Load()
		recv := s.recv.Load()
		if recv > 1 {
			p.Duplicates += int64(recv - 1)
		}
		if recv > 0 {
			if first <= loadEnd {
				during++
			}
			lastFirst = max(lastFirst, first)
			if exp := s.expHash.Load(); exp != 0 && exp != s.gotHash.Load() {
				p.WebhookIDMismatch++
			}
		}
		sec := int((sched - loadStart) / 1e9)
		sentPerSecond[sec]++
		a := s.ack.Load()
		if a == 0 {
			return
		}
		acked++
		ack = append(ack, a-sched)
		if recv == 0 {
			p.Lost++
			return
		}
		p.Delivered++
		e2e = append(e2e, first-sched)
		perSecond[sec] = append(perSecond[sec], first-sched)
	})
	for sec := 0; sec <= int((loadEnd-loadStart)/1e9); sec++ {
		if sentPerSecond[sec] == 0 {
			continue
		}
		l := percentiles(perSecond[sec])
		p.Timeline = append(p.Timeline, TimePoint{Second: sec, Sent: sentPerSecond[sec], Delivered: l.N, P50: l.P50, P99: l.P99, Max: l.Max})
	}
	if want != nil {
		p.Acked = acked
	}
	p.OrderViolations = tr.orderViolations.Load()
	p.Unknown = tr.unknown.Load()
	if p.LoadSec > 0 {
		p.IngestRate = float64(acked) / p.LoadSec
		p.DeliveryRate = float64(during) / p.LoadSec
	}
	if lastFirst > loadStart {
		p.DeliveryRateOverall = float64(p.Delivered) / (float64(lastFirst-loadStart) / 1e9)
	}
	p.Sustained = math.Min(p.IngestRate, p.DeliveryRate)
	if lastFirst > loadEnd {
		p.DrainSec = float64(lastFirst-loadEnd) / 1e9
	}
	p.Latency = percentiles(e2e)
	p.AckLatency = percentiles(ack)
	return p
}

func percentiles(ns []int64) Latency {
	if len(ns) == 0 {
		return Latency{}
	}
	slices.Sort(ns)
	var sum float64
	for _, v := range ns {
		sum += float64(v)
	}
	at := func(q float64) float64 {
		i := int(math.Ceil(q*float64(len(ns)))) - 1
		i = max(0, min(i, len(ns)-1))
		return float64(ns[i]) / 1e6
	}
	return Latency{N: len(ns), Mean: sum / float64(len(ns)) / 1e6, P50: at(0.50), P95: at(0.95), P99: at(0.99), Max: float64(ns[len(ns)-1]) / 1e6}
}

// ratios compares livehooks with the baseline: throughput as livehooks /
// baseline (higher is better), latency as livehooks / baseline (lower is
// better).
func ratios(lh, base *Phase) map[string]float64 {
	if lh == nil || base == nil {
		return nil
	}
	r := map[string]float64{}
	div := func(name string, a, b float64) {
		if b > 0 {
			r[name] = a / b
		}
	}
	div("ingest_rate", lh.IngestRate, base.IngestRate)
	div("delivery_rate", lh.DeliveryRate, base.DeliveryRate)
	div("delivery_rate_overall", lh.DeliveryRateOverall, base.DeliveryRateOverall)
	div("sustained", lh.Sustained, base.Sustained)
	div("latency_p50", lh.Latency.P50, base.Latency.P50)
	div("latency_p95", lh.Latency.P95, base.Latency.P95)
	div("latency_p99", lh.Latency.P99, base.Latency.P99)
	div("latency_max", lh.Latency.Max, base.Latency.Max)
	div("latency_mean", lh.Latency.Mean, base.Latency.Mean)
	return r
}

func printResult(w io.Writer, r *Result) {
	fmt.Fprintf(w, "\n## %s", r.Scenario)
	keys := make([]string, 0, len(r.Params))
	for k := range r.Params {
		keys = append(keys, k)
	}
	slices.Sort(keys)
	var ps []string
	for _, k := range keys {
		ps = append(ps, fmt.Sprintf("%s=%v", k, r.Params[k]))
	}
	fmt.Fprintf(w, "  (%s)\n", strings.Join(ps, " "))
	if r.Error != "" {
		fmt.Fprintf(w, "ERROR: %s\n", r.Error)
		return
	}
	tw := tabwriter.NewWriter(w, 0, 0, 2, ' ', tabwriter.AlignRight)
	cols := []struct {
		name string
		p    *Phase
	}{{"livehooks", r.Livehooks}}
	if r.Healthy != nil {
		cols = append(cols, struct {
			name string
			p    *Phase
		}{"healthy dests", r.Healthy})
	}
	if r.Relay != nil {
		cols = append(cols, struct {
			name string
			p    *Phase
		}{"relay", r.Relay})
	}
	if r.Baseline != nil {
		cols = append(cols, struct {
			name string
			p    *Phase
		}{"baseline", r.Baseline})
	}
	hdr := "figure\t"
	for _, c := range cols {
		hdr += c.name + "\t"
	}
	if r.Baseline != nil {
		hdr += "÷ baseline\t"
	}
	if r.Relay != nil {
		hdr += "÷ relay\t"
	}
	if r.Backlog == nil {
		fmt.Fprintln(tw, hdr)
	}
	row := func(name, ratioKey string, get func(p *Phase) float64, format string) {
		line := name + "\t"
		for _, c := range cols {
			if c.p == nil {
				line += "-\t"
				continue
			}
			line += fmt.Sprintf(format, get(c.p)) + "\t"
		}
		for _, rs := range []struct {
			on bool
			m  map[string]float64
		}{{r.Baseline != nil, r.Ratios}, {r.Relay != nil, r.RelayRatios}} {
			if !rs.on {
				continue
			}
			if v, ok := rs.m[ratioKey]; ok {
				line += fmt.Sprintf("%.2f", v) + "\t"
			} else {
				line += "\t"
			}
		}
		fmt.Fprintln(tw, line)
	}
	if r.Backlog != nil {
		// The latency and rate rows would mix the time the receivers were
		// down into every figure: the backlog lines below say it right.
		cols = cols[:0]
	}
	if r.Livehooks != nil && len(cols) > 0 {
		row("events sent", "", func(p *Phase) float64 { return float64(p.Sent) }, "%.0f")
		row("acknowledged", "", func(p *Phase) float64 { return float64(p.Acked) }, "%.0f")
		row("ingest rate (ev/s)", "ingest_rate", func(p *Phase) float64 { return p.IngestRate }, "%.0f")
		row("delivery rate during load (ev/s)", "delivery_rate", func(p *Phase) float64 { return p.DeliveryRate }, "%.0f")
		row("delivery rate incl. drain (ev/s)", "delivery_rate_overall", func(p *Phase) float64 { return p.DeliveryRateOverall }, "%.0f")
		row("sustained (ev/s)", "sustained", func(p *Phase) float64 { return p.Sustained }, "%.0f")
		row("latency p50 (ms)", "latency_p50", func(p *Phase) float64 { return p.Latency.P50 }, "%.1f")
		row("latency p95 (ms)", "latency_p95", func(p *Phase) float64 { return p.Latency.P95 }, "%.1f")
		row("latency p99 (ms)", "latency_p99", func(p *Phase) float64 { return p.Latency.P99 }, "%.1f")
		row("latency max (ms)", "latency_max", func(p *Phase) float64 { return p.Latency.Max }, "%.1f")
		row("ack latency p50 (ms)", "", func(p *Phase) float64 { return p.AckLatency.P50 }, "%.1f")
		row("ack latency p99 (ms)", "", func(p *Phase) float64 { return p.AckLatency.P99 }, "%.1f")
		row("delivered", "", func(p *Phase) float64 { return float64(p.Delivered) }, "%.0f")
		row("lost", "", func(p *Phase) float64 { return float64(p.Lost) }, "%.0f")
		row("duplicates", "", func(p *Phase) float64 { return float64(p.Duplicates) }, "%.0f")
		row("order violations", "", func(p *Phase) float64 { return float64(p.OrderViolations) }, "%.0f")
		row("webhook-id mismatches", "", func(p *Phase) float64 { return float64(p.WebhookIDMismatch) }, "%.0f")
		row("ingest errors", "", func(p *Phase) float64 { return float64(sumErrors(p.Errors)) }, "%.0f")
		row("drain after load (s)", "", func(p *Phase) float64 { return p.DrainSec }, "%.1f")
	}
	_ = tw.Flush()
	if b := r.Backlog; b != nil {
		fmt.Fprintf(w, "backlog: %d events built in %.1fs (%.0f ev/s, pending %.0f); receivers up → first delivery %.1fs; drained in %.1fs = %.0f ev/s; delivered %d, lost %d, duplicates %d; refused while down %d\n",
			b.Events, b.BuildSec, b.BuildRate, b.PendingPeak, b.ResumeSec, b.DrainSec, b.DrainRate, b.Delivered, b.Lost, b.Duplicates, b.DownRequests)
		fmt.Fprintf(w, "backlog RSS: start %.1f MB, build-up max %.1f MB, drain max %.1f MB\n", b.RSSStartMB, b.RSSBuildMB, b.RSSDrainMB)
		if bl := r.Baseline; bl != nil {
			fmt.Fprintf(w, "baseline (plain Go client, same receivers): %.0f ev/s; drain rate ratio %.2f\n", bl.DeliveryRate, r.Ratios["drain_rate"])
		}
	}
	if len(r.Process) > 0 {
		names := make([]string, 0, len(r.Process))
		for k := range r.Process {
			names = append(names, k)
		}
		slices.Sort(names)
		for _, k := range names {
			p := r.Process[k]
			fmt.Fprintf(w, "livehooks process [%s]: RSS max %.1f MB, mean %.1f MB, end %.1f MB; CPU %.2f cores (%.1f s); bench process %.2f cores; machine %.0f%% busy, CPU stall %.0f%%, I/O stall %.0f%%\n",
				k, p.RSSMaxMB, p.RSSMeanMB, p.RSSEndMB, p.CPUCores, p.CPUSec, p.BenchCores, 100*p.MachineBusy, 100*p.CPUStall, 100*p.IOStall)
		}
	}
	for _, n := range r.nodeStats() {
		fmt.Fprintln(w, n)
	}
	if len(r.RelayRuns) == 2 {
		fmt.Fprintf(w, "relay runs: %.0f ev/s before livehooks, %.0f after; the relay's figures are of both\n",
			r.RelayRuns[0].Sustained, r.RelayRuns[1].Sustained)
	}
	if p := r.RelayProcess; p != nil {
		fmt.Fprintf(w, "relay process [load]: RSS max %.1f MB; CPU %.2f cores (%.1f s), %.0f µs per delivered event\n", p.RSSMaxMB, p.CPUCores, p.CPUSec, r.RelayCPUPerEvent)
		if rate := r.Relay.DeliveryRate; rate > 0 {
			bench := p.BenchCores / rate * 1e6
			fmt.Fprintf(w, "relay CPU per delivered event: relay %.0f + the bench's clients and receivers %.0f = %.0f µs, of the %.0f µs that %d CPUs offer per event at its rate\n",
				r.RelayCPUPerEvent, bench, r.RelayCPUPerEvent+bench, float64(runtime.NumCPU())/rate*1e6, runtime.NumCPU())
		}
	}
	if lh := r.Livehooks; lh != nil && len(lh.Timeline) > 0 && r.Backlog == nil {
		worst := slices.Clone(lh.Timeline)
		slices.SortFunc(worst, func(a, b TimePoint) int { return cmp.Compare(b.P99, a.P99) })
		var parts []string
		for _, t := range worst[:min(3, len(worst))] {
			parts = append(parts, fmt.Sprintf("second %d: p99 %.1f ms, max %.1f ms (disk probe fsync max %.1f ms)", t.Second, t.P99, t.Max, t.FsyncMaxMS))
		}
		fmt.Fprintf(w, "worst seconds: %s\n", strings.Join(parts, "; "))
	}
	for _, k := range sortedKeys(r.Fsync) {
		f := r.Fsync[k]
		fmt.Fprintf(w, "disk probe [%s]: fsync p50 %.2f ms, p99 %.2f ms, max %.1f ms, %d of %d over 100 ms\n", k, f.P50, f.P99, f.Max, f.Over100ms, f.N)
	}
	if v, ok := r.Metrics["cpu_us_per_event"]; ok {
		fmt.Fprintf(w, "livehooks CPU per delivered event: %.0f µs\n", v)
	}
	if d := r.Database; d != nil {
		fmt.Fprintf(w, "PostgreSQL server CPU [load+drain]: %.2f cores (%.1f s), %.0f µs per delivered event (every postgres process on this machine)\n",
			d.Cores, d.Seconds, d.MicrosPerEvent)
	}
	if ds := r.DatabaseStatements; ds != nil {
		writeStatements(w, ds)
	}
	if b := r.CPUBudget; b != nil {
		parts := []string{fmt.Sprintf("livehooks %.0f", b.Livehooks)}
		if b.Database > 0 {
			parts = append(parts, fmt.Sprintf("PostgreSQL %.0f", b.Database))
		}
		parts = append(parts, fmt.Sprintf("the bench's clients and receivers %.0f", b.Bench))
		fmt.Fprintf(w, "CPU per delivered event: %s = %.0f µs, of the %.0f µs that %d CPUs offer per event at this rate\n",
			strings.Join(parts, " + "), b.Livehooks+b.Database+b.Bench, b.Offered, b.CPUs)
	}
	if v, ok := r.Metrics["commit_ops_mean"]; ok {
		took := ""
		if ms, ok := r.Metrics["commit_ms_mean"]; ok {
			took = fmt.Sprintf(", %.2f ms each from its start to its writers' acknowledgement", ms)
		}
		fmt.Fprintf(w, "group commit: %.1f operations per transaction on average (%.0f transactions%s)\n", v, r.Metrics["commits"], took)
	}
	if rt := r.StoreRoundTrips; rt != nil {
		switch {
		case !rt.Exposed:
			fmt.Fprintf(w, "store round trips: not exposed by this livehooks (no livehooks_store_round_trips_total); %.0f transactions of %.1f operations in the phase\n", rt.Transactions, rt.OpsPerTransaction)
		case !rt.Counted:
			fmt.Fprintf(w, "store round trips: none counted over %.0f transactions of %.1f operations: this revision's PostgreSQL store does not count them\n", rt.Transactions, rt.OpsPerTransaction)
		default:
			fmt.Fprintf(w, "store round trips: %.2f per transaction (%.0f round trips / %.0f transactions of %.1f operations, over the phase, all nodes; 0 with SQLite)\n", rt.PerTransaction, rt.RoundTrips, rt.Transactions, rt.OpsPerTransaction)
		}
		if s := inFlightText(rt.ConcurrentCommits); s != "" {
			fmt.Fprintf(w, "group commits in flight at once: %s\n", s)
		}
	}
	if c := r.DBRTT; c != nil {
		if c.Error != "" {
			fmt.Fprintf(w, "database rtt proxy: %s configured; self-check failed: %s\n", c.Configured, c.Error)
		} else {
			fmt.Fprintf(w, "database rtt proxy: %s configured; PostgreSQL %s %.2f ms direct, %.2f ms proxied (+%.2f ms); pipelined echo median %.2f ms, max %.2f ms\n",
				c.Configured, c.Ping, c.DirectMS, c.ProxiedMS, c.AddedMS, c.EchoMedianMS, c.EchoMaxMS)
		}
	}
	for _, n := range r.Nodes {
		inFlight := ""
		if n.ConcurrentCommits > 0 {
			inFlight = fmt.Sprintf(" (up to %.0f in flight)", n.ConcurrentCommits)
		}
		fmt.Fprintf(w, "%s: %.0f deliveries = %.1f %% of them; %d ingest requests = %.1f %%; %.0f transactions%s, %.0f round trips; lives %d\n",
			n.ID, n.Deliveries, 100*n.Share, n.IngestRequests, 100*n.IngestShare, n.Transactions, inFlight, n.RoundTrips, n.Lives)
	}
	if k := r.Kill; k != nil {
		ready := "never restarted: " + k.RestartError
		if k.RestartError == "" {
			ready = fmt.Sprintf("ready again at %.1f s", k.RestartAtS)
		}
		fmt.Fprintf(w, "kill: %s SIGKILLed at %.1f s of the load, down for %s, %s\n", k.Node, k.KillAtS, k.DownFor, ready)
		fmt.Fprintf(w, "kill: acknowledged → delivered: max %.0f ms, p99 %.1f ms over every event; around the kill (%d events acked from 2 s before to 2 s after the restart): max %.0f ms, p99 %.1f ms; %d events over 10 s\n",
			k.MaxAckToDeliveredMS, k.P99AckToDeliveredMS, k.AroundEvents, k.AroundMaxAckToDeliveredMS, k.AroundP99AckToDeliveredMS, k.Over10s)
		if len(k.DeliveredPerSecond) > 0 {
			from, to := killWindow(k)
			var parts []string
			for i := from; i <= to; i++ {
				mark := ""
				if i == int(k.KillAtS) {
					mark = " (kill)"
				}
				if k.RestartAtS > 0 && i == int(k.RestartAtS) {
					mark += " (ready)"
				}
				parts = append(parts, fmt.Sprintf("%d:%d%s", i, k.DeliveredPerSecond[i], mark))
			}
			fmt.Fprintf(w, "kill: delivered per second (second:count): %s\n", strings.Join(parts, " "))
		}
		for _, iv := range k.Intervals {
			var parts []string
			for i := range iv.Deliveries {
				id := fmt.Sprint(i + 1)
				if i < len(r.Nodes) {
					id = r.Nodes[i].ID
				}
				parts = append(parts, fmt.Sprintf("%s %.0f (%.0f %%)", id, iv.Deliveries[i], 100*iv.Shares[i]))
			}
			fmt.Fprintf(w, "kill: deliveries %s (%.1f–%.1f s): %s\n", iv.Name, iv.FromS, iv.ToS, strings.Join(parts, ", "))
		}
	}
	for _, t := range r.Targets {
		mark := "PASS"
		if !t.Pass {
			mark = "MISS"
		}
		fmt.Fprintf(w, "target %-44s want %-10s got %10.2f %-6s %s\n", t.Name, t.Want, t.Got, t.Unit, mark)
	}
	for _, n := range r.Notes {
		fmt.Fprintf(w, "note: %s\n", n)
	}
}

func sumErrors(m map[string]int64) int64 {
	var n int64
	for _, v := range m {
		n += v
	}
	return n
}

func writeJSON(path string, v any) error {
	if err := os.MkdirAll(filepath.Dir(path), 0o755); err != nil {
		return err
	}
	b, err := json.MarshalIndent(v, "", "  ")
	if err != nil {
		return err
	}
	return os.WriteFile(path, append(b, '\n'), 0o644)
}

func describeMachine() Machine {
	m := Machine{CPUs: runtime.NumCPU(), GoVersion: runtime.Version()}
	if b, err := os.ReadFile("/proc/cpuinfo"); err == nil {
		for _, line := range strings.Split(string(b), "\n") {
			if k, v, ok := strings.Cut(line, ":"); ok && strings.TrimSpace(k) == "model name" {
				m.CPUModel = strings.TrimSpace(v)
				break
			}
		}
	}
	if b, err := os.ReadFile("/proc/meminfo"); err == nil {
		var kb int64
		if _, err := fmt.Sscanf(string(b), "MemTotal: %d kB", &kb); err == nil {
			m.MemoryMB = kb / 1024
		}
	}
	if b, err := os.ReadFile("/proc/sys/kernel/osrelease"); err == nil {
		m.Kernel = strings.TrimSpace(string(b))
	}
	return m
}

func sortedKeys[V any](m map[string]V) []string {
	keys := make([]string, 0, len(m))
	for k := range m {
		keys = append(keys, k)
	}
	slices.Sort(keys)
	return keys
}

// nodeStats are the per-node process lines of multi-node mode.
func (r *Result) nodeStats() []string {
	var out []string
	for _, k := range sortedKeys(r.Process) {
		p := r.Process[k]
		if p.CPUSec == 0 {
			continue // an empty phase (a drain with nothing left)
		}
		for i, n := range p.Nodes {
			id := fmt.Sprintf("node-%d", i+1)
			if i < len(r.Nodes) {
				id = r.Nodes[i].ID
			}
			out = append(out, fmt.Sprintf("  %s [%s]: RSS max %.1f MB; CPU %.2f cores (%.1f s)", id, k, n.RSSMaxMB, n.CPUCores, n.CPUSec))
		}
	}
	return out
}

// inFlightText says how many group commits the nodes let be in flight at
// once: "up to 1", or each node's when they differ ("up to 1 / 4 / 1 (by
// node: they differ)": a node that chose otherwise makes smaller
// transactions); "" when unknown.
func inFlightText(ks []float64) string {
	if len(ks) == 0 {
		return ""
	}
	parts := make([]string, len(ks))
	same := true
	for i, k := range ks {
		parts[i] = strconv.FormatFloat(k, 'f', 0, 64)
		same = same && k == ks[0]
	}
	if same {
		return "up to " + parts[0]
	}
	return "up to " + strings.Join(parts, " / ") + " (by node: they differ)"
}
