// Package media reads finished recording files (FLV, MP4, HLS playlists with
// their MPEG-TS or fMP4 segments, lone MPEG-TS segments) for the facts a
// RECORD_FILE_COMPLETE callback reports: size, duration, width, height.
//
// Every parser reads untrusted bytes: it returns an error wrapping ErrCorrupt
// or ErrUnsupported for bad input, never panics, and never allocates in
// proportion to a length field it has not checked against the file.
package media
