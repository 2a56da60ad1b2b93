package main

import (
	"context"
	"errors"
	"fmt"
	"os"
	"os/exec"
	"path/filepath"
	"strconv"
	"syscall"
	"time"
)

// The relay (bench/relay) is the ceiling livehooks is compared with besides
// the one-hop baseline: the same ingest request in, the same signed callback
// out, no storage. It runs as a subprocess, like livehooks, and its CPU is
// sampled the same way.

// buildRelay builds bench/relay from the working tree (it is bench tooling
// and imports only the standard library).
func buildRelay(ctx context.Context, root, work string) (string, error) {
	bin := filepath.Join(work, "relay")
	logf("building ./bench/relay")
	cmd := exec.CommandContext(ctx, "go", "build", "-o", bin, "./bench/relay")
	cmd.Dir = root
	cmd.Stdout, cmd.Stderr = os.Stderr, os.Stderr
	if err := cmd.Run(); err != nil {
		return "", fmt.Errorf("go build ./bench/relay: %w", err)
	}
	return bin, nil
}

// relayProc is a running relay.
type relayProc struct {
	cmd    *exec.Cmd
	base   string
	exited chan struct{}
	out    *tailBuffer
}

// relayConfigID is the config id the relay uses for receiver i in webhook
// ids (livehooks uses the config's id).
func relayConfigID(i int) string { return "relay-r" + strconv.Itoa(i) }

func startRelay(ctx context.Context, e *env, rcv []*receiver) (*relayProc, error) {
	port, err := freePort()
	if err != nil {
		return nil, err
	}
	args := []string{"-listen", "127.0.0.1:" + strconv.Itoa(port), "-token", benchToken}
	if e.o.sign {
		args = append(args, "-key", benchKey)
	}
	for i, rc := range rcv {
		args = append(args, "-route", "r"+strconv.Itoa(i)+"="+relayConfigID(i)+"="+rc.url)
	}
	p := &relayProc{base: "http://127.0.0.1:" + strconv.Itoa(port), exited: make(chan struct{}), out: &tailBuffer{max: 16 << 10}}
	p.cmd = exec.Command(e.relayBin, args...)
	p.cmd.Stdout, p.cmd.Stderr = p.out, p.out
	if err := p.cmd.Start(); err != nil {
		return nil, fmt.Errorf("start relay: %w", err)
	}
	go func() { _ = p.cmd.Wait(); close(p.exited) }()
	switch err := waitReady(ctx, p.base, p.exited, 10*time.Second, 20*time.Millisecond); {
	case errors.Is(err, errExited):
		return nil, fmt.Errorf("relay exited before it was ready:\n%s", p.out.String())
	case err != nil:
		p.stop()
		return nil, fmt.Errorf("relay: %w:\n%s", err, p.out.String())
	}
	return p, nil
}

func (p *relayProc) stop() {
	_ = p.cmd.Process.Signal(syscall.SIGTERM)
	select {
	case <-p.exited:
	case <-time.After(5 * time.Second):
		_ = p.cmd.Process.Kill()
		<-p.exited
	}
}

// relay runs the scenario's load through the relay to the receivers listed
// in dests, as long as the baseline (-relay-duration), and returns its
// figures and its process's.
func (r *scenarioRun) relay(ctx context.Context, dests []int, cycleTypes bool) (*Phase, *phaseStats, error) {
	p := r.p
	dur := min(r.e.o.baselineDur, p.duration)
	if r.e.o.relayDur > 0 {
		dur = min(r.e.o.relayDur, p.duration)
	}
	rp, err := startRelay(ctx, r.e, r.rcv)
	if err != nil {
		return nil, nil, err
	}
	defer rp.stop()
	logf("relay: ingest → forward, no storage, %d clients, rate %s, %s", p.clients, rateName(p.rate), dur)
	smp := startSampler(rp.cmd.Process.Pid, r.e.o.sampleEvery)
	ids := make([]string, len(r.rcv))
	for i := range ids {
		ids[i] = relayConfigID(i)
	}
	tr := newTracker(p.streams)
	setTracker(r.rcv, tr)
	ip := newIngestPoster(rp.base, ids, p.clients)
	smp.setPhase("load")
	start := tr.now()
	st := runLoad(ctx, tr, ip, loadSpec{
		rate: p.rate, duration: dur, clients: p.clients, batch: p.batch, streams: p.streams,
		dest: func(s int) int { return dests[s%len(dests)] }, cycleTypes: cycleTypes,
	})
	end := tr.now()
	ip.client.CloseIdleConnections()
	smp.setPhase("drain")
	// The relay answers once the receiver did: nothing should be left.
	deadline := time.Now().Add(5 * time.Second)
	for {
		acked, delivered := tr.progress(nil)
		if delivered >= acked || time.Now().After(deadline) || ctx.Err() != nil {
			break
		}
		time.Sleep(50 * time.Millisecond)
	}
	samples := smp.finish()
	setTracker(r.rcv, nil)
	ps := summarize(samples, "load")
	return analyze(tr, st, nil, start, end), &ps, nil
}

// relayRuns are a scenario's relay runs: one before livehooks and, with
// -relay-twice, one after.
type relayRuns struct {
	phases []*Phase
	procs  []*phaseStats
}

func (rr *relayRuns) add(p *Phase, ps *phaseStats) {
	rr.phases = append(rr.phases, p)
	rr.procs = append(rr.procs, ps)
}

// fill puts the relay's figures in res: a single run's as they are, two
// runs merged, with each kept in RelayRuns.
func (rr *relayRuns) fill(res *Result) {
	switch len(rr.phases) {
	case 0:
		return
	case 1:
		res.Relay, res.RelayProcess = rr.phases[0], rr.procs[0]
	default:
		res.Relay, res.RelayProcess = mergePhases(rr.phases), mergeProcs(rr.procs)
		res.RelayRuns = rr.phases
	}
	if d := res.Relay.Delivered; d > 0 {
		res.RelayCPUPerEvent = res.RelayProcess.CPUSec / float64(d) * 1e6
	}
}

// mergePhases combines runs of one load: counts add up; rates are the
// runs' means weighted by their load time; latency percentiles the runs'
// weighted by their samples (an approximation of the percentile of all the
// samples, close when the runs are alike), the maximum the largest. The
// timelines stay with the runs.
func mergePhases(ps []*Phase) *Phase {
	m := &Phase{}
	var rates [4]float64
	lat, ack := make([]Latency, 0, len(ps)), make([]Latency, 0, len(ps))
	for _, p := range ps {
		m.Sent += p.Sent
		m.Acked += p.Acked
		m.Requests += p.Requests
		m.Behind += p.Behind
		m.Delivered += p.Delivered
		m.Lost += p.Lost
		m.Duplicates += p.Duplicates
		m.OrderViolations += p.OrderViolations
		m.WebhookIDMismatch += p.WebhookIDMismatch
		m.Unknown += p.Unknown
		for k, n := range p.Errors {
			if m.Errors == nil {
				m.Errors = map[string]int64{}
			}
			m.Errors[k] += n
		}
		m.LoadSec += p.LoadSec
		m.DrainSec = max(m.DrainSec, p.DrainSec)
		for i, r := range [4]float64{p.IngestRate, p.DeliveryRate, p.DeliveryRateOverall, p.Sustained} {
			rates[i] += r * p.LoadSec
		}
		lat, ack = append(lat, p.Latency), append(ack, p.AckLatency)
	}
	if m.LoadSec > 0 {
		m.IngestRate, m.DeliveryRate = rates[0]/m.LoadSec, rates[1]/m.LoadSec
		m.DeliveryRateOverall, m.Sustained = rates[2]/m.LoadSec, rates[3]/m.LoadSec
	}
	m.Latency, m.AckLatency = mergeLatency(lat), mergeLatency(ack)
	return m
}

func mergeLatency(ls []Latency) Latency {
	var m Latency
	for _, l := range ls {
		m.N += l.N
		m.Max = max(m.Max, l.Max)
	}
	if m.N == 0 {
		return m
	}
	for _, l := range ls {
		w := float64(l.N) / float64(m.N)
		m.Mean += w * l.Mean
		m.P50 += w * l.P50
		m.P95 += w * l.P95
		m.P99 += w * l.P99
	}
	return m
}

// mergeProcs combines the relay process's figures of its runs: CPU seconds
// add up, cores and shares are means, the RSS maximum the largest.
func mergeProcs(ps []*phaseStats) *phaseStats {
	m := &phaseStats{}
	n := float64(len(ps))
	for _, p := range ps {
		m.RSSMaxMB = max(m.RSSMaxMB, p.RSSMaxMB)
		m.RSSMeanMB += p.RSSMeanMB / n
		m.RSSEndMB = p.RSSEndMB
		m.CPUSec += p.CPUSec
		m.CPUCores += p.CPUCores / n
		m.BenchCores += p.BenchCores / n
		m.MachineBusy += p.MachineBusy / n
		m.CPUStall += p.CPUStall / n
		m.IOStall += p.IOStall / n
	}
	return m
}
