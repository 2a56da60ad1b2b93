package livehooks

import (
	"context"
	"time"
)

// StreamKey identifies one live stream.
type StreamKey struct {
	ProjectID     string
	PublishDomain string
	App           string
	Stream        string
}

// Validate checks a stream key from a source: a project, a DNS publish
// domain, an app (not `*`) and a stream name, neither of them `.` or `..`
// (they name object keys and files: prefix/app/stream/file). The error is
// EINVALID.
func (k StreamKey) Validate() error {
	switch {
	case k.ProjectID == "":
		return Errorf(EINVALID, "no project id")
	case !IsDomainName(k.PublishDomain):
		return Errorf(EINVALID, "publish domain %q is not a valid DNS name", truncate(k.PublishDomain, 64))
	case !IsAppName(k.App) || k.App == "*":
		return Errorf(EINVALID, "app %q is not 1-128 of [A-Za-z0-9_.-]", truncate(k.App, 64))
	case !IsStreamName(k.Stream):
		return Errorf(EINVALID, "stream %q is not 1-512 of [A-Za-z0-9_.-]", truncate(k.Stream, 64))
	case dotName(k.App) || dotName(k.Stream):
		return Errorf(EINVALID, "app and stream may not be %q or %q", ".", "..")
	}
	return nil
}

func dotName(s string) bool { return s == "." || s == ".." }

// Stream states of the recording model (SPEC §3).
const (
	StreamLive   = "live"   // publishing; a file is being recorded
	StreamPaused = "paused" // the publisher stopped; RECORD_OVER at OverAt unless it comes back
	StreamOver   = "over"   // the task ended
	// StreamEnding: the pause is over but files of the task are still in
	// their jobs; RECORD_OVER follows the last one.
	StreamEnding = "ending"
)

// StreamState is the recording state of one stream, kept in the store so that
// it and its timers survive a restart.
type StreamState struct {
	StreamKey
	State  string
	TaskID string
	// JobID is the file being recorded ("" when none is open); FileSeq counts
	// the task's files.
	JobID         string
	FileSeq       int
	FileStartedAt time.Time
	PublishedAt   time.Time
	// OverAt is when a paused task ends with RECORD_OVER (zero when not paused).
	OverAt time.Time
	// NextFileAt is when RECORD_NEW_FILE_START for the next file is due (zero
	// when none is pending). It is delayed a little after a file completes, so
	// that a publish_done arriving just after the last record_done does not
	// announce a file that never comes.
	NextFileAt time.Time
	// RecordFormat is what the recorder writes (FLV, MP4 or HLS), as its
	// source said or its last file showed; "" when unknown, and then the
	// domain's record_format is reported.
	RecordFormat string
	// PendingFiles counts the task's file jobs not finished yet: RECORD_OVER
	// waits for them.
	PendingFiles int
	UpdatedAt    time.Time
}

// NextTimer returns the earliest pending timer, or zero.
func (s *StreamState) NextTimer() time.Time {
	switch {
	case s.OverAt.IsZero():
		return s.NextFileAt
	case s.NextFileAt.IsZero() || s.OverAt.Before(s.NextFileAt):
		return s.OverAt
	}
	return s.NextFileAt
}

// StreamTx is the part of a write transaction that keeps recording state.
type StreamTx interface {
	// Stream returns the state of a stream, nil when it has none.
	Stream(ctx context.Context, key StreamKey) (*StreamState, error)
	// PutStream stores a stream's state (insert or replace). The store keeps
	// NextTimer() indexed for DueStreams.
	PutStream(ctx context.Context, s *StreamState) error
	// AddFileJob stores a finished file's job, owned by node until
	// now+lease, so that the node that answered the recorder works it first.
	AddFileJob(ctx context.Context, node string, now time.Time, lease time.Duration, j *FileJob) error
	// FinishFileJob ends a job: it is deleted, or, with a doneEvent, kept
	// (no longer worked) until that event's deliveries settle, for
	// FinishedFileJobs.
	FinishFileJob(ctx context.Context, id int64, doneEvent string) error
}

// FileJob is a finished recording file on its way to RECORD_FILE_COMPLETE or
// RECORD_FAILED: the recorder's notification is stored as a job, answered at
// once, and probed, uploaded and reported from the store, so that a crash
// loses nothing.
type FileJob struct {
	ID int64 // increasing in commit order; a stream's jobs are worked in this order
	StreamKey
	Path string // inside a record directory, symlinks resolved
	// Duration the recorder measured (for files that cannot be probed).
	Duration   time.Duration
	FinishedAt time.Time // when the recorder reported the file
	// Attempts counts the failed upload attempts; NextAttempt is when the
	// job is due again.
	Attempts    int
	NextAttempt time.Time
	LastError   string
	CreatedAt   time.Time
}

// FinishedFileJob is a job whose RECORD_FILE_COMPLETE is stored and whose
// local file is to be deleted once that event is delivered.
type FinishedFileJob struct {
	ID        int64
	ProjectID string
	Path      string
	EventID   string
	Pending   int // deliveries of the event still pending
	Succeeded int
	Failed    int // failed or dead-lettered
}

// FileJobStore hands file jobs out to the workers of the nodes.
type FileJobStore interface {
	// ClaimFileJobs leases to node, until now+lease, up to max jobs that are
	// due and not leased by another node, each the oldest unfinished job of
	// its stream, oldest first. Jobs node holds already are returned again.
	ClaimFileJobs(ctx context.Context, node string, now time.Time, lease time.Duration, max int) ([]*FileJob, error)
	// RenewFileJobs extends the leases node holds to until.
	RenewFileJobs(ctx context.Context, node string, until time.Time) error
	// RetryFileJob records a failed attempt of a job node holds: it is due
	// again at next, and no longer leased. ENOTFOUND when the job is gone.
	RetryFileJob(ctx context.Context, node string, id int64, attempts int, next time.Time, lastError string) error
	// ReleaseFileJobs gives up node's leases (shutdown, or a restart of the
	// same node).
	ReleaseFileJobs(ctx context.Context, node string) error
	// FinishedFileJobs returns up to limit finished jobs kept for their
	// event's deliveries, with those deliveries' counts.
	FinishedFileJobs(ctx context.Context, limit int) ([]*FinishedFileJob, error)
	// DeleteFileJob removes a finished job.
	DeleteFileJob(ctx context.Context, id int64) error
	// FileJobPending reports whether an unfinished job names the file at
	// path (a real path), so that nothing removes a file a job still needs.
	FileJobPending(ctx context.Context, path string) (bool, error)
}

// DomainSettings are the recording settings of one publish domain.
type DomainSettings struct {
	ProjectID     string `json:"-"`
	PublishDomain string `json:"publish_domain"`
	// RecordFormat of the recorder's files: FLV, MP4 or HLS (default FLV).
	RecordFormat string `json:"record_format"`
	// DownloadURLTemplate builds download_url; placeholders {domain} {app}
	// {stream} {file} {job_id}. Ignored when Storage is set.
	DownloadURLTemplate string `json:"download_url_template,omitempty"`
	// DownloadURLExpiry is how long the links are valid when livehooks
	// serves the files itself (no template, no storage); 0: forever. Stored
	// settings always carry it (the API, the config file and the stores fill
	// in DefaultDownloadURLExpiry).
	DownloadURLExpiry time.Duration `json:"-"`
	// PlayURLTemplate builds play_url: {domain} {app} {stream}.
	PlayURLTemplate string `json:"play_url_template,omitempty"`
	// MaxPause is the maximum stream pause length (default 30 s): a republish
	// within it continues the task.
	MaxPause time.Duration `json:"-"`
	// RejectUnknownStreams makes on_publish refuse streams of apps that have
	// no callback config (nginx-rtmp on_publish, SRS on_publish).
	RejectUnknownStreams bool `json:"reject_unknown_streams,omitempty"`
	// Storage, when set, uploads finished files to S3-compatible storage and
	// uses the object URL as download_url.
	Storage *StorageSettings `json:"storage,omitempty"`
	// DeleteAfterUpload deletes a recording's local file once it is stored
	// in object storage and its RECORD_FILE_COMPLETE was delivered to every
	// callback it went to (default: keep it).
	DeleteAfterUpload bool      `json:"delete_after_upload,omitempty"`
	CreateTime        time.Time `json:"-"`
	UpdateTime        time.Time `json:"-"`
}

// StorageSettings locate an S3-compatible bucket.
type StorageSettings struct {
	Endpoint  string `json:"endpoint"` // host[:port]
	Secure    bool   `json:"secure"`   // https
	Region    string `json:"region,omitempty"`
	Bucket    string `json:"bucket"`
	Prefix    string `json:"prefix,omitempty"`
	AccessKey string `json:"access_key"`
	// SecretKey is encrypted at rest and never returned by the API.
	SecretKey string `json:"-"`
	// Presign makes download_url a presigned GET URL valid for PresignExpiry.
	Presign       bool          `json:"presign,omitempty"`
	PresignExpiry time.Duration `json:"-"`
	// PublicURL, when set, replaces scheme://endpoint/bucket in object URLs
	// (a CDN in front of the bucket).
	PublicURL string `json:"public_url,omitempty"`
}

// DefaultMaxPause is the default maximum stream pause length.
const DefaultMaxPause = 30 * time.Second

// DefaultDownloadURLExpiry is how long a link to a file livehooks serves
// stays valid unless the domain says otherwise.
const DefaultDownloadURLExpiry = 7 * 24 * time.Hour

// DownloadURLExpiryOf returns the lifetime of the links to a domain's files
// (d may be nil: a domain without settings).
func DownloadURLExpiryOf(d *DomainSettings) time.Duration {
	if d == nil {
		return DefaultDownloadURLExpiry
	}
	return d.DownloadURLExpiry
}

// DomainStore keeps per-domain recording settings.
type DomainStore interface {
	// PutDomain stores (inserts or replaces) a domain's settings.
	PutDomain(ctx context.Context, d *DomainSettings) error
	// FindDomain returns a domain's settings; ENOTFOUND when it has none.
	FindDomain(ctx context.Context, projectID, domain string) (*DomainSettings, error)
	// FindDomains lists a project's domains, ordered by domain.
	FindDomains(ctx context.Context, projectID string) ([]*DomainSettings, error)
	// DeleteDomain removes a domain's settings; ENOTFOUND when it has none.
	DeleteDomain(ctx context.Context, projectID, domain string) error
	// DueStreams returns up to limit streams whose next timer is at or
	// before now, earliest first.
	DueStreams(ctx context.Context, now time.Time, limit int) ([]StreamKey, error)
}

// Uploader puts a finished recording file into S3-compatible storage and
// returns the URL for download_url (presigned when the settings ask).
type Uploader interface {
	Upload(ctx context.Context, s *StorageSettings, objectKey, path string) (url string, err error)
}
