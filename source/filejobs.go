package source

import (
	"context"
	"errors"
	"fmt"
	"io/fs"
	"os"
	"path/filepath"
	"strings"
	"time"

	"github.com/livehooks/livehooks"
	"github.com/livehooks/livehooks/recording"
)

// RunFileJobs works the file jobs until ctx ends: it claims due jobs (each
// the oldest unfinished job of its stream, so a stream's files are reported
// in order), probes, uploads and reports each, and puts a job whose upload
// failed back with backoff; after the last attempt the file is a
// RECORD_FAILED. Leases are renewed while jobs run, and given up when it
// returns; a job of a node that died is taken over when its lease runs out.
func (s *Source) RunFileJobs(ctx context.Context) {
	// Leases this node held before a restart are its own: free them at once.
	if err := s.o.Jobs.ReleaseFileJobs(ctx, s.o.Node); err != nil && ctx.Err() == nil {
		s.o.Logger.Warn("release file jobs", "error", err)
	}
	done := make(chan int64)
	inflight := map[int64]bool{}
	poll := time.NewTicker(s.o.JobPoll)
	defer poll.Stop()
	renew := time.NewTicker(s.o.JobLease / 3)
	defer renew.Stop()
	for {
		if free := s.o.FileWorkers - len(inflight); free > 0 {
			jobs, err := s.o.Jobs.ClaimFileJobs(ctx, s.o.Node, s.o.Clock.Now(), s.o.JobLease, free+len(inflight))
			if err != nil && ctx.Err() == nil {
				s.o.Logger.Warn("claim file jobs", "error", err)
			}
			for _, j := range jobs {
				if inflight[j.ID] || len(inflight) >= s.o.FileWorkers {
					continue
				}
				inflight[j.ID] = true
				go func() {
					s.work(ctx, j)
					done <- j.ID
				}()
			}
		}
		select {
		case <-ctx.Done():
			for len(inflight) > 0 {
				delete(inflight, <-done)
			}
			rctx, cancel := context.WithTimeout(context.WithoutCancel(ctx), 5*time.Second)
			if err := s.o.Jobs.ReleaseFileJobs(rctx, s.o.Node); err != nil {
				s.o.Logger.Warn("release file jobs", "error", err)
			}
			cancel()
			return
		case id := <-done:
			delete(inflight, id)
		case <-s.wake:
		case <-poll.C:
			s.deleteUploaded(ctx)
		case <-renew.C:
			if len(inflight) > 0 {
				if err := s.o.Jobs.RenewFileJobs(ctx, s.o.Node, s.o.Clock.Now().Add(s.o.JobLease)); err != nil && ctx.Err() == nil {
					s.o.Logger.Warn("renew file job leases", "error", err)
				}
			}
		}
	}
}

// WorkFileJobs works the jobs that are due, one at a time, until none is,
// and returns how many attempts it made: RunFileJobs without its
// concurrency, for callers that drive the queue themselves (tests, a
// one-shot drain). It must not run alongside RunFileJobs of the same node.
func (s *Source) WorkFileJobs(ctx context.Context) (int, error) {
	n := 0
	for {
		jobs, err := s.o.Jobs.ClaimFileJobs(ctx, s.o.Node, s.o.Clock.Now(), s.o.JobLease, s.o.FileWorkers)
		if err != nil || len(jobs) == 0 {
			return n, err
		}
		for _, j := range jobs {
			s.work(ctx, j)
			n++
		}
	}
}

// wakeJobs tells RunFileJobs that a job was stored.
func (s *Source) wakeJobs() {
	select {
	case s.wake <- struct{}{}:
	default:
	}
}

// work runs one attempt of a job and records its outcome: the report
// (FileDone or Failure, which finishes the job with the stream's state), or
// a retry.
func (s *Source) work(ctx context.Context, j *livehooks.FileJob) {
	sig, retry := s.attempt(ctx, j)
	if ctx.Err() != nil {
		return // shutting down: the job stays, and runs again after the restart
	}
	if retry != nil {
		attempts := j.Attempts + 1
		backoff := min(s.o.UploadBackoff<<min(attempts-1, 20), s.o.MaxUploadBackoff)
		s.o.Logger.Warn("upload attempt failed", streamAttrs(j.StreamKey, "file", filepath.Base(j.Path), "attempt", attempts,
			"retry_in", backoff, "error", retry)...)
		if err := s.o.Jobs.RetryFileJob(ctx, s.o.Node, j.ID, attempts, s.o.Clock.Now().Add(backoff), retry.Error()); err != nil {
			s.o.Logger.Warn("record upload attempt", streamAttrs(j.StreamKey, "file", filepath.Base(j.Path), "error", err)...)
		}
		return
	}
	sig.Stream, sig.Job = j.StreamKey, j
	if _, err := s.o.Machine.Signal(ctx, sig); err != nil && ctx.Err() == nil {
		// The job stays leased: it runs again when its lease runs out.
		s.o.Logger.Warn("report recording file", streamAttrs(j.StreamKey, "file", filepath.Base(j.Path), "error", err)...)
	}
}

// attempt probes and uploads a job's file. It returns the report, or the
// error of an upload attempt that may be retried.
func (s *Source) attempt(ctx context.Context, j *livehooks.FileJob) (recording.Signal, error) {
	key := j.StreamKey
	failure := func(msg string) recording.Signal { return recording.Signal{Kind: recording.Failure, Error: msg} }
	// The file was inside a record directory when it was reported; it may
	// have gone since.
	real, err := s.dirs.Resolve(key.ProjectID, j.Path)
	if err != nil {
		s.o.Logger.Warn("recording file refused", streamAttrs(key, "path", clip(j.Path, 256), "reason", err.Error())...)
		return failure(err.Error()), nil
	}
	base := filepath.Base(real)
	// Only a file the probe recognises is a recording: a recorder's
	// duration never turns another file into one.
	info, err := s.o.Probe(real)
	if err == nil && info.Duration == 0 && j.Duration > 0 {
		info.Duration = j.Duration
	}
	if err != nil {
		reason := strings.TrimPrefix(err.Error(), "probe "+real+": ")
		s.o.Logger.Warn("recording file unreadable", streamAttrs(key, "file", base, "error", reason)...)
		return failure(fmt.Sprintf("recording file %s could not be read: %s", base, reason)), nil
	}
	file := &recording.File{
		Name: base, Format: info.Format, Size: info.Size, Duration: info.Duration,
		Width: info.Width, Height: info.Height, End: j.FinishedAt,
		// nginx-rtmp leaves a tiny file of headers when a stream ends just
		// past a record interval.
		Empty: info.Duration == 0 && !info.HasVideo,
	}
	sig := recording.Signal{Kind: recording.FileDone, File: file}
	if file.Empty {
		return sig, nil
	}
	_, d := s.o.Machine.Settings(ctx, key.ProjectID, key.PublishDomain)
	if d == nil || d.Storage == nil {
		if s.o.Link != nil && (d == nil || d.DownloadURLTemplate == "") {
			file.DownloadURL = s.o.Link(key, real, livehooks.DownloadURLExpiryOf(d))
		}
		return sig, nil
	}
	if s.o.Uploader == nil {
		return failure(fmt.Sprintf("upload of %s failed: the domain has object storage but this livehooks has no uploader", base)), nil
	}
	url, err := s.upload(ctx, d.Storage, key, real, info.Size)
	if err != nil {
		if ctx.Err() != nil {
			return sig, err
		}
		if j.Attempts+1 < s.o.UploadAttempts {
			return sig, err
		}
		s.o.Logger.Warn("recording file not uploaded", streamAttrs(key, "file", base, "error", err)...)
		return failure(fmt.Sprintf("upload of %s to storage failed after %d attempts: %v", base, s.o.UploadAttempts, err)), nil
	}
	file.DownloadURL = url
	sig.KeepJob = d.DeleteAfterUpload
	return sig, nil
}

// upload makes one attempt at putting a file into the domain's bucket as
// {prefix}{app}/{stream}/{file}, within UploadTimeout plus the time the
// file takes at UploadMinRate: a peer that stops reading cannot hold an
// attempt longer.
func (s *Source) upload(ctx context.Context, st *livehooks.StorageSettings, key livehooks.StreamKey, path string, size int64) (string, error) {
	limit := s.o.UploadTimeout + time.Duration(float64(size)/float64(s.o.UploadMinRate)*float64(time.Second))
	ctx, cancel := context.WithTimeout(ctx, limit)
	defer cancel()
	url, err := s.o.Uploader.Upload(ctx, st, key.App+"/"+key.Stream+"/"+filepath.Base(path), path)
	if err != nil && errors.Is(ctx.Err(), context.DeadlineExceeded) {
		return "", fmt.Errorf("no upload within %s: %w", limit.Round(time.Millisecond), err)
	}
	return url, err
}

// deleteUploaded settles the jobs kept for their RECORD_FILE_COMPLETE
// (domains with DeleteAfterUpload): once every delivery of the event
// succeeded, the local file is deleted (its object is in storage); a failed
// or dead-lettered delivery, or none at all, keeps the file. Either way the
// job goes. A job whose deliveries are still pending waits.
func (s *Source) deleteUploaded(ctx context.Context) {
	jobs, err := s.o.Jobs.FinishedFileJobs(ctx, 100)
	if err != nil {
		if ctx.Err() == nil {
			s.o.Logger.Warn("load uploaded recording files", "error", err)
		}
		return
	}
	for _, j := range jobs {
		if j.Pending > 0 {
			continue
		}
		base := filepath.Base(j.Path)
		switch real, err := s.dirs.Resolve(j.ProjectID, j.Path); {
		case j.Succeeded == 0 || j.Failed > 0:
			s.o.Logger.Info("recording file kept: its RECORD_FILE_COMPLETE was not delivered", "project_id", j.ProjectID, "file", base,
				"succeeded", j.Succeeded, "failed", j.Failed)
		case err != nil:
			// Gone already, or no longer inside a record directory.
			s.o.Logger.Info("uploaded recording file not deleted", "project_id", j.ProjectID, "file", base, "reason", err.Error())
		default:
			if err := os.Remove(real); err != nil && !errors.Is(err, fs.ErrNotExist) {
				s.o.Logger.Warn("delete uploaded recording file", "project_id", j.ProjectID, "file", base, "error", err)
				continue
			}
			s.o.Logger.Info("recording file deleted: stored in object storage and its callback delivered", "project_id", j.ProjectID, "file", base)
		}
		if err := s.o.Jobs.DeleteFileJob(ctx, j.ID); err != nil && ctx.Err() == nil {
			s.o.Logger.Warn("delete finished file job", "error", err)
		}
	}
}
