package storetest

import (
	"testing"
	"time"

	"github.com/livehooks/livehooks"
)

var recordingLogTests = map[string]func(t *testing.T, s livehooks.Store){
	"FindStreams": func(t *testing.T, s livehooks.Store) {
		put := func(project, domain, app, stream, state string) {
			st := &livehooks.StreamState{StreamKey: livehooks.StreamKey{ProjectID: project, PublishDomain: domain, App: app, Stream: stream},
				State: state, TaskID: "task-" + stream, JobID: "job-" + stream, FileSeq: 2, PublishedAt: base, FileStartedAt: at(5), UpdatedAt: at(6)}
			write(t, s, func(tx livehooks.OutboxTx) error { return tx.PutStream(ctx, st) })
		}
		put("p1", "d1.example.com", "live", "b", livehooks.StreamLive)
		put("p1", "d1.example.com", "live", "a", livehooks.StreamPaused)
		put("p1", "d1.example.com", "app0", "z", livehooks.StreamLive)
		put("p1", "d1.example.com", "live", "ended", livehooks.StreamOver)
		put("p1", "d2.example.com", "live", "other-domain", livehooks.StreamLive)
		put("p2", "d1.example.com", "live", "other-project", livehooks.StreamLive)
		got, err := s.FindStreams(ctx, "p1", "d1.example.com", 10)
		if err != nil {
			t.Fatal(err)
		}
		var names []string
		for _, st := range got {
			names = append(names, st.App+"/"+st.Stream+":"+st.State)
		}
		equalSlice(t, "streams", names, []string{"app0/z:live", "live/a:paused", "live/b:live"})
		equal(t, "task", got[2].TaskID, "task-b")
		equal(t, "file started", got[2].FileStartedAt, at(5))
		got, _ = s.FindStreams(ctx, "p1", "d1.example.com", 1)
		equal(t, "limit", len(got), 1)
	},
	"FindRecentEvents": func(t *testing.T, s livehooks.Store) {
		var ids []string
		for i, typ := range []livehooks.EventType{livehooks.RecordStart, livehooks.RecordFileComplete, livehooks.RecordOver} {
			e := event("live", "cam1", typ)
			e.ID = newID()
			ids = append(ids, e.ID)
			enqueue(t, s, "A", at(i*10), e)
		}
		other := event("live", "cam1", livehooks.RecordStart)
		other.PublishDomain = "d2.example.com"
		enqueue(t, s, "A", at(40), other)
		got, err := s.FindRecentEvents(ctx, "p1", "d1.example.com", time.Time{}, 10)
		if err != nil {
			t.Fatal(err)
		}
		var gotIDs []string
		for _, e := range got {
			gotIDs = append(gotIDs, e.ID)
		}
		equalSlice(t, "newest first", gotIDs, []string{ids[2], ids[1], ids[0]})
		equal(t, "ingested at", got[0].IngestedAt, at(20))
		got, _ = s.FindRecentEvents(ctx, "p1", "d1.example.com", at(20), 1)
		equal(t, "before, limit", len(got), 1)
		equal(t, "before, limit: the one", got[0].ID, ids[1])
	},
}
