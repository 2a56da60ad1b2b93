package recording_test

import (
	"context"
	"crypto/rand"
	"testing"
	"time"

	"github.com/livehooks/livehooks"
	"github.com/livehooks/livehooks/aesgcm"
	"github.com/livehooks/livehooks/groupcommit"
	"github.com/livehooks/livehooks/recording"
	"github.com/livehooks/livehooks/store/sqlite"
)

type node struct {
	db      *sqlite.DB
	machine *recording.Machine
	stop    func()
}

// start opens the store at path and runs a committer and a machine on it,
// as serve does.
func start(t *testing.T, path string, key []byte) *node {
	t.Helper()
	c, _ := aesgcm.New(key)
	db, err := sqlite.Open(context.Background(), sqlite.Options{Path: path, Cipher: c})
	if err != nil {
		t.Fatal(err)
	}
	gc := groupcommit.New(db, groupcommit.Options{Node: "n1"})
	m := recording.New(recording.Options{Committer: gc, Domains: db, TimerInterval: 10 * time.Millisecond, NextFileDelay: 50 * time.Millisecond})
	ctx, cancel := context.WithCancel(context.Background())
	mctx, mcancel := context.WithCancel(context.Background())
	gdone, mdone := make(chan struct{}), make(chan struct{})
	go func() { gc.Run(ctx); close(gdone) }()
	go func() { m.Run(mctx); close(mdone) }()
	n := &node{db: db, machine: m}
	n.stop = func() { mcancel(); <-mdone; cancel(); <-gdone; db.Close() }
	return n
}

func eventTypes(t *testing.T, db *sqlite.DB, c *livehooks.CallbackConfig) []string {
	t.Helper()
	evs, err := db.FindEvents(context.Background(), c, time.Time{}, time.Now().Add(time.Hour), 100)
	if err != nil {
		t.Fatal(err)
	}
	var out []string
	for _, e := range evs {
		out = append(out, string(e.Type)+" "+e.TaskID[:4]+"/"+e.JobID)
	}
	return out
}

// TestTimersSurviveRestart: a paused stream's RECORD_OVER fires after a
// restart, from the timer kept in the store, with the recorder's format kept
// there too; a republish within the pause continues the task across the
// restart.
func TestTimersSurviveRestart(t *testing.T) {
	path := t.TempDir() + "/rec.db"
	key := make([]byte, 32)
	_, _ = rand.Read(key)
	ctx := context.Background()
	key1 := livehooks.StreamKey{ProjectID: "p", PublishDomain: "push.example.com", App: "live", Stream: "cam1"}
	key2 := key1
	key2.Stream = "cam2"

	n := start(t, path, key)
	now := time.Now()
	if err := n.db.PutDomain(ctx, &livehooks.DomainSettings{ProjectID: "p", PublishDomain: "push.example.com", RecordFormat: "FLV",
		MaxPause: 400 * time.Millisecond, CreateTime: now, UpdateTime: now}); err != nil {
		t.Fatal(err)
	}
	cfg := &livehooks.CallbackConfig{ID: "0123456789abcdef0123456789abcdef", ProjectID: "p", PublishDomain: "push.example.com", App: "*",
		NotifyEventSubscription: livehooks.EventTypes, SignType: "HMACSHA256", CreateTime: now, UpdateTime: now}
	if err := n.db.CreateCallback(ctx, cfg); err != nil {
		t.Fatal(err)
	}
	for _, sig := range []recording.Signal{
		{Kind: recording.Publish, Stream: key1, Format: livehooks.FormatMP4}, {Kind: recording.Unpublish, Stream: key1},
		{Kind: recording.Publish, Stream: key2}, {Kind: recording.Unpublish, Stream: key2},
	} {
		if _, err := n.machine.Signal(ctx, sig); err != nil {
			t.Fatal(err)
		}
	}
	n.stop() // "crash" before the pause runs out

	n = start(t, path, key)
	defer n.stop()
	// cam2 comes back within the pause: same task, new file.
	evs, err := n.machine.Signal(ctx, recording.Signal{Kind: recording.Publish, Stream: key2})
	if err != nil || len(evs) != 1 || evs[0].Type != livehooks.RecordNewFileStart {
		t.Fatalf("republish within the pause: %v %v", evs, err)
	}
	deadline := time.Now().Add(5 * time.Second)
	for {
		var overs []*livehooks.Event
		all, _ := n.db.FindEvents(ctx, cfg, time.Time{}, time.Now().Add(time.Hour), 100)
		for _, e := range all {
			if e.Type == livehooks.RecordOver {
				overs = append(overs, e)
			}
		}
		if len(overs) == 1 {
			if overs[0].Stream != "cam1" || overs[0].RecordFormat != livehooks.FormatMP4 {
				t.Fatalf("RECORD_OVER for %s with record_format %s, want cam1 and the recorder's MP4 (the domain says FLV)", overs[0].Stream, overs[0].RecordFormat)
			}
			break
		}
		if time.Now().After(deadline) {
			t.Fatalf("no RECORD_OVER after restart: %v", eventTypes(t, n.db, cfg))
		}
		time.Sleep(20 * time.Millisecond)
	}
	// Every event has a delivery to the config, and cam2's task is one task.
	all, _ := n.db.FindEvents(ctx, cfg, time.Time{}, time.Now().Add(time.Hour), 100)
	tasks := map[string]map[string]bool{}
	for _, e := range all {
		if tasks[e.Stream] == nil {
			tasks[e.Stream] = map[string]bool{}
		}
		tasks[e.Stream][e.TaskID] = true
	}
	if len(tasks["cam1"]) != 1 || len(tasks["cam2"]) != 1 {
		t.Fatalf("tasks per stream: %v", tasks)
	}
	if _, total, _ := n.db.FindDeliveries(ctx, livehooks.DeliveryFilter{ProjectID: "p", ConfigID: cfg.ID}); total != len(all) {
		t.Fatalf("%d deliveries for %d events", total, len(all))
	}
}

// TestInvalidSignalIsRefused: names that cannot be a stream are a 4xx, not a
// stored state.
func TestInvalidSignalIsRefused(t *testing.T) {
	key := make([]byte, 32)
	n := start(t, t.TempDir()+"/rec.db", key)
	defer n.stop()
	for _, k := range []livehooks.StreamKey{
		{ProjectID: "p", PublishDomain: "bad domain", App: "live", Stream: "s"},
		{ProjectID: "p", PublishDomain: "push.example.com", App: "*", Stream: "s"},
		{ProjectID: "p", PublishDomain: "push.example.com", App: "live", Stream: "../x"},
	} {
		if _, err := n.machine.Signal(context.Background(), recording.Signal{Kind: recording.Publish, Stream: k}); livehooks.ErrorCode(err) != livehooks.EINVALID {
			t.Fatalf("%+v: %v", k, err)
		}
	}
}
