package recording

import (
	"path"
	"strings"
	"time"

	"github.com/livehooks/livehooks"
)

// SignalKind is what a source reports about a stream.
type SignalKind int

// Signal kinds.
const (
	Publish   SignalKind = iota // the publisher started (or came back)
	Unpublish                   // the publisher stopped
	FileDone                    // a finished file was probed (and maybe uploaded)
	Failure                     // the recorder failed (or a file could not be read or uploaded)
	// FileQueued: the recorder finished a file, whose job (Signal.Job) is
	// stored to be probed, uploaded and reported as FileDone or Failure.
	FileQueued
)

func (k SignalKind) String() string {
	return [...]string{"publish", "unpublish", "file_done", "failure", "file_queued"}[k]
}

// Signal is one report of a source about one stream.
type Signal struct {
	Kind   SignalKind
	Stream livehooks.StreamKey
	At     time.Time // when it happened; the machine's clock when zero
	File   *File     // FileDone
	Error  string    // Failure
	// Format is what the recorder writes (FLV, MP4, HLS) when the source
	// knows it; it wins over the domain's record_format from then on, as a
	// file's own format does.
	Format string
	// Job is the job to store (FileQueued), or the job that FileDone or
	// Failure finishes (by ID; nil when the report comes from no job).
	Job *livehooks.FileJob
	// KeepJob keeps a finished job, with its RECORD_FILE_COMPLETE event, so
	// that its local file is deleted once that event is delivered.
	KeepJob bool
}

// File is a finished recording file, as probed (and maybe uploaded).
type File struct {
	Name        string // base name, for the download URL template
	Format      string // FLV, MP4 or HLS
	Size        int64
	Duration    time.Duration
	Width       int
	Height      int
	Start, End  time.Time // of the recording; End defaults to the signal time
	DownloadURL string    // when the source or the upload knows it
	// Empty marks a file without media (nginx-rtmp leaves a ~113-byte file
	// when a stream ends just past a record interval): no event is sent.
	Empty bool
}

// Settings are what the machine needs of a domain's recording settings.
type Settings struct {
	MaxPause            time.Duration
	RecordFormat        string
	DownloadURLTemplate string
	PlayURLTemplate     string
}

func settingsOf(d *livehooks.DomainSettings) Settings {
	s := Settings{MaxPause: livehooks.DefaultMaxPause, RecordFormat: livehooks.FormatFLV}
	if d == nil {
		return s
	}
	// Stored settings always carry their pause (the API and the config file
	// fill in the default); 0 means the task ends as soon as the publisher
	// stops.
	if d.MaxPause >= 0 {
		s.MaxPause = d.MaxPause
	}
	if d.RecordFormat != "" {
		s.RecordFormat = d.RecordFormat
	}
	s.DownloadURLTemplate, s.PlayURLTemplate = d.DownloadURLTemplate, d.PlayURLTemplate
	return s
}

// ids makes new task, job and event ids; tests make them predictable.
type ids interface {
	task() string
	job() string
	event() string
}

// step is one transition's working state.
type step struct {
	st    *livehooks.StreamState
	now   time.Time
	set   Settings
	delay time.Duration // before a next file's RECORD_NEW_FILE_START
	// grace is how long after the pause a task waits for files that
	// recorders report just after the stream's end.
	grace  time.Duration
	ids    ids
	events []*livehooks.Event

	addJob    *livehooks.FileJob // to store with the state
	doneJob   int64              // to finish with the state, 0 for none
	doneEvent string             // the event a finished job is kept for
}

func (s *step) emit(t livehooks.EventType, mod func(e *livehooks.Event)) *livehooks.Event {
	e := &livehooks.Event{
		ID: s.ids.event(), ProjectID: s.st.ProjectID, Type: t, OccurredAt: s.now,
		PublishDomain: s.st.PublishDomain, App: s.st.App, Stream: s.st.Stream,
		TaskID: s.st.TaskID, RecordFormat: s.st.RecordFormat,
	}
	if e.RecordFormat == "" {
		e.RecordFormat = s.set.RecordFormat
	}
	if t.HasJob() {
		e.JobID = s.st.JobID
	}
	e.PlayURL = expand(s.set.PlayURLTemplate, e, "")
	if mod != nil {
		mod(e)
	}
	s.events = append(s.events, e)
	return e
}

// newTask starts a task: RECORD_START, then RECORD_NEW_FILE_START for its
// first file when withFile.
func (s *step) newTask(withFile bool) {
	st := s.st
	st.State, st.TaskID, st.FileSeq, st.JobID = livehooks.StreamLive, s.ids.task(), 0, ""
	st.PublishedAt, st.OverAt, st.NextFileAt = s.now, time.Time{}, time.Time{}
	s.emit(livehooks.RecordStart, nil)
	if withFile {
		s.newFile(s.now)
	}
}

// newFile announces the task's next file.
func (s *step) newFile(started time.Time) {
	st := s.st
	st.FileSeq++
	st.JobID, st.FileStartedAt, st.NextFileAt = s.ids.job(), started, time.Time{}
	s.emit(livehooks.RecordNewFileStart, nil)
}

// over ends the task.
func (s *step) over() {
	s.emit(livehooks.RecordOver, nil)
	st := s.st
	st.State, st.JobID, st.OverAt, st.NextFileAt = livehooks.StreamOver, "", time.Time{}, time.Time{}
}

// fireDue runs timers that are due at s.now, in time order.
func (s *step) fireDue() {
	st := s.st
	for {
		t := st.NextTimer()
		if t.IsZero() || t.After(s.now) {
			return
		}
		switch {
		case !st.NextFileAt.IsZero() && !st.NextFileAt.After(s.now) && (st.OverAt.IsZero() || !st.NextFileAt.After(st.OverAt)):
			started := st.FileStartedAt // the end of the file before
			if started.IsZero() {
				started = st.NextFileAt.Add(-s.delay)
			}
			st.NextFileAt = time.Time{}
			if st.State == livehooks.StreamLive && st.JobID == "" && st.PendingFiles == 0 {
				s.newFile(started)
			}
		default:
			st.OverAt = time.Time{}
			switch {
			case st.State != livehooks.StreamPaused:
			case st.PendingFiles > 0:
				// RECORD_OVER is the task's last event: it follows the
				// files still in their jobs.
				st.State = livehooks.StreamEnding
			default:
				s.over()
			}
		}
	}
}

// apply computes the effect of sig on st (nil: the stream has no state yet).
func (s *step) apply(sig Signal) {
	if s.st.State == "" {
		s.st.State = livehooks.StreamOver // no task yet
	}
	// Timers that fell due before this signal (say, while livehooks was down)
	// go first, so a late republish after the pause starts a new task.
	s.fireDue()
	st := s.st
	if sig.Format != "" {
		st.RecordFormat = sig.Format
	}
	switch sig.Kind {
	case Publish:
		switch st.State {
		case livehooks.StreamOver:
			s.newTask(true)
		case livehooks.StreamPaused, livehooks.StreamEnding:
			if st.PendingFiles == 0 && !s.now.Before(st.OverAt.Add(-s.grace)) {
				// Past the pause, in the grace for late files: the task ends.
				s.over()
				s.newTask(true)
				break
			}
			// Back within the maximum pause: the same task, a new file. A
			// file of the previous publish that was never reported done is
			// abandoned (nginx reports it within milliseconds of the stop).
			// While files of the task are still in their jobs the task goes
			// on too (its RECORD_OVER would have to follow them), and the
			// new file is announced after them.
			st.State, st.OverAt, st.PublishedAt = livehooks.StreamLive, time.Time{}, s.now
			if st.PendingFiles == 0 {
				s.newFile(s.now)
			} else {
				st.FileStartedAt = s.now
			}
		case livehooks.StreamLive:
			st.PublishedAt = s.now // a repeated publish: nothing new to say
		}
	case Unpublish:
		if st.State == livehooks.StreamLive {
			st.State, st.OverAt, st.NextFileAt = livehooks.StreamPaused, s.now.Add(s.set.MaxPause+s.grace), time.Time{}
		}
	case FileQueued:
		s.fileQueued(sig.Job)
	case FileDone:
		s.jobDone(sig.Job)
		s.fileDone(sig.File)
		if sig.Job != nil && sig.KeepJob && len(s.events) > 0 {
			if last := s.events[len(s.events)-1]; last.Type == livehooks.RecordFileComplete {
				s.doneEvent = last.ID
			}
		}
		s.endIfDone()
	case Failure:
		s.jobDone(sig.Job)
		if st.TaskID == "" {
			st.TaskID = s.ids.task()
		}
		msg := sig.Error
		if msg == "" {
			msg = "recording failed"
		}
		s.emit(livehooks.RecordFailed, func(e *livehooks.Event) { e.ErrorMessage = clipUTF8(msg, livehooks.MaxErrorMessageLen) })
		s.endIfDone()
	}
}

// fileQueued stores a finished file's job. The file belongs to the stream's
// task, even a task past its pause (recorders report a stream's last file
// a moment after its end): only a stream with no task left gets a task of
// its own, which ends after the pause.
func (s *step) fileQueued(j *livehooks.FileJob) {
	st := s.st
	if j == nil {
		return
	}
	if st.TaskID == "" || st.State == livehooks.StreamOver {
		// A file of a stream we never saw published (livehooks started
		// while it was live), or long after its end.
		st.TaskID, st.State, st.JobID, st.FileSeq = s.ids.task(), livehooks.StreamPaused, "", 0
		st.OverAt, st.NextFileAt, st.FileStartedAt = s.now.Add(s.set.MaxPause+s.grace), time.Time{}, time.Time{}
		s.emit(livehooks.RecordStart, nil)
	}
	// The next file is announced after this one's report.
	st.NextFileAt = time.Time{}
	st.PendingFiles++
	cp := *j
	cp.StreamKey = st.StreamKey
	s.addJob = &cp
}

// jobDone counts a file job of the task as finished.
func (s *step) jobDone(j *livehooks.FileJob) {
	if j == nil {
		return
	}
	s.doneJob = j.ID
	if s.st.PendingFiles > 0 {
		s.st.PendingFiles--
	}
}

// endIfDone ends a task that waited for its last files, or, when the stream
// is live and its last file was reported without a RECORD_FILE_COMPLETE
// (a failure, an empty file), announces the next file a moment later.
func (s *step) endIfDone() {
	st := s.st
	switch {
	case st.PendingFiles > 0:
	case st.State == livehooks.StreamEnding:
		s.over()
	case st.State == livehooks.StreamLive && st.JobID == "" && st.NextFileAt.IsZero():
		st.NextFileAt = s.now.Add(s.delay)
	}
}

func (s *step) fileDone(f *File) {
	st := s.st
	if f == nil {
		f = &File{}
	}
	if f.Format != "" {
		st.RecordFormat = f.Format // what the recorder really writes
	}
	if st.TaskID == "" || st.State == livehooks.StreamOver {
		// A file of a stream we never saw published (livehooks started
		// while it was live), or after its task ended: its own task, which
		// ends after the pause.
		st.TaskID, st.State, st.JobID, st.FileSeq = s.ids.task(), livehooks.StreamPaused, "", 0
		st.OverAt, st.NextFileAt, st.FileStartedAt = s.now.Add(s.set.MaxPause+s.grace), time.Time{}, time.Time{}
		s.emit(livehooks.RecordStart, nil)
	}
	if f.Empty {
		// No media (nginx-rtmp's trailing file of a stream that ended just
		// past a record interval): nothing to announce, and nothing changes.
		// It may arrive before the real last file (nginx's end-of-stream
		// calls race each other), whose job is still open; and it cannot be
		// the announced next file, which waits NextFileDelay while such a
		// file ends within milliseconds.
		return
	}
	end := f.End
	if end.IsZero() {
		end = s.now
	}
	if st.JobID == "" {
		// Its start was not announced yet (files shorter than the delay,
		// or files that waited for the report of the file before).
		st.NextFileAt = time.Time{}
		started := st.FileStartedAt
		if started.IsZero() || started.After(end) {
			started = end.Add(-f.Duration)
		}
		s.newFile(started)
	}
	started := st.FileStartedAt
	start := f.Start
	if start.IsZero() {
		start = started
		if f.Duration > 0 && (start.IsZero() || end.Sub(start) > f.Duration+2*time.Second) {
			start = end.Add(-f.Duration)
		}
	}
	if start.After(end) {
		start = end
	}
	s.emit(livehooks.RecordFileComplete, func(e *livehooks.Event) {
		e.AssetID = strings.ReplaceAll(e.JobID, "-", "")
		e.FileSize, e.RecordDuration = f.Size, int64(f.Duration.Round(time.Second)/time.Second)
		e.Width, e.Height = f.Width, f.Height
		e.StartTime, e.EndTime = start.UTC().Truncate(time.Second), end.UTC().Truncate(time.Second)
		e.DownloadURL = f.DownloadURL
		if e.DownloadURL == "" {
			e.DownloadURL = expand(s.set.DownloadURLTemplate, e, f.Name)
		}
	})
	st.JobID = ""
	// The next file starts where this one ended.
	st.FileStartedAt = end
	if st.State == livehooks.StreamLive && st.PendingFiles == 0 {
		// The recorder goes on with the next file: announce it a moment
		// later, unless the stream stops meanwhile.
		st.NextFileAt = s.now.Add(s.delay)
	}
}

// ingest records a generic API event: ids come from the event when given,
// else from the stream's state, which the event updates.
func (s *step) ingest(e *livehooks.Event) {
	st := s.st
	if st.State == "" {
		st.State = livehooks.StreamOver
	}
	if e.ID == "" {
		e.ID = s.ids.event()
	}
	if e.OccurredAt.IsZero() {
		e.OccurredAt = s.now
	}
	if e.RecordFormat == "" {
		e.RecordFormat = s.set.RecordFormat
	}
	switch {
	case e.TaskID != "":
	case e.Type == livehooks.RecordStart || st.TaskID == "" || (st.State == livehooks.StreamOver && e.Type != livehooks.RecordOver && e.Type != livehooks.RecordFailed && e.Type != livehooks.RecordFileComplete):
		e.TaskID = s.ids.task()
	default:
		e.TaskID = st.TaskID
	}
	if e.TaskID != st.TaskID {
		st.TaskID, st.FileSeq, st.JobID = e.TaskID, 0, ""
	}
	switch e.Type {
	case livehooks.RecordStart:
		st.State, st.PublishedAt = livehooks.StreamLive, e.OccurredAt
	case livehooks.RecordNewFileStart:
		if e.JobID == "" {
			e.JobID = s.ids.job()
		}
		st.State, st.JobID, st.FileStartedAt = livehooks.StreamLive, e.JobID, e.OccurredAt
		st.FileSeq++
	case livehooks.RecordFileComplete:
		if e.JobID == "" {
			e.JobID = st.JobID
		}
		if e.JobID == "" {
			e.JobID = s.ids.job()
		}
		if e.AssetID == "" {
			e.AssetID = strings.ReplaceAll(e.JobID, "-", "")
		}
		if e.EndTime.IsZero() {
			e.EndTime = e.OccurredAt.UTC().Truncate(time.Second)
		}
		if e.StartTime.IsZero() {
			switch {
			case e.RecordDuration > 0:
				e.StartTime = e.EndTime.Add(-time.Duration(e.RecordDuration) * time.Second)
			case !st.FileStartedAt.IsZero() && e.JobID == st.JobID:
				e.StartTime = st.FileStartedAt.UTC().Truncate(time.Second)
			default:
				e.StartTime = e.EndTime
			}
		}
		if e.DownloadURL == "" {
			e.DownloadURL = expand(s.set.DownloadURLTemplate, e, "")
		}
		if e.JobID == st.JobID {
			st.JobID = ""
		}
	case livehooks.RecordOver:
		st.State, st.JobID = livehooks.StreamOver, ""
	}
	if e.PlayURL == "" {
		e.PlayURL = expand(s.set.PlayURLTemplate, e, "")
	}
	s.events = append(s.events, e)
}

// expand fills a URL template: {domain} {app} {stream} {file} {job_id} {task_id}.
func expand(tmpl string, e *livehooks.Event, file string) string {
	if tmpl == "" {
		return ""
	}
	if file == "" {
		file = e.Stream
	}
	r := strings.NewReplacer("{domain}", e.PublishDomain, "{app}", e.App, "{stream}", e.Stream,
		"{file}", path.Base(file), "{job_id}", e.JobID, "{task_id}", e.TaskID)
	return r.Replace(tmpl)
}

func clipUTF8(s string, n int) string {
	s = strings.ToValidUTF8(s, "?")
	if len(s) <= n {
		return s
	}
	for n > 0 && !isRuneStart(s[n]) {
		n--
	}
	return s[:n]
}

func isRuneStart(b byte) bool { return b&0xC0 != 0x80 }
