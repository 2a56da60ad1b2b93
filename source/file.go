package source

import (
	"context"
	"path/filepath"
	"time"

	"github.com/livehooks/livehooks"
	"github.com/livehooks/livehooks/recording"
)

// Messages of the RECORD_FAILED events the file pipeline sends.
const (
	MsgOutsideRecordDirs = "file outside the record directories"
	MsgFileNotFound      = "recording file not found"
)

// FileHint is what a recorder says about a file beyond its path.
type FileHint struct {
	// Duration the recorder measured (MediaMTX's MTX_SEGMENT_DURATION). It
	// is used only when the probe finds no duration in a media file (an
	// MPEG-TS segment without timestamps); a file the probe cannot read is
	// no recording, whatever the recorder says.
	Duration time.Duration
}

// FileDone takes a recorder's report of a finished file: a path outside the
// record directories is refused without being read (RECORD_FAILED; a file
// of another project is EFORBIDDEN), else the file is stored as a job with
// the stream's state and the call returns: the job's worker (RunFileJobs)
// probes the file, uploads it when the domain has object storage, else links
// it with Options.Link when the domain has no URL template, and reports it,
// from the store, so that a crash loses nothing. Files of a stream the
// on-demand service declined are ignored. The error is EINVALID for bad
// names, EFORBIDDEN for a file of another project (RecordDirs), or the
// store's: the file's own problems are events, not errors.
func (s *Source) FileDone(ctx context.Context, key livehooks.StreamKey, path string, hint FileHint) error {
	if err := key.Validate(); err != nil {
		return err
	}
	at := s.o.Clock.Now()
	if s.isDeclined(key) {
		s.o.Logger.Info("recording file ignored: the on-demand service declined the stream", streamAttrs(key, "file", filepath.Base(path))...)
		return nil
	}
	ctx, cancel := s.detach(ctx)
	defer cancel()

	real, err := s.dirs.Resolve(key.ProjectID, path)
	if err != nil {
		return s.refuse(ctx, key, path, err)
	}
	job := &livehooks.FileJob{StreamKey: key, Path: real, Duration: hint.Duration, FinishedAt: at}
	if _, err := s.o.Machine.Signal(ctx, recording.Signal{Kind: recording.FileQueued, Stream: key, Job: job}); err != nil {
		return err
	}
	s.wakeJobs()
	return nil
}

func (s *Source) fail(ctx context.Context, key livehooks.StreamKey, msg string) error {
	_, err := s.o.Machine.Signal(ctx, recording.Signal{Kind: recording.Failure, Stream: key, Error: msg})
	return err
}

// ResolveFile returns the real path of a file of a project when it lies in
// one of the project's record directories (RecordDirs.Resolve), and
// ENOTFOUND otherwise: what may be served (fileserve.Resolver).
func (s *Source) ResolveFile(projectID, path string) (string, error) {
	real, err := s.dirs.Resolve(projectID, path)
	if err != nil {
		return "", livehooks.Errorf(livehooks.ENOTFOUND, "%s", MsgFileNotFound)
	}
	return real, nil
}
