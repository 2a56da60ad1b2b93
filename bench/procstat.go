package main

import (
	"bytes"
	"context"
	"fmt"
	"os"
	"strconv"
	"strings"
	"sync"
	"time"
)

// clockTicks is USER_HZ, the unit of utime and stime in /proc/<pid>/stat. It
// is 100 on every Linux architecture Go supports.
const clockTicks = 100

// procSample is one reading of a process.
type procSample struct {
	At       time.Duration `json:"t_ns"`        // since the sampler started
	RSSKB    int64         `json:"rss_kb"`      // livehooks
	CPU      float64       `json:"cpu_s"`       // livehooks user+system seconds so far
	BenchCPU float64       `json:"bench_cpu_s"` // this process (clients and receivers)
	// MachineBusy and MachineTotal are /proc/stat's busy and total CPU
	// seconds (all CPUs) so far.
	MachineBusy  float64 `json:"machine_busy_s"`
	MachineTotal float64 `json:"machine_total_s"`
	// CPUStall and IOStall are /proc/pressure's "some" totals (seconds during
	// which at least one task waited for a CPU, for I/O): the machine's
	// contention, whoever caused it.
	CPUStall float64 `json:"cpu_stall_s"`
	IOStall  float64 `json:"io_stall_s"`
	Phase    string  `json:"phase,omitempty"`
	// Nodes are the readings of each livehooks process when several run
	// (multi-node mode); RSSKB and CPU above are their sums. A node down
	// at the time reads RSS 0; its CPU counts every life so far.
	Nodes []procReading `json:"nodes,omitempty"`
}

// procReading is one process's RSS and CPU.
type procReading struct {
	RSSKB int64   `json:"rss_kb"`
	CPU   float64 `json:"cpu_s"`
}

// procTarget is a process to sample: its pid (0 when it is not running) and
// the CPU seconds of its earlier lives (a node restarted after a kill).
type procTarget struct {
	pid     int
	baseCPU float64
}

// sampler reads /proc/<pid>/status (VmRSS) and /proc/<pid>/stat (utime,
// stime) of its targets at a fixed interval.
type sampler struct {
	targets func() []procTarget
	start   time.Time
	mu      sync.Mutex
	samples []procSample
	phase   string
	stop    context.CancelFunc
	done    chan struct{}
}

// startSampler samples one process.
func startSampler(pid int, every time.Duration) *sampler {
	return startMultiSampler(func() []procTarget { return []procTarget{{pid: pid}} }, every)
}

// startMultiSampler samples the processes targets returns at each reading
// (several livehooks nodes, which a kill and a restart may change).
func startMultiSampler(targets func() []procTarget, every time.Duration) *sampler {
	ctx, cancel := context.WithCancel(context.Background())
	s := &sampler{targets: targets, start: time.Now(), stop: cancel, done: make(chan struct{})}
	go func() {
		defer close(s.done)
		t := time.NewTicker(every)
		defer t.Stop()
		for {
			s.sample()
			select {
			case <-ctx.Done():
				return
			case <-t.C:
			}
		}
	}()
	return s
}

// setPhase labels the following samples.
func (s *sampler) setPhase(p string) {
	s.mu.Lock()
	s.phase = p
	s.mu.Unlock()
	s.sample()
}

// read returns the sum over the targets and, with several, each one.
func (s *sampler) read() (sum procReading, each []procReading, ok bool) {
	ts := s.targets()
	for _, t := range ts {
		r := procReading{CPU: t.baseCPU}
		if t.pid > 0 {
			if rss, cpu, err := readProc(t.pid); err == nil {
				r.RSSKB, r.CPU = rss, t.baseCPU+cpu
				ok = true
			}
		}
		sum.RSSKB += r.RSSKB
		sum.CPU += r.CPU
		if len(ts) > 1 {
			each = append(each, r)
		}
	}
	return sum, each, ok || len(ts) > 1
}

func (s *sampler) sample() {
	sum, each, ok := s.read()
	if !ok {
		return
	}
	_, bench, _ := readProc(os.Getpid())
	busy, total := readMachine()
	s.mu.Lock()
	s.samples = append(s.samples, procSample{At: time.Since(s.start), RSSKB: sum.RSSKB, CPU: sum.CPU, BenchCPU: bench,
		MachineBusy: busy, MachineTotal: total, CPUStall: readPressure("cpu"), IOStall: readPressure("io"), Phase: s.phase, Nodes: each})
	s.mu.Unlock()
}

// readPressure returns the "some" stall total of /proc/pressure/<kind> in
// seconds, 0 where PSI is not available.
func readPressure(kind string) float64 {
	b, err := os.ReadFile("/proc/pressure/" + kind)
	if err != nil {
		return 0
	}
	line, _, _ := strings.Cut(string(b), "\n")
	_, total, ok := strings.Cut(line, "total=")
	if !ok || !strings.HasPrefix(line, "some") {
		return 0
	}
	us, _ := strconv.ParseFloat(strings.TrimSpace(total), 64)
	return us / 1e6
}

// readMachine returns the busy and total CPU seconds of all CPUs from the
// first line of /proc/stat (idle and iowait count as not busy).
func readMachine() (busy, total float64) {
	b, err := os.ReadFile("/proc/stat")
	if err != nil {
		return 0, 0
	}
	line, _, _ := strings.Cut(string(b), "\n")
	f := strings.Fields(line)
	if len(f) < 8 || f[0] != "cpu" {
		return 0, 0
	}
	for i, v := range f[1:] {
		if i >= 8 { // guest time is already in user
			break
		}
		n, _ := strconv.ParseFloat(v, 64)
		total += n
		if i != 3 && i != 4 { // idle, iowait
			busy += n
		}
	}
	return busy / clockTicks, total / clockTicks
}

func (s *sampler) finish() []procSample {
	s.sample()
	s.stop()
	<-s.done
	s.mu.Lock()
	defer s.mu.Unlock()
	return append([]procSample(nil), s.samples...)
}

// now returns the latest reading (summed over the targets).
func (s *sampler) now() procSample {
	sum, _, _ := s.read()
	return procSample{At: time.Since(s.start), RSSKB: sum.RSSKB, CPU: sum.CPU}
}

func readProc(pid int) (rssKB int64, cpuSec float64, err error) {
	status, err := os.ReadFile(fmt.Sprintf("/proc/%d/status", pid))
	if err != nil {
		return 0, 0, err
	}
	for _, line := range strings.Split(string(status), "\n") {
		if v, ok := strings.CutPrefix(line, "VmRSS:"); ok {
			f := strings.Fields(v)
			if len(f) > 0 {
				rssKB, _ = strconv.ParseInt(f[0], 10, 64)
			}
		}
	}
	stat, err := os.ReadFile(fmt.Sprintf("/proc/%d/stat", pid))
	if err != nil {
		return 0, 0, err
	}
	// The command name (field 2) may hold spaces: fields count from the last ')'.
	i := bytes.LastIndexByte(stat, ')')
	if i < 0 {
		return 0, 0, fmt.Errorf("/proc/%d/stat: unexpected format", pid)
	}
	f := strings.Fields(string(stat[i+1:]))
	// After ')': state(3) ppid … utime is field 14, stime 15 → indexes 11, 12.
	if len(f) < 13 {
		return 0, 0, fmt.Errorf("/proc/%d/stat: unexpected format", pid)
	}
	ut, _ := strconv.ParseInt(f[11], 10, 64)
	st, _ := strconv.ParseInt(f[12], 10, 64)
	return rssKB, float64(ut+st) / clockTicks, nil
}

// phaseStats summarizes the samples of one phase: peak and mean RSS, CPU
// used (cores) over the phase.
type phaseStats struct {
	RSSMaxMB  float64 `json:"rss_max_mb"`
	RSSMeanMB float64 `json:"rss_mean_mb"`
	RSSEndMB  float64 `json:"rss_end_mb"`
	CPUCores  float64 `json:"cpu_cores"` // CPU seconds per second
	CPUSec    float64 `json:"cpu_s"`
	// BenchCores is the bench process's own use (clients and receivers);
	// MachineBusy the share of all CPUs busy, whoever used them.
	BenchCores  float64 `json:"bench_cpu_cores"`
	MachineBusy float64 `json:"machine_busy"`
	// CPUStall and IOStall are the shares of the phase during which some
	// task on the machine waited for a CPU or for I/O (PSI).
	CPUStall float64 `json:"cpu_stall"`
	IOStall  float64 `json:"io_stall"`
	// Nodes are each livehooks node's figures in multi-node mode (the
	// figures above are their sums; RSSMaxMB the largest sum).
	Nodes []nodePhaseStats `json:"nodes,omitempty"`
}

// nodePhaseStats is one node's share of a phase's RSS and CPU.
type nodePhaseStats struct {
	RSSMaxMB float64 `json:"rss_max_mb"`
	CPUCores float64 `json:"cpu_cores"`
	CPUSec   float64 `json:"cpu_s"`
}

func summarize(samples []procSample, phase string) phaseStats {
	var ps phaseStats
	var sum float64
	first, last := -1, -1
	for i, s := range samples {
		if phase != "" && s.Phase != phase {
			continue
		}
		if first < 0 {
			first = i
		}
		last = i
		mb := float64(s.RSSKB) / 1024
		ps.RSSMaxMB = max(ps.RSSMaxMB, mb)
		sum += mb
	}
	if first < 0 {
		return ps
	}
	ps.RSSMeanMB = sum / float64(last-first+1)
	ps.RSSEndMB = float64(samples[last].RSSKB) / 1024
	// The phase's CPU runs until the first sample of the next phase.
	end := last
	if end+1 < len(samples) {
		end++
	}
	a, b := samples[first], samples[end]
	ps.CPUSec = b.CPU - a.CPU
	if d := (b.At - a.At).Seconds(); d >= 1 {
		ps.CPUCores = ps.CPUSec / d
		ps.BenchCores = (b.BenchCPU - a.BenchCPU) / d
	}
	if d := (b.At - a.At).Seconds(); d > 0 {
		ps.CPUStall = (b.CPUStall - a.CPUStall) / d
		ps.IOStall = (b.IOStall - a.IOStall) / d
	}
	if t := b.MachineTotal - a.MachineTotal; t > 0 {
		ps.MachineBusy = (b.MachineBusy - a.MachineBusy) / t
	}
	if n := len(a.Nodes); n > 0 && len(b.Nodes) == n {
		ps.Nodes = make([]nodePhaseStats, n)
		for i := range n {
			ns := &ps.Nodes[i]
			ns.CPUSec = b.Nodes[i].CPU - a.Nodes[i].CPU
			if d := (b.At - a.At).Seconds(); d >= 1 {
				ns.CPUCores = ns.CPUSec / d
			}
			for _, smp := range samples[first : last+1] {
				if smp.Phase == phase || phase == "" {
					if i < len(smp.Nodes) {
						ns.RSSMaxMB = max(ns.RSSMaxMB, float64(smp.Nodes[i].RSSKB)/1024)
					}
				}
			}
		}
	}
	return ps
}

// rssPerProcess is the largest RSS of one livehooks process: the peak sum,
// or, with several nodes, the largest node's peak (the targets are per
// process).
func (ps phaseStats) rssPerProcess() float64 {
	if len(ps.Nodes) == 0 {
		return ps.RSSMaxMB
	}
	var m float64
	for _, n := range ps.Nodes {
		m = max(m, n.RSSMaxMB)
	}
	return m
}
