// Command storebench measures the write path of livehooks without HTTP: the
// same packages as serve (SQLite store, group commit, recording machine) and
// the same operations per event (generic ingest: stream state read and write,
// event, delivery; then the attempt's result), with concurrent producers as
// ingest handlers and concurrent recorders as the dispatcher's attempts.
//
// The end-to-end bench shares two cores with its clients and receivers and,
// on a shared machine, with whatever else runs; this one isolates the single
// writer, which is what bounds durable throughput, and reports its CPU per
// event, which moves little with the machine's load. Use it to compare store
// and committer changes:
//
//	go run ./bench/storebench -events 40000 -cpuprofile /tmp/store.prof
//	go run ./bench/storebench -frames   # which tables and indexes each commit writes
//	go run ./bench/storebench -floor    # the same load on a one-table queue: SQLite's floor here
package main

import (
	"cmp"
	"context"
	"flag"
	"fmt"
	"log/slog"
	"os"
	"path/filepath"
	"runtime/pprof"
	"strconv"
	"sync"
	"sync/atomic"
	"syscall"
	"time"

	"github.com/livehooks/livehooks"
	"github.com/livehooks/livehooks/aesgcm"
	"github.com/livehooks/livehooks/groupcommit"
	"github.com/livehooks/livehooks/recording"
	"github.com/livehooks/livehooks/store/sqlite"
)

func main() {
	var (
		events      = flag.Int("events", 40000, "events to ingest")
		producers   = flag.Int("producers", 32, "concurrent ingest callers (one event per call)")
		recorders   = flag.Int("recorders", 160, "concurrent result recorders (the dispatcher's attempts in flight)")
		streams     = flag.Int("streams", 1000, "distinct streams")
		configs     = flag.Int("configs", 10, "callback configs (apps)")
		syncMode    = flag.String("sync", "FULL", "SQLite synchronous mode")
		dir         = flag.String("dir", "", "data directory (default a temporary one; use a real disk)")
		cpuprofile  = flag.String("cpuprofile", "", "write a CPU profile of the run here")
		recordDelay = flag.Duration("attempt", 500*time.Microsecond, "simulated HTTP attempt time before a result is recorded")
		frames      = flag.Bool("frames", false, "after the run, name the tables and indexes whose pages the last commits wrote (WAL frames per commit)")
		floorOnly   = flag.Bool("floor", false, "measure only the floor: a durable queue of one row in and out per event on the same SQLite, with the same concurrency")
	)
	flag.Parse()
	var err error
	if *floorOnly {
		err = floor(*events, *producers, *recorders, cmp.Or(*dir, os.TempDir()), *recordDelay)
	} else {
		err = run(*events, *producers, *recorders, *streams, *configs, *syncMode, *dir, *cpuprofile, *recordDelay, *frames)
	}
	if err != nil {
		fmt.Fprintln(os.Stderr, "storebench:", err)
		os.Exit(1)
	}
}

func run(events, producers, recorders, streams, configs int, syncMode, dir, cpuprofile string, attempt time.Duration, frames bool) error {
	ctx := context.Background()
	if dir == "" {
		d, err := os.MkdirTemp("", "livehooks-storebench-")
		if err != nil {
			return err
		}
		defer os.RemoveAll(d)
		dir = d
	}
	key := make([]byte, 32)
	cipher, err := aesgcm.New(key)
	if err != nil {
		return err
	}
	store, err := sqlite.Open(ctx, sqlite.Options{Path: filepath.Join(dir, "livehooks.db"), Cipher: cipher, Synchronous: syncMode})
	if err != nil {
		return err
	}
	defer store.Close()
	now := time.Now().UTC()
	for i := range configs {
		c := &livehooks.CallbackConfig{
			ID: fmt.Sprintf("%032x", i+1), ProjectID: "bench", PublishDomain: "bench.example.com", App: "r" + strconv.Itoa(i),
			NotifyCallbackURL: "http://127.0.0.1:9/hook", NotifyEventSubscription: livehooks.EventTypes,
			SignType: livehooks.SignHMACSHA256, Key: "benchKey0123456789abcdefghijklmnop", CreateTime: now, UpdateTime: now,
		}
		if err := store.CreateCallback(ctx, c); err != nil {
			return err
		}
	}

	deliveries := make(chan *livehooks.Delivery, 1<<20)
	committer := groupcommit.New(store, groupcommit.Options{
		Node: "storebench", Logger: slog.New(slog.DiscardHandler),
		OnCommit: func(effects []groupcommit.Effect) {
			for _, e := range effects {
				for _, d := range e.Enqueued {
					deliveries <- d
				}
			}
		},
	})
	runCtx, stop := context.WithCancel(ctx)
	defer stop()
	done := make(chan struct{})
	go func() { committer.Run(runCtx); close(done) }()
	machine := recording.New(recording.Options{Committer: committer, Domains: store})

	if cpuprofile != "" {
		f, err := os.Create(cpuprofile)
		if err != nil {
			return err
		}
		if err := pprof.StartCPUProfile(f); err != nil {
			return err
		}
		defer func() { pprof.StopCPUProfile(); f.Close() }()
	}
	cpu0 := cpuSeconds()
	start := time.Now()

	var (
		next, recorded atomic.Int64
		wg, rwg        sync.WaitGroup
		errs           atomic.Int64
	)
	allRecorded := make(chan struct{})
	for range recorders {
		rwg.Add(1)
		go func() {
			defer rwg.Done()
			for d := range deliveries {
				if attempt > 0 {
					time.Sleep(attempt)
				}
				at := time.Now()
				_, err := committer.Record(ctx, []livehooks.Result{{
					Delivery: d, Outcome: livehooks.OutcomeSucceeded,
					Attempt: livehooks.Attempt{N: d.Attempts + 1, At: at, StatusCode: 200, Latency: attempt},
				}})
				if err != nil {
					errs.Add(1)
				}
				if recorded.Add(1) == int64(events) {
					close(allRecorded)
				}
			}
		}()
	}
	for w := range producers {
		wg.Add(1)
		go func() {
			defer wg.Done()
			k := 0
			for {
				seq := next.Add(1) - 1
				if seq >= int64(events) {
					return
				}
				s := w + producers*(k%max(1, streams/producers))
				k++
				e := &livehooks.Event{
					ProjectID: "bench", Type: livehooks.RecordFileComplete, PublishDomain: "bench.example.com",
					App: "r" + strconv.Itoa(s%configs), Stream: "s" + strconv.Itoa(s), TaskID: "t" + strconv.FormatInt(seq, 10),
					RecordFormat: "FLV", DownloadURL: "https://cdn.bench.example.com/x.flv", FileSize: 10485760,
					RecordDuration: 60, Width: 1280, Height: 720,
				}
				if err := machine.Ingest(ctx, []*livehooks.Event{e}); err != nil {
					errs.Add(1)
				}
			}
		}()
	}
	wg.Wait()
	ingested := time.Since(start)
	select {
	case <-allRecorded:
	case <-time.After(2 * time.Minute):
		return fmt.Errorf("only %d of %d results recorded after 2 minutes", recorded.Load(), events)
	}
	elapsed := time.Since(start)
	cpu1 := cpuSeconds()
	close(deliveries)
	rwg.Wait()
	stop()
	<-done

	cpu := cpu1 - cpu0
	fmt.Printf("events %d, producers %d, recorders %d, streams %d, sync %s\n", events, producers, recorders, streams, syncMode)
	fmt.Printf("ingest %.0f events/s; ingested and recorded %.0f events/s (%.2fs)\n",
		float64(events)/ingested.Seconds(), float64(events)/elapsed.Seconds(), elapsed.Seconds())
	fmt.Printf("CPU %.2fs = %.0f µs per event (%.2f cores); errors %d\n", cpu, cpu/float64(events)*1e6, cpu/elapsed.Seconds(), errs.Load())
	if frames {
		return walFrames(os.Stdout, filepath.Join(dir, "livehooks.db"))
	}
	return nil
}

// cpuSeconds is the CPU time the process used so far, user and system.
func cpuSeconds() float64 {
	var ru syscall.Rusage
	_ = syscall.Getrusage(syscall.RUSAGE_SELF, &ru)
	tv := func(t syscall.Timeval) float64 { return float64(t.Sec) + float64(t.Usec)/1e6 }
	return tv(ru.Utime) + tv(ru.Stime)
}
