package main

import (
	"os"
	"path/filepath"
	"sync"
	"time"
)

// fsyncProbe writes 4 KiB and fsyncs a file next to livehooks' data every
// 100 ms and keeps the latencies: a latency spike of livehooks that lines up
// with a slow fsync here comes from the disk (on a shared machine, from
// another tenant), not from livehooks.
type fsyncProbe struct {
	mu      sync.Mutex
	start   time.Time
	samples []fsyncSample
	stop    chan struct{}
	done    chan struct{}
}

type fsyncSample struct {
	at  time.Duration // since start
	lat time.Duration
}

func startFsyncProbe(dir string) *fsyncProbe {
	p := &fsyncProbe{start: time.Now(), stop: make(chan struct{}), done: make(chan struct{})}
	go func() {
		defer close(p.done)
		f, err := os.OpenFile(filepath.Join(dir, "fsync-probe"), os.O_CREATE|os.O_RDWR, 0o600)
		if err != nil {
			return
		}
		defer os.Remove(f.Name())
		defer f.Close()
		buf := make([]byte, 4096)
		t := time.NewTicker(100 * time.Millisecond)
		defer t.Stop()
		for {
			select {
			case <-p.stop:
				return
			case <-t.C:
			}
			begin := time.Now()
			if _, err := f.WriteAt(buf, 0); err != nil {
				return
			}
			if err := f.Sync(); err != nil {
				return
			}
			p.mu.Lock()
			p.samples = append(p.samples, fsyncSample{at: begin.Sub(p.start), lat: time.Since(begin)})
			p.mu.Unlock()
		}
	}()
	return p
}

func (p *fsyncProbe) finish() []fsyncSample {
	close(p.stop)
	<-p.done
	p.mu.Lock()
	defer p.mu.Unlock()
	return p.samples
}

// fsyncStats summarizes the probe between two offsets from its start.
type fsyncStats struct {
	N         int     `json:"n"`
	P50       float64 `json:"p50_ms"`
	P99       float64 `json:"p99_ms"`
	Max       float64 `json:"max_ms"`
	Over100ms int     `json:"over_100ms"`
}

func summarizeFsync(ss []fsyncSample, from, to time.Duration) fsyncStats {
	var lats []int64
	st := fsyncStats{}
	for _, s := range ss {
		if s.at < from || s.at > to {
			continue
		}
		lats = append(lats, int64(s.lat))
		if s.lat > 100*time.Millisecond {
			st.Over100ms++
		}
	}
	l := percentiles(lats)
	st.N, st.P50, st.P99, st.Max = l.N, l.P50, l.P99, l.Max
	return st
}

// maxFsyncPerSecond returns the slowest probe fsync of each second from
// from, in milliseconds.
func maxFsyncPerSecond(ss []fsyncSample, from time.Duration) map[int]float64 {
	out := map[int]float64{}
	for _, s := range ss {
		if s.at < from {
			continue
		}
		sec := int((s.at - from) / time.Second)
		out[sec] = max(out[sec], float64(s.lat)/1e6)
	}
	return out
}
