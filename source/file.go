package source

import (
	"context"
	"fmt"
	"path/filepath"
	"strings"
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

// FileDone runs a finished recording file through the pipeline: a path
// outside the record directories is refused without being read, the file is
// probed (a file without media is Empty: no event), uploaded when the
// domain has object storage, else linked by Options.Link when the domain has
// no URL template, and reported with FileDone. A refused, unreadable
// or corrupt file, or an upload that fails after retries, is reported as a
// Failure instead. Files of a stream the on-demand service declined are
// ignored. The error is EINVALID for bad names, EFORBIDDEN for a file of
// another project (RecordDirs), or the store's: the file's own problems are
// events, not errors.
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
	unlock := s.lockStream(key)
	defer unlock()

	real, err := s.dirs.Resolve(key.ProjectID, path)
	if err != nil {
		return s.refuse(ctx, key, path, err)
	}
	base := filepath.Base(real)
	// Only a file the probe recognises is a recording: a recorder's
	// duration never turns another file into one.
	info, err := s.o.Probe(real)
	if err == nil && info.Duration == 0 && hint.Duration > 0 {
		info.Duration = hint.Duration
	}
	if err != nil {
		reason := strings.TrimPrefix(err.Error(), "probe "+real+": ")
		s.o.Logger.Warn("recording file unreadable", streamAttrs(key, "file", base, "error", reason)...)
		return s.fail(ctx, key, fmt.Sprintf("recording file %s could not be read: %s", base, reason))
	}
	file := &recording.File{
		Name: base, Format: info.Format, Size: info.Size, Duration: info.Duration,
		Width: info.Width, Height: info.Height, End: at,
		// nginx-rtmp leaves a tiny file of headers when a stream ends just
		// past a record interval.
		Empty: info.Duration == 0 && !info.HasVideo,
	}
	if !file.Empty {
		switch _, d := s.o.Machine.Settings(ctx, key.ProjectID, key.PublishDomain); {
		case d != nil && d.Storage != nil:
			url, err := s.upload(ctx, d.Storage, key, real)
			if err != nil {
				s.o.Logger.Warn("recording file not uploaded", streamAttrs(key, "file", base, "error", err)...)
				return s.fail(ctx, key, err.Error())
			}
			file.DownloadURL = url
		case s.o.Link != nil && (d == nil || d.DownloadURLTemplate == ""):
			file.DownloadURL = s.o.Link(key, real, livehooks.DownloadURLExpiryOf(d))
		}
	}
	_, err = s.o.Machine.Signal(ctx, recording.Signal{Kind: recording.FileDone, Stream: key, File: file})
	return err
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

// upload puts a file into the domain's bucket as {prefix}{app}/{stream}/{file},
// retrying with backoff.
func (s *Source) upload(ctx context.Context, st *livehooks.StorageSettings, key livehooks.StreamKey, path string) (string, error) {
	base := filepath.Base(path)
	if s.o.Uploader == nil {
		return "", fmt.Errorf("upload of %s failed: the domain has object storage but this livehooks has no uploader", base)
	}
	objectKey := key.App + "/" + key.Stream + "/" + base
	backoff := s.o.UploadBackoff
	var err error
	for attempt := 1; attempt <= s.o.UploadAttempts; attempt++ {
		if attempt > 1 {
			t := time.NewTimer(backoff)
			select {
			case <-ctx.Done():
				t.Stop()
				return "", fmt.Errorf("upload of %s to storage interrupted: %w", base, ctx.Err())
			case <-t.C:
			}
			backoff *= 2
		}
		var url string
		url, err = s.o.Uploader.Upload(ctx, st, objectKey, path)
		if err == nil {
			return url, nil
		}
		s.o.Logger.Warn("upload attempt failed", streamAttrs(key, "file", base, "attempt", attempt, "error", err)...)
	}
	return "", fmt.Errorf("upload of %s to storage failed after %d attempts: %v", base, s.o.UploadAttempts, err)
}
