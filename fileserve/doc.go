// Package fileserve lets livehooks serve finished recordings itself: it
// signs expiring download links, answers them (GET and HEAD, byte ranges,
// HLS playlists with signed segment links) only for files inside the record
// directories, and keeps the space the served files take under a cap.
package fileserve
