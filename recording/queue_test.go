package recording

import (
	"testing"
	"time"

	"github.com/livehooks/livehooks"
)

// The file queue: a recorder's "file finished" is stored as a job
// (FileQueued) and reported later (FileDone or Failure with the job). These
// tests run with a grace of 2 s for files reported after the stream's end.

func newQueueSim(t *testing.T, pause time.Duration) *sim {
	s := newSim(t)
	s.set.MaxPause, s.grace = pause, 2*time.Second
	return s
}

// queue stores a job for a file finished now and returns it.
func (s *sim) queue() *livehooks.FileJob {
	s.jobs++
	j := &livehooks.FileJob{ID: s.jobs, FinishedAt: s.now}
	s.run(func(st *step) {
		st.apply(Signal{Kind: FileQueued, Job: j})
		if st.addJob == nil {
			s.t.Fatal("FileQueued stored no job")
		}
	})
	return j
}

// done reports a job's file, finished when the job says.
func (s *sim) done(j *livehooks.FileJob, f *File) {
	f.End = j.FinishedAt
	s.run(func(st *step) {
		st.apply(Signal{Kind: FileDone, File: f, Job: j})
		if st.doneJob != j.ID {
			s.t.Fatalf("job %d not finished", j.ID)
		}
	})
}

func (s *sim) failed(j *livehooks.FileJob, msg string) {
	s.run(func(st *step) { st.apply(Signal{Kind: Failure, Error: msg, Job: j}) })
}

// TestFileAfterTheEnd: MediaMTX and SRS report a stream's last file a few
// milliseconds after its end; with a pause of 0 it still belongs to the
// ending task, and RECORD_OVER is the task's last event, whether the file's
// job is done before the grace runs out or after.
func TestFileAfterTheEnd(t *testing.T) {
	for _, slow := range []bool{false, true} {
		s := newQueueSim(t, 0)
		s.signal(Publish, nil)
		s.advance(6 * time.Second)
		s.signal(Unpublish, nil)
		s.advance(10 * time.Millisecond)
		j := s.queue()
		s.want("RECORD_START task1", "RECORD_NEW_FILE_START task1/job1")
		if slow {
			s.advance(5 * time.Second) // the upload is still retrying
			s.want()
			if s.st.State != livehooks.StreamEnding {
				t.Fatalf("state %s, want ending", s.st.State)
			}
			s.done(j, file("a.flv", 6))
			s.want("RECORD_FILE_COMPLETE task1/job1", "RECORD_OVER task1")
		} else {
			s.done(j, file("a.flv", 6))
			s.want("RECORD_FILE_COMPLETE task1/job1")
			s.advance(2 * time.Second)
			s.want("RECORD_OVER task1")
		}
		if s.st.PendingFiles != 0 || s.st.State != livehooks.StreamOver {
			t.Fatalf("after the end: %+v", s.st)
		}
		if e := s.evs[len(s.evs)-2]; e.StartTime.After(e.EndTime) {
			t.Fatalf("start %v after end %v", e.StartTime, e.EndTime)
		}
	}
}

// TestFileBeforeTheEnd: the last file is reported before the stream's end
// and its upload outlasts the pause: RECORD_OVER waits for it.
func TestFileBeforeTheEnd(t *testing.T) {
	s := newQueueSim(t, 3*time.Second)
	s.signal(Publish, nil)
	s.advance(6 * time.Second)
	j := s.queue()
	s.signal(Unpublish, nil)
	s.advance(time.Minute)
	s.want("RECORD_START task1", "RECORD_NEW_FILE_START task1/job1")
	s.failed(j, "upload of a.flv to storage failed after 3 attempts")
	s.want("RECORD_FAILED task1", "RECORD_OVER task1")
}

// TestNextFileFollowsTheReport: a file's RECORD_NEW_FILE_START follows the
// report of the file before it, however late that report is.
func TestNextFileFollowsTheReport(t *testing.T) {
	s := newQueueSim(t, 30*time.Second)
	s.signal(Publish, nil)
	s.advance(6 * time.Second)
	j1 := s.queue()
	s.advance(6 * time.Second)
	j2 := s.queue()
	s.advance(6 * time.Second)
	s.want("RECORD_START task1", "RECORD_NEW_FILE_START task1/job1")
	s.done(j1, file("a.flv", 6))
	s.advance(2 * time.Second) // j2 still pending: no announcement
	s.want("RECORD_FILE_COMPLETE task1/job1")
	s.done(j2, file("b.flv", 6))
	s.want("RECORD_NEW_FILE_START task1/job2", "RECORD_FILE_COMPLETE task1/job2")
	e := s.evs[len(s.evs)-1]
	if !e.StartTime.Equal(j1.FinishedAt) || !e.EndTime.Equal(j2.FinishedAt) {
		t.Fatalf("b.flv from %v to %v, want %v to %v", e.StartTime, e.EndTime, j1.FinishedAt, j2.FinishedAt)
	}
	s.advance(1100 * time.Millisecond)
	s.want("RECORD_NEW_FILE_START task1/job3")
	if nfs := s.evs[len(s.evs)-1]; !nfs.OccurredAt.After(e.OccurredAt) {
		t.Fatal("announced before the report of the file before")
	}
}

// TestCorruptFileThenNextFile: a file that cannot be read is one
// RECORD_FAILED; the next file completes the job that was announced.
func TestCorruptFileThenNextFile(t *testing.T) {
	s := newQueueSim(t, 30*time.Second)
	s.signal(Publish, nil)
	s.advance(6 * time.Second)
	s.failed(s.queue(), "recording file a.flv could not be read: media: corrupt file")
	s.advance(6 * time.Second)
	s.done(s.queue(), file("b.flv", 6))
	s.want("RECORD_START task1", "RECORD_NEW_FILE_START task1/job1", "RECORD_FAILED task1", "RECORD_FILE_COMPLETE task1/job1")
}

// TestRepublishWhileFilesArePending: with a pause of 0 a republish ends the
// task, unless files of the task are still in their jobs: then the task
// goes on, and the new file is announced after them.
func TestRepublishWhileFilesArePending(t *testing.T) {
	s := newQueueSim(t, 0)
	s.signal(Publish, nil)
	s.advance(6 * time.Second)
	s.signal(Unpublish, nil)
	j := s.queue()
	s.advance(3 * time.Second)
	s.signal(Publish, nil)
	s.want("RECORD_START task1", "RECORD_NEW_FILE_START task1/job1")
	s.done(j, file("a.flv", 6))
	s.advance(1100 * time.Millisecond)
	s.want("RECORD_FILE_COMPLETE task1/job1", "RECORD_NEW_FILE_START task1/job2")

	// Nothing pending: past the pause, a republish in the grace starts a
	// new task.
	s.signal(Unpublish, nil)
	s.advance(time.Second)
	s.signal(Publish, nil)
	s.want("RECORD_OVER task1", "RECORD_START task2", "RECORD_NEW_FILE_START task2/job3")
}

// TestFileLongAfterTheEnd: a file reported after RECORD_OVER gets a task of
// its own, never the task that is over.
func TestFileLongAfterTheEnd(t *testing.T) {
	s := newQueueSim(t, 0)
	s.signal(Publish, nil)
	s.signal(Unpublish, nil)
	s.advance(3 * time.Second)
	s.want("RECORD_START task1", "RECORD_NEW_FILE_START task1/job1", "RECORD_OVER task1")
	j := s.queue()
	s.done(j, file("late.flv", 6))
	s.advance(3 * time.Second)
	s.want("RECORD_START task2", "RECORD_NEW_FILE_START task2/job2", "RECORD_FILE_COMPLETE task2/job2", "RECORD_OVER task2")
}
