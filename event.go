package livehooks

import (
	"crypto/rand"
	"encoding/hex"
	"encoding/json"
	"strconv"
	"time"
)

// EventType is a Huawei Cloud Live recording event type.
type EventType string

// The five recording event types of seed 002.
const (
	RecordStart        EventType = "RECORD_START"
	RecordNewFileStart EventType = "RECORD_NEW_FILE_START"
	RecordFileComplete EventType = "RECORD_FILE_COMPLETE"
	RecordOver         EventType = "RECORD_OVER"
	RecordFailed       EventType = "RECORD_FAILED"
)

// EventTypes lists every event type in lifecycle order.
var EventTypes = []EventType{RecordStart, RecordNewFileStart, RecordFileComplete, RecordOver, RecordFailed}

// Valid reports whether t is one of the five event types.
func (t EventType) Valid() bool {
	switch t {
	case RecordStart, RecordNewFileStart, RecordFileComplete, RecordOver, RecordFailed:
		return true
	}
	return false
}

// HasJob reports whether the seed names job_id for this type.
func (t EventType) HasJob() bool { return t == RecordNewFileStart || t == RecordFileComplete }

// Record formats.
const (
	FormatFLV = "FLV"
	FormatMP4 = "MP4"
	FormatHLS = "HLS"
)

// Event is one recording event of one stream, as ingested and stored. The
// callback body sent to receivers is built from it by Message.
type Event struct {
	ID        string    // 32 hex, assigned at ingest
	ProjectID string    //
	Type      EventType //
	// OccurredAt is when the event happened (ingest time unless the source says).
	OccurredAt time.Time
	// IngestedAt is when the store took the event (set on reads; replay
	// ranges are in ingest time).
	IngestedAt time.Time

	PublishDomain string
	App           string
	Stream        string
	TaskID        string
	JobID         string

	RecordFormat   string
	DownloadURL    string
	AssetID        string
	FileSize       int64
	RecordDuration int64 // seconds
	StartTime      time.Time
	EndTime        time.Time
	Width          int
	Height         int
	ErrorMessage   string
	PlayURL        string
}

// Signature is what a signer adds to a callback body on each attempt.
type Signature struct {
	AuthSign      string
	AuthTimestamp int64 // Unix seconds at which the signature expires
}

// Message returns the callback body of seed 002 for e: every field the seed
// names for e's type, in the seed's order, integers as numbers, times in UTC.
// sig is nil when the config has no key.
func (e *Event) Message(sig *Signature) []byte {
	b := make([]byte, 0, 512)
	b = append(b, '{')
	str := func(name, v string) {
		if len(b) > 1 {
			b = append(b, ',')
		}
		b = append(b, '"')
		b = append(b, name...)
		b = append(b, `":`...)
		b = appendJSONString(b, v)
	}
	num := func(name string, v int64) {
		b = append(b, `,"`...)
		b = append(b, name...)
		b = append(b, `":`...)
		b = strconv.AppendInt(b, v, 10)
	}
	tm := func(name string, t time.Time) {
		b = append(b, `,"`...)
		b = append(b, name...)
		b = append(b, `":"`...)
		if !t.IsZero() {
			b = AppendTime(b, t)
		}
		b = append(b, '"')
	}
	str("project_id", e.ProjectID)
	if e.Type.HasJob() {
		str("job_id", e.JobID)
	}
	str("task_id", e.TaskID)
	str("event_type", string(e.Type))
	str("publish_domain", e.PublishDomain)
	str("app", e.App)
	str("stream", e.Stream)
	if e.RecordFormat != "" {
		str("record_format", e.RecordFormat)
	}
	if e.Type == RecordFileComplete {
		str("download_url", e.DownloadURL)
		str("asset_id", e.AssetID)
		num("file_size", e.FileSize)
		num("record_duration", e.RecordDuration)
		tm("start_time", e.StartTime)
		tm("end_time", e.EndTime)
		num("width", int64(e.Width))
		num("height", int64(e.Height))
	}
	if e.PlayURL != "" {
		str("play_url", e.PlayURL)
	}
	if sig != nil {
		str("auth_sign", sig.AuthSign)
		num("auth_timestamp", sig.AuthTimestamp)
	}
	if e.Type == RecordFailed {
		str("error_message", e.ErrorMessage)
	}
	return append(b, '}')
}

// appendJSONString appends s as a JSON string, byte for byte as json.Marshal
// writes it (with <, > and & escaped): a string of printable ASCII that needs
// no escape, as nearly every field of a callback is, is copied between
// quotes; any other goes through json.Marshal.
func appendJSONString(b []byte, s string) []byte {
	for i := 0; i < len(s); i++ {
		if c := s[i]; c < 0x20 || c > 0x7e || c == '"' || c == '\\' || c == '<' || c == '>' || c == '&' {
			enc, _ := json.Marshal(s) // strings always marshal
			return append(b, enc...)
		}
	}
	b = append(b, '"')
	b = append(b, s...)
	return append(b, '"')
}

// NewEventID returns an event id: 32 lowercase hex digits, the first 12 the
// Unix milliseconds and the rest random, so that ids sort by time and a
// store's unique index of them grows at its end instead of being written
// all over (one page per commit rather than one per event).
func NewEventID() string {
	var b [16]byte
	ms := uint64(time.Now().UnixMilli())
	for i := 5; i >= 0; i-- {
		b[i] = byte(ms)
		ms >>= 8
	}
	_, _ = rand.Read(b[6:]) // crypto/rand.Read never fails on supported platforms
	return hex.EncodeToString(b[:])
}
