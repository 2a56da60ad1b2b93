package livehooks

import (
	"context"
	"time"
)

// RecordingLog reads what the console shows of a domain's recordings: the
// streams being recorded now and the events of recent tasks.
type RecordingLog interface {
	// FindStreams returns up to limit streams of a project's publish domain
	// that are being recorded (live, or paused within their maximum pause),
	// ordered by app and stream.
	FindStreams(ctx context.Context, projectID, domain string, limit int) ([]*StreamState, error)
	// FindRecentEvents returns up to limit events of a project's publish
	// domain stored before `before` (zero: no bound), newest first.
	FindRecentEvents(ctx context.Context, projectID, domain string, before time.Time, limit int) ([]*Event, error)
}
