package recording

import (
	"fmt"
	"strings"
	"testing"
	"time"

	"github.com/livehooks/livehooks"
)

type seqIDs struct{ t, j, e int }

func (s *seqIDs) task() string  { s.t++; return fmt.Sprintf("task%d", s.t) }
func (s *seqIDs) job() string   { s.j++; return fmt.Sprintf("job%d", s.j) }
func (s *seqIDs) event() string { s.e++; return fmt.Sprintf("ev%d", s.e) }

// sim runs signals through step the way Machine does, keeping state between
// them, and renders the emitted events as "TYPE task/job".
type sim struct {
	t   *testing.T
	st  *livehooks.StreamState
	ids *seqIDs
	now time.Time
	set Settings
	out []string
	evs []*livehooks.Event
	// grace is the step's LateFileGrace; jobs counts the file jobs stored.
	grace time.Duration
	jobs  int64
}

func newSim(t *testing.T) *sim {
	return &sim{t: t, ids: &seqIDs{}, now: time.Date(2026, 3, 8, 14, 10, 25, 0, time.UTC),
		st:  &livehooks.StreamState{StreamKey: livehooks.StreamKey{ProjectID: "p", PublishDomain: "push.example.com", App: "live", Stream: "cam1"}},
		set: Settings{MaxPause: 30 * time.Second, RecordFormat: "FLV", DownloadURLTemplate: "https://cdn.example.com/{app}/{stream}/{file}"}}
}

func (s *sim) run(fn func(*step)) {
	st := &step{st: s.st, now: s.now, set: s.set, delay: time.Second, grace: s.grace, ids: s.ids}
	fn(st)
	for _, e := range st.events {
		r := string(e.Type) + " " + e.TaskID
		if e.JobID != "" {
			r += "/" + e.JobID
		}
		s.out = append(s.out, r)
		s.evs = append(s.evs, e)
	}
}

func (s *sim) signal(k SignalKind, f *File) {
	s.run(func(st *step) { st.apply(Signal{Kind: k, File: f}) })
}
func (s *sim) advance(d time.Duration) { s.now = s.now.Add(d); s.run(func(st *step) { st.fireDue() }) }

func (s *sim) want(lines ...string) {
	s.t.Helper()
	if got, want := strings.Join(s.out, "\n"), strings.Join(lines, "\n"); got != want {
		s.t.Fatalf("events:\n%s\n\nwant:\n%s", got, want)
	}
	s.out = nil
}

func file(name string, secs int) *File {
	return &File{Name: name, Format: "FLV", Size: 1000, Duration: time.Duration(secs) * time.Second, Width: 1280, Height: 720}
}

func TestLifecycle(t *testing.T) {
	s := newSim(t)
	s.signal(Publish, nil)
	s.want("RECORD_START task1", "RECORD_NEW_FILE_START task1/job1")

	// A file completes while live: the next file is announced a moment later.
	s.advance(6 * time.Second)
	s.signal(FileDone, file("/rec/cam1-1.flv", 6))
	s.want("RECORD_FILE_COMPLETE task1/job1")
	s.advance(500 * time.Millisecond)
	s.want()
	s.advance(600 * time.Millisecond)
	s.want("RECORD_NEW_FILE_START task1/job2")

	// The publisher stops, nginx reports the last file after publish_done.
	s.advance(4 * time.Second)
	s.signal(Unpublish, nil)
	s.signal(FileDone, file("/rec/cam1-2.flv", 5))
	s.want("RECORD_FILE_COMPLETE task1/job2")

	// Back within the maximum pause: the same task, a new file.
	s.advance(10 * time.Second)
	s.signal(Publish, nil)
	s.want("RECORD_NEW_FILE_START task1/job3")

	// Stops again; the last record_done arrives before publish_done: the
	// next-file announcement is cancelled by the unpublish.
	s.advance(3 * time.Second)
	s.signal(FileDone, file("/rec/cam1-3.flv", 3))
	s.signal(Unpublish, nil)
	s.want("RECORD_FILE_COMPLETE task1/job3")
	s.advance(2 * time.Second)
	s.want()

	// After the maximum pause: RECORD_OVER.
	s.advance(29 * time.Second)
	s.want("RECORD_OVER task1")

	// A later publish starts a new task.
	s.advance(time.Minute)
	s.signal(Publish, nil)
	s.want("RECORD_START task2", "RECORD_NEW_FILE_START task2/job4")
}

func TestFileCompleteFields(t *testing.T) {
	s := newSim(t)
	s.signal(Publish, nil)
	s.advance(6 * time.Second)
	s.signal(FileDone, file("/rec/cam1-1.flv", 6))
	e := s.evs[len(s.evs)-1]
	if e.Type != livehooks.RecordFileComplete || e.FileSize != 1000 || e.RecordDuration != 6 || e.Width != 1280 || e.Height != 720 ||
		e.RecordFormat != "FLV" || e.AssetID != "job1" || e.DownloadURL != "https://cdn.example.com/live/cam1/cam1-1.flv" {
		t.Fatalf("%+v", e)
	}
	if !e.StartTime.Equal(time.Date(2026, 3, 8, 14, 10, 25, 0, time.UTC)) || !e.EndTime.Equal(e.StartTime.Add(6*time.Second)) {
		t.Fatalf("start %v end %v", e.StartTime, e.EndTime)
	}
	// An uploaded file's URL wins over the template.
	s.advance(6 * time.Second)
	f := file("/rec/cam1-2.flv", 5)
	f.DownloadURL = "https://bucket.example.com/x.flv"
	s.signal(FileDone, f)
	if e := s.evs[len(s.evs)-1]; e.DownloadURL != f.DownloadURL {
		t.Fatalf("download url %q", e.DownloadURL)
	}
}

func TestEmptyTrailingFileIsSkipped(t *testing.T) {
	s := newSim(t)
	s.signal(Publish, nil)
	s.advance(6 * time.Second)
	s.signal(FileDone, file("a.flv", 6))
	s.advance(2 * time.Second) // next file announced
	s.want("RECORD_START task1", "RECORD_NEW_FILE_START task1/job1", "RECORD_FILE_COMPLETE task1/job1", "RECORD_NEW_FILE_START task1/job2")
	s.signal(Unpublish, nil)
	s.signal(FileDone, &File{Name: "b.flv", Size: 113, Empty: true})
	s.want()
	s.advance(31 * time.Second)
	s.want("RECORD_OVER task1")
}

// TestEmptyTrailingFileArrivesFirst: nginx's end-of-stream calls race, so the
// empty trailing file's record_done may come before the last real file's and
// before publish_done; the real file still completes its announced job.
func TestEmptyTrailingFileArrivesFirst(t *testing.T) {
	s := newSim(t)
	s.signal(Publish, nil)
	s.advance(6 * time.Second)
	s.signal(FileDone, file("a.flv", 6))
	s.advance(2 * time.Second)
	s.want("RECORD_START task1", "RECORD_NEW_FILE_START task1/job1", "RECORD_FILE_COMPLETE task1/job1", "RECORD_NEW_FILE_START task1/job2")
	s.advance(4 * time.Second)
	s.signal(FileDone, &File{Name: "c.flv", Size: 91, Empty: true})
	s.signal(Unpublish, nil)
	s.signal(FileDone, file("b.flv", 6))
	s.want("RECORD_FILE_COMPLETE task1/job2")
	s.advance(31 * time.Second)
	s.want("RECORD_OVER task1")
}

func TestShortFilesAnnouncedBeforeComplete(t *testing.T) {
	s := newSim(t)
	s.signal(Publish, nil)
	s.signal(FileDone, file("a.flv", 1))
	s.advance(500 * time.Millisecond)
	// The next file completed before its announcement was due.
	s.signal(FileDone, file("b.flv", 1))
	s.want("RECORD_START task1", "RECORD_NEW_FILE_START task1/job1", "RECORD_FILE_COMPLETE task1/job1",
		"RECORD_NEW_FILE_START task1/job2", "RECORD_FILE_COMPLETE task1/job2")
}

// TestLateRepublishAfterDowntime: the pause ran out while livehooks was down;
// the republish first ends the old task.
func TestLateRepublishAfterDowntime(t *testing.T) {
	s := newSim(t)
	s.signal(Publish, nil)
	s.signal(Unpublish, nil)
	s.want("RECORD_START task1", "RECORD_NEW_FILE_START task1/job1")
	s.now = s.now.Add(5 * time.Minute) // no timer ran meanwhile
	s.signal(Publish, nil)
	s.want("RECORD_OVER task1", "RECORD_START task2", "RECORD_NEW_FILE_START task2/job2")
}

func TestRepeatedPublishAndStrayUnpublish(t *testing.T) {
	s := newSim(t)
	s.signal(Unpublish, nil)
	s.want()
	s.signal(Publish, nil)
	s.signal(Publish, nil)
	s.want("RECORD_START task1", "RECORD_NEW_FILE_START task1/job1")
}

func TestFileOfUnknownStream(t *testing.T) {
	s := newSim(t)
	s.signal(FileDone, file("a.flv", 3))
	s.want("RECORD_START task1", "RECORD_NEW_FILE_START task1/job1", "RECORD_FILE_COMPLETE task1/job1")
	s.advance(31 * time.Second)
	s.want("RECORD_OVER task1")
}

func TestFailure(t *testing.T) {
	s := newSim(t)
	s.signal(Failure, nil)
	s.signal(Publish, nil)
	s.run(func(st *step) { st.apply(Signal{Kind: Failure, Error: "upload failed: " + strings.Repeat("é", 1000)}) })
	s.want("RECORD_FAILED task1", "RECORD_START task2", "RECORD_NEW_FILE_START task2/job1", "RECORD_FAILED task2")
	if msg := s.evs[len(s.evs)-1].ErrorMessage; len(msg) > livehooks.MaxErrorMessageLen || !strings.HasPrefix(msg, "upload failed") {
		t.Fatalf("error message %q", msg)
	}
	if s.evs[0].ErrorMessage != "recording failed" {
		t.Fatalf("default message %q", s.evs[0].ErrorMessage)
	}
}

// TestGenericIngestAssignsIDs: events without ids take them from the
// stream's state; given ids are kept.
func TestGenericIngestAssignsIDs(t *testing.T) {
	s := newSim(t)
	ingest := func(typ livehooks.EventType, task, job string) *livehooks.Event {
		e := &livehooks.Event{ProjectID: "p", Type: typ, PublishDomain: "push.example.com", App: "live", Stream: "cam1", TaskID: task, JobID: job}
		s.run(func(st *step) { st.ingest(e) })
		return e
	}
	start := ingest(livehooks.RecordStart, "", "")
	nfs := ingest(livehooks.RecordNewFileStart, "", "")
	fc := ingest(livehooks.RecordFileComplete, "", "")
	over := ingest(livehooks.RecordOver, "", "")
	if start.TaskID == "" || nfs.TaskID != start.TaskID || fc.TaskID != start.TaskID || over.TaskID != start.TaskID {
		t.Fatalf("task ids: %s %s %s %s", start.TaskID, nfs.TaskID, fc.TaskID, over.TaskID)
	}
	if nfs.JobID == "" || fc.JobID != nfs.JobID || fc.AssetID == "" || fc.StartTime.IsZero() || fc.EndTime.IsZero() {
		t.Fatalf("job: %+v", fc)
	}
	if fc.RecordFormat != "FLV" || !strings.HasPrefix(fc.DownloadURL, "https://cdn.example.com/live/cam1/") {
		t.Fatalf("defaults: %+v", fc)
	}
	// A new task after OVER; explicit ids are kept.
	again := ingest(livehooks.RecordStart, "", "")
	own := ingest(livehooks.RecordNewFileStart, "mytask", "myjob")
	if again.TaskID == start.TaskID || own.TaskID != "mytask" || own.JobID != "myjob" {
		t.Fatalf("%s %s %s", again.TaskID, own.TaskID, own.JobID)
	}
	if fc2 := ingest(livehooks.RecordFileComplete, "", ""); fc2.TaskID != "mytask" || fc2.JobID != "myjob" {
		t.Fatalf("follows the explicit ids: %s %s", fc2.TaskID, fc2.JobID)
	}
}

// TestResumeWithoutFileReports: a source that reports no files (SRS without
// DVR, say) still gets a new file on a resume within the pause.
func TestResumeWithoutFileReports(t *testing.T) {
	s := newSim(t)
	s.signal(Publish, nil)
	s.signal(Unpublish, nil)
	s.advance(5 * time.Second)
	s.signal(Publish, nil)
	s.want("RECORD_START task1", "RECORD_NEW_FILE_START task1/job1", "RECORD_NEW_FILE_START task1/job2")
}

func TestZeroPauseEndsAtOnce(t *testing.T) {
	if got := settingsOf(&livehooks.DomainSettings{MaxPause: 0}).MaxPause; got != 0 {
		t.Fatalf("stored pause 0 became %v", got)
	}
	if got := settingsOf(nil).MaxPause; got != livehooks.DefaultMaxPause {
		t.Fatalf("no settings: %v", got)
	}
	s := newSim(t)
	s.set.MaxPause = 0
	s.signal(Publish, nil)
	s.signal(Unpublish, nil)
	s.advance(0)
	s.want("RECORD_START task1", "RECORD_NEW_FILE_START task1/job1", "RECORD_OVER task1")
}

// TestRecordFormatOfTheRecorder: the format a source knows (MediaMTX's
// recordFormat) or a file shows (SRS's dvr_path extension) wins over the
// domain's record_format in every event that follows, timers' included.
func TestRecordFormatOfTheRecorder(t *testing.T) {
	// A publish (saying format), an MP4 file, the next file announced, the
	// end of the stream and RECORD_OVER after the pause.
	task := func(s *sim, format string) string {
		s.run(func(st *step) { st.apply(Signal{Kind: Publish, Format: format}) })
		s.advance(6 * time.Second)
		f := file("/rec/a.mp4", 6)
		f.Format = "MP4"
		s.signal(FileDone, f)
		s.advance(2 * time.Second)
		s.signal(Unpublish, nil)
		s.advance(31 * time.Second)
		var out []string
		for _, e := range s.evs {
			out = append(out, string(e.Type)+" "+e.RecordFormat)
		}
		s.evs = nil
		return strings.Join(out, ", ")
	}
	// Known at publish: MediaMTX (fmp4).
	if got, want := task(newSim(t), "MP4"), "RECORD_START MP4, RECORD_NEW_FILE_START MP4, RECORD_FILE_COMPLETE MP4, RECORD_NEW_FILE_START MP4, RECORD_OVER MP4"; got != want {
		t.Errorf("known at publish:\n got %s\nwant %s", got, want)
	}
	// Learnt from the first file: SRS with an .mp4 dvr_path. Before it,
	// the domain's record_format is all there is; the stream's next task
	// starts with what the recorder wrote last.
	s := newSim(t)
	if got, want := task(s, ""), "RECORD_START FLV, RECORD_NEW_FILE_START FLV, RECORD_FILE_COMPLETE MP4, RECORD_NEW_FILE_START MP4, RECORD_OVER MP4"; got != want {
		t.Errorf("learnt from a file:\n got %s\nwant %s", got, want)
	}
	if got, want := task(s, ""), "RECORD_START MP4, RECORD_NEW_FILE_START MP4, RECORD_FILE_COMPLETE MP4, RECORD_NEW_FILE_START MP4, RECORD_OVER MP4"; got != want {
		t.Errorf("next task:\n got %s\nwant %s", got, want)
	}
}
