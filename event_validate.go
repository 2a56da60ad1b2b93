package livehooks

import (
	"strings"
	"unicode/utf8"
)

// Limits of ingested events.
const (
	MaxIDLength        = 128
	MaxErrorMessageLen = 1024
	MaxDimension       = 16384
	MaxEventsPerBatch  = 1000
)

// Validate checks an ingested event and normalizes record_format to upper
// case. It returns an EINVALID *Error naming the first bad field.
func (e *Event) Validate() error {
	if e.Type == "" {
		return Errorf(EINVALID, "event_type is required")
	} else if !e.Type.Valid() {
		return Errorf(EINVALID, "event_type must be one of RECORD_START, RECORD_NEW_FILE_START, RECORD_FILE_COMPLETE, RECORD_OVER, RECORD_FAILED")
	}
	if !IsDomainName(e.PublishDomain) {
		return Errorf(EINVALID, "publish_domain is required and must be a valid DNS name")
	}
	if e.App == "*" || !IsAppName(e.App) {
		return Errorf(EINVALID, "app is required: 1-128 characters of letters, digits, '_', '.' and '-'")
	}
	if !IsStreamName(e.Stream) {
		return Errorf(EINVALID, "stream is required: 1-512 characters of letters, digits, '_', '.' and '-'")
	}
	for _, f := range []struct{ name, v string }{{"task_id", e.TaskID}, {"job_id", e.JobID}, {"asset_id", e.AssetID}} {
		if f.v != "" && !isName(f.v, MaxIDLength) {
			return Errorf(EINVALID, "%s must be 1-128 characters of letters, digits, '_', '.' and '-'", f.name)
		}
	}
	switch strings.ToUpper(e.RecordFormat) {
	case "", FormatFLV, FormatMP4, FormatHLS:
		e.RecordFormat = strings.ToUpper(e.RecordFormat)
	default:
		return Errorf(EINVALID, "record_format must be FLV, MP4 or HLS")
	}
	for _, f := range []struct{ name, v string }{{"download_url", e.DownloadURL}, {"play_url", e.PlayURL}} {
		if f.v == "" {
			continue
		}
		if len(f.v) > MaxURLLength || !(strings.HasPrefix(f.v, "http://") || strings.HasPrefix(f.v, "https://") || strings.HasPrefix(f.v, "rtmp://")) || !utf8.ValidString(f.v) || strings.ContainsAny(f.v, " \t\r\n") {
			return Errorf(EINVALID, "%s must be an http, https or rtmp URL of at most %d bytes", f.name, MaxURLLength)
		}
	}
	if e.FileSize < 0 || e.RecordDuration < 0 {
		return Errorf(EINVALID, "file_size and record_duration must not be negative")
	}
	if e.Width < 0 || e.Height < 0 || e.Width > MaxDimension || e.Height > MaxDimension {
		return Errorf(EINVALID, "width and height must be 0 to %d", MaxDimension)
	}
	if !e.StartTime.IsZero() && !e.EndTime.IsZero() && e.EndTime.Before(e.StartTime) {
		return Errorf(EINVALID, "end_time must not be before start_time")
	}
	if len(e.ErrorMessage) > MaxErrorMessageLen || !utf8.ValidString(e.ErrorMessage) {
		return Errorf(EINVALID, "error_message must be valid UTF-8 of at most %d bytes", MaxErrorMessageLen)
	}
	return nil
}
