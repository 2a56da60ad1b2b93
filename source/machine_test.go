package source_test

import (
	"context"
	"crypto/rand"
	"fmt"
	"path/filepath"
	"testing"
	"time"

	"github.com/livehooks/livehooks"
	"github.com/livehooks/livehooks/aesgcm"
	"github.com/livehooks/livehooks/groupcommit"
	"github.com/livehooks/livehooks/recording"
	"github.com/livehooks/livehooks/source"
	"github.com/livehooks/livehooks/source/sourcetest"
	"github.com/livehooks/livehooks/store/sqlite"
)

// TestWithTheRecordingMachine runs the pipeline into the real machine and
// store: the events carry what the file says.
func TestWithTheRecordingMachine(t *testing.T) {
	t.Parallel()
	key := make([]byte, 32)
	_, _ = rand.Read(key)
	c, _ := aesgcm.New(key)
	ctx := context.Background()
	db, err := sqlite.Open(ctx, sqlite.Options{Path: filepath.Join(t.TempDir(), "db"), Cipher: c, Synchronous: "NORMAL"})
	if err != nil {
		t.Fatal(err)
	}
	gc := groupcommit.New(db, groupcommit.Options{Node: "n1"})
	m := recording.New(recording.Options{Committer: gc, Domains: db, TimerInterval: 10 * time.Millisecond, NextFileDelay: 50 * time.Millisecond})
	gctx, stop := context.WithCancel(ctx)
	done := make(chan struct{})
	go func() { gc.Run(gctx); close(done) }()
	t.Cleanup(func() { stop(); <-done; db.Close() })

	now := time.Now()
	cfg := &livehooks.CallbackConfig{ID: "0123456789abcdef0123456789abcdef", ProjectID: "p", PublishDomain: "push.example.com", App: "*",
		NotifyEventSubscription: livehooks.EventTypes, SignType: "HMACSHA256", CreateTime: now, UpdateTime: now}
	if err := db.CreateCallback(ctx, cfg); err != nil {
		t.Fatal(err)
	}
	dir := t.TempDir()
	src, err := source.New(source.Options{Machine: m, Callbacks: db, Jobs: db, Node: "n1", RecordDirs: []string{dir}, JobPoll: 10 * time.Millisecond})
	if err != nil {
		t.Fatal(err)
	}
	wctx, stopWorker := context.WithCancel(ctx)
	workerDone := make(chan struct{})
	go func() { src.RunFileJobs(wctx); close(workerDone) }()
	t.Cleanup(func() { stopWorker(); <-workerDone; src.Close() })

	if a, err := src.Publish(ctx, cam1, ""); err != nil || a != source.Recorded {
		t.Fatalf("publish: %v %v", a, err)
	}
	if err := src.FileDone(ctx, cam1, sourcetest.CopyFixture(t, "video.flv", dir, "cam1-1.flv"), source.FileHint{}); err != nil {
		t.Fatal(err)
	}
	events := func(n int) []*livehooks.Event {
		t.Helper()
		deadline := time.Now().Add(10 * time.Second)
		for {
			evs, err := db.FindEvents(ctx, cfg, time.Time{}, time.Now().Add(time.Hour), 100)
			if err != nil {
				t.Fatal(err)
			}
			if len(evs) >= n || time.Now().After(deadline) {
				return evs
			}
			time.Sleep(10 * time.Millisecond)
		}
	}
	events(3)
	if err := src.FileDone(ctx, cam1, "/etc/passwd", source.FileHint{}); err != nil {
		t.Fatal(err)
	}
	evs := events(4)
	var got []string
	for _, e := range evs {
		got = append(got, fmt.Sprintf("%s size=%d dur=%d %dx%d %s %q", e.Type, e.FileSize, e.RecordDuration, e.Width, e.Height, e.RecordFormat, e.ErrorMessage))
	}
	want := []string{
		`RECORD_START size=0 dur=0 0x0 FLV ""`,
		`RECORD_NEW_FILE_START size=0 dur=0 0x0 FLV ""`,
		`RECORD_FILE_COMPLETE size=25168 dur=2 320x240 FLV ""`,
		`RECORD_FAILED size=0 dur=0 0x0 FLV "file outside the record directories"`,
	}
	if fmt.Sprint(got) != fmt.Sprint(want) {
		t.Fatalf("events:\n%q\nwant:\n%q", got, want)
	}
}
