package storetest

import (
	"fmt"
	"reflect"
	"testing"
	"time"

	"github.com/livehooks/livehooks"
)

var fileJobTests = map[string]func(t *testing.T, s livehooks.Store){
	// A stream's jobs are worked one at a time in order; a job is leased by
	// the node that added it until the lease runs out; a retry puts it back
	// until its next attempt.
	"ClaimOrderAndLeases": func(t *testing.T, s livehooks.Store) {
		a := livehooks.StreamKey{ProjectID: "p", PublishDomain: "d.example.com", App: "live", Stream: "a"}
		b := livehooks.StreamKey{ProjectID: "p", PublishDomain: "d.example.com", App: "live", Stream: "b"}
		job := func(k livehooks.StreamKey, name string) *livehooks.FileJob {
			return &livehooks.FileJob{StreamKey: k, Path: "/rec/" + name, Duration: 1500 * time.Millisecond, FinishedAt: at(1)}
		}
		add := func(node string, now time.Time, jobs ...*livehooks.FileJob) {
			t.Helper()
			err := s.Write(ctx, func(tx livehooks.OutboxTx) error {
				for _, j := range jobs {
					if err := tx.AddFileJob(ctx, node, now, time.Minute, j); err != nil {
						return err
					}
				}
				return nil
			})
			if err != nil {
				t.Fatal(err)
			}
		}
		add("n1", at(0), job(a, "a1.flv"), job(b, "b1.flv"))
		add("n1", at(0), job(a, "a2.flv"))
		claim := func(node string, now time.Time) []string {
			t.Helper()
			js, err := s.ClaimFileJobs(ctx, node, now, time.Minute, 10)
			if err != nil {
				t.Fatal(err)
			}
			var out []string
			for _, j := range js {
				out = append(out, j.Path)
			}
			return out
		}
		want := func(got []string, want ...string) {
			t.Helper()
			if fmt.Sprint(got) != fmt.Sprint(want) {
				t.Fatalf("claimed %v, want %v", got, want)
			}
		}
		want(claim("n2", at(1)))                                      // n1's lease
		js, err := s.ClaimFileJobs(ctx, "n1", at(1), time.Minute, 10) // the heads only
		if err != nil || len(js) != 2 {
			t.Fatalf("claim: %v %v", js, err)
		}
		ja := js[0]
		if ja.Path != "/rec/a1.flv" || ja.StreamKey != a || ja.Duration != 1500*time.Millisecond || !ja.FinishedAt.Equal(at(1)) ||
			!ja.NextAttempt.Equal(at(0)) || !ja.CreatedAt.Equal(at(0)) || ja.Attempts != 0 || js[1].Path != "/rec/b1.flv" {
			t.Fatalf("claimed %+v %+v", ja, js[1])
		}
		if err := s.RetryFileJob(ctx, "n2", ja.ID, 1, at(30), "refused"); livehooks.ErrorCode(err) != livehooks.ENOTFOUND {
			t.Fatalf("retry by another node: %v", err)
		}
		if err := s.RetryFileJob(ctx, "n1", ja.ID, 1, at(30), "refused"); err != nil {
			t.Fatal(err)
		}
		want(claim("n1", at(2)), "/rec/b1.flv")  // a1 waits, a2 behind it
		want(claim("n2", at(31)), "/rec/a1.flv") // free again, due
		js, _ = s.ClaimFileJobs(ctx, "n2", at(31), time.Minute, 10)
		if len(js) != 1 || js[0].Attempts != 1 || js[0].LastError != "refused" || !js[0].NextAttempt.Equal(at(30)) {
			t.Fatalf("after a retry: %+v", js)
		}
		want(claim("n2", at(62)), "/rec/a1.flv", "/rec/b1.flv") // n1's lease on b1 ran out
		if err := s.RenewFileJobs(ctx, "n2", at(200)); err != nil {
			t.Fatal(err)
		}
		want(claim("n1", at(150)))
		if err := s.ReleaseFileJobs(ctx, "n2"); err != nil {
			t.Fatal(err)
		}
		// Finishing the head lets the next job of its stream go.
		if err := s.Write(ctx, func(tx livehooks.OutboxTx) error { return tx.FinishFileJob(ctx, ja.ID, "") }); err != nil {
			t.Fatal(err)
		}
		want(claim("n1", at(151)), "/rec/b1.flv", "/rec/a2.flv")
	},
	// Nodes claiming at the same time never get the same job.
	"ConcurrentClaims": func(t *testing.T, s livehooks.Store) {
		const n = 40
		write(t, s, func(tx livehooks.OutboxTx) error {
			for i := range n {
				k := livehooks.StreamKey{ProjectID: "p", PublishDomain: "d.example.com", App: "live", Stream: fmt.Sprintf("s%d", i)}
				if err := tx.AddFileJob(ctx, "gone", at(0), time.Second, &livehooks.FileJob{StreamKey: k, Path: "/rec/f.flv", FinishedAt: at(0)}); err != nil {
					return err
				}
			}
			return nil
		})
		type claim struct {
			node string
			ids  []int64
			err  error
		}
		out := make(chan claim)
		for _, node := range []string{"n1", "n2", "n3"} {
			go func() {
				c := claim{node: node}
				for range 5 {
					js, err := s.ClaimFileJobs(ctx, node, at(10), time.Minute, n)
					if err != nil {
						c.err = err
						break
					}
					for _, j := range js {
						c.ids = append(c.ids, j.ID)
					}
				}
				out <- c
			}()
		}
		owner := map[int64]string{}
		for range 3 {
			c := <-out
			if c.err != nil {
				t.Fatal(c.err)
			}
			for _, id := range c.ids {
				if o, ok := owner[id]; ok && o != c.node {
					t.Fatalf("job %d claimed by %s and %s", id, o, c.node)
				}
				owner[id] = c.node
			}
		}
		if len(owner) != n {
			t.Fatalf("%d jobs claimed, want %d", len(owner), n)
		}
	},
	// A job finished with its event stays, no longer worked, until deleted,
	// and tells how that event's deliveries went.
	"FinishedJobs": func(t *testing.T, s livehooks.Store) {
		create(t, s, config("p1", "d1.example.com", "live"))
		k := livehooks.StreamKey{ProjectID: "p1", PublishDomain: "d1.example.com", App: "live", Stream: "cam"}
		err := s.Write(ctx, func(tx livehooks.OutboxTx) error {
			return tx.AddFileJob(ctx, "n1", at(0), time.Minute, &livehooks.FileJob{StreamKey: k, Path: "/rec/a.flv", FinishedAt: at(0)})
		})
		if err != nil {
			t.Fatal(err)
		}
		js, err := s.ClaimFileJobs(ctx, "n1", at(0), time.Minute, 10)
		if err != nil || len(js) != 1 {
			t.Fatalf("claim: %v %v", js, err)
		}
		e := event("live", "cam", livehooks.RecordFileComplete)
		e.ID, e.OccurredAt = newID(), at(1)
		err = s.Write(ctx, func(tx livehooks.OutboxTx) error {
			if _, err := tx.Enqueue(ctx, "n1", at(1), []*livehooks.Event{e}); err != nil {
				return err
			}
			return tx.FinishFileJob(ctx, js[0].ID, e.ID)
		})
		if err != nil {
			t.Fatal(err)
		}
		if got, _ := s.ClaimFileJobs(ctx, "n1", at(2), time.Minute, 10); len(got) != 0 {
			t.Fatalf("a finished job is claimed: %+v", got)
		}
		done, err := s.FinishedFileJobs(ctx, 10)
		if err != nil {
			t.Fatal(err)
		}
		wantDone := []*livehooks.FinishedFileJob{{ID: js[0].ID, ProjectID: "p1", Path: "/rec/a.flv", EventID: e.ID, Pending: 1}}
		if !reflect.DeepEqual(done, wantDone) {
			t.Fatalf("finished: %+v, want %+v", done[0], wantDone[0])
		}
		if err := s.DeleteFileJob(ctx, js[0].ID); err != nil {
			t.Fatal(err)
		}
		if done, _ := s.FinishedFileJobs(ctx, 10); len(done) != 0 {
			t.Fatalf("after delete: %+v", done)
		}
	},
	// A file an unfinished job names is pending (the served-recordings cap
	// keeps it); once the job is finished it is not.
	"PendingByPath": func(t *testing.T, s livehooks.Store) {
		k := livehooks.StreamKey{ProjectID: "p", PublishDomain: "d.example.com", App: "live", Stream: "cam"}
		var id int64
		err := s.Write(ctx, func(tx livehooks.OutboxTx) error {
			j := &livehooks.FileJob{StreamKey: k, Path: "/rec/pending.flv", FinishedAt: at(0)}
			if err := tx.AddFileJob(ctx, "n1", at(0), time.Minute, j); err != nil {
				return err
			}
			id = j.ID
			return nil
		})
		if err != nil {
			t.Fatal(err)
		}
		pending := func(path string) bool {
			t.Helper()
			ok, err := s.FileJobPending(ctx, path)
			if err != nil {
				t.Fatal(err)
			}
			return ok
		}
		if !pending("/rec/pending.flv") || pending("/rec/other.flv") || pending("/rec/pending") {
			t.Fatal("pending by path")
		}
		if id == 0 {
			js, _ := s.ClaimFileJobs(ctx, "n1", at(0), time.Minute, 10)
			id = js[0].ID
		}
		if err := s.Write(ctx, func(tx livehooks.OutboxTx) error { return tx.FinishFileJob(ctx, id, "") }); err != nil {
			t.Fatal(err)
		}
		if pending("/rec/pending.flv") {
			t.Fatal("a finished job's file is pending")
		}
	},
}
