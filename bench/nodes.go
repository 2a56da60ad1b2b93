package main

import (
	"context"
	"crypto/rand"
	"encoding/hex"
	"fmt"
	"net"
	"net/url"
	"os"
	"path/filepath"
	"slices"
	"strconv"
	"strings"
	"sync"
	"sync/atomic"
	"time"
)

// node is one livehooks process of a scenario; several in multi-node mode
// (-nodes), all on one PostgreSQL database. A node killed by -kill-node is
// restarted with the same flags, node id, port and data directory.
type node struct {
	idx int
	id  string // node-1 … node-N (multi-node mode)

	mu      sync.Mutex
	srv     *server
	deadCPU float64 // CPU seconds of the node's earlier lives
	lives   int
	// Phase counters: acc holds what earlier lives counted during the
	// phase, base the current life's reading at the phase start (empty for
	// a life that began during the phase).
	acc, base map[string]float64

	down atomic.Bool // killed: the load skips it
}

func (n *node) server() *server {
	n.mu.Lock()
	defer n.mu.Unlock()
	return n.srv
}

func (n *node) target() procTarget {
	n.mu.Lock()
	defer n.mu.Unlock()
	switch {
	case n.srv == nil:
		return procTarget{baseCPU: n.deadCPU}
	case !n.srv.alive():
		return procTarget{baseCPU: n.deadCPU + n.srv.cpuAtExit}
	}
	return procTarget{pid: n.srv.pid, baseCPU: n.deadCPU}
}

// Counters read from every node's /metrics before and after a phase.
const (
	mCommits    = "livehooks_store_commit_ops_count"
	mCommitOps  = "livehooks_store_commit_ops_sum"
	mRoundTrips = "livehooks_store_round_trips_total"
	mSucceeded  = `livehooks_delivery_attempts_total{outcome="succeeded"}`
)

var phaseCounters = []string{mCommits, mCommitOps, mRoundTrips, mSucceeded}

// mInFlight is a gauge, read as it stands rather than since the phase
// started: how many group commits the node lets be in flight at once (what
// --concurrent-commits or its default chose; absent before the metric).
const mInFlight = "livehooks_store_concurrent_commits"

// nodeMetrics are what counters reads from a node.
var nodeMetrics = append(slices.Clone(phaseCounters), mInFlight)

// database is the PostgreSQL database of a scenario: a fresh one, and the
// latency-injecting proxy in front of it with -db-rtt.
type database struct {
	url   string // what livehooks gets as --database-url
	drop  func()
	proxy *rttProxy
	check *RTTCheck
}

func (d *database) close() {
	if d == nil {
		return
	}
	if d.proxy != nil {
		d.proxy.close()
	}
	if d.drop != nil {
		d.drop()
	}
}

func (d *database) rttCheck() *RTTCheck {
	if d == nil {
		return nil
	}
	return d.check
}

// RTTCheck is the -db-rtt proxy's self-check at start.
type RTTCheck struct {
	Configured string  `json:"configured"`
	ProxyAddr  string  `json:"proxy"`
	Ping       string  `json:"ping"`            // what was timed: SELECT 1 (or SSLRequest)
	DirectMS   float64 `json:"direct_ping_ms"`  // median round trip to PostgreSQL, direct
	ProxiedMS  float64 `json:"proxied_ping_ms"` // the same through the proxy
	AddedMS    float64 `json:"added_ms"`        // proxied - direct: ≈ the configured RTT
	// EchoMedianMS and EchoMaxMS time 20 one-byte messages sent 0.1 ms
	// apart on one connection through a proxy of the same RTT to an echo
	// server: a faithful proxy keeps both ≈ the RTT (no per-chunk
	// accumulation).
	EchoMedianMS float64 `json:"pipelined_echo_median_ms"`
	EchoMaxMS    float64 `json:"pipelined_echo_max_ms"`
	Error        string  `json:"error,omitempty"`
}

// startDB creates the scenario's fresh PostgreSQL database and, with
// -db-rtt, the proxy livehooks reaches it through (the bench's own admin
// calls go direct).
func (r *scenarioRun) startDB(ctx context.Context) error {
	o := r.e.o
	if o.db != "postgres" || r.db != nil {
		return nil
	}
	dbURL, drop, err := createPostgresDB(ctx, o.databaseURL)
	if err != nil {
		return err
	}
	d := &database{url: dbURL, drop: drop}
	r.db = d
	if o.dbRTT <= 0 {
		return nil
	}
	u, err := url.Parse(dbURL)
	if err != nil || u.Hostname() == "" {
		return fmt.Errorf("-db-rtt needs a TCP host in -pg-admin-url")
	}
	upstream := u.Host
	if u.Port() == "" {
		upstream = net.JoinHostPort(u.Hostname(), "5432")
	}
	px, err := startRTTProxy(upstream, o.dbRTT)
	if err != nil {
		return err
	}
	d.proxy = px
	u.Host = px.addr()
	d.url = u.String()
	user := "postgres"
	if u.User != nil && u.User.Username() != "" {
		user = u.User.Username()
	}
	d.check = selfCheckRTT(upstream, px.addr(), user, strings.TrimPrefix(u.Path, "/"), o.dbRTT)
	c := d.check
	if c.Error != "" {
		logf("db rtt proxy %s → %s: self-check failed: %s", px.addr(), upstream, c.Error)
	} else {
		logf("db rtt proxy %s → %s, rtt %s: PostgreSQL %s %.2f ms direct, %.2f ms through the proxy (+%.2f ms); pipelined echo median %.2f ms, max %.2f ms",
			px.addr(), upstream, o.dbRTT, c.Ping, c.DirectMS, c.ProxiedMS, c.AddedMS, c.EchoMedianMS, c.EchoMaxMS)
	}
	return nil
}

func selfCheckRTT(upstream, proxy, user, database string, rtt time.Duration) *RTTCheck {
	c := &RTTCheck{Configured: rtt.String(), ProxyAddr: proxy}
	direct, how, err := pingPostgres(upstream, user, database, 9)
	c.Ping = how
	if err == nil {
		var proxied time.Duration
		if proxied, _, err = pingPostgres(proxy, user, database, 9); err == nil {
			c.DirectMS, c.ProxiedMS = ms(direct), ms(proxied)
			c.AddedMS = c.ProxiedMS - c.DirectMS
		}
	}
	if err == nil {
		var med, worst time.Duration
		if med, worst, err = echoCheck(rtt, 20, 100*time.Microsecond); err == nil {
			c.EchoMedianMS, c.EchoMaxMS = ms(med), ms(worst)
		}
	}
	if err != nil {
		c.Error = err.Error()
	}
	return c
}

func ms(d time.Duration) float64 { return float64(d) / 1e6 }

// nodeCount is the number of livehooks processes.
func (e *env) nodeCount() int { return max(1, e.o.nodes) }

// startNodes starts the scenario's livehooks processes (one unless -nodes).
// Configs are created through node 1 before the others start.
func (r *scenarioRun) startNodes(ctx context.Context, serveArgs []string) error {
	if err := r.startDB(ctx); err != nil {
		return err
	}
	n := r.e.nodeCount()
	var env []string
	if n > 1 {
		// One master key for all: a callback key sealed by one node opens
		// on every other.
		var k [32]byte
		_, _ = rand.Read(k[:])
		env = append(env, "LIVEHOOKS_MASTER_KEY="+hex.EncodeToString(k[:]))
	}
	for i := range n {
		nd := &node{idx: i}
		dataDir := filepath.Join(r.e.work, r.e.name+"-data")
		if n > 1 {
			nd.id = "node-" + strconv.Itoa(i+1)
			dataDir = filepath.Join(r.e.work, r.e.name+"-"+nd.id+"-data")
		}
		sc := serverConfig{dataDir: dataDir, args: serveArgs, nodeID: nd.id, env: env}
		if r.db != nil {
			sc.databaseURL = r.db.url
		}
		_ = os.RemoveAll(dataDir)
		r.nodes = append(r.nodes, nd)
		srv, err := startServer(ctx, r.e, sc)
		if err != nil {
			if n > 1 {
				err = fmt.Errorf("%s: %w", nd.id, err)
			}
			return err
		}
		nd.srv, nd.lives = srv, 1
		if i == 0 {
			r.srv = srv
			for j, rc := range r.rcv {
				id, err := srv.createConfig(ctx, "r"+strconv.Itoa(j), rc.url, r.e.o.sign)
				if err != nil {
					return err
				}
				r.configs = append(r.configs, id)
			}
		}
	}
	if n > 1 {
		logf("%d livehooks nodes on one database: %s", n, r.nodeURLs())
	}
	return nil
}

func (r *scenarioRun) nodeURLs() []string {
	var u []string
	for _, n := range r.nodes {
		if s := n.server(); s != nil {
			u = append(u, s.base)
		}
	}
	return u
}

func (r *scenarioRun) procTargets() []procTarget {
	ts := make([]procTarget, len(r.nodes))
	for i, n := range r.nodes {
		ts[i] = n.target()
	}
	return ts
}

// anyAlive reports whether some node still runs.
func (r *scenarioRun) anyAlive() bool {
	for _, n := range r.nodes {
		if s := n.server(); s != nil && s.alive() {
			return true
		}
	}
	return false
}

// markCounters reads every node's phase counters: the phase starts now.
func (r *scenarioRun) markCounters(ctx context.Context) {
	for _, n := range r.nodes {
		m := n.server().metrics(ctx, phaseCounters...)
		r.noteSeen(m)
		n.mu.Lock()
		n.base, n.acc = m, map[string]float64{}
		n.mu.Unlock()
	}
}

func (r *scenarioRun) noteSeen(m map[string]float64) {
	r.seenMu.Lock()
	defer r.seenMu.Unlock()
	if r.seen == nil {
		r.seen = map[string]bool{}
	}
	for k := range m {
		r.seen[k] = true
	}
}

// counters returns node n's counters since the phase started, over its
// lives.
func (r *scenarioRun) counters(ctx context.Context, n *node) map[string]float64 {
	var m map[string]float64
	if s := n.server(); s != nil && s.alive() {
		m = s.metrics(ctx, nodeMetrics...)
		r.noteSeen(m)
	}
	n.mu.Lock()
	defer n.mu.Unlock()
	out := map[string]float64{}
	for _, k := range phaseCounters {
		out[k] = n.acc[k]
		if v, ok := m[k]; ok {
			out[k] += v - n.base[k]
		}
	}
	if v, ok := m[mInFlight]; ok {
		out[mInFlight] = v
	} else if v, ok := n.acc[mInFlight]; ok { // from the life before a kill
		out[mInFlight] = v
	}
	return out
}

// allCounters returns every node's counters since the phase started.
func (r *scenarioRun) allCounters(ctx context.Context) []map[string]float64 {
	out := make([]map[string]float64, len(r.nodes))
	for i, n := range r.nodes {
		out[i] = r.counters(ctx, n)
	}
	return out
}

// settle folds a life's counters into the phase's before the node dies; the
// next life starts from zero.
func (n *node) settle(c map[string]float64) {
	n.mu.Lock()
	defer n.mu.Unlock()
	n.acc, n.base = c, map[string]float64{}
}

// StoreRoundTrips are the group-commit transactions of a phase and their
// database round trips (summed over nodes).
type StoreRoundTrips struct {
	Transactions      float64 `json:"transactions"`
	Operations        float64 `json:"operations"`
	RoundTrips        float64 `json:"round_trips"`
	PerTransaction    float64 `json:"round_trips_per_transaction"`
	OpsPerTransaction float64 `json:"operations_per_transaction"`
	// ConcurrentCommits are the group commits each node let be in flight
	// at once, in node order (none from a revision without the metric).
	ConcurrentCommits []float64 `json:"concurrent_commits,omitempty"`
	// Exposed is false when livehooks has no
	// livehooks_store_round_trips_total (an older revision).
	Exposed bool `json:"exposed"`
	// Counted is false when the counter stayed at 0 on PostgreSQL: the
	// store of that revision does not count its round trips.
	Counted bool `json:"counted"`
}

// NodeFigures are one node's share of a phase.
type NodeFigures struct {
	ID             string  `json:"id"`
	Deliveries     float64 `json:"deliveries"` // succeeded attempts during the phase
	Share          float64 `json:"share"`
	IngestRequests int64   `json:"ingest_requests"`
	IngestShare    float64 `json:"ingest_share"`
	Transactions   float64 `json:"transactions"`
	RoundTrips     float64 `json:"round_trips"`
	// ConcurrentCommits is 0 from a revision without the metric.
	ConcurrentCommits float64 `json:"concurrent_commits,omitempty"`
	Lives             int     `json:"lives"` // 2 after a kill and a restart
}

// phaseFigures sums the nodes' counters into round trips per transaction
// and each node's share.
func (r *scenarioRun) phaseFigures(cs []map[string]float64, perNode []int64) (*StoreRoundTrips, []NodeFigures) {
	rt := &StoreRoundTrips{}
	r.seenMu.Lock()
	rt.Exposed = r.seen[mRoundTrips]
	r.seenMu.Unlock()
	var delivered float64
	var reqs int64
	for i, c := range cs {
		rt.Transactions += c[mCommits]
		rt.Operations += c[mCommitOps]
		rt.RoundTrips += c[mRoundTrips]
		delivered += c[mSucceeded]
		if v, ok := c[mInFlight]; ok {
			rt.ConcurrentCommits = append(rt.ConcurrentCommits, v)
		}
		if i < len(perNode) {
			reqs += perNode[i]
		}
	}
	rt.Counted = rt.Exposed && (rt.RoundTrips > 0 || r.e.o.db == "sqlite")
	if rt.Transactions > 0 {
		rt.PerTransaction = rt.RoundTrips / rt.Transactions
		rt.OpsPerTransaction = rt.Operations / rt.Transactions
	}
	if len(r.nodes) < 2 {
		return rt, nil
	}
	nf := make([]NodeFigures, len(cs))
	for i, c := range cs {
		n := r.nodes[i]
		n.mu.Lock()
		lives := n.lives
		n.mu.Unlock()
		nf[i] = NodeFigures{ID: n.id, Deliveries: c[mSucceeded], Transactions: c[mCommits], RoundTrips: c[mRoundTrips],
			ConcurrentCommits: c[mInFlight], Lives: lives}
		if delivered > 0 {
			nf[i].Share = c[mSucceeded] / delivered
		}
		if i < len(perNode) {
			nf[i].IngestRequests = perNode[i]
			if reqs > 0 {
				nf[i].IngestShare = float64(perNode[i]) / float64(reqs)
			}
		}
	}
	return rt, nf
}

// KillFigures describe -kill-node: one node SIGKILLed mid-load, kept down,
// restarted with the same flags and node id.
type KillFigures struct {
	Node         string  `json:"node"`
	KillAtS      float64 `json:"kill_at_s"`  // since the load started
	DownFor      string  `json:"down_for"`   // as configured
	RestartAtS   float64 `json:"ready_at_s"` // restarted and ready again
	RestartError string  `json:"restart_error,omitempty"`
	// Acknowledged-to-delivered: from the 202 to the first receipt.
	MaxAckToDeliveredMS float64 `json:"max_ack_to_delivered_ms"`
	P99AckToDeliveredMS float64 `json:"p99_ack_to_delivered_ms"`
	// Around: events acknowledged from 2 s before the kill to 2 s after
	// the restart.
	AroundMaxAckToDeliveredMS float64 `json:"around_kill_max_ack_to_delivered_ms"`
	AroundP99AckToDeliveredMS float64 `json:"around_kill_p99_ack_to_delivered_ms"`
	AroundEvents              int     `json:"around_kill_events"`
	Over10s                   int64   `json:"acked_events_over_10s"`
	// DeliveredPerSecond counts first receipts by second since the load
	// started.
	DeliveredPerSecond []int          `json:"delivered_per_second"`
	Intervals          []KillInterval `json:"intervals"`
}

// KillInterval is each node's deliveries over one part of the phase.
type KillInterval struct {
	Name       string    `json:"name"` // before kill, while down, after restart
	FromS      float64   `json:"from_s"`
	ToS        float64   `json:"to_s"`
	Deliveries []float64 `json:"deliveries"`
	Shares     []float64 `json:"shares"`
}

// killer kills a node at mid-load and restarts it after down.
type killer struct {
	done chan struct{}
	// Filled in by run; read after done.
	node            int
	killAt, readyAt int64 // tracker time
	before, atReady []map[string]float64
	restartErr      error
	killed          bool
	down            time.Duration
	tr              *tracker
}

func (r *scenarioRun) startKiller(ctx context.Context, tr *tracker, after, down time.Duration) *killer {
	k := &killer{done: make(chan struct{}), tr: tr, down: down}
	go func() {
		defer close(k.done)
		select {
		case <-time.After(after):
		case <-ctx.Done():
			return
		}
		// Pick the node with the largest delivery share so far.
		cs := r.allCounters(ctx)
		best := 0
		for i, c := range cs {
			if c[mSucceeded] > cs[best][mSucceeded] {
				best = i
			}
		}
		n := r.nodes[best]
		k.node = best
		k.before = cs
		logf("kill-node: SIGKILL %s (%.0f deliveries so far, the most), down for %s", n.id, cs[best][mSucceeded], down)
		n.down.Store(true)
		r.smp.sample()
		last := r.counters(ctx, n)
		n.settle(last)
		k.before[best] = last // its count at the kill
		k.killAt = tr.now()
		k.killed = true
		n.server().kill()
		select {
		case <-time.After(down):
		case <-ctx.Done():
			return
		}
		old := n.server()
		srv, err := startServer(ctx, r.e, old.cfg)
		if err != nil {
			k.restartErr = err
			logf("kill-node: restart %s: %v", n.id, err)
			return
		}
		n.mu.Lock()
		n.deadCPU += old.cpuAtExit
		n.srv = srv
		n.lives++
		n.mu.Unlock()
		n.down.Store(false)
		k.readyAt = tr.now()
		k.atReady = r.allCounters(ctx)
		logf("kill-node: %s restarted and ready (%.1f s after the kill)", n.id, float64(k.readyAt-k.killAt)/1e9)
	}()
	return k
}

// figures computes the kill's figures once the phase is over; end holds
// each node's counters at the end of the phase.
func (k *killer) figures(r *scenarioRun, loadStart int64, end []map[string]float64) *KillFigures {
	if !k.killed {
		return nil
	}
	sec := func(t int64) float64 { return float64(t-loadStart) / 1e9 }
	kf := &KillFigures{Node: r.nodes[k.node].id, KillAtS: sec(k.killAt), DownFor: k.down.String()}
	if k.restartErr != nil {
		kf.RestartError = k.restartErr.Error()
	}
	readyAt := k.readyAt
	if readyAt == 0 {
		readyAt = k.tr.now()
	} else {
		kf.RestartAtS = sec(k.readyAt)
	}
	var all, around []int64
	from, to := k.killAt-2e9, readyAt+2e9
	var perSecond []int
	k.tr.forEach(func(_ int64, s *slot) {
		first := s.first.Load()
		if first > 0 {
			i := int((first - loadStart) / 1e9)
			if i >= 0 {
				for len(perSecond) <= i {
					perSecond = append(perSecond, 0)
				}
				perSecond[i]++
			}
		}
		a := s.ack.Load()
		if a == 0 || first == 0 {
			return
		}
		d := max(0, first-a)
		all = append(all, d)
		if d > 10e9 {
			kf.Over10s++
		}
		if a >= from && a <= to {
			around = append(around, d)
		}
	})
	kf.DeliveredPerSecond = perSecond
	la, lr := percentiles(all), percentiles(around)
	kf.MaxAckToDeliveredMS, kf.P99AckToDeliveredMS = la.Max, la.P99
	kf.AroundMaxAckToDeliveredMS, kf.AroundP99AckToDeliveredMS, kf.AroundEvents = lr.Max, lr.P99, lr.N
	zero := make([]map[string]float64, len(r.nodes))
	for i := range zero {
		zero[i] = map[string]float64{}
	}
	atReady := k.atReady
	if atReady == nil {
		atReady = end
	}
	interval := func(name string, a, b []map[string]float64, from, to int64) KillInterval {
		iv := KillInterval{Name: name, FromS: sec(from), ToS: sec(to), Deliveries: make([]float64, len(a)), Shares: make([]float64, len(a))}
		var sum float64
		for i := range a {
			iv.Deliveries[i] = b[i][mSucceeded] - a[i][mSucceeded]
			sum += iv.Deliveries[i]
		}
		if sum > 0 {
			for i := range iv.Shares {
				iv.Shares[i] = iv.Deliveries[i] / sum
			}
		}
		return iv
	}
	kf.Intervals = []KillInterval{
		interval("before the kill", zero, k.before, loadStart, k.killAt),
		interval("while down", k.before, atReady, k.killAt, readyAt),
	}
	if k.atReady != nil {
		kf.Intervals = append(kf.Intervals, interval("after the restart (incl. drain)", k.atReady, end, k.readyAt, k.tr.lastRecv.Load()))
	}
	return kf
}

// killWindow returns the seconds of DeliveredPerSecond around the kill, for
// the human report.
func killWindow(kf *KillFigures) (from, to int) {
	from = max(0, int(kf.KillAtS)-3)
	end := kf.KillAtS
	if kf.RestartAtS > 0 {
		end = kf.RestartAtS
	}
	to = min(len(kf.DeliveredPerSecond)-1, int(end)+8)
	return from, to
}
