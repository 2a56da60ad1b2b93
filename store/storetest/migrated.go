package storetest

import (
	"testing"
	"time"

	"github.com/livehooks/livehooks"
)

// FileJobsOnOldStream checks a store migrated from a schema before the file
// jobs: the stream key, stored by the old schema, has the state want (its
// State, TaskID, JobID and FileSeq) and no pending file, and file jobs are
// added with it, claimed and finished.
func FileJobsOnOldStream(t *testing.T, s livehooks.Store, key livehooks.StreamKey, want *livehooks.StreamState) {
	t.Helper()
	now := time.Now()
	write(t, s, func(tx livehooks.OutboxTx) error {
		st, err := tx.Stream(ctx, key)
		if err != nil {
			return err
		}
		if st == nil || st.State != want.State || st.TaskID != want.TaskID || st.JobID != want.JobID || st.FileSeq != want.FileSeq || st.PendingFiles != 0 {
			t.Fatalf("stream after the migration: %+v", st)
		}
		st.PendingFiles++
		if err := tx.PutStream(ctx, st); err != nil {
			return err
		}
		return tx.AddFileJob(ctx, "n1", now, time.Minute, &livehooks.FileJob{StreamKey: key, Path: "/rec/new.flv", FinishedAt: now})
	})
	jobs, err := s.ClaimFileJobs(ctx, "n1", now, time.Minute, 10)
	if err != nil || len(jobs) != 1 || jobs[0].Path != "/rec/new.flv" {
		t.Fatalf("claim: %+v %v", jobs, err)
	}
	write(t, s, func(tx livehooks.OutboxTx) error {
		if st, err := tx.Stream(ctx, key); err != nil || st.PendingFiles != 1 {
			t.Fatalf("pending files: %+v %v", st, err)
		}
		return tx.FinishFileJob(ctx, jobs[0].ID, "")
	})
	if jobs, _ := s.ClaimFileJobs(ctx, "n1", now, time.Minute, 10); len(jobs) != 0 {
		t.Fatalf("a finished job is claimed: %+v", jobs)
	}
}
